// repack_avx2_ops.h — the float and integer steps the AVX2 products on row-interleaved weights
// (repack.h) share: repack_avx2.cpp (one token) and gemm_packed_avx2.cpp (a few tokens). Keeping
// them in one place is what keeps the two bit-identical per (row, token). Include inside the AVX2
// target region, after <immintrin.h>.
//
// Lane i of every register is row i of an 8-row group. ggml's x86 kernel reduces each row's block
// to 8 int32 lanes (lane k: four products), converts them and multiply-adds them into 8 float
// lanes with the block's scale, then sums the lanes in a fixed order; here ggml's lane k of 8 rows
// is one register, so the same float operations run for 8 rows at once.
#pragma once

#include <cstring>

namespace eg {
namespace packed_avx2 {

// The same four activation bytes in every 32-bit lane.
inline __m256i bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// Per activation block b < nb: its scale as a float (d[b]), and the term the weight format needs:
// Q4_1: the f16 sum s as a float (s[b]); Q4_0: 8 times the sum of each ggml lane's four
// activations (off[8 * b + k], lane k holding elements 4k..4k+3). Unused outputs may be null.
template <QType W, typename BlockAct>
inline void act_terms(const BlockAct* y, int64_t nb, float* d, float* s, int32_t* off) {
    for (int64_t b = 0; b < nb; ++b) {
        d[b] = _cvtsh_ss(y[b].d);
        if constexpr (W == QType::Q4_1) s[b] = _cvtsh_ss(y[b].s);
        if constexpr (W == QType::Q4_0) {
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
            const __m256i o = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(8), q), _mm256_set1_epi16(1));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(off + 8 * b), o);
        }
    }
}

// The int32 of ggml's lane k for 8 rows: q the rows' four unsigned nibbles of that lane (0..15)
// against the four activation bytes at ya, less off (Q4_0's 8 * sum: (q - 8) * y exactly as
// ggml's int32 lanes; 0 otherwise).
inline __m256i q4_lane(__m256i q, const int8_t* ya) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, bcast4(ya)), _mm256_set1_epi16(1));
}

// The int32 of ggml's lane k for 8 Q8_0 rows: w the rows' four quants of the lane, absw = |w|
// (the sign trick: |w| * (y with w's sign)).
inline __m256i q8_lane(__m256i w, __m256i absw, const int8_t* ya) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(absw, _mm256_sign_epi8(bcast4(ya), w)), _mm256_set1_epi16(1));
}

// ggml's lane k of one block times the block's scales, into acc (one of ggml's 8 float lanes).
inline void lane_fma(__m256 ds, __m256i p, __m256& acc) { acc = _mm256_fmadd_ps(ds, _mm256_cvtepi32_ps(p), acc); }

// ggml's horizontal sum of its 8 lanes (hsum_float_8), done for 8 rows with vertical adds:
// ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)); then Q4_1's m * s sum added.
template <QType W>
inline void finish_rows(const __m256 (&acc)[8], __m256 accm, float* out) {
    const __m256 s0 = _mm256_add_ps(acc[0], acc[4]), s1 = _mm256_add_ps(acc[1], acc[5]);
    const __m256 s2 = _mm256_add_ps(acc[2], acc[6]), s3 = _mm256_add_ps(acc[3], acc[7]);
    const __m256 r = _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3));
    _mm256_storeu_ps(out, W == QType::Q4_1 ? _mm256_add_ps(r, accm) : r);
}

}  // namespace packed_avx2
}  // namespace eg
