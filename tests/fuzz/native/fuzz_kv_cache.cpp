// fuzz_kv_cache — random sequences of KV cache operations (append, fork/share, truncate, context
// shift, clear) on random layouts (f16/f32/q8_0, global and sliding-window layer groups, several
// sequences), each checked against a plain model of what every sequence must hold: its length,
// and for every stored position the row written for exactly that token of exactly that sequence
// (so a row leaking between sequences, a lost copy-on-write or a stale ring slot is caught).
// After every operation the touched sequences' rows and the block accounting are checked
// (reference counts equal table references, free blocks unreferenced), every sequence's rows at
// the end; then clearing every sequence must free every block.
// A refused operation (eg::Error, KVCacheFullError) must leave the model state unchanged.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "fuzz_util.h"
#include "kernels.h"
#include "kv_cache.h"

namespace {

const eg::KernelTable& table() {
    static const eg::KernelTable t = [] {
        eg::KernelTable k;
        eg::fill_table_scalar(k);
        eg::fill_table_scalar_act(k);
        return k;
    }();
    return t;
}

// The row written for token `id` in layer l: small integers, exact in f16 and f32 and within
// q8_0's rounding of the row maximum.
float row_value(int64_t id, int32_t layer, int kv, int32_t d) {
    return static_cast<float>((id * 7 + layer * 3 + kv * 5 + d) % 61 - 30);
}

struct Harness {
    eg::KVCache& c;
    const eg::KVLayout& lay;
    std::vector<std::vector<int64_t>> model;  // per sequence: the token id at each position
    int64_t next_id = 1;
    float tol;

    void check_rows(int32_t seq) {
        const auto& m = model[seq];
        FUZZ_REQUIRE(c.seq_len(seq) == static_cast<int64_t>(m.size()));
        std::vector<float> row(lay.shape.n_embd_kv);
        for (int32_t l = 0; l < c.n_layer(); ++l) {
            const eg::KVLayerView v = c.view(l, seq);
            FUZZ_REQUIRE(v.lo >= 0 && (m.empty() || v.lo <= static_cast<int64_t>(m.size())));
            // global layers keep everything; rings keep [lo, len)
            if (v.window == 0) FUZZ_REQUIRE(v.lo == 0);
            for (int64_t p = v.lo; p < static_cast<int64_t>(m.size()); ++p)
                for (int kv = 0; kv < 2; ++kv) {
                    c.read_row(l, seq, p, kv, row.data(), table());
                    for (int32_t d = 0; d < lay.shape.n_embd_kv; ++d)
                        FUZZ_REQUIRE(std::fabs(row[d] - row_value(m[p], l, kv, d)) <= tol);
                }
        }
    }

    void check_blocks() {
        for (int gi = 0; gi < c.n_groups(); ++gi) {
            const int64_t n = lay.groups[gi].n_blocks;
            std::vector<int32_t> refs(n, 0);
            for (int32_t s = 0; s < c.n_seq_max(); ++s)
                for (int32_t b : c.block_table(s, gi)) {
                    if (b < 0) continue;
                    FUZZ_REQUIRE(b < n);
                    ++refs[b];
                }
            int64_t unreferenced = 0;
            for (int64_t b = 0; b < n; ++b) {
                FUZZ_REQUIRE(c.block_refcount(static_cast<int32_t>(b), gi) == refs[b]);
                unreferenced += refs[b] == 0;
            }
            FUZZ_REQUIRE(c.n_free_blocks(gi) == unreferenced);
        }
    }

    void check_all() {
        for (int32_t s = 0; s < c.n_seq_max(); ++s) check_rows(s);
        check_blocks();
    }

