// repack_avx2.cpp — AVX2 products on row-interleaved weights (repack.h): the fast decode path.
//
// Lane i of every register is row i of an 8-row group. Per 32-column block the 8 rows' integer
// dot products are formed with maddubs on one broadcast activation word per four columns, summed
// in int16 across the block where that cannot overflow (Q4: 16 products of |q| <= 15, |y| <= 128
// per lane, |sum| <= 30720), widened once with madd, and the block's 8 scales (one f16
// conversion) times the activation's scale go into one float multiply-add for all 8 rows. Q4_0's
// "-8" is an integer subtraction of 8 * sum(y) (formed once per activation block); Q4_1's mins
// are one multiply-add per block against the activation's precomputed sum s. Today's per-row
// path (quant_avx2.cpp) spends about three times the instructions per block.
#include "kernels.h"

#include <algorithm>  // before the AVX2 target region: library code must not be compiled for AVX2
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) || defined(_M_X64)

#include "avx2_target_begin.h"

#include <immintrin.h>

namespace eg {
namespace {

constexpr int64_t kActChunk = 256;  // activation blocks whose terms are formed at a time

// The same four activation bytes in every 32-bit lane.
inline __m256i bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// Per activation block: its scale as a float, and the term the weight format needs
// (Q4_0: 8 * sum(q); Q4_1: the f16 sum s as a float; Q8_0: nothing).
template <QType W>
struct ActTerms {
    alignas(32) float d[kActChunk];
    alignas(32) float s[kActChunk];
    alignas(32) int32_t off[kActChunk];
};

template <QType W, typename BlockAct>
inline void act_terms(const BlockAct* y, int64_t nb, ActTerms<W>& at) {
    const __m256i ones8 = _mm256_set1_epi8(1);
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; ++b) {
        at.d[b] = _cvtsh_ss(y[b].d);
        if constexpr (W == QType::Q4_1) at.s[b] = _cvtsh_ss(y[b].s);
        if constexpr (W == QType::Q4_0) {
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
            const __m256i s32 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
            __m128i r = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
            r = _mm_add_epi32(r, _mm_shuffle_epi32(r, _MM_SHUFFLE(1, 0, 3, 2)));
            r = _mm_add_epi32(r, _mm_shuffle_epi32(r, _MM_SHUFFLE(2, 3, 0, 1)));
            at.off[b] = 8 * _mm_cvtsi128_si32(r);
        }
    }
}

// 8 rows' integer dot products with one activation block: Q4 (nibbles, unsigned 0..15).
inline __m256i q4_block_dot(const uint8_t* qs, const int8_t* y) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i s16 = _mm256_setzero_si256();
    for (int k = 0; k < 4; ++k) {
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * k));
        const __m256i lo = _mm256_and_si256(raw, m4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
        s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(lo, bcast4(y + 4 * k)));
        s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(hi, bcast4(y + 16 + 4 * k)));
    }
    return _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
}

// Q8 (signed): the sign trick per register; pairs reach 2 * 128 * 127, so each widens at once.
inline __m256i q8_block_dot(const uint8_t* qs, const int8_t* y) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i s32 = _mm256_setzero_si256();
    for (int k = 0; k < 8; ++k) {
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * k));
        const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(bcast4(y + 4 * k), w));
        s32 = _mm256_add_epi32(s32, _mm256_madd_epi16(p, ones));
    }
    return s32;
}

// One group's records for activation blocks [0, nb), accumulated into acc (and accm: Q4_1's mins).
template <QType W, typename BlockAct>
inline void group_blocks(const uint8_t* rec, size_t record, const BlockAct* y, int64_t nb, const ActTerms<W>& at,
                         __m256& acc, __m256& accm) {
    constexpr size_t kHeader = W == QType::Q4_1 ? 32 : 16;
    for (int64_t b = 0; b < nb; ++b, rec += record) {
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec)));
        __m256i dot;
        if constexpr (W == QType::Q8_0) {
            dot = q8_block_dot(rec + kHeader, y[b].qs);
        } else {
            dot = q4_block_dot(rec + kHeader, y[b].qs);
            if constexpr (W == QType::Q4_0) dot = _mm256_sub_epi32(dot, _mm256_set1_epi32(at.off[b]));
        }
        acc = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(at.d[b])), _mm256_cvtepi32_ps(dot), acc);
        if constexpr (W == QType::Q4_1) {
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
        act_terms<W>(y, nb, at);
        for (int64_t g = 0; g < n_groups; ++g) {
            __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
            group_blocks<W>(groups + g * group_bytes, record, y, nb, at, acc, accm);
            _mm256_storeu_ps(out + 8 * g, W == QType::Q4_1 ? _mm256_add_ps(acc, accm) : acc);
        }
        return;
    }
    for (int64_t g = 0; g < n_groups; ++g) {  // very long rows: the terms chunk by chunk
        __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
        for (int64_t b0 = 0; b0 < nb; b0 += kActChunk) {
            const int64_t m = std::min(kActChunk, nb - b0);
            act_terms<W>(y + b0, m, at);
            group_blocks<W>(groups + g * group_bytes + b0 * record, record, y + b0, m, at, acc, accm);
        }
        _mm256_storeu_ps(out + 8 * g, W == QType::Q4_1 ? _mm256_add_ps(acc, accm) : acc);
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
