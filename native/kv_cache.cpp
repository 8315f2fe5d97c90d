// kv_cache.cpp — see kv_cache.h.
#include "kv_cache.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace eg {

namespace {
int64_t blocks_for(int64_t tokens, int32_t block_tokens) { return (tokens + block_tokens - 1) / block_tokens; }
}  // namespace

// ================================================================================================
// Layout: the one sizing function
// ================================================================================================
size_t KVLayout::bytes() const {
    size_t total = 0;
    for (const Group& gr : groups) total += static_cast<size_t>(gr.n_blocks) * gr.block_bytes;
    return total;
}

KVLayout plan_kv_cache(const KVShape& shape, int64_t n_tokens, int32_t n_seq, QType type, int32_t block_tokens,
                       int32_t max_batch) {
    EG_CHECK(type == QType::F16 || type == QType::Q8_0 || type == QType::F32, "KV cache type must be f16, q8_0 or f32");
    EG_CHECK(!shape.layer_windows.empty() && shape.n_embd_kv > 0 && shape.head_dim > 0 &&
                 shape.n_embd_kv % shape.head_dim == 0,
             "invalid KV cache dimensions");
    EG_CHECK(n_tokens > 0 && n_tokens <= (int64_t(1) << 24), "n_tokens must be in 1..16777216");
    EG_CHECK(n_seq > 0 && n_seq <= 4096, "n_seq must be in 1..4096");
    EG_CHECK(block_tokens > 0 && block_tokens <= 4096, "block_tokens must be in 1..4096");
    EG_CHECK(type != QType::F16 || block_tokens % 32 == 0,
             "f16 caches need block_tokens a multiple of 32 (the attention reads 32-token chunks)");
    EG_CHECK(max_batch > 0 && max_batch <= 4096, "max_batch must be in 1..4096");
    const TypeTraits& tr = type_traits(type);
    EG_CHECK(shape.head_dim % tr.block_size == 0, std::string("head_dim must be a multiple of the ") + tr.name + " block size");

    KVLayout L;
    L.shape = shape;
    L.type = type;
    L.block_tokens = block_tokens;
    L.n_seq_max = n_seq;
    L.max_batch = max_batch;
    L.row_bytes = row_size(type, shape.n_embd_kv);
    const int32_t n_layer = static_cast<int32_t>(shape.layer_windows.size());
    L.layer_group.assign(n_layer, -1);
    L.layer_slot.assign(n_layer, -1);
    // global layers first, then one group per distinct window, in order of first appearance
    std::vector<int32_t> windows;
    for (int32_t w : shape.layer_windows) {
        EG_CHECK(w >= 0, "a sliding window must be >= 0");
        if (std::find(windows.begin(), windows.end(), w) == windows.end()) windows.push_back(w);
    }
    std::stable_sort(windows.begin(), windows.end(), [](int32_t a, int32_t b) { return (a == 0) > (b == 0); });
    const bool has_global = windows.front() == 0;
    const int64_t global_blocks = blocks_for(n_tokens, block_tokens);
    for (int32_t w : windows) {
        KVLayout::Group gr;
        gr.window = w;
        for (int32_t l = 0; l < n_layer; ++l) {
            if (shape.layer_windows[l] != w) continue;
            L.layer_group[l] = static_cast<int32_t>(L.groups.size());
            L.layer_slot[l] = static_cast<int32_t>(gr.layers.size());
            gr.layers.push_back(l);
        }
        gr.block_bytes = gr.layers.size() * 2 * static_cast<size_t>(block_tokens) * L.row_bytes;
        if (w == 0) {
            // whole blocks for n_tokens, plus one per extra sequence for copy-on-write of a shared last block
            gr.n_blocks = global_blocks + (n_seq - 1);
        } else {
            // the window and one forward chunk must be stored at once: the chunk's first token
            // still sees window - 1 older positions; +1 block for a window not aligned to blocks
            int64_t ring = blocks_for(int64_t(w) + max_batch - 1, block_tokens) + 1;
            if (has_global) ring = std::min(ring, global_blocks + 1);  // sequences never outgrow the global pool
            gr.ring_blocks = static_cast<int32_t>(ring);
            gr.n_blocks = ring * n_seq;  // each sequence references at most `ring` blocks
        }
        EG_CHECK(static_cast<size_t>(gr.n_blocks) <= (size_t(1) << 46) / gr.block_bytes, "KV cache size overflows");
        L.groups.push_back(std::move(gr));
    }
    return L;
}

