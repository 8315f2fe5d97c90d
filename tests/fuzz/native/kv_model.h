// kv_model.h — what the KV cache fuzz targets share: the scalar kernel table, the row written for
// each token, a plain model of what every sequence must hold with its checks (rows, block
// accounting), and a random cache layout read from the input.
#pragma once

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "fuzz_util.h"
#include "kernels.h"
#include "kv_cache.h"

namespace fuzz {

inline const eg::KernelTable& table() {
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
inline float row_value(int64_t id, int32_t layer, int kv, int32_t d) {
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

// A random layout (f16/f32/q8_0, 1-4 layers, global and sliding-window groups, 1-4 sequences);
// false when plan_kv_cache refuses it.
struct RandomLayout {
    eg::KVShape shape;
    eg::QType type = eg::QType::F16;
    int32_t n_seq = 1, max_batch = 1;
    eg::KVLayout lay;

    bool read(FuzzedDataProvider& in) {
        const eg::QType types[] = {eg::QType::F16, eg::QType::F32, eg::QType::Q8_0};
        type = types[in.ConsumeIntegralInRange<int>(0, 2)];
        shape.head_dim = 32;  // small rows keep executions fast; the block arithmetic is what is fuzzed
        shape.n_embd_kv = shape.head_dim * in.ConsumeIntegralInRange<int32_t>(1, 2);
        const int32_t n_layer = in.ConsumeIntegralInRange<int32_t>(1, 4);
        for (int32_t l = 0; l < n_layer; ++l)
            shape.layer_windows.push_back(in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<int32_t>(1, 100));
        const int32_t block_tokens = type == eg::QType::F16 ? 32 * in.ConsumeIntegralInRange<int32_t>(1, 2)
                                                            : in.ConsumeIntegralInRange<int32_t>(1, 48);
        const int64_t n_tokens = in.ConsumeIntegralInRange<int64_t>(1, 256);
        n_seq = in.ConsumeIntegralInRange<int32_t>(1, 4);
        max_batch = in.ConsumeIntegralInRange<int32_t>(1, 64);
        try {
            lay = eg::plan_kv_cache(shape, n_tokens, n_seq, type, block_tokens, max_batch);
        } catch (const eg::Error&) {
            return false;
        }
        FUZZ_REQUIRE(lay.bytes() > 0);
        return true;
    }
};

}  // namespace fuzz