    void append(int32_t seq, int64_t n) {
        c.reserve(seq, n);  // may throw: nothing changed
        const int64_t len = c.seq_len(seq);
        std::vector<float> row(lay.shape.n_embd_kv);
        for (int64_t i = 0; i < n; ++i) {
            const int64_t id = next_id++;
            for (int32_t l = 0; l < c.n_layer(); ++l) {
                for (int32_t d = 0; d < lay.shape.n_embd_kv; ++d) row[d] = row_value(id, l, 0, d);
                c.write_k(l, seq, len + i, row.data(), table());
                for (int32_t d = 0; d < lay.shape.n_embd_kv; ++d) row[d] = row_value(id, l, 1, d);
                c.write_v(l, seq, len + i, row.data(), table());
            }
            model[seq].push_back(id);
        }
        c.commit(seq, n);
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    const eg::QType types[] = {eg::QType::F16, eg::QType::F32, eg::QType::Q8_0};
    const eg::QType type = types[in.ConsumeIntegralInRange<int>(0, 2)];
    eg::KVShape shape;
    shape.head_dim = 32;  // small rows keep executions fast; the block arithmetic is what is fuzzed
    shape.n_embd_kv = shape.head_dim * in.ConsumeIntegralInRange<int32_t>(1, 2);
    const int32_t n_layer = in.ConsumeIntegralInRange<int32_t>(1, 4);
    for (int32_t l = 0; l < n_layer; ++l)
        shape.layer_windows.push_back(in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<int32_t>(1, 100));
    const int32_t block_tokens = type == eg::QType::F16 ? 32 * in.ConsumeIntegralInRange<int32_t>(1, 2)
                                                        : in.ConsumeIntegralInRange<int32_t>(1, 48);
    const int64_t n_tokens = in.ConsumeIntegralInRange<int64_t>(1, 256);
    const int32_t n_seq = in.ConsumeIntegralInRange<int32_t>(1, 4);
    const int32_t max_batch = in.ConsumeIntegralInRange<int32_t>(1, 64);

    eg::KVLayout lay;
    try {
        lay = eg::plan_kv_cache(shape, n_tokens, n_seq, type, block_tokens, max_batch);
    } catch (const eg::Error&) {
        return 0;
    }
    FUZZ_REQUIRE(lay.bytes() > 0);
    eg::KVCache cache(lay);
    Harness h{cache, lay, std::vector<std::vector<int64_t>>(n_seq), 1, type == eg::QType::Q8_0 ? 0.3f : 0.0f};
    const int32_t n_head_kv = shape.n_embd_kv / shape.head_dim;
    const std::vector<eg::RopeParams> rope(n_layer);  // n_rot 0: keys keep their values when moved

    int32_t last_dst = 0;
    for (int op = 0; op < 48 && in.remaining_bytes() > 0; ++op) {
        const int kind = in.ConsumeIntegralInRange<int>(0, 5);
        const int32_t seq = in.ConsumeIntegralInRange<int32_t>(0, n_seq - 1);
        auto& m = h.model[seq];
        const int64_t len = static_cast<int64_t>(m.size());
        // Mostly plausible arguments, sometimes anything (negative, huge) to test the refusals.
        auto arg = [&](int64_t hi) {
            return in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(0, std::max<int64_t>(hi, 0))
                                    : in.ConsumeIntegral<int64_t>();
        };
        try {
            switch (kind) {
                case 0:
                case 1: h.append(seq, arg(2 * max_batch)); break;
                case 2: {  // truncate
                    const int64_t p = arg(len);
                    const bool must_work = p == 0 || (p >= cache.seq_resume_min(seq) && p <= len);
                    try {
                        cache.seq_truncate(seq, p);
                    } catch (const eg::Error&) {
                        FUZZ_REQUIRE(!must_work);
                        throw;
                    }
                    m.resize(static_cast<size_t>(p));
                    break;
                }
                case 3: {  // fork (share)
                    const int32_t dst = in.ConsumeIntegralInRange<int32_t>(0, n_seq - 1);
                    last_dst = dst;
                    const int64_t n = arg(len);
                    cache.seq_fork(seq, dst, n);
                    FUZZ_REQUIRE(dst != seq && n >= 0 && n <= len);
                    h.model[dst].assign(m.begin(), m.begin() + n);
                    break;
                }
                case 4: {  // context shift
                    const int64_t keep = arg(len), discard = arg(len);
                    cache.seq_shift(seq, keep, discard, rope, n_head_kv, table());
                    FUZZ_REQUIRE(keep >= 0 && discard >= 0 && keep <= len && discard <= len - keep);
                    m.erase(m.begin() + keep, m.begin() + keep + discard);
                    break;
                }
                case 5: cache.seq_clear(seq); m.clear(); break;
            }
        } catch (const eg::Error&) {
            // refused (KVCacheFullError included): the state must be the one before the call
        }
        // rows of the sequences this operation touched, and the block accounting, after every
        // operation; every sequence's rows at the end (a write through a lost copy-on-write into
        // another sequence stays visible until then)
        h.check_rows(seq);
        if (kind == 3) h.check_rows(static_cast<int32_t>(last_dst));
        h.check_blocks();
    }
    h.check_all();
    for (int32_t s = 0; s < n_seq; ++s) cache.seq_clear(s);
    for (int gi = 0; gi < cache.n_groups(); ++gi) FUZZ_REQUIRE(cache.n_free_blocks(gi) == lay.groups[gi].n_blocks);
    return 0;
}