// ================================================================================================
// Blocks and sequences
// ================================================================================================
KVCache::KVCache(const KVLayout& layout) : lay_(layout) {
    EG_CHECK(!lay_.groups.empty(), "KV cache layout has no layer groups (use plan_kv_cache)");
    head_bytes_ = row_size(lay_.type, lay_.shape.head_dim);
    for (const KVLayout::Group& gr : lay_.groups) {
        GroupState st;
        const size_t bytes = static_cast<size_t>(gr.n_blocks) * gr.block_bytes;
        st.storage.reset(static_cast<uint8_t*>(std::calloc(bytes, 1)));
        if (!st.storage) throw KVCacheFullError("could not allocate " + std::to_string(bytes) + " bytes of KV cache");
        st.refs.assign(gr.n_blocks, 0);
        st.free.reserve(gr.n_blocks);
        for (int64_t b = gr.n_blocks - 1; b >= 0; --b) st.free.push_back(static_cast<int32_t>(b));
        st.tables.assign(lay_.n_seq_max, gr.ring_blocks ? std::vector<int32_t>(gr.ring_blocks, -1) : std::vector<int32_t>{});
        st.lo.assign(lay_.n_seq_max, 0);
        groups_.push_back(std::move(st));
    }
    lens_.assign(lay_.n_seq_max, 0);
    reserved_.assign(lay_.n_seq_max, 0);
}

void KVCache::check_seq(int32_t seq) const {
    EG_CHECK(seq >= 0 && seq < lay_.n_seq_max,
             "sequence id " + std::to_string(seq) + " outside 0.." + std::to_string(lay_.n_seq_max - 1));
}

int64_t KVCache::seq_len(int32_t seq) const {
    check_seq(seq);
    return lens_[seq];
}

const std::vector<int32_t>& KVCache::block_table(int32_t seq, int group) const {
    check_seq(seq);
    EG_CHECK(group >= 0 && group < n_groups(), "no such KV layer group");
    return groups_[group].tables[seq];
}

int64_t KVCache::seq_resume_min(int32_t seq) const {
    check_seq(seq);
    int64_t m = 0;
    for (int gi = 0; gi < n_groups(); ++gi)
        if (g(gi).window && groups_[gi].lo[seq] > 0) m = std::max(m, groups_[gi].lo[seq] + g(gi).window - 1);
    return m;
}

uint8_t* KVCache::block_ptr(int gi, int32_t block, int32_t slot, int kv) const {
    const size_t half = static_cast<size_t>(lay_.block_tokens) * lay_.row_bytes;
    return groups_[gi].storage.get() + static_cast<size_t>(block) * g(gi).block_bytes + (size_t(slot) * 2 + kv) * half;
}

int32_t KVCache::alloc_block(int gi) {
    // callers check capacity first, so this never fails half-way through an operation
    GroupState& st = groups_[gi];
    const int32_t b = st.free.back();
    st.free.pop_back();
    st.refs[b] = 1;
    return b;
}

void KVCache::release_block(int gi, int32_t b) {
    if (b >= 0 && --groups_[gi].refs[b] == 0) groups_[gi].free.push_back(b);
}

void KVCache::drop_tables(int32_t seq) {
    for (int gi = 0; gi < n_groups(); ++gi) {
        auto& t = groups_[gi].tables[seq];
        for (int32_t& b : t) {
            release_block(gi, b);
            b = -1;
        }
        if (!g(gi).ring_blocks) t.clear();
        groups_[gi].lo[seq] = 0;
    }
}

