// kv_model.h — what the KV cache fuzz targets share: the scalar kernel table, the row written for
// each token, a plain model of what every sequence must hold with its checks (rows, row
// fingerprints, block accounting), and a random cache layout read from the input.
#pragma once

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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

// The harness's own bookkeeping and checking loops are not instrumented for coverage: their
// branches say nothing about the cache, and tracing every comparison in them cost more than the
// cache operations themselves.
#define FUZZ_NO_COVERAGE __attribute__((no_sanitize("coverage")))

// Exact rows (fuzz_kv_cache): small integers that f32, f16 and q8_0 all store exactly (every
// 32-element q8_0 block holds a 127, so its scale is 1), the token id in elements 1 and 2 (unique
// up to 63,001 tokens; row_value repeats every 61) and the layer and K/V in element 3. A row has
// one byte pattern however it got where it is (written, copied, or moved and re-quantized by a
// context shift), so a fingerprint of its bytes checks all of it.
FUZZ_NO_COVERAGE inline float exact_row_value(int64_t id, int32_t layer, int kv, int32_t d) {
    if (d % 32 == 0) return 127.0f;
    if (d == 1) return static_cast<float>(id % 251 - 125);
    if (d == 2) return static_cast<float>(id / 251 % 251 - 125);
    if (d == 3) return static_cast<float>(layer * 2 + kv - 120);
    uint64_t h = static_cast<uint64_t>(id) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(layer * 2 + kv) * 0xBF58476D1CE4E5B9ull +
                 static_cast<uint64_t>(d) * 0x94D049BB133111EBull;
    h ^= h >> 31;
    return static_cast<float>(static_cast<int>(h % 253) - 126);
}

// A 64-bit fingerprint of a row's bytes in element order (f16: the 2-byte values, gathered).
FUZZ_NO_COVERAGE inline uint64_t fingerprint(const uint8_t* bytes, size_t n) {
    uint64_t h = 0x243F6A8885A308D3ull ^ n;
    auto mix = [&h](uint64_t w) {
        h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
    };
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, bytes + i, 8);  // a fixed size: inlined, not a call
        mix(w);
    }
    if (i < n) {
        uint64_t w = 0;
        for (size_t j = i; j < n; ++j) w |= static_cast<uint64_t>(bytes[j]) << (8 * (j - i));
        mix(w);
    }
    return h;
}

// The bytes a KV cache of `type` must hold for an exact row, built by hand (not by the cache's
// kernels): f32 as is, f16 per element, q8_0 as blocks of scale 1.0 and the integers.
FUZZ_NO_COVERAGE inline void encode_exact_row(const std::vector<float>& x, eg::QType type, std::vector<uint8_t>& out) {
    out.clear();
    if (type == eg::QType::F32) {
        out.resize(x.size() * 4);
        std::memcpy(out.data(), x.data(), out.size());
    } else if (type == eg::QType::F16) {
        out.resize(x.size() * 2);
        for (size_t d = 0; d < x.size(); ++d) {
            const eg::fp16_t h = eg::f32_to_fp16(x[d]);
            std::memcpy(out.data() + 2 * d, &h, 2);
        }
    } else {
        for (size_t b = 0; b < x.size(); b += 32) {
            const eg::fp16_t one = 0x3C00;  // 1.0
            out.push_back(static_cast<uint8_t>(one & 0xFF));
            out.push_back(static_cast<uint8_t>(one >> 8));
            for (size_t j = 0; j < 32; ++j) out.push_back(static_cast<uint8_t>(static_cast<int8_t>(x[b + j])));
        }
    }
}

struct Harness {
    eg::KVCache& c;
    const eg::KVLayout& lay;
    std::vector<std::vector<int64_t>> model;  // per sequence: the token id at each position
    int64_t next_id = 1;
    float tol;
    bool exact = false;              // exact rows (exact_row_value; tol must be 0) with fingerprints
    std::vector<uint64_t> expected;  // exact: per (token id, layer, K/V), the fingerprint its row must have
    std::vector<float> scratch_row;
    std::vector<uint8_t> scratch_bytes;

    FUZZ_NO_COVERAGE float value(int64_t id, int32_t layer, int kv, int32_t d) const {
        return exact ? exact_row_value(id, layer, kv, d) : row_value(id, layer, kv, d);
    }

