// gguf.cpp — mapping and structural validation of GGUF files (see gguf.h for the contract).
//
// Every read goes through a bounds-checked Cursor; every count read from the file is checked
// against the bytes left before it drives a loop or an allocation.
#include "gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <numeric>

namespace eg {

namespace {

constexpr uint32_t kMagic = 0x46554747;         // "GGUF" read as a little-endian uint32
constexpr uint64_t kMaxKV = 1u << 16;           // real files hold < 100 keys
constexpr uint64_t kMaxTensors = 1u << 16;      // the largest MoE files hold a few thousand
constexpr uint64_t kMaxKeyLen = 1u << 16;
constexpr uint64_t kMaxStringLen = 1u << 24;    // chat templates are the longest: ~10-100 KiB
constexpr uint64_t kMaxTensorNameLen = 255;
constexpr uint32_t kDefaultAlignment = 32;

[[noreturn]] void fail(const std::string& msg) { throw GGUFError(msg); }

// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF), as Python decodes it.
bool valid_utf8(const uint8_t* s, size_t n) {
    size_t i = 0;
    while (i < n) {
        const uint8_t c = s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len) return false;
        for (size_t k = 1; k < len; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

// A read-only, bounds-checked view of the header region.
class Cursor {
public:
    Cursor(const uint8_t* base, uint64_t size) : base_(base), size_(size) {}
    uint64_t pos() const { return pos_; }
    uint64_t left() const { return size_ - pos_; }

    void need(uint64_t n, const std::string& what) const {
        if (n > left())
            fail("truncated file: " + what + " needs " + std::to_string(n) + " bytes at offset " +
                 std::to_string(pos_) + ", only " + std::to_string(left()) + " left");
    }
    template <typename T>
    T read(const std::string& what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, base_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    const uint8_t* skip(uint64_t n, const std::string& what) {
        need(n, what);
        const uint8_t* p = base_ + pos_;
        pos_ += n;
        return p;
    }
    std::string_view read_string(const std::string& what, uint64_t max_len) {
        const uint64_t len = read<uint64_t>(what + " length");
        if (len > max_len)
            fail(what + ": string length " + std::to_string(len) + " exceeds the limit of " +
                 std::to_string(max_len) + " bytes");
        const uint8_t* p = skip(len, what);
        if (!valid_utf8(p, len)) fail(what + ": string is not valid UTF-8");
        return {reinterpret_cast<const char*>(p), static_cast<size_t>(len)};
    }

private:
    const uint8_t* base_;
    uint64_t size_;
    uint64_t pos_ = 0;
};

bool known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GGUFType::FLOAT64); }

// Reads one fixed-size scalar of type t into v (type already checked to be fixed-size).
void read_scalar(Cursor& c, GGUFType t, GGUFValue& v, const std::string& what) {
    switch (t) {
        case GGUFType::UINT8: v.u64 = c.read<uint8_t>(what); break;
        case GGUFType::INT8: v.i64 = c.read<int8_t>(what); break;
        case GGUFType::UINT16: v.u64 = c.read<uint16_t>(what); break;
        case GGUFType::INT16: v.i64 = c.read<int16_t>(what); break;
        case GGUFType::UINT32: v.u64 = c.read<uint32_t>(what); break;
        case GGUFType::INT32: v.i64 = c.read<int32_t>(what); break;
        case GGUFType::UINT64: v.u64 = c.read<uint64_t>(what); break;
        case GGUFType::INT64: v.i64 = c.read<int64_t>(what); break;
        case GGUFType::FLOAT32: v.f64 = c.read<float>(what); break;
        case GGUFType::FLOAT64: v.f64 = c.read<double>(what); break;
        case GGUFType::BOOL: {
            const uint8_t b = c.read<uint8_t>(what);
            if (b > 1) fail(what + ": bool value " + std::to_string(b) + " is neither 0 nor 1");
            v.b = b != 0;
            break;
        }
        default: fail(what + ": not a scalar type");
    }
}

void read_value(Cursor& c, GGUFType t, GGUFValue& v, const std::string& what) {
    v.type = t;
    if (t == GGUFType::STRING) {
        v.str = c.read_string(what, kMaxStringLen);
        return;
    }
    if (t != GGUFType::ARRAY) {
        read_scalar(c, t, v, what);
        return;
    }
    const uint32_t et = c.read<uint32_t>(what + " array element type");
    if (!known_value_type(et)) fail(what + ": unknown array element type " + std::to_string(et));
    if (et == static_cast<uint32_t>(GGUFType::ARRAY)) fail(what + ": nested arrays are not supported");
    v.array_type = static_cast<GGUFType>(et);
    const uint64_t n = c.read<uint64_t>(what + " array count");
    v.array_count = n;
    if (v.array_type == GGUFType::STRING) {
        // Each element needs at least its 8-byte length: bounds the count before any allocation.
        if (n > c.left() / 8)
            fail(what + ": array of " + std::to_string(n) + " strings cannot fit in the " +
                 std::to_string(c.left()) + " bytes left");
        v.array_strings.reserve(static_cast<size_t>(n));
        for (uint64_t i = 0; i < n; ++i)
            v.array_strings.push_back(c.read_string(what + "[" + std::to_string(i) + "]", kMaxStringLen));
        return;
    }
    const uint64_t es = gguf_type_size(v.array_type);
    if (n > c.left() / es)
        fail(what + ": array of " + std::to_string(n) + " x " + gguf_type_name(v.array_type) +
             " cannot fit in the " + std::to_string(c.left()) + " bytes left");
    v.array_data = c.skip(n * es, what);
    if (v.array_type == GGUFType::BOOL)
        for (uint64_t i = 0; i < n; ++i)
            if (v.array_data[i] > 1) fail(what + "[" + std::to_string(i) + "]: bool value is neither 0 nor 1");
}

// a * b into out; false on int64 overflow (a, b > 0).
bool mul_overflows(int64_t a, int64_t b, int64_t& out) {
    if (a > std::numeric_limits<int64_t>::max() / b) return true;
    out = a * b;
    return false;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Type tables
// ---------------------------------------------------------------------------------------------

const char* gguf_type_name(GGUFType t) {
    static const char* names[] = {"uint8", "int8",   "uint16", "int16", "uint32", "int32", "float32",
                                  "bool",  "string", "array",  "uint64", "int64", "float64"};
    const uint32_t i = static_cast<uint32_t>(t);
    return i < sizeof(names) / sizeof(names[0]) ? names[i] : "unknown";
}

size_t gguf_type_size(GGUFType t) {
    switch (t) {
        case GGUFType::UINT8: case GGUFType::INT8: case GGUFType::BOOL: return 1;
        case GGUFType::UINT16: case GGUFType::INT16: return 2;
        case GGUFType::UINT32: case GGUFType::INT32: case GGUFType::FLOAT32: return 4;
        case GGUFType::UINT64: case GGUFType::INT64: case GGUFType::FLOAT64: return 8;
        default: return 0;
    }
}

const GGMLTypeInfo* ggml_type_info(int32_t id) {
    // ggml's ids and block layouts (ggml.h / ggml-common.h). Gaps are ids ggml removed.
    static const GGMLTypeInfo table[] = {
        {"F32", 1, 4},        {"F16", 1, 2},       {"Q4_0", 32, 18},    {"Q4_1", 32, 20},
        {nullptr, 0, 0},      {nullptr, 0, 0},     {"Q5_0", 32, 22},    {"Q5_1", 32, 24},
        {"Q8_0", 32, 34},     {"Q8_1", 32, 36},    {"Q2_K", 256, 84},   {"Q3_K", 256, 110},
        {"Q4_K", 256, 144},   {"Q5_K", 256, 176},  {"Q6_K", 256, 210},  {"Q8_K", 256, 292},
        {"IQ2_XXS", 256, 66}, {"IQ2_XS", 256, 74}, {"IQ3_XXS", 256, 98}, {"IQ1_S", 256, 50},
        {"IQ4_NL", 32, 18},   {"IQ3_S", 256, 110}, {"IQ2_S", 256, 82},  {"IQ4_XS", 256, 136},
        {"I8", 1, 1},         {"I16", 1, 2},       {"I32", 1, 4},       {"I64", 1, 8},
        {"F64", 1, 8},        {"IQ1_M", 256, 56},  {"BF16", 1, 2},      {nullptr, 0, 0},
        {nullptr, 0, 0},      {nullptr, 0, 0},     {"TQ1_0", 256, 54},  {"TQ2_0", 256, 66},
        {nullptr, 0, 0},      {nullptr, 0, 0},     {nullptr, 0, 0},     {"MXFP4", 32, 17},
        {"NVFP4", 64, 36},    {"Q1_0", 128, 18},
    };
    if (id < 0 || id >= static_cast<int32_t>(sizeof(table) / sizeof(table[0]))) return nullptr;
    return table[id].name ? &table[id] : nullptr;
}

bool GGUFValue::is_integer() const {
    switch (type) {
        case GGUFType::UINT8: case GGUFType::INT8: case GGUFType::UINT16: case GGUFType::INT16:
        case GGUFType::UINT32: case GGUFType::INT32: case GGUFType::UINT64: case GGUFType::INT64:
            return true;
        default: return false;
    }
}

// ---------------------------------------------------------------------------------------------
// Open / map
// ---------------------------------------------------------------------------------------------

std::shared_ptr<GGUFFile> GGUFFile::open(const std::string& path) {
    static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE float sizes");
    const uint16_t probe = 1;
    uint8_t first;
    std::memcpy(&first, &probe, 1);
    if (first != 1) throw GGUFError("GGUF reading needs a little-endian host");

    std::shared_ptr<GGUFFile> f(new GGUFFile());
    f->path_ = path;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw GGUFOpenError("cannot open " + path + ": " + std::strerror(errno), errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        const int e = S_ISDIR(st.st_mode) ? EISDIR : errno;
        ::close(fd);
        throw GGUFOpenError("cannot open " + path + ": not a regular file", e);
    }
    if (st.st_size < 24) {  // magic + version + two counts
        ::close(fd);
        throw GGUFError("truncated file: " + std::to_string(st.st_size) + " bytes is smaller than a GGUF header");
    }
    void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    const int map_errno = errno;
    ::close(fd);  // the mapping keeps the file referenced
    if (p == MAP_FAILED) throw GGUFOpenError("cannot map " + path + ": " + std::strerror(map_errno), map_errno);
    f->base_ = static_cast<const uint8_t*>(p);
    f->size_ = static_cast<uint64_t>(st.st_size);
    f->parse();
    f->check_vocab();
    f->check_model();
    return f;
}

GGUFFile::~GGUFFile() {
    if (base_) ::munmap(const_cast<uint8_t*>(base_), static_cast<size_t>(size_));
}

// ---------------------------------------------------------------------------------------------
// Parse: header, metadata, tensor records, data layout
// ---------------------------------------------------------------------------------------------

void GGUFFile::parse() {
    Cursor c(base_, size_);
    const uint32_t magic = c.read<uint32_t>("magic");
    if (magic != kMagic) fail("not a GGUF file (bad magic)");
    version_ = c.read<uint32_t>("version");
    if (version_ == 0x02000000u || version_ == 0x03000000u) fail("big-endian GGUF files are not supported");
    if (version_ != 2 && version_ != 3)
        fail("unsupported GGUF version " + std::to_string(version_) + " (supported: 2, 3)");
    const uint64_t n_tensors = c.read<uint64_t>("tensor count");
    const uint64_t n_kv = c.read<uint64_t>("metadata count");
    if (n_tensors > kMaxTensors) fail("absurd tensor count " + std::to_string(n_tensors));
    if (n_kv > kMaxKV) fail("absurd metadata key/value count " + std::to_string(n_kv));
    // Minimum record sizes: key/value = 8 (key length) + 4 (type); tensor = 8 + 4 + 4 + 8.
    if (n_kv > c.left() / 12 || n_tensors > (c.left() - n_kv * 12) / 24)
        fail("counts (" + std::to_string(n_kv) + " keys, " + std::to_string(n_tensors) +
             " tensors) cannot fit in a " + std::to_string(size_) + "-byte file");

    kv_.reserve(static_cast<size_t>(n_kv));
    for (uint64_t i = 0; i < n_kv; ++i) {
        GGUFKeyValue kv;
        kv.key = c.read_string("metadata key #" + std::to_string(i), kMaxKeyLen);
        if (kv.key.empty()) fail("metadata key #" + std::to_string(i) + " is empty");
        const std::string what = "metadata '" + std::string(kv.key) + "'";
        const uint32_t t = c.read<uint32_t>(what + " type");
        if (!known_value_type(t)) fail(what + ": unknown value type " + std::to_string(t));
        read_value(c, static_cast<GGUFType>(t), kv.value, what);
        if (!kv_index_.emplace(kv.key, kv_.size()).second) fail("duplicate metadata key '" + std::string(kv.key) + "'");
        kv_.push_back(std::move(kv));
    }

    if (const GGUFValue* a = find("general.alignment")) {
        if (a->type != GGUFType::UINT32) fail("general.alignment must be uint32, not " + std::string(gguf_type_name(a->type)));
        if (a->u64 == 0 || (a->u64 & (a->u64 - 1)) != 0)
            fail("general.alignment " + std::to_string(a->u64) + " is not a power of two");
        alignment_ = static_cast<uint32_t>(a->u64);
    } else {
        alignment_ = kDefaultAlignment;
    }

    tensors_.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
        GGUFTensor t;
        t.name = c.read_string("tensor #" + std::to_string(i) + " name", kMaxTensorNameLen);
        if (t.name.empty()) fail("tensor #" + std::to_string(i) + " has an empty name");
        const std::string what = "tensor '" + std::string(t.name) + "'";
        t.n_dims = c.read<uint32_t>(what + " n_dims");
        if (t.n_dims > 4) fail(what + ": " + std::to_string(t.n_dims) + " dimensions (at most 4)");
        int64_t n_el = 1;
        for (uint32_t d = 0; d < t.n_dims; ++d) {
            const int64_t ne = c.read<int64_t>(what + " shape");
            if (ne <= 0) fail(what + ": dimension " + std::to_string(d) + " is " + std::to_string(ne) + " (must be positive)");
            t.ne[d] = ne;
            if (mul_overflows(n_el, ne, n_el)) fail(what + ": element count overflows int64");
        }
        t.type = static_cast<int32_t>(c.read<uint32_t>(what + " type"));
        const GGMLTypeInfo* ti = ggml_type_info(t.type);
        if (!ti) fail(what + ": unknown tensor type id " + std::to_string(static_cast<uint32_t>(t.type)));
        if (t.ne[0] % ti->block_size != 0)
            fail(what + ": row length " + std::to_string(t.ne[0]) + " is not a multiple of " + ti->name +
                 "'s block size " + std::to_string(ti->block_size));
        int64_t nbytes = (t.ne[0] / ti->block_size);
        if (mul_overflows(nbytes, ti->type_size, nbytes)) fail(what + ": byte size overflows");
        for (int d = 1; d < 4; ++d)
            if (mul_overflows(nbytes, t.ne[d], nbytes)) fail(what + ": byte size overflows");
        t.nbytes = static_cast<uint64_t>(nbytes);
        t.offset = c.read<uint64_t>(what + " offset");
        if (t.offset % alignment_ != 0)
            fail(what + ": data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                 std::to_string(alignment_));
        if (!tensor_index_.emplace(t.name, tensors_.size()).second) fail("duplicate tensor name '" + std::string(t.name) + "'");
        tensors_.push_back(t);
    }

    // The data section starts at the next multiple of the alignment after the records.
    const uint64_t pad = (alignment_ - c.pos() % alignment_) % alignment_;
    data_offset_ = c.pos() + pad;
    if (tensors_.empty()) return;
    if (data_offset_ > size_) fail("truncated file: the tensor data section starts past the end of the file");
    const uint64_t data_size = size_ - data_offset_;
    for (GGUFTensor& t : tensors_) {
        if (t.offset > data_size || t.nbytes > data_size - t.offset)
            fail("tensor '" + std::string(t.name) + "': data [" + std::to_string(t.offset) + ", +" +
                 std::to_string(t.nbytes) + ") lies outside the " + std::to_string(data_size) + "-byte data section");
        t.data = base_ + data_offset_ + t.offset;
    }
    std::vector<size_t> order(tensors_.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
    for (size_t k = 1; k < order.size(); ++k) {
        const GGUFTensor& prev = tensors_[order[k - 1]];
        const GGUFTensor& cur = tensors_[order[k]];
        if (prev.offset + prev.nbytes > cur.offset)
            fail("tensors '" + std::string(prev.name) + "' and '" + std::string(cur.name) + "' overlap");
    }
}

// ---------------------------------------------------------------------------------------------
// Accessors
// ---------------------------------------------------------------------------------------------

const GGUFValue* GGUFFile::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].value;
}

namespace {
[[noreturn]] void wrong_type(std::string_view key, const char* want, const GGUFValue& v) {
    fail("metadata '" + std::string(key) + "' should be " + want + ", not " + gguf_type_name(v.type));
}
int64_t as_int(std::string_view key, const GGUFValue& v) {
    if (!v.is_integer()) wrong_type(key, "an integer", v);
    const bool is_unsigned = v.type == GGUFType::UINT8 || v.type == GGUFType::UINT16 ||
                             v.type == GGUFType::UINT32 || v.type == GGUFType::UINT64;
    if (is_unsigned && v.u64 > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail("metadata '" + std::string(key) + "' value " + std::to_string(v.u64) + " is out of range");
    return is_unsigned ? static_cast<int64_t>(v.u64) : v.i64;
}
}  // namespace

int64_t GGUFFile::get_int(std::string_view key) const {
    const GGUFValue* v = find(key);
    if (!v) fail("missing metadata '" + std::string(key) + "'");
    return as_int(key, *v);
}
int64_t GGUFFile::get_int(std::string_view key, int64_t fallback) const {
    const GGUFValue* v = find(key);
    return v ? as_int(key, *v) : fallback;
}
double GGUFFile::get_float(std::string_view key) const {
    const GGUFValue* v = find(key);
    if (!v) fail("missing metadata '" + std::string(key) + "'");
    if (!v->is_float()) wrong_type(key, "a float", *v);
    return v->f64;
}
double GGUFFile::get_float(std::string_view key, double fallback) const {
    return find(key) ? get_float(key) : fallback;
}
bool GGUFFile::get_bool(std::string_view key, bool fallback) const {
    const GGUFValue* v = find(key);
    if (!v) return fallback;
    if (v->type != GGUFType::BOOL) wrong_type(key, "a bool", *v);
    return v->b;
}
std::string GGUFFile::get_string(std::string_view key) const {
    const GGUFValue* v = find(key);
    if (!v) fail("missing metadata '" + std::string(key) + "'");
    if (v->type != GGUFType::STRING) wrong_type(key, "a string", *v);
    return std::string(v->str);
}
std::string GGUFFile::get_string(std::string_view key, const std::string& fallback) const {
    return find(key) ? get_string(key) : fallback;
}
std::string GGUFFile::architecture() const { return get_string("general.architecture", ""); }

const GGUFTensor* GGUFFile::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}
const GGUFTensor& GGUFFile::tensor(std::string_view name) const {
    const GGUFTensor* t = find_tensor(name);
    if (!t) fail("missing tensor '" + std::string(name) + "'");
    return *t;
}

}  // namespace eg