void KVCache::seq_truncate(int32_t seq, int64_t p) {
    check_seq(seq);
    EG_CHECK(p >= 0 && p <= lens_[seq], "truncate position outside the sequence");
    if (p == 0) {
        drop_tables(seq);
        lens_[seq] = 0;
        return;
    }
    EG_CHECK(p >= seq_resume_min(seq),
             "cannot truncate to " + std::to_string(p) + ": the sliding-window layers no longer hold the positions "
             "before it (the earliest resumable length is " + std::to_string(seq_resume_min(seq)) + ")");
    const int32_t B = lay_.block_tokens;
    for (int gi = 0; gi < n_groups(); ++gi) {
        auto& table = groups_[gi].tables[seq];
        if (!g(gi).ring_blocks) {
            const size_t keep = static_cast<size_t>(blocks_for(p, B));
            for (size_t i = keep; i < table.size(); ++i) release_block(gi, table[i]);
            table.resize(keep);
            continue;
        }
        // keep the slots of logical blocks [lo / B, (p - 1) / B]; the rest hold newer positions
        const int32_t R = g(gi).ring_blocks;
        const int64_t first = groups_[gi].lo[seq] / B, last = (p - 1) / B;
        std::vector<bool> keep(R, false);
        for (int64_t lb = first; lb <= last; ++lb) keep[lb % R] = true;
        for (int32_t s = 0; s < R; ++s)
            if (!keep[s]) {
                release_block(gi, table[s]);
                table[s] = -1;
            }
    }
    lens_[seq] = p;
}

void KVCache::seq_fork(int32_t src, int32_t dst, int64_t n) {
    check_seq(src);
    check_seq(dst);
    EG_CHECK(src != dst, "cannot fork a sequence into itself");
    EG_CHECK(n >= 0 && n <= lens_[src], "fork length outside the source sequence");
    EG_CHECK(n == 0 || n >= seq_resume_min(src),
             "cannot fork at " + std::to_string(n) + ": the sliding-window layers no longer hold the positions before it");
    seq_truncate(dst, 0);
    const int32_t B = lay_.block_tokens;
    for (int gi = 0; gi < n_groups(); ++gi) {
        GroupState& st = groups_[gi];
        auto& table = st.tables[dst];
        if (!g(gi).ring_blocks) {
            const size_t nb = static_cast<size_t>(blocks_for(n, B));
            table.assign(st.tables[src].begin(), st.tables[src].begin() + nb);
            for (int32_t b : table) ++st.refs[b];
            continue;
        }
        if (n == 0) continue;
        const int32_t R = g(gi).ring_blocks;
        for (int64_t lb = st.lo[src] / B; lb <= (n - 1) / B; ++lb) {
            const int32_t b = st.tables[src][lb % R];
            table[lb % R] = b;
            ++st.refs[b];
        }
        st.lo[dst] = st.lo[src];
    }
    lens_[dst] = n;
}

int64_t KVCache::blocks_needed(int gi, int32_t seq, int64_t n_new) const {
    if (n_new <= 0) return 0;
    const int32_t B = lay_.block_tokens;
    const GroupState& st = groups_[gi];
    const auto& table = st.tables[seq];
    const int64_t len = lens_[seq], end = len + n_new;
    if (!g(gi).ring_blocks) {
        int64_t need = std::max<int64_t>(0, blocks_for(end, B) - static_cast<int64_t>(table.size()));
        if (len % B != 0 && st.refs[table[static_cast<size_t>(len / B)]] > 1) ++need;  // copy-on-write
        return need;
    }
    // empty slots, and shared ones (copied if partly written, else replaced); a slot is ours once
    // touched, so over a long input each slot counts at most once
    const int32_t R = g(gi).ring_blocks;
    int64_t need = 0;
    for (int64_t lb = len / B; lb <= std::min((end - 1) / B, len / B + R - 1); ++lb) {
        const int32_t cur = table[lb % R];
        if (cur < 0 || st.refs[cur] > 1) ++need;
    }
    return need;
}

void KVCache::check_room(int32_t seq, int64_t n_new) const {
    check_seq(seq);
    EG_CHECK(n_new >= 0, "negative reservation");
    for (int gi = 0; gi < n_groups(); ++gi) {
        const int64_t need = blocks_needed(gi, seq, n_new);
        if (need > n_free_blocks(gi)) {
            throw KVCacheFullError("KV cache full: " + std::to_string(lens_[seq] + n_new) + " tokens need " +
                                   std::to_string(need) + " more blocks of " + std::to_string(lay_.block_tokens) +
                                   " tokens but " + std::to_string(n_free_blocks(gi)) + " of " +
                                   std::to_string(g(gi).n_blocks) + " are free (" + std::to_string(g(gi).block_bytes) +
                                   " bytes each)");
        }
    }
}

