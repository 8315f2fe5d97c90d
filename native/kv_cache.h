// kv_cache.h — paged KV cache: fixed-size blocks, a block table per sequence, shared prefixes,
// and layer groups by attention kind.
//
// Layers are grouped by their attention window. The global group (window 0) keeps every
// position: its block table grows with the sequence. A sliding-window group keeps a ring per
// sequence: position p lives in ring slot (p / block_tokens) % ring_blocks, so Gemma 3's local
// layers hold their 512-token window (plus one forward chunk), not the whole context. Each group
// has its own block pool; a block of a group holds `block_tokens` consecutive positions of one
// sequence for every layer of the group: K then V, each in f16 (transposed) or q8_0/f32 rows.
// Cell metadata (tables, lengths, reference counts) is kept apart from the K/V bytes, in the
// spirit of llama.cpp's llama-kv-cells.h.
//
// A token's position equals its index in its sequence: a context shift moves rows down and
// re-rotates their keys, so there are never gaps. Sequences share blocks after seq_fork(); a
// shared block is copied the first time a sequence writes into it (copy-on-write); a ring slot
// that wraps onto a shared block takes a fresh block instead (its old contents are not needed).
//
// A ring forgets: positions older than its lowest stored position are gone. Truncating or forking
// to a point whose window is no longer stored is refused (seq_resume_min tells the caller where
// it can resume); clearing a sequence always works.
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

// What the cache needs to know about a model (filled from its ModelSpec).
struct KVShape {
    int32_t n_embd_kv = 0;               // n_head_kv * head_dim
    int32_t head_dim = 0;
    std::vector<int32_t> layer_windows;  // per layer: 0 = global, > 0 = sliding window (tokens)
};

// How a cache is laid out: the one sizing function (cache, fit check and store all use it).
struct KVLayout {
    struct Group {
        int32_t window = 0;            // 0: global
        std::vector<int32_t> layers;   // model layers stored in this group
        int32_t ring_blocks = 0;       // sliding groups: ring slots per sequence; global: 0
        int64_t n_blocks = 0;          // block pool of the group
        size_t block_bytes = 0;        // one block: all the group's layers, K and V
    };
    KVShape shape;
    QType type = QType::F16;
    int32_t block_tokens = 32;
    int32_t n_seq_max = 1;
    int32_t max_batch = 64;            // tokens one forward chunk appends (a ring holds window + chunk)
    std::vector<Group> groups;
    std::vector<int32_t> layer_group, layer_slot;  // per model layer: its group, its index there
    size_t row_bytes = 0;              // one token's K (or V) row of one layer

    size_t bytes() const;
};

// Plans a cache holding `n_tokens` positions of global layers in all (shared by up to n_seq
// sequences: one spare block per extra sequence for copy-on-write) and, for each sliding group,
// one ring per sequence. Throws eg::Error on invalid arguments.
KVLayout plan_kv_cache(const KVShape& shape, int64_t n_tokens, int32_t n_seq, QType type, int32_t block_tokens,
                       int32_t max_batch);

// One layer of one sequence as attention reads it: logical block b (positions b*B .. b*B+B-1)
// is at k(b) / v(b). Valid for positions [lo, seq_len) until the cache changes.
struct KVLayerView {
    QType type = QType::F16;
    bool transposed = false;     // f16: K and V stored (n_embd_kv, block_tokens) per block
    int32_t block_tokens = 32;
    int32_t window = 0;          // 0: global
    int64_t lo = 0;              // lowest stored position
    size_t row_bytes = 0, head_bytes = 0;
    const uint8_t* k(int64_t b) const { return ptr(b, 0); }
    const uint8_t* v(int64_t b) const { return ptr(b, 1); }

    // internals
    const uint8_t* storage = nullptr;
    size_t block_bytes = 0, layer_offset = 0, half_bytes = 0;  // half: one layer's K (or V) in a block
    const int32_t* table = nullptr;
    int32_t ring = 0;            // ring slots (0: not a ring)
    const uint8_t* ptr(int64_t b, int kv) const {
        const int32_t blk = table[ring ? b % ring : b];
        return storage + static_cast<size_t>(blk) * block_bytes + layer_offset + kv * half_bytes;
    }
};

class KVCache {
public:
    explicit KVCache(const KVLayout& layout);

    const KVLayout& layout() const { return lay_; }
    QType type() const { return lay_.type; }
    int32_t block_tokens() const { return lay_.block_tokens; }
    int32_t n_seq_max() const { return lay_.n_seq_max; }
    int32_t n_layer() const { return static_cast<int32_t>(lay_.layer_group.size()); }
    size_t row_bytes() const { return lay_.row_bytes; }
    size_t bytes_total() const { return lay_.bytes(); }
    int n_groups() const { return static_cast<int>(groups_.size()); }
    int64_t n_free_blocks(int group = 0) const { return static_cast<int64_t>(groups_.at(group).free.size()); }

    // f16 caches keep K and V transposed inside each block, (n_embd_kv, block_tokens): V so the
    // attention's probability-weighted sum is a dot product over tokens, as in llama.cpp; K so
    // the scores of eight keys come out of one vector (keys in lanes, no horizontal sums).
    bool transposed() const { return lay_.type == QType::F16; }

