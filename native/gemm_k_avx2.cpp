// gemm_k_avx2.cpp — batched products (prefill) for the k-quants (Q4_K, Q5_K, Q6_K) on AVX2.
//
// A tile of 4 weight rows x 8 tokens walks the super-blocks once. Each row's super-block is
// unpacked once for the 8 tokens (weights as unsigned bytes in activation order, one int16
// scale vector per 32 elements, the mins or sub-block scales), kept in L1, and every
// (row, token) pair then needs only loads, maddubs, madd and add per 32 elements. The integer
// sum of each super-block is exact in any order, and the float side of every pair is
// quant_k_avx2.cpp's, operation for operation (same scale products, same FMAs into the same
// 8-lane and min accumulators, same final reduction), so a batch is bit-identical to one token
// at a time, which is llama.cpp's x86 arithmetic.
#include "kernels.h"

#include <cmath>  // before the AVX2 target region
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) || defined(_M_X64)

#include "avx2_target_begin.h"

#include <immintrin.h>

namespace eg {
namespace {

inline float h2f(fp16_t h) { return _cvtsh_ss(h); }

inline float hsum_float_8(__m256 x) {  // quant_k_avx2.cpp's reduction
    __m128 res = _mm256_extractf128_ps(x, 1);
    res = _mm_add_ps(res, _mm256_castps256_ps128(x));
    res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    res = _mm_add_ss(res, _mm_movehdup_ps(res));
    return _mm_cvtss_f32(res);
}

inline __m256i scale_shuffle_k4(int i) {  // int16 scale i broadcast over the register
    const int8_t a = static_cast<int8_t>(2 * i);
    return _mm256_set1_epi16(static_cast<int16_t>((a + 1) << 8 | a));
}
inline __m128i scale_shuffle_q6(int i) {  // 8 copies of int8 scale 2i, then 8 of scale 2i+1
    return _mm_set_epi64x(0x0101010101010101LL * (2 * i + 1), 0x0101010101010101LL * (2 * i));
}

// One weight row's super-block, as every token of the tile uses it.
struct alignas(32) Unpacked {
    __m256i q[8];   // elements 32k..32k+31 as unsigned bytes (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63)
    __m256i sc[8];  // int16 multipliers of chunk k's maddubs pairs
    __m256i aux;    // Q4_K/Q5_K: the 8 mins as int16 (low half); Q6_K: the 16 scales as int16
    float d, dmin;  // the row's fp16 scales, widened
};

inline __m256i k4_mins_and_scales(const uint8_t* packed) {  // scales in the low half, mins high
    uint8_t sm[16];
    unpack_q4_K_scales(packed, sm);
    return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sm)));
}

inline void unpack(const block_q4_K& b, Unpacked& u) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const __m256i ms = k4_mins_and_scales(b.scales);
    const __m128i sc128 = _mm256_extracti128_si256(ms, 0);
    const __m256i scales = _mm256_set_m128i(sc128, sc128);
    for (int j = 0; j < QK_K / 64; ++j) {
        const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * j));
        u.q[2 * j] = _mm256_and_si256(bits, m4);
        u.q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
        u.sc[2 * j] = _mm256_shuffle_epi8(scales, scale_shuffle_k4(2 * j));
        u.sc[2 * j + 1] = _mm256_shuffle_epi8(scales, scale_shuffle_k4(2 * j + 1));
    }
    u.aux = _mm256_castsi128_si256(_mm256_extracti128_si256(ms, 1));
    u.d = h2f(b.d);
    u.dmin = h2f(b.dmin);
}

inline void unpack(const block_q5_K& b, Unpacked& u) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const __m256i ms = k4_mins_and_scales(b.scales);
    const __m128i sc128 = _mm256_extracti128_si256(ms, 0);
    const __m256i scales = _mm256_set_m128i(sc128, sc128);
    const __m256i hbits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
    for (int j = 0; j < QK_K / 64; ++j) {
        const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * j));
        // Fifth bits: bit 2j (2j+1) of each qh byte, masked, moved to bit 0 and then to bit 4 (the
        // 16-bit shifts cannot carry across bytes once the other bits are masked off).
        const __m256i hl = _mm256_slli_epi16(
            _mm256_srl_epi16(_mm256_and_si256(hbits, _mm256_set1_epi8(static_cast<char>(1 << (2 * j)))),
                             _mm_cvtsi32_si128(2 * j)), 4);
        const __m256i hh = _mm256_slli_epi16(
            _mm256_srl_epi16(_mm256_and_si256(hbits, _mm256_set1_epi8(static_cast<char>(2 << (2 * j)))),
                             _mm_cvtsi32_si128(2 * j + 1)), 4);
        u.q[2 * j] = _mm256_or_si256(_mm256_and_si256(bits, m4), hl);
        u.q[2 * j + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), hh);
        u.sc[2 * j] = _mm256_shuffle_epi8(scales, scale_shuffle_k4(2 * j));
        u.sc[2 * j + 1] = _mm256_shuffle_epi8(scales, scale_shuffle_k4(2 * j + 1));
    }
    u.aux = _mm256_castsi128_si256(_mm256_extracti128_si256(ms, 1));
    u.d = h2f(b.d);
    u.dmin = h2f(b.dmin);
}

