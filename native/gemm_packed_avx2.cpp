// gemm_packed_avx2.cpp — products of row-interleaved weights (repack.h) with a few tokens at once
// (several sequences' decode steps in one forward pass), for Q4_0, Q4_1 and Q8_0 on AVX2.
//
// The one-token kernel (repack_avx2.cpp) run once per token would load and unpack every record
// once per token. Here each 8-row group is unpacked once, a chunk of records at a time, into a
// buffer that stays in L1 (Q4: the nibbles spread to bytes; Q8_0: the quants' absolute values;
// both: the scales as floats), and then every token's products run over that chunk with its own
// 8 + 1 accumulators in registers (kept on the stack between chunks of long rows). The activation
// terms (scales, Q4_1 sums, Q4_0 offsets) are formed once per call for every token.
//
// Each (row, token) pair gets exactly the one-token kernel's arithmetic: the same int32 lanes
// (repack_avx2_ops.h), the same scale product f32(x.d) * f32(y.d), the same fma into the same one
// of ggml's 8 float lanes block after block in column order, the same final lane sum. So a
// sequence's logits are bit-identical whether it runs alone or beside others, and whichever of the
// two kernels runs (tests/kernels/test_packed.py checks every token count).
#include "kernels.h"

#include <algorithm>  // before the AVX2 target region: library code must not be compiled for AVX2
#include <cstring>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)

#include "avx2_target_begin.h"

#include <immintrin.h>

#include "repack_avx2_ops.h"

namespace eg {
namespace {

using packed_avx2::lane_fma;

// Records unpacked at a time: 32 x 320 bytes (Q4) stays in L1 beside the tokens' activations.
constexpr int64_t kChunk = 32;

// One record unpacked: what every token's products over it read.
struct alignas(32) Unpacked {
    __m256 d;      // the 8 rows' scales
    __m256 m;      // Q4_1: the 8 rows' mins
    __m256i q[8];  // ggml lane k of the 8 rows: Q4 nibbles as bytes 0..15; Q8_0 |quants|
};

template <QType W>
constexpr size_t header_bytes() {
    return W == QType::Q4_1 ? 32 : 16;
}

inline __m256 f16x8(const uint8_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// Unpacks records [0, nb) at rec and asks for the same records `ahead` bytes further (the next
// group's) to be fetched: the tokens' products over this chunk then run while memory delivers
// the next one, where a burst of reads at each group's start would leave the cores waiting.
template <QType W>
void unpack(const uint8_t* rec, size_t record, int64_t nb, Unpacked* u, size_t ahead) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t b = 0; b < nb; ++b, rec += record) {
        if (ahead)
            for (size_t line = 0; line < record; line += 64)
                _mm_prefetch(reinterpret_cast<const char*>(rec + ahead + line), _MM_HINT_T0);
        u[b].d = f16x8(rec);
        if constexpr (W == QType::Q4_1) u[b].m = f16x8(rec + 16);
        const uint8_t* qs = rec + header_bytes<W>();
        if constexpr (W == QType::Q8_0) {
            for (int k = 0; k < 8; ++k) {
                const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * k));
                u[b].q[k] = _mm256_sign_epi8(w, w);
            }
        } else {  // load k: low nibbles = ggml lane k, high nibbles = lane 4 + k
            for (int k = 0; k < 4; ++k) {
                const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * k));
                u[b].q[k] = _mm256_and_si256(raw, m4);
                u[b].q[4 + k] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            }
        }
    }
}

// One token over nb unpacked records (rec: the same records packed, for Q8_0's signs): ggml's
// float steps into acc[8] and, for Q4_1, accm — exactly repack_avx2.cpp's group_blocks.
template <QType W, typename BlockAct>
inline void token_blocks(const Unpacked* u, const uint8_t* rec, size_t record, const BlockAct* y, const float* d,
                         const float* s, const int32_t* off, int64_t nb, __m256 (&acc)[8], __m256& accm) {
    for (int64_t b = 0; b < nb; ++b, rec += record) {
        const __m256 ds = _mm256_mul_ps(u[b].d, _mm256_set1_ps(d[b]));  // ggml: f32(x.d) * f32(y.d)
        const int8_t* yq = y[b].qs;
        if constexpr (W == QType::Q8_0) {
            const uint8_t* qs = rec + header_bytes<W>();
            for (int k = 0; k < 8; ++k) {
                const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * k));
                lane_fma(ds, packed_avx2::q8_lane(w, u[b].q[k], yq + 4 * k), acc[k]);
            }
        } else {
            for (int k = 0; k < 4; ++k) {
                __m256i plo = packed_avx2::q4_lane(u[b].q[k], yq + 4 * k);
                __m256i phi = packed_avx2::q4_lane(u[b].q[4 + k], yq + 16 + 4 * k);
                if constexpr (W == QType::Q4_0) {  // (q - 8) * y, exactly as ggml's int32 lanes
                    plo = _mm256_sub_epi32(plo, _mm256_set1_epi32(off[8 * b + k]));
                    phi = _mm256_sub_epi32(phi, _mm256_set1_epi32(off[8 * b + 4 + k]));
                }
                lane_fma(ds, plo, acc[k]);
                lane_fma(ds, phi, acc[4 + k]);
            }
        }
        if constexpr (W == QType::Q4_1)  // ggml: summs += f32(x.m) * f32(y.s), block by block
            accm = _mm256_fmadd_ps(u[b].m, _mm256_set1_ps(s[b]), accm);
    }
}