    // ---- sequences (seq must be in [0, n_seq_max); checked, throws eg::Error) ------------------
    int64_t seq_len(int32_t seq) const;
    // Block ids of a sequence in one group (global: in position order; ring: by slot, -1 = empty).
    const std::vector<int32_t>& block_table(int32_t seq, int group = 0) const;
    // Smallest p > 0 such that seq_truncate(seq, p) / seq_fork(seq, _, p) keep a usable state
    // (0 when every position is still stored; rings forget old positions).
    int64_t seq_resume_min(int32_t seq) const;

    // Keeps positions [0, p) of seq and frees the rest. Pre: p == 0 or seq_resume_min <= p <= seq_len.
    void seq_truncate(int32_t seq, int64_t p);
    void seq_clear(int32_t seq) { seq_truncate(seq, 0); }

    // dst becomes the first n tokens of src, sharing src's blocks (no copy). dst's previous
    // contents are dropped. Pre: src != dst, n == 0 or seq_resume_min(src) <= n <= seq_len(src).
    void seq_fork(int32_t src, int32_t dst, int64_t n);

    // Context shift: keeps [0, n_keep), drops [n_keep, n_keep + n_discard), moves the rest down
    // and re-rotates the moved keys by -n_discard positions with each layer's rope.
    // Pre: n_keep + n_discard <= seq_len. Rings keep what they still hold of the new window.
    void seq_shift(int32_t seq, int64_t n_keep, int64_t n_discard, const std::vector<RopeParams>& layer_rope,
                   int32_t n_head_kv, const KernelTable& kt);

    // Makes rows [seq_len, seq_len + n_new) writable: allocates blocks (rings reuse their oldest
    // slots) and unshares a partly filled shared block. Throws KVCacheFullError (changing
    // nothing) when blocks run out. Pre: n_new <= max_batch for sequences with rings.
    void reserve(int32_t seq, int64_t n_new);
    // Throws KVCacheFullError when appending n_new rows (reserved chunk by chunk, any length) would
    // run out of blocks in any group.
    void check_room(int32_t seq, int64_t n_new) const;
    // The same for one step of several distinct sequences at once (their needs add up per group;
    // a block two of them share and both write is counted twice: conservative).
    void check_room(const int32_t* seqs, const int64_t* n_new, int32_t n_seqs) const;
    // Declares rows up to seq_len + n_new written. Pre: reserve(seq, n_new) succeeded.
    void commit(int32_t seq, int64_t n_new);

    // Rows are converted as ggml converts f32 rows on the CPU (f16 round to nearest even; q8_0
    // as activation rows). pos must be reserved (seq_len <= pos < seq_len + reserved).
    void write_k(int32_t layer, int32_t seq, int64_t pos, const float* k, const KernelTable& kt);  // (n_embd_kv)
    void write_v(int32_t layer, int32_t seq, int64_t pos, const float* v, const KernelTable& kt);  // (n_embd_kv)
    void read_row(int32_t layer, int32_t seq, int64_t pos, int kv, float* out, const KernelTable& kt) const;

    KVLayerView view(int32_t layer, int32_t seq) const;

    // ---- a sequence's rows as bytes (prompt cache files; kv_cache_io.cpp) ----------------------
    // The stored blocks of seq in logical order, group by group, after a header of the length and
    // each group's lowest stored position. Only a cache of the same layout can import it.
    std::vector<uint8_t> seq_export(int32_t seq) const;
    // seq becomes the exported sequence (its previous contents dropped). Throws eg::Error for
    // bytes that do not fit this layout, KVCacheFullError (changing nothing) without room.
    void seq_import(int32_t seq, const uint8_t* data, size_t size);

    int32_t block_refcount(int32_t block, int group = 0) const { return groups_.at(group).refs.at(block); }

private:
    struct GroupState {
        struct FreeDeleter {
            void operator()(uint8_t* p) const { std::free(p); }
        };
        std::unique_ptr<uint8_t, FreeDeleter> storage;  // calloc: zero pages, touched only when used
        std::vector<int32_t> refs;                   // per block: sequences referencing it
        std::vector<int32_t> free;                   // free block ids (stack)
        std::vector<std::vector<int32_t>> tables;    // per sequence
        std::vector<int64_t> lo;                     // per sequence: lowest stored position (rings)
    };
    const KVLayout::Group& g(int gi) const { return lay_.groups[gi]; }
    void check_seq(int32_t seq) const;
    uint8_t* block_ptr(int gi, int32_t block, int32_t slot, int kv) const;
    int32_t alloc_block(int gi);
    void release_block(int gi, int32_t b);
    void set_block(int gi, int32_t seq, size_t index, int32_t block);
    int32_t physical(int gi, int32_t seq, int64_t pos) const;
    uint8_t* row_ptr(int32_t layer, int32_t seq, int64_t pos, int kv) const;
    void write_row(int32_t layer, int32_t seq, int64_t pos, int kv, const float* x, const KernelTable& kt);
    void drop_tables(int32_t seq);
    int64_t blocks_needed(int gi, int32_t seq, int64_t n_new) const;

    KVLayout lay_;
    size_t head_bytes_ = 0;
    std::vector<GroupState> groups_;
    std::vector<int64_t> lens_;      // per sequence: tokens written
    std::vector<int64_t> reserved_;  // per sequence: rows reserved beyond lens_
};

}  // namespace eg