void KVCache::check_room(const int32_t* seqs, const int64_t* n_new, int32_t n_seqs) const {
    int64_t rows = 0;
    for (int32_t i = 0; i < n_seqs; ++i) {
        check_seq(seqs[i]);
        EG_CHECK(n_new[i] >= 0, "negative reservation");
        rows += n_new[i];
    }
    for (int gi = 0; gi < n_groups(); ++gi) {
        int64_t need = 0;
        for (int32_t i = 0; i < n_seqs; ++i) need += blocks_needed(gi, seqs[i], n_new[i]);
        if (need > n_free_blocks(gi))
            throw KVCacheFullError("KV cache full: " + std::to_string(rows) + " new tokens of " + std::to_string(n_seqs) +
                                   " sequences need " + std::to_string(need) + " more blocks of " +
                                   std::to_string(lay_.block_tokens) + " tokens but " + std::to_string(n_free_blocks(gi)) +
                                   " of " + std::to_string(g(gi).n_blocks) + " are free (" +
                                   std::to_string(g(gi).block_bytes) + " bytes each)");
    }
}

void KVCache::reserve(int32_t seq, int64_t n_new) {
    check_room(seq, n_new);
    const int32_t B = lay_.block_tokens;
    const int64_t len = lens_[seq], end = len + n_new;
    for (int gi = 0; gi < n_groups(); ++gi)
        if (g(gi).ring_blocks)
            EG_CHECK(n_new <= lay_.max_batch, "a sliding-window cache takes at most max_batch new rows at once");
    reserved_[seq] = n_new;
    if (n_new == 0) return;
    for (int gi = 0; gi < n_groups(); ++gi) {
        GroupState& st = groups_[gi];
        auto& table = st.tables[seq];
        if (!g(gi).ring_blocks) {
            if (len % B != 0) {
                int32_t& b = table[static_cast<size_t>(len / B)];
                if (st.refs[b] > 1) {
                    const int32_t copy = alloc_block(gi);
                    std::memcpy(block_ptr(gi, copy, 0, 0), block_ptr(gi, b, 0, 0), g(gi).block_bytes);
                    --st.refs[b];
                    b = copy;
                }
            }
            while (static_cast<int64_t>(table.size()) < blocks_for(end, B)) table.push_back(alloc_block(gi));
            continue;
        }
        const int32_t R = g(gi).ring_blocks;
        for (int64_t lb = len / B; lb <= (end - 1) / B; ++lb) {
            int32_t& b = table[lb % R];
            const bool partial = lb * B < len;
            if (b >= 0 && st.refs[b] == 1) continue;  // ours alone: written in place
            const int32_t fresh = alloc_block(gi);
            if (partial) std::memcpy(block_ptr(gi, fresh, 0, 0), block_ptr(gi, b, 0, 0), g(gi).block_bytes);
            release_block(gi, b);  // a wrapped slot's old contents are not needed
            b = fresh;
        }
        st.lo[seq] = std::max(st.lo[seq], ((end - 1) / B - R + 1) * B);
    }
}

void KVCache::commit(int32_t seq, int64_t n_new) {
    check_seq(seq);
    EG_CHECK(n_new >= 0 && n_new <= reserved_[seq], "commit beyond the reserved rows");
    lens_[seq] += n_new;
    reserved_[seq] = 0;
}

// ================================================================================================
// Rows and views
// ================================================================================================
int32_t KVCache::physical(int gi, int32_t seq, int64_t pos) const {
    const int64_t lb = pos / lay_.block_tokens;
    const auto& table = groups_[gi].tables[seq];
    return g(gi).ring_blocks ? table[lb % g(gi).ring_blocks] : table[static_cast<size_t>(lb)];
}

uint8_t* KVCache::row_ptr(int32_t layer, int32_t seq, int64_t pos, int kv) const {
    const int gi = lay_.layer_group[layer];
    return block_ptr(gi, physical(gi, seq, pos), lay_.layer_slot[layer], kv) +
           (transposed() ? 0 : static_cast<size_t>(pos % lay_.block_tokens) * lay_.row_bytes);
}

void KVCache::write_row(int32_t layer, int32_t seq, int64_t pos, int kv, const float* x, const KernelTable& kt) {
    EG_CHECK(layer >= 0 && layer < n_layer(), "layer outside the cache");
    check_seq(seq);
    EG_CHECK(pos >= lens_[seq] && pos < lens_[seq] + reserved_[seq], "KV row written outside the reserved rows");
    uint8_t* p = row_ptr(layer, seq, pos, kv);
    if (!transposed()) {
        kt.quantize_act[static_cast<int>(lay_.type)](x, p, lay_.shape.n_embd_kv);
        return;
    }
    auto* t = reinterpret_cast<fp16_t*>(p);
    const int32_t B = lay_.block_tokens;
    const int64_t slot = pos % B;
    for (int32_t d = 0; d < lay_.shape.n_embd_kv; ++d) t[d * B + slot] = f32_to_fp16(x[d]);
}

