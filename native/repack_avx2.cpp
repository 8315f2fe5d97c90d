// repack_avx2.cpp — AVX2 products on row-interleaved weights (repack.h): the fast decode path.
//
// Lane i of every register is row i of an 8-row group. ggml's x86 kernel reduces each row's block
// to 8 int32 lanes (lane k: four products), converts them and multiply-adds them into 8 float
// lanes with the block's scale, then sums the lanes in a fixed order. The packed layout puts
// ggml's lane k of 8 rows into one register (one broadcast activation word serves all 8), so the
// very same float operations run on 8 rows at once: 8 accumulators, one per ggml lane, and the
// final lane sum done with vertical adds in ggml's order. The results are bit-identical to
// quant_avx2.cpp's (and so to llama.cpp's x86 decode), for about half the instructions per row
// and block: the nibble unpacking, the scale conversion and the activation loads are shared by
// 8 rows, and no per-row horizontal sum is left.
#include "kernels.h"

#include <algorithm>  // before the AVX2 target region: library code must not be compiled for AVX2
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) || defined(_M_X64)

#include "avx2_target_begin.h"

#include <immintrin.h>

#include "repack_avx2_ops.h"

namespace eg {
namespace {

using packed_avx2::act_terms;
using packed_avx2::lane_fma;

constexpr int64_t kActChunk = 256;  // activation blocks whose terms are formed at a time

// Per activation block: the terms act_terms forms (repack_avx2_ops.h).
template <QType W>
struct ActTerms {
    float d[kActChunk];
    float s[W == QType::Q4_1 ? kActChunk : 1];
    int32_t off[W == QType::Q4_0 ? kActChunk : 1][8];
    template <typename BlockAct>
    void form(const BlockAct* y, int64_t nb) { act_terms<W>(y, nb, d, s, off[0]); }
};

// One group's records for activation blocks [0, nb), accumulated into acc[8] (ggml's 8 float lanes,
// each for 8 rows) and, for Q4_1, accm (the m * s terms).
template <QType W, typename BlockAct>
inline void group_blocks(const uint8_t* rec, size_t record, const BlockAct* y, int64_t nb, const ActTerms<W>& at,
                         __m256 (&acc)[8], __m256& accm) {
    constexpr size_t kHeader = W == QType::Q4_1 ? 32 : 16;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t b = 0; b < nb; ++b, rec += record) {
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec)));
        const __m256 ds = _mm256_mul_ps(d, _mm256_set1_ps(at.d[b]));  // ggml: f32(x.d) * f32(y.d)
        const uint8_t* qs = rec + kHeader;
        const int8_t* yq = y[b].qs;
        if constexpr (W == QType::Q8_0) {  // load k, lane i: row i's elements 4k..4k+3 = ggml lane k
            for (int k = 0; k < 8; ++k) {
                const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * k));
                lane_fma(ds, packed_avx2::q8_lane(w, _mm256_sign_epi8(w, w), yq + 4 * k), acc[k]);
            }
        } else {  // load k: low nibbles = ggml lane k (elements 4k..), high = lane 4 + k (16 + 4k..)
            for (int k = 0; k < 4; ++k) {
                const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * k));
                const __m256i lo = _mm256_and_si256(raw, m4);
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
                __m256i plo = packed_avx2::q4_lane(lo, yq + 4 * k);
                __m256i phi = packed_avx2::q4_lane(hi, yq + 16 + 4 * k);
                if constexpr (W == QType::Q4_0) {  // (q - 8) * y, exactly as ggml's int32 lanes
                    plo = _mm256_sub_epi32(plo, _mm256_set1_epi32(at.off[b][k]));
                    phi = _mm256_sub_epi32(phi, _mm256_set1_epi32(at.off[b][4 + k]));
                }
                lane_fma(ds, plo, acc[k]);
                lane_fma(ds, phi, acc[4 + k]);
            }
        }
        if constexpr (W == QType::Q4_1) {  // ggml: summs += f32(x.m) * f32(y.s), block by block
            const __m256 m = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + 16)));
            accm = _mm256_fmadd_ps(m, _mm256_set1_ps(at.s[b]), accm);
        }
    }
}

template <QType W, typename BlockAct>
void packed_dot(int64_t n, const uint8_t* groups, size_t group_bytes, int64_t n_groups, const void* act, float* out) {
    const int64_t nb = n / 32;
    const size_t record = group_bytes / static_cast<size_t>(nb);
    const auto* y = static_cast<const BlockAct*>(act);
    ActTerms<W> at;
    if (nb <= kActChunk) {  // the usual case: the activation's terms once for every group
        at.form(y, nb);
        for (int64_t g = 0; g < n_groups; ++g) {
            __m256 acc[8], accm = _mm256_setzero_ps();
            for (auto& a : acc) a = _mm256_setzero_ps();
            group_blocks<W>(groups + g * group_bytes, record, y, nb, at, acc, accm);
            packed_avx2::finish_rows<W>(acc, accm, out + 8 * g);
        }
        return;
    }
    for (int64_t g = 0; g < n_groups; ++g) {  // very long rows: the terms chunk by chunk
        __m256 acc[8], accm = _mm256_setzero_ps();
        for (auto& a : acc) a = _mm256_setzero_ps();
        for (int64_t b0 = 0; b0 < nb; b0 += kActChunk) {
            const int64_t m = std::min(kActChunk, nb - b0);
            at.form(y + b0, m);
            group_blocks<W>(groups + g * group_bytes + b0 * record, record, y + b0, m, at, acc, accm);
        }
        packed_avx2::finish_rows<W>(acc, accm, out + 8 * g);
    }
}

}  // namespace

void fill_table_avx2_packed(KernelTable& t) {
    t.packed_dot[static_cast<int>(QType::Q4_0)] = packed_dot<QType::Q4_0, block_q8_0>;
    t.packed_dot[static_cast<int>(QType::Q4_1)] = packed_dot<QType::Q4_1, block_q8_1>;
    t.packed_dot[static_cast<int>(QType::Q8_0)] = packed_dot<QType::Q8_0, block_q8_0>;
}

}  // namespace eg

#include "avx2_target_end.h"

#else  // not x86-64

namespace eg {
void fill_table_avx2_packed(KernelTable&) {}
}  // namespace eg

#endif
