// kv_cache.h — paged KV cache: fixed-size blocks, a block table per sequence, shared prefixes.
//
// Storage is one allocation of n_blocks blocks. A block holds `block_tokens` consecutive tokens of
// one sequence for every layer: K rows then V rows, each row n_embd_kv elements in f16 or q8_0.
// Metadata (block tables, lengths, reference counts) is kept apart from the K/V bytes, in the
// spirit of llama.cpp's llama-kv-cells.h.
//
// A token's position equals its index in its sequence: a context shift moves rows down and
// re-rotates their keys, so there are never gaps. Sequences share blocks after seq_fork(); a
// shared block is copied the first time a sequence writes into it (copy-on-write).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "kernels.h"
#include "ops.h"

namespace eg {

// The cache has no free block for a request; the binding raises edgegen.MemoryBudgetError.
struct KVCacheFullError : Error {
    using Error::Error;
};

class KVCache {
public:
    struct Config {
        int32_t n_layer = 0;
        int32_t n_embd_kv = 0;     // n_head_kv * head_dim
        int32_t head_dim = 0;
        QType type = QType::F16;   // F16 or Q8_0
        int32_t block_tokens = 32;
        int64_t n_blocks = 0;
        int32_t n_seq_max = 1;     // sequence ids are 0 .. n_seq_max-1
    };

    explicit KVCache(const Config& cfg);

    // Bytes of one block (all layers, K and V) for these dimensions.
    static size_t block_bytes(int32_t n_layer, int32_t n_embd_kv, QType type, int32_t block_tokens);

    const Config& config() const { return cfg_; }
    size_t row_bytes() const { return row_bytes_; }
    size_t head_bytes() const { return head_bytes_; }  // one head's slice of a row
    int64_t n_free_blocks() const { return static_cast<int64_t>(free_.size()); }
    size_t bytes_total() const { return storage_size_; }

    // ---- sequences (seq must be in [0, n_seq_max); checked, throws eg::Error) ------------------
    int64_t seq_len(int32_t seq) const;
    const std::vector<int32_t>& block_table(int32_t seq) const;

    // Keeps positions [0, p) of seq and frees the rest. Pre: 0 <= p <= seq_len(seq).
    void seq_truncate(int32_t seq, int64_t p);
    void seq_clear(int32_t seq) { seq_truncate(seq, 0); }

    // dst becomes the first n tokens of src, sharing src's blocks (no copy). dst's previous
    // contents are dropped. Pre: src != dst, 0 <= n <= seq_len(src).
    void seq_fork(int32_t src, int32_t dst, int64_t n);

    // Context shift: keeps [0, n_keep), drops [n_keep, n_keep + n_discard), moves the rest down
    // and re-rotates the moved keys by -n_discard positions. Pre: n_keep + n_discard <= seq_len.
    void seq_shift(int32_t seq, int64_t n_keep, int64_t n_discard, const RopeParams& rope_params,
                   int32_t n_head_kv, const KernelTable& kt);

    // Makes rows [seq_len, seq_len + n_new) writable: allocates blocks and unshares the partly
    // filled last block. Throws KVCacheFullError (changing nothing) when blocks run out.
    void reserve(int32_t seq, int64_t n_new);
    // Declares rows up to seq_len + n_new written. Pre: reserve(seq, n_new) succeeded.
    void commit(int32_t seq, int64_t n_new);

    // f16 caches keep K and V transposed inside each block, (n_embd_kv, block_tokens): V so the
    // attention's probability-weighted sum is a dot product over tokens, as in llama.cpp; K so
    // the scores of eight keys come out of one vector (keys in lanes, no horizontal sums).
    bool transposed() const { return cfg_.type == QType::F16; }

    // Row access; idx < capacity reserved for the sequence. Rows are converted as ggml converts
    // f32 rows on the CPU (f16 round to nearest even; q8_0 as activation rows).
    void write_k(int32_t layer, int32_t seq, int64_t idx, const float* k, const KernelTable& kt);  // (n_embd_kv)
    void write_v(int32_t layer, int32_t seq, int64_t idx, const float* v, const KernelTable& kt);  // (n_embd_kv)
    void read_k(int32_t layer, int32_t seq, int64_t idx, float* k, const KernelTable& kt);
    uint8_t* k_row(int32_t layer, int32_t seq, int64_t idx);  // non-transposed caches only
    uint8_t* v_row(int32_t layer, int32_t seq, int64_t idx);  // non-transposed caches only
    const uint8_t* k_block(int32_t layer, int32_t block) const { return block_ptr(block, layer, 0); }
    const uint8_t* v_block(int32_t layer, int32_t block) const { return block_ptr(block, layer, 1); }

    int32_t block_refcount(int32_t block) const { return refs_.at(block); }

private:
    uint8_t* block_ptr(int32_t block, int32_t layer, int kv) const {
        return storage_.get() + static_cast<size_t>(block) * block_bytes_ +
               (static_cast<size_t>(layer) * 2 + kv) * block_layer_bytes_;
    }
    void check_seq(int32_t seq) const;
    int32_t alloc_block();
    void release_block(int32_t b);
    void unshare(int32_t seq, size_t table_index);  // copy-on-write one block of seq's table
    uint8_t* row_ptr(int32_t layer, int32_t seq, int64_t idx, int kv);
    void write_row(int32_t layer, int32_t seq, int64_t idx, int kv, const float* x, const KernelTable& kt);

    Config cfg_;
    size_t row_bytes_ = 0, head_bytes_ = 0, block_layer_bytes_ = 0, block_bytes_ = 0, storage_size_ = 0;
    struct FreeDeleter {
        void operator()(uint8_t* p) const { std::free(p); }
    };
    std::unique_ptr<uint8_t, FreeDeleter> storage_;  // calloc: zero pages, touched only when used
    std::vector<int32_t> refs_;                  // per block: sequences referencing it
    std::vector<int32_t> free_;                  // free block ids (stack)
    std::vector<std::vector<int32_t>> tables_;   // per sequence: block ids in order
    std::vector<int64_t> lens_;                  // per sequence: tokens written
};

}  // namespace eg