void KVCache::write_k(int32_t layer, int32_t seq, int64_t pos, const float* k, const KernelTable& kt) {
    write_row(layer, seq, pos, 0, k, kt);
}
void KVCache::write_v(int32_t layer, int32_t seq, int64_t pos, const float* v, const KernelTable& kt) {
    write_row(layer, seq, pos, 1, v, kt);
}

void KVCache::read_row(int32_t layer, int32_t seq, int64_t pos, int kv, float* out, const KernelTable& kt) const {
    const uint8_t* p = row_ptr(layer, seq, pos, kv);
    if (!transposed()) {
        kt.dequantize_row[static_cast<int>(lay_.type)](p, out, lay_.shape.n_embd_kv);
        return;
    }
    const auto* t = reinterpret_cast<const fp16_t*>(p);
    const int32_t B = lay_.block_tokens;
    const int64_t slot = pos % B;
    for (int32_t d = 0; d < lay_.shape.n_embd_kv; ++d) out[d] = fp16_to_f32(t[d * B + slot]);
}

KVLayerView KVCache::view(int32_t layer, int32_t seq) const {
    EG_CHECK(layer >= 0 && layer < n_layer(), "layer outside the cache");
    check_seq(seq);
    const int gi = lay_.layer_group[layer];
    KVLayerView v;
    v.type = lay_.type;
    v.transposed = transposed();
    v.block_tokens = lay_.block_tokens;
    v.window = g(gi).window;
    v.lo = groups_[gi].lo[seq];
    v.row_bytes = lay_.row_bytes;
    v.head_bytes = head_bytes_;
    v.storage = groups_[gi].storage.get();
    v.block_bytes = g(gi).block_bytes;
    v.half_bytes = static_cast<size_t>(lay_.block_tokens) * lay_.row_bytes;
    v.layer_offset = static_cast<size_t>(lay_.layer_slot[layer]) * 2 * v.half_bytes;
    v.table = groups_[gi].tables[seq].data();
    v.ring = g(gi).ring_blocks;
    return v;
}