inline void unpack(const block_q6_K& b, Unpacked& u) {
    const __m256i m3 = _mm256_set1_epi8(3), m15 = _mm256_set1_epi8(15);
    const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
    for (int j = 0; j < QK_K / 128; ++j) {
        const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * j));
        const __m256i l2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * j + 32));
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * j));
        const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(h, m3), 4);
        const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(12)), 2);
        const __m256i h2 = _mm256_and_si256(h, _mm256_set1_epi8(48));
        const __m256i h3 = _mm256_srli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(-64)), 2);
        u.q[4 * j + 0] = _mm256_or_si256(_mm256_and_si256(l1, m15), h0);
        u.q[4 * j + 1] = _mm256_or_si256(_mm256_and_si256(l2, m15), h1);
        u.q[4 * j + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m15), h2);
        u.q[4 * j + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l2, 4), m15), h3);
        for (int m = 0; m < 4; ++m)
            u.sc[4 * j + m] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, scale_shuffle_q6(4 * j + m)));
    }
    u.aux = _mm256_cvtepi8_epi16(scales);
    u.d = h2f(b.d);
    u.dmin = 0.0f;
}

// The integer sums of NR rows x NT tokens (each <= 2) over one super-block, in 8 int32 lanes
// each: s[r * NT + t]. Blocking 2 x 2 halves the loads per product (each unpacked chunk and
// activation chunk is loaded once for two pairs), which otherwise bound the loop.
template <int NR, int NT>
inline void block_sums(const Unpacked* u, const int8_t* const* q8, __m256i* s) {
    for (int j = 0; j < NR * NT; ++j) s[j] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
        __m256i y[NT];
        for (int t = 0; t < NT; ++t) y[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8[t] + 32 * k));
        for (int r = 0; r < NR; ++r) {
            const __m256i q = u[r].q[k], sc = u[r].sc[k];
            for (int t = 0; t < NT; ++t)
                s[r * NT + t] = _mm256_add_epi32(s[r * NT + t], _mm256_madd_epi16(sc, _mm256_maddubs_epi16(q, y[t])));
        }
    }
}

// Running sums of one pair, finished as the one-row kernels finish them.
struct PairAcc {
    __m256 acc;
    __m128 acc_m;  // Q4_K
    float summs;   // Q5_K
};

template <typename Block>
inline void accumulate(const Unpacked& u, const block_q8_K& y, __m256i sumi, PairAcc& p);

template <>
inline void accumulate<block_q4_K>(const Unpacked& u, const block_q8_K& y, __m256i sumi, PairAcc& p) {
    const float d = y.d * u.d;
    const float dmin = -y.d * u.dmin;
    const __m256i q8sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.bsums));
    const __m128i q8s = _mm_hadd_epi16(_mm256_extracti128_si256(q8sums, 0), _mm256_extracti128_si256(q8sums, 1));
    const __m128i prod = _mm_madd_epi16(_mm256_castsi256_si128(u.aux), q8s);
    p.acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), p.acc_m);
    p.acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), p.acc);
}

template <>
inline void accumulate<block_q5_K>(const Unpacked& u, const block_q8_K& y, __m256i sumi, PairAcc& p) {
    const float d = y.d * u.d;
    const float dmin = -y.d * u.dmin;
    const __m256i q8sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.bsums));
    const __m128i q8s = _mm_hadd_epi16(_mm256_extracti128_si256(q8sums, 0), _mm256_extracti128_si256(q8sums, 1));
    const __m128i prod = _mm_madd_epi16(_mm256_castsi256_si128(u.aux), q8s);
    const __m128i hsum = _mm_hadd_epi32(_mm_hadd_epi32(prod, _mm_setzero_si128()), _mm_setzero_si128());
    p.summs = std::fma(dmin, static_cast<float>(_mm_extract_epi32(hsum, 0)), p.summs);
    p.acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), p.acc);
}

template <>
inline void accumulate<block_q6_K>(const Unpacked& u, const block_q8_K& y, __m256i sumi, PairAcc& p) {
    const float d = y.d * u.d;
    const __m256i q8sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.bsums));
    const __m256i q8sclsub = _mm256_slli_epi32(_mm256_madd_epi16(q8sums, u.aux), 5);
    p.acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi, q8sclsub)), p.acc);
}

