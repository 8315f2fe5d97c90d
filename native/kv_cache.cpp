// kv_cache.cpp — see kv_cache.h.
#include "kv_cache.h"

#include <algorithm>
#include <new>
#include <string>

namespace eg {

namespace {
int64_t blocks_for(int64_t tokens, int32_t block_tokens) { return (tokens + block_tokens - 1) / block_tokens; }
}  // namespace

size_t KVCache::block_bytes(int32_t n_layer, int32_t n_embd_kv, QType type, int32_t block_tokens) {
    return static_cast<size_t>(n_layer) * 2 * block_tokens * row_size(type, n_embd_kv);
}

KVCache::KVCache(const Config& cfg) : cfg_(cfg) {
    EG_CHECK(cfg.type == QType::F16 || cfg.type == QType::Q8_0 || cfg.type == QType::F32,
             "KV cache type must be f16, q8_0 or f32");
    EG_CHECK(cfg.n_layer > 0 && cfg.n_embd_kv > 0 && cfg.head_dim > 0 && cfg.n_embd_kv % cfg.head_dim == 0,
             "invalid KV cache dimensions");
    EG_CHECK(cfg.block_tokens > 0 && cfg.block_tokens <= 4096, "block_tokens must be in 1..4096");
    EG_CHECK(cfg.type != QType::F16 || cfg.block_tokens % 32 == 0,
             "f16 caches need block_tokens a multiple of 32 (the attention reads 32-token chunks)");
    EG_CHECK(cfg.n_blocks > 0, "a KV cache needs at least one block");
    EG_CHECK(cfg.n_seq_max > 0 && cfg.n_seq_max <= 4096, "n_seq_max must be in 1..4096");
    const TypeTraits& tr = type_traits(cfg.type);
    EG_CHECK(cfg.head_dim % tr.block_size == 0,
             std::string("head_dim must be a multiple of the ") + tr.name + " block size");
    row_bytes_ = row_size(cfg.type, cfg.n_embd_kv);
    head_bytes_ = row_size(cfg.type, cfg.head_dim);
    block_layer_bytes_ = static_cast<size_t>(cfg.block_tokens) * row_bytes_;
    block_bytes_ = block_bytes(cfg.n_layer, cfg.n_embd_kv, cfg.type, cfg.block_tokens);
    EG_CHECK(static_cast<size_t>(cfg.n_blocks) <= (size_t(1) << 46) / block_bytes_, "KV cache size overflows");
    storage_size_ = static_cast<size_t>(cfg.n_blocks) * block_bytes_;
    storage_.reset(static_cast<uint8_t*>(std::calloc(storage_size_, 1)));
    if (!storage_) throw KVCacheFullError("could not allocate " + std::to_string(storage_size_) + " bytes of KV cache");
    refs_.assign(cfg.n_blocks, 0);
    free_.reserve(cfg.n_blocks);
    for (int64_t b = cfg.n_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
    tables_.resize(cfg.n_seq_max);
    lens_.assign(cfg.n_seq_max, 0);
}

void KVCache::check_seq(int32_t seq) const {
    EG_CHECK(seq >= 0 && seq < cfg_.n_seq_max,
             "sequence id " + std::to_string(seq) + " outside 0.." + std::to_string(cfg_.n_seq_max - 1));
}

int64_t KVCache::seq_len(int32_t seq) const {
    check_seq(seq);
    return lens_[seq];
}

const std::vector<int32_t>& KVCache::block_table(int32_t seq) const {
    check_seq(seq);
    return tables_[seq];
}

int32_t KVCache::alloc_block() {
    // callers check capacity first, so this never fails half-way through an operation
    const int32_t b = free_.back();
    free_.pop_back();
    refs_[b] = 1;
    return b;
}

void KVCache::release_block(int32_t b) {
    if (--refs_[b] == 0) free_.push_back(b);
}

void KVCache::unshare(int32_t seq, size_t i) {
    int32_t& b = tables_[seq][i];
    if (refs_[b] == 1) return;
    const int32_t copy = alloc_block();
    std::memcpy(block_ptr(copy, 0, 0), block_ptr(b, 0, 0), block_bytes_);
    --refs_[b];
    b = copy;
}

void KVCache::seq_truncate(int32_t seq, int64_t p) {
    check_seq(seq);
    EG_CHECK(p >= 0 && p <= lens_[seq], "truncate position outside the sequence");
    auto& table = tables_[seq];
    const size_t keep = static_cast<size_t>(blocks_for(p, cfg_.block_tokens));
    for (size_t i = keep; i < table.size(); ++i) release_block(table[i]);
    table.resize(keep);
    lens_[seq] = p;
}

void KVCache::seq_fork(int32_t src, int32_t dst, int64_t n) {
    check_seq(src);
    check_seq(dst);
    EG_CHECK(src != dst, "cannot fork a sequence into itself");
    EG_CHECK(n >= 0 && n <= lens_[src], "fork length outside the source sequence");
    seq_truncate(dst, 0);
    const size_t nb = static_cast<size_t>(blocks_for(n, cfg_.block_tokens));
    auto& table = tables_[dst];
    table.assign(tables_[src].begin(), tables_[src].begin() + nb);
    for (int32_t b : table) ++refs_[b];
    lens_[dst] = n;
}

void KVCache::reserve(int32_t seq, int64_t n_new) {
    check_seq(seq);
    EG_CHECK(n_new >= 0, "negative reservation");
    auto& table = tables_[seq];
    const int64_t len = lens_[seq];
    const int64_t need_blocks = blocks_for(len + n_new, cfg_.block_tokens);
    int64_t extra = std::max<int64_t>(0, need_blocks - static_cast<int64_t>(table.size()));
    const bool partial_shared = len % cfg_.block_tokens != 0 && n_new > 0 &&
                                refs_[table[static_cast<size_t>(len / cfg_.block_tokens)]] > 1;
    if (partial_shared) ++extra;
    if (extra > n_free_blocks()) {
        throw KVCacheFullError("KV cache full: " + std::to_string(len + n_new) + " tokens need " +
                               std::to_string(extra) + " more blocks of " + std::to_string(cfg_.block_tokens) +
                               " tokens but " + std::to_string(n_free_blocks()) + " of " +
                               std::to_string(cfg_.n_blocks) + " are free (" + std::to_string(block_bytes_) +
                               " bytes each)");
    }
    if (partial_shared) unshare(seq, static_cast<size_t>(len / cfg_.block_tokens));
    while (static_cast<int64_t>(table.size()) < need_blocks) table.push_back(alloc_block());
}

void KVCache::commit(int32_t seq, int64_t n_new) {
    check_seq(seq);
    EG_CHECK(lens_[seq] + n_new <= static_cast<int64_t>(tables_[seq].size()) * cfg_.block_tokens,
             "commit beyond the reserved rows");
    lens_[seq] += n_new;
}

uint8_t* KVCache::row_ptr(int32_t layer, int32_t seq, int64_t idx, int kv) {
    const auto& table = tables_[seq];
    const size_t bi = static_cast<size_t>(idx / cfg_.block_tokens);
    return block_ptr(table[bi], layer, kv) + static_cast<size_t>(idx % cfg_.block_tokens) * row_bytes_;
}

uint8_t* KVCache::k_row(int32_t layer, int32_t seq, int64_t idx) {
    EG_CHECK(!transposed(), "k_row on a transposed (f16) cache");
    return row_ptr(layer, seq, idx, 0);
}
uint8_t* KVCache::v_row(int32_t layer, int32_t seq, int64_t idx) {
    EG_CHECK(!transposed(), "v_row on a transposed (f16) cache");
    return row_ptr(layer, seq, idx, 1);
}

void KVCache::write_row(int32_t layer, int32_t seq, int64_t idx, int kv, const float* x, const KernelTable& kt) {
    if (!transposed()) {
        kt.quantize_act[static_cast<int>(cfg_.type)](x, row_ptr(layer, seq, idx, kv), cfg_.n_embd_kv);
        return;
    }
    const int32_t B = cfg_.block_tokens;
    auto* t = reinterpret_cast<fp16_t*>(block_ptr(tables_[seq][static_cast<size_t>(idx / B)], layer, kv));
    const int64_t slot = idx % B;
    for (int32_t d = 0; d < cfg_.n_embd_kv; ++d) t[d * B + slot] = f32_to_fp16(x[d]);
}

void KVCache::write_k(int32_t layer, int32_t seq, int64_t idx, const float* k, const KernelTable& kt) {
    write_row(layer, seq, idx, 0, k, kt);
}
void KVCache::write_v(int32_t layer, int32_t seq, int64_t idx, const float* v, const KernelTable& kt) {
    write_row(layer, seq, idx, 1, v, kt);
}

void KVCache::read_k(int32_t layer, int32_t seq, int64_t idx, float* k, const KernelTable& kt) {
    if (!transposed()) {
        kt.dequantize_row[static_cast<int>(cfg_.type)](row_ptr(layer, seq, idx, 0), k, cfg_.n_embd_kv);
        return;
    }
    const int32_t B = cfg_.block_tokens;
    const auto* t = reinterpret_cast<const fp16_t*>(block_ptr(tables_[seq][static_cast<size_t>(idx / B)], layer, 0));
    const int64_t slot = idx % B;
    for (int32_t d = 0; d < cfg_.n_embd_kv; ++d) k[d] = fp16_to_f32(t[d * B + slot]);
}

void KVCache::seq_shift(int32_t seq, int64_t n_keep, int64_t n_discard, const RopeParams& rope_params,
                        int32_t n_head_kv, const KernelTable& kt) {
    check_seq(seq);
    const int64_t len = lens_[seq];
    EG_CHECK(n_keep >= 0 && n_discard >= 0 && n_keep + n_discard <= len, "context shift outside the sequence");
    EG_CHECK(n_head_kv * cfg_.head_dim == cfg_.n_embd_kv, "n_head_kv does not match the cache rows");
    if (n_discard == 0) return;
    // every block from the first moved-into row on is written: unshare them all first
    const int64_t first_block = n_keep / cfg_.block_tokens;
    const int64_t last_block = blocks_for(len - n_discard, cfg_.block_tokens);
    int64_t shared = 0;
    for (int64_t b = first_block; b < last_block; ++b)
        if (refs_[tables_[seq][b]] > 1) ++shared;
    if (shared > n_free_blocks())
        throw KVCacheFullError("KV cache full: a context shift must copy " + std::to_string(shared) +
                               " shared blocks but only " + std::to_string(n_free_blocks()) + " are free");
    for (int64_t b = first_block; b < last_block; ++b) unshare(seq, static_cast<size_t>(b));

    std::vector<float> row(cfg_.n_embd_kv);
    const int32_t B = cfg_.block_tokens;
    for (int32_t l = 0; l < cfg_.n_layer; ++l) {
        for (int64_t i = n_keep; i < len - n_discard; ++i) {
            read_k(l, seq, i + n_discard, row.data(), kt);
            rope(row.data(), n_head_kv, cfg_.head_dim, -static_cast<double>(n_discard), rope_params);
            write_k(l, seq, i, row.data(), kt);
            if (!transposed()) {
                std::memmove(v_row(l, seq, i), v_row(l, seq, i + n_discard), row_bytes_);
            } else {
                const auto* src = reinterpret_cast<const fp16_t*>(
                    block_ptr(tables_[seq][static_cast<size_t>((i + n_discard) / B)], l, 1));
                auto* dst = reinterpret_cast<fp16_t*>(block_ptr(tables_[seq][static_cast<size_t>(i / B)], l, 1));
                for (int32_t d = 0; d < cfg_.n_embd_kv; ++d) dst[d * B + i % B] = src[d * B + (i + n_discard) % B];
            }
        }
    }
    seq_truncate(seq, len - n_discard);
}

}  // namespace eg