// ================================================================================================
// Context shift
// ================================================================================================
void KVCache::seq_shift(int32_t seq, int64_t n_keep, int64_t n_discard, const std::vector<RopeParams>& layer_rope,
                        int32_t n_head_kv, const KernelTable& kt) {
    check_seq(seq);
    const int64_t len = lens_[seq];
    EG_CHECK(n_keep >= 0 && n_discard >= 0 && n_keep + n_discard <= len, "context shift outside the sequence");
    EG_CHECK(n_head_kv * lay_.shape.head_dim == lay_.shape.n_embd_kv, "n_head_kv does not match the cache rows");
    EG_CHECK(static_cast<int32_t>(layer_rope.size()) == n_layer(), "one rope setting per layer is needed");
    if (n_discard == 0) return;
    const int32_t B = lay_.block_tokens;
    const int64_t new_len = len - n_discard;
    const int32_t E = lay_.shape.n_embd_kv;
    std::vector<float> row(E);
    auto moved_k = [&](int32_t l, int64_t src, int64_t dst) {  // key of src, re-rotated for dst
        read_row(l, seq, src, 0, row.data(), kt);
        if (src != dst) rope(row.data(), n_head_kv, lay_.shape.head_dim, static_cast<double>(dst - src), layer_rope[l]);
    };

    // ---- global group: in place, every block from the first moved-into row on unshared first
    for (int gi = 0; gi < n_groups(); ++gi) {
        if (g(gi).ring_blocks) continue;
        GroupState& st = groups_[gi];
        auto& table = st.tables[seq];
        const int64_t first_block = n_keep / B, last_block = blocks_for(new_len, B);
        int64_t shared = 0;
        for (int64_t b = first_block; b < last_block; ++b)
            if (st.refs[table[b]] > 1) ++shared;
        if (shared > n_free_blocks(gi))
            throw KVCacheFullError("KV cache full: a context shift must copy " + std::to_string(shared) +
                                   " shared blocks but only " + std::to_string(n_free_blocks(gi)) + " are free");
        for (int64_t b = first_block; b < last_block; ++b) {
            int32_t& blk = table[b];
            if (st.refs[blk] == 1) continue;
            const int32_t copy = alloc_block(gi);
            std::memcpy(block_ptr(gi, copy, 0, 0), block_ptr(gi, blk, 0, 0), g(gi).block_bytes);
            --st.refs[blk];
            blk = copy;
        }
        reserved_[seq] = 0;
        for (int32_t l : g(gi).layers) {
            for (int64_t i = n_keep; i < new_len; ++i) {
                moved_k(l, i + n_discard, i);
                uint8_t* kd = row_ptr(l, seq, i, 0);
                if (!transposed()) {
                    kt.quantize_act[static_cast<int>(lay_.type)](row.data(), kd, E);
                    std::memmove(row_ptr(l, seq, i, 1), row_ptr(l, seq, i + n_discard, 1), lay_.row_bytes);
                } else {
                    auto* k = reinterpret_cast<fp16_t*>(kd);
                    const auto* vs = reinterpret_cast<const fp16_t*>(row_ptr(l, seq, i + n_discard, 1));
                    auto* vd = reinterpret_cast<fp16_t*>(row_ptr(l, seq, i, 1));
                    for (int32_t d = 0; d < E; ++d) {
                        k[d * B + i % B] = f32_to_fp16(row[d]);
                        vd[d * B + i % B] = vs[d * B + (i + n_discard) % B];
                    }
                }
            }
        }
    }

    // ---- sliding groups: rebuilt from what the ring still holds of the new positions
    for (int gi = 0; gi < n_groups(); ++gi) {
        if (!g(gi).ring_blocks) continue;
        GroupState& st = groups_[gi];
        const int32_t R = g(gi).ring_blocks;
        auto source = [&](int64_t q) { return q < n_keep ? q : q + n_discard; };
        // new positions [q_lo, new_len): the longest run whose sources are still stored and
        // that fits the ring
        int64_t q_lo = new_len;
        const int64_t fit = std::max<int64_t>(0, ((new_len - 1) / B - R + 1) * B);
        while (q_lo > fit && source(q_lo - 1) >= st.lo[seq]) --q_lo;
        const int64_t n_rows = new_len - q_lo;
        const size_t n_l = g(gi).layers.size();
        std::vector<float> keys(static_cast<size_t>(n_rows) * n_l * E), vals(keys.size());
        for (size_t li = 0; li < n_l; ++li) {
            const int32_t l = g(gi).layers[li];
            for (int64_t q = q_lo; q < new_len; ++q) {
                const size_t at = (static_cast<size_t>(q - q_lo) * n_l + li) * E;
                moved_k(l, source(q), q);
                std::copy(row.begin(), row.end(), keys.begin() + at);
                read_row(l, seq, source(q), 1, vals.data() + at, kt);
            }
        }
        auto& table = st.tables[seq];
        for (int32_t& b : table) {
            release_block(gi, b);
            b = -1;
        }
        if (n_rows > 0)
            for (int64_t lb = q_lo / B; lb <= (new_len - 1) / B; ++lb) table[lb % R] = alloc_block(gi);
        st.lo[seq] = n_rows > 0 ? q_lo : new_len;
        const int64_t saved_len = lens_[seq];
        lens_[seq] = q_lo;  // write_row checks rows against the reservation
        reserved_[seq] = n_rows;
        for (size_t li = 0; li < n_l; ++li)
            for (int64_t q = q_lo; q < new_len; ++q) {
                const size_t at = (static_cast<size_t>(q - q_lo) * n_l + li) * E;
                write_row(g(gi).layers[li], seq, q, 0, keys.data() + at, kt);
                write_row(g(gi).layers[li], seq, q, 1, vals.data() + at, kt);
            }
        lens_[seq] = saved_len;
        reserved_[seq] = 0;
    }

    // drop what is now past the end (global blocks), without the ring checks of seq_truncate
    for (int gi = 0; gi < n_groups(); ++gi) {
        if (g(gi).ring_blocks) continue;
        auto& table = groups_[gi].tables[seq];
        const size_t keep = static_cast<size_t>(blocks_for(new_len, B));
        for (size_t i = keep; i < table.size(); ++i) release_block(gi, table[i]);
        table.resize(keep);
    }
    lens_[seq] = new_len;
}

}  // namespace eg