template <typename Block>
inline float finish(const PairAcc& p) {
    if constexpr (std::is_same_v<Block, block_q4_K>) {
        __m128 m = _mm_add_ps(p.acc_m, _mm_movehl_ps(p.acc_m, p.acc_m));
        m = _mm_add_ss(m, _mm_movehdup_ps(m));
        return hsum_float_8(p.acc) + _mm_cvtss_f32(m);
    } else if constexpr (std::is_same_v<Block, block_q5_K>) {
        return hsum_float_8(p.acc) + p.summs;
    } else {
        return hsum_float_8(p.acc);
    }
}

// 4 rows x 8 tokens: a row's unpacking (costly for Q5_K's fifth bits) is shared by 8 tokens;
// measured here +10-40% over 4 x 4 for Q5_K, about even for Q4_K / Q6_K.
constexpr int kRM = 4, kRN = 8;

// NR rows from r0 x NT tokens from t0 of the tile, for super-block i.
template <typename Block, int NR, int NT>
inline void sub_tile(const Unpacked* u, const uint8_t* a, size_t as, int64_t i, int r0, int t0, PairAcc (*p)[kRN]) {
    const block_q8_K* yb[NT];
    const int8_t* q8[NT];
    for (int t = 0; t < NT; ++t) {
        yb[t] = reinterpret_cast<const block_q8_K*>(a + (t0 + t) * as) + i;
        q8[t] = yb[t]->qs;
    }
    __m256i s[NR * NT];
    block_sums<NR, NT>(u + r0, q8, s);
    for (int r = 0; r < NR; ++r)
        for (int t = 0; t < NT; ++t) accumulate<Block>(u[r0 + r], *yb[t], s[r * NT + t], p[r0 + r][t0 + t]);
}

// rm <= 4 rows x rn <= 8 tokens: y[t * ys + r] for the tile.
template <typename Block>
void tile(int64_t nb, int rm, int rn, float* y, int64_t ys, const uint8_t* w, size_t ws, const uint8_t* a, size_t as) {
    PairAcc p[kRM][kRN];
    for (int r = 0; r < rm; ++r)
        for (int t = 0; t < rn; ++t) p[r][t] = PairAcc{_mm256_setzero_ps(), _mm_setzero_ps(), 0.0f};
    Unpacked u[kRM];
    for (int64_t i = 0; i < nb; ++i) {
        for (int r = 0; r < rm; ++r) unpack(reinterpret_cast<const Block*>(w + r * ws)[i], u[r]);
        int t = 0;
        for (; t + 2 <= rn; t += 2) {
            int r = 0;
            for (; r + 2 <= rm; r += 2) sub_tile<Block, 2, 2>(u, a, as, i, r, t, p);
            if (r < rm) sub_tile<Block, 1, 2>(u, a, as, i, r, t, p);
        }
        if (t < rn) {
            int r = 0;
            for (; r + 2 <= rm; r += 2) sub_tile<Block, 2, 1>(u, a, as, i, r, t, p);
            if (r < rm) sub_tile<Block, 1, 1>(u, a, as, i, r, t, p);
        }
    }
    for (int r = 0; r < rm; ++r)
        for (int t = 0; t < rn; ++t) y[t * ys + r] = finish<Block>(p[r][t]);
}

// Tokens outer, rows inner, as gemm_avx2.cpp: a tile's rows stay in L1 while token groups pass.
template <typename Block>
void gemm_k(int64_t n, float* y, int64_t y_stride, const void* w, size_t w_stride, int64_t nr, const void* act,
            size_t act_stride, int64_t nt) {
    const int64_t nb = n / QK_K;
    const auto* wb = static_cast<const uint8_t*>(w);
    const auto* ab = static_cast<const uint8_t*>(act);
    for (int64_t t = 0; t < nt; t += kRN) {
        const int rn = static_cast<int>(nt - t < kRN ? nt - t : kRN);
        for (int64_t r = 0; r < nr; r += kRM) {
            const int rm = static_cast<int>(nr - r < kRM ? nr - r : kRM);
            tile<Block>(nb, rm, rn, y + t * y_stride + r, y_stride, wb + r * w_stride, w_stride, ab + t * act_stride,
                        act_stride);
        }
    }
}

}  // namespace

void fill_table_avx2_gemm_k(KernelTable& t) {
    t.gemm[static_cast<int>(QType::Q4_K)] = gemm_k<block_q4_K>;
    t.gemm[static_cast<int>(QType::Q5_K)] = gemm_k<block_q5_K>;
    t.gemm[static_cast<int>(QType::Q6_K)] = gemm_k<block_q6_K>;
}

}  // namespace eg

#include "avx2_target_end.h"

#else  // not x86-64

namespace eg {
void fill_table_avx2_gemm_k(KernelTable&) {}
}  // namespace eg

#endif