    // Every stored row of seq against its token's fingerprint, read through the view attention
    // uses (block table, ring slot, transposed f16); its length and lowest stored positions.
    FUZZ_NO_COVERAGE void check_fingerprints(int32_t seq) {
        const auto& m = model[seq];
        const int64_t len = static_cast<int64_t>(m.size());
        FUZZ_REQUIRE(c.seq_len(seq) == len);
        const int32_t E = lay.shape.n_embd_kv;
        std::vector<uint8_t>& gathered = scratch_bytes;
        gathered.resize(static_cast<size_t>(E) * 2);
        for (int32_t l = 0; l < c.n_layer(); ++l) {
            const eg::KVLayerView v = c.view(l, seq);
            FUZZ_REQUIRE(v.lo >= 0 && (len == 0 || v.lo <= len));
            if (v.window == 0) FUZZ_REQUIRE(v.lo == 0);
            const int32_t B = v.block_tokens;
            for (int64_t p = v.lo; p < len; ++p)
                for (int kv = 0; kv < 2; ++kv) {
                    const uint8_t* blk = kv ? v.v(p / B) : v.k(p / B);
                    uint64_t fp;
                    if (v.transposed) {
                        const auto* t = reinterpret_cast<const eg::fp16_t*>(blk) + p % B;
                        for (int32_t d = 0; d < E; ++d) {
                            const eg::fp16_t x = t[static_cast<size_t>(d) * B];
                            gathered[2 * d] = static_cast<uint8_t>(x & 0xFF);
                            gathered[2 * d + 1] = static_cast<uint8_t>(x >> 8);
                        }
                        fp = fingerprint(gathered.data(), gathered.size());
                    } else {
                        fp = fingerprint(blk + static_cast<size_t>(p % B) * v.row_bytes, v.row_bytes);
                    }
                    FUZZ_REQUIRE(fp == expected[static_cast<size_t>((m[p] * c.n_layer() + l) * 2 + kv)]);
                }
        }
    }

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
                        FUZZ_REQUIRE(std::fabs(row[d] - value(m[p], l, kv, d)) <= tol);
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
            if (exact) {
                write_exact(seq, len + i, id);
            } else {
                for (int32_t l = 0; l < c.n_layer(); ++l) {
                    for (int32_t d = 0; d < lay.shape.n_embd_kv; ++d) row[d] = row_value(id, l, 0, d);
                    c.write_k(l, seq, len + i, row.data(), table());
                    for (int32_t d = 0; d < lay.shape.n_embd_kv; ++d) row[d] = row_value(id, l, 1, d);
                    c.write_v(l, seq, len + i, row.data(), table());
                }
            }
            model[seq].push_back(id);
        }
        c.commit(seq, n);
    }

    // Token id's exact rows written at pos in every layer, and the fingerprints they must keep.
    FUZZ_NO_COVERAGE void write_exact(int32_t seq, int64_t pos, int64_t id) {
        std::vector<float>& row = scratch_row;
        row.resize(lay.shape.n_embd_kv);
        expected.resize(static_cast<size_t>((id + 1) * c.n_layer() * 2));
        for (int32_t l = 0; l < c.n_layer(); ++l)
            for (int kv = 0; kv < 2; ++kv) {
                for (int32_t d = 0; d < lay.shape.n_embd_kv; ++d) row[d] = exact_row_value(id, l, kv, d);
                if (kv == 0) c.write_k(l, seq, pos, row.data(), table());
                else c.write_v(l, seq, pos, row.data(), table());
                encode_exact_row(row, lay.type, scratch_bytes);
                expected[static_cast<size_t>((id * c.n_layer() + l) * 2 + kv)] = fingerprint(scratch_bytes.data(), scratch_bytes.size());
            }
    }
};

// A random layout (f16/f32/q8_0, 1-4 layers, global and sliding-window groups, 1-4 sequences);
// false when plan_kv_cache refuses it. The bounds below are the largest values drawn.
struct RandomLayout {
    eg::KVShape shape;
    eg::QType type = eg::QType::F16;
    int32_t n_seq = 1, max_batch = 1;
    eg::KVLayout lay;
    int32_t max_layers = 4, max_window = 100, max_max_batch = 64;
    int64_t max_tokens = 256;

    bool read(FuzzedDataProvider& in) {
        const eg::QType types[] = {eg::QType::F16, eg::QType::F32, eg::QType::Q8_0};
        type = types[in.ConsumeIntegralInRange<int>(0, 2)];
        shape.head_dim = 32;  // small rows keep executions fast; the block arithmetic is what is fuzzed
        shape.n_embd_kv = shape.head_dim * in.ConsumeIntegralInRange<int32_t>(1, 2);
        const int32_t n_layer = in.ConsumeIntegralInRange<int32_t>(1, max_layers);
        for (int32_t l = 0; l < n_layer; ++l)
            shape.layer_windows.push_back(in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<int32_t>(1, max_window));
        const int32_t block_tokens = type == eg::QType::F16 ? 32 * in.ConsumeIntegralInRange<int32_t>(1, 2)
                                                            : in.ConsumeIntegralInRange<int32_t>(1, 48);
        const int64_t n_tokens = in.ConsumeIntegralInRange<int64_t>(1, max_tokens);
        n_seq = in.ConsumeIntegralInRange<int32_t>(1, 4);
        max_batch = in.ConsumeIntegralInRange<int32_t>(1, max_max_batch);
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