// The tokens' activation terms, formed once per call (packed_avx2::act_terms), token-major.
template <QType W>
struct TokenTerms {
    std::vector<float> d, s;
    std::vector<int32_t> off;
    template <typename BlockAct>
    void form(const uint8_t* act, size_t act_stride, int64_t n_tok, int64_t nb) {
        const size_t n = static_cast<size_t>(n_tok * nb);
        if (d.size() < n) d.resize(n);
        if (W == QType::Q4_1 && s.size() < n) s.resize(n);
        if (W == QType::Q4_0 && off.size() < 8 * n) off.resize(8 * n);
        for (int64_t t = 0; t < n_tok; ++t)
            packed_avx2::act_terms<W>(reinterpret_cast<const BlockAct*>(act + t * act_stride), nb, d.data() + t * nb,
                                      W == QType::Q4_1 ? s.data() + t * nb : nullptr,
                                      W == QType::Q4_0 ? off.data() + 8 * t * nb : nullptr);
    }
};

template <QType W, typename BlockAct>
void packed_gemm(int64_t n, const uint8_t* groups, size_t group_bytes, int64_t n_groups, const void* act,
                 size_t act_stride, int64_t n_tok, float* y, int64_t y_stride) {
    const int64_t nb = n / 32;
    const size_t record = group_bytes / static_cast<size_t>(nb);
    const auto* a = static_cast<const uint8_t*>(act);
    thread_local TokenTerms<W> terms;  // grows to the largest call seen, then is reused
    thread_local std::vector<float> carry_buf;  // per token: 8 lanes + accm, between chunks of long rows
    terms.template form<BlockAct>(a, act_stride, n_tok, nb);
    if (nb > kChunk && carry_buf.size() < static_cast<size_t>(72 * n_tok)) carry_buf.resize(72 * n_tok);
    // plain pointers from here on: a thread_local's address costs a call in a shared library
    const float* dy = terms.d.data();
    const float* sy = W == QType::Q4_1 ? terms.s.data() : nullptr;
    const int32_t* off = W == QType::Q4_0 ? terms.off.data() : nullptr;
    float* carry = carry_buf.data();
    Unpacked u[kChunk];
    for (int64_t g = 0; g < n_groups; ++g) {
        const uint8_t* gr = groups + g * group_bytes;
        for (int64_t b0 = 0; b0 < nb; b0 += kChunk) {
            const int64_t m = std::min(kChunk, nb - b0);
            const bool first = b0 == 0, last = b0 + m == nb;
            unpack<W>(gr + b0 * record, record, m, u, g + 1 < n_groups ? group_bytes : 0);
            for (int64_t t = 0; t < n_tok; ++t) {
                __m256 acc[8], accm;
                float* keep = carry + 72 * t;
                for (int k = 0; k < 8; ++k) acc[k] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(keep + 8 * k);
                accm = first ? _mm256_setzero_ps() : _mm256_loadu_ps(keep + 64);
                const int64_t tb = t * nb + b0;
                token_blocks<W>(u, gr + b0 * record, record, reinterpret_cast<const BlockAct*>(a + t * act_stride) + b0,
                                dy + tb, sy ? sy + tb : nullptr, off ? off + 8 * tb : nullptr, m, acc, accm);
                if (last) {
                    packed_avx2::finish_rows<W>(acc, accm, y + t * y_stride + 8 * g);
                    continue;
                }
                for (int k = 0; k < 8; ++k) _mm256_storeu_ps(keep + 8 * k, acc[k]);
                _mm256_storeu_ps(keep + 64, accm);
            }
        }
    }
}

}  // namespace

void fill_table_avx2_packed_gemm(KernelTable& t) {
    t.packed_gemm[static_cast<int>(QType::Q4_0)] = packed_gemm<QType::Q4_0, block_q8_0>;
    t.packed_gemm[static_cast<int>(QType::Q4_1)] = packed_gemm<QType::Q4_1, block_q8_1>;
    t.packed_gemm[static_cast<int>(QType::Q8_0)] = packed_gemm<QType::Q8_0, block_q8_0>;
}

}  // namespace eg

#include "avx2_target_end.h"

#else  // not x86-64

namespace eg {
void fill_table_avx2_packed_gemm(KernelTable&) {}
}  // namespace eg

#endif
