// gguf.h — a validating, zero-copy reader for GGUF model files (versions 2 and 3, little-endian).
//
// GGUFFile::open() maps the file read-only and checks everything before anyone uses it: header,
// every metadata key/value, every tensor record, the data layout (aligned, in-file, non-overlapping)
// and, for llama-style architectures, that the hyper-parameters agree with the tensor shapes.
// Any problem throws eg::GGUFError naming it; nothing is read out of bounds, no count from the
// file sizes an allocation before it has been checked against the bytes that are actually left.
//
// After open() succeeds the object is immutable: strings, arrays and tensor data are views into
// the mapping (std::string_view / raw pointers), valid for as long as the GGUFFile lives. Hold
// the shared_ptr as long as any pointer obtained from it is in use.
//
//   auto f = eg::GGUFFile::open("model.gguf");
//   int64_t n_layer = f->get_int("llama.block_count");
//   const eg::GGUFTensor& w = f->tensor("blk.0.attn_q.weight");   // w.type, w.ne[0..3], w.data
//
// Known limit: the mapping is MAP_PRIVATE; if another process truncates the file while it is
// mapped, touching the lost pages raises SIGBUS (as with every mmap-based loader).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common.h"

namespace eg {

// A malformed or unsupported-format file; the Python binding raises edgegen.ModelFormatError.
struct GGUFError : Error {
    using Error::Error;
};
// The file could not be opened or mapped at all; `err` is the errno (ENOENT: no such file).
struct GGUFOpenError : GGUFError {
    GGUFOpenError(const std::string& msg, int e) : GGUFError(msg), err(e) {}
    int err;
};

// The value type tags of GGUF metadata (numeric ids fixed by the format).
enum class GGUFType : uint32_t {
    UINT8 = 0,
    INT8 = 1,
    UINT16 = 2,
    INT16 = 3,
    UINT32 = 4,
    INT32 = 5,
    FLOAT32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    UINT64 = 10,
    INT64 = 11,
    FLOAT64 = 12,
};
const char* gguf_type_name(GGUFType t);
size_t gguf_type_size(GGUFType t);  // bytes of one fixed-size value; 0 for STRING and ARRAY

// One ggml tensor type as the file format knows it: every id ggml has defined, not only those
// the engine computes with, so an unusual file is "unsupported type", not "malformed".
struct GGMLTypeInfo {
    const char* name;    // ggml's upper-case name ("Q4_K")
    int32_t block_size;  // elements per block (1 for plain scalar types)
    int32_t type_size;   // bytes per block
};
// nullptr for ids ggml never defined or has removed.
const GGMLTypeInfo* ggml_type_info(int32_t id);

// One metadata value. Scalars live in the union; STRING in `str`; ARRAY in the array_* fields.
// Numeric arrays are left in place (`array_data`, unaligned, little-endian; copy with memcpy);
// string arrays are views in `array_strings`. Nested arrays are rejected at open().
struct GGUFValue {
    GGUFType type = GGUFType::UINT8;
    union {
        uint64_t u64;  // UINT8..UINT64 (zero-extended)
        int64_t i64;   // INT8..INT64 (sign-extended)
        double f64;    // FLOAT32, FLOAT64
        bool b;        // BOOL
    };
    std::string_view str;                      // STRING
    GGUFType array_type = GGUFType::UINT8;     // ARRAY: element type (never ARRAY)
    uint64_t array_count = 0;                  // ARRAY: number of elements
    const uint8_t* array_data = nullptr;       // ARRAY of numbers/bools: first element
    std::vector<std::string_view> array_strings;  // ARRAY of STRING

    GGUFValue() : u64(0) {}
    bool is_integer() const;  // any of the 8 integer types
    bool is_float() const { return type == GGUFType::FLOAT32 || type == GGUFType::FLOAT64; }
};

struct GGUFKeyValue {
    std::string_view key;
    GGUFValue value;
};

// One tensor: shape in ggml order (ne[0] is the contiguous row length), unused dims are 1.
struct GGUFTensor {
    std::string_view name;
    int32_t type = 0;          // ggml type id (see ggml_type_info)
    uint32_t n_dims = 0;       // 0..4
    int64_t ne[4] = {1, 1, 1, 1};
    uint64_t offset = 0;       // from the start of the data section
    uint64_t nbytes = 0;       // bytes of tensor data
    const uint8_t* data = nullptr;  // into the mapping; aligned to the file's alignment
    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class GGUFFile {
public:
    // Maps and validates `path`. Throws GGUFOpenError when the file cannot be opened or mapped,
    // GGUFError when its contents are malformed.
    static std::shared_ptr<GGUFFile> open(const std::string& path);
    ~GGUFFile();
    GGUFFile(const GGUFFile&) = delete;
    GGUFFile& operator=(const GGUFFile&) = delete;

    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // start of the tensor data section
    const uint8_t* bytes() const { return base_; }           // the whole mapping
    uint64_t size() const { return size_; }
    const std::string& path() const { return path_; }

    // Metadata, in file order. find() returns nullptr when the key is absent.
    const std::vector<GGUFKeyValue>& metadata() const { return kv_; }
    const GGUFValue* find(std::string_view key) const;
    // Typed getters: throw GGUFError when the key is missing or has another type; the
    // two-argument forms return `fallback` when the key is absent (still throw on a wrong type).
    int64_t get_int(std::string_view key) const;  // any integer type (UINT64 must fit int64)
    int64_t get_int(std::string_view key, int64_t fallback) const;
    double get_float(std::string_view key) const;  // FLOAT32/FLOAT64
    double get_float(std::string_view key, double fallback) const;
    bool get_bool(std::string_view key, bool fallback) const;
    std::string get_string(std::string_view key) const;
    std::string get_string(std::string_view key, const std::string& fallback) const;
    std::string architecture() const;  // general.architecture ("" when absent)

    // Tensors, in file order. tensor() throws GGUFError naming the missing tensor.
    const std::vector<GGUFTensor>& tensors() const { return tensors_; }
    const GGUFTensor* find_tensor(std::string_view name) const;
    const GGUFTensor& tensor(std::string_view name) const;

private:
    GGUFFile() = default;
    void parse();            // header, metadata, tensor records, data layout (gguf.cpp)
    void check_vocab() const;  // tokenizer ids in range, per-token arrays the right length
    void check_model() const;  // hyper-parameters vs tensor shapes (llama-style archs)

    std::string path_;
    const uint8_t* base_ = nullptr;
    uint64_t size_ = 0;
    uint32_t version_ = 0;
    uint32_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<GGUFKeyValue> kv_;
    std::vector<GGUFTensor> tensors_;
    std::unordered_map<std::string_view, size_t> kv_index_;
    std::unordered_map<std::string_view, size_t> tensor_index_;
};

}  // namespace eg
