// quant_k_avx2.cpp — AVX2+FMA k-quant dot products (Q4_K, Q5_K, Q6_K x Q8_K) and Q8_K quantize.
//
// Follows ggml's x86 kernels: maddubs multiplies unsigned weight nibbles by signed activations
// (no saturation: 2*63*127 < 32767), madd applies the per-sub-block scales, and the offsets
// (Q4_K's mins, Q6_K's -32) come from Q8_K's precomputed bsums. Every integer part is exact, so a
// result differs from the scalar reference only by the order of the float accumulation. Rows are
// whole super-blocks (n % 256 == 0), so there is no tail to fall back on.
#include <cmath>

#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "avx2_target_begin.h"

namespace eg {
namespace {

inline float hsum_float_8(__m256 x) {
    __m128 res = _mm256_extractf128_ps(x, 1);
    res = _mm_add_ps(res, _mm256_castps256_ps128(x));
    res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    res = _mm_add_ss(res, _mm_movehdup_ps(res));
    return _mm_cvtss_f32(res);
}

// Byte shuffles broadcasting one int16 scale (bytes 2i, 2i+1) over a whole 256-bit register.
inline __m256i scale_shuffle_k4(int i) {
    alignas(32) static const uint8_t k_shuffle[8][32] = {
#define EG_PAIR(a) a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1
        {EG_PAIR(0), EG_PAIR(0)},   {EG_PAIR(2), EG_PAIR(2)},   {EG_PAIR(4), EG_PAIR(4)},
        {EG_PAIR(6), EG_PAIR(6)},   {EG_PAIR(8), EG_PAIR(8)},   {EG_PAIR(10), EG_PAIR(10)},
        {EG_PAIR(12), EG_PAIR(12)}, {EG_PAIR(14), EG_PAIR(14)},
#undef EG_PAIR
    };
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(k_shuffle[i]));
}

// Byte shuffles giving 8 copies of int8 scale 2i then 8 copies of scale 2i+1 (Q6_K: 16 elements
// per scale, so one 32-element register spans two scales).
inline __m128i scale_shuffle_q6(int i) {
    alignas(16) static const uint8_t k_shuffle[8][16] = {
#define EG_TWO(a) a, a, a, a, a, a, a, a, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1
        {EG_TWO(0)}, {EG_TWO(2)}, {EG_TWO(4)}, {EG_TWO(6)}, {EG_TWO(8)}, {EG_TWO(10)}, {EG_TWO(12)}, {EG_TWO(14)},
#undef EG_TWO
    };
    return _mm_load_si128(reinterpret_cast<const __m128i*>(k_shuffle[i]));
}

// ================================================================================================
// Q4_K x Q8_K
// ================================================================================================
float dot_row_q4_K_q8_K(int64_t nb, const block_q4_K* x, const block_q8_K* y) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
        const float d = y[i].d * fp16_to_f32(x[i].d);
        const float dmin = -y[i].d * fp16_to_f32(x[i].dmin);

        // 8 six-bit scales in sm[0..7], 8 mins in sm[8..15]
        uint8_t sm[16];
        unpack_q4_K_scales(x[i].scales, sm);
        const __m256i mins_and_scales = _mm256_cvtepu8_epi16(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(sm)));

        // Min term: sum over sub-blocks of min[j] * (bsums[2j] + bsums[2j+1]).
        const __m256i q8sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].bsums));
        const __m128i q8s = _mm_hadd_epi16(_mm256_extracti128_si256(q8sums, 0), _mm256_extracti128_si256(q8sums, 1));
        const __m128i prod = _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);

        const __m128i sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
        const __m256i scales = _mm256_set_m128i(sc128, sc128);

        const uint8_t* q4 = x[i].qs;
        const int8_t* q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < QK_K / 64; ++j) {
            const __m256i scale_l = _mm256_shuffle_epi8(scales, scale_shuffle_k4(2 * j + 0));
            const __m256i scale_h = _mm256_shuffle_epi8(scales, scale_shuffle_k4(2 * j + 1));

            const __m256i q4bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q4));
            q4 += 32;
            const __m256i q4l = _mm256_and_si256(q4bits, m4);
            const __m256i q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);

            const __m256i q8l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8));
            q8 += 32;
            const __m256i p16l = _mm256_madd_epi16(scale_l, _mm256_maddubs_epi16(q4l, q8l));
            const __m256i q8h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8));
            q8 += 32;
            const __m256i p16h = _mm256_madd_epi16(scale_h, _mm256_maddubs_epi16(q4h, q8h));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16l, p16h));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
    return hsum_float_8(acc) + _mm_cvtss_f32(acc_m);
}

// ================================================================================================
// Q5_K x Q8_K: Q4_K's kernel with the fifth bits moved to bit 4 of each byte (q in 0..31, so
// maddubs pairs stay below 2*31*127). Unlike Q4_K, ggml sums the min term as a scalar: the four
// int32 products are added in integers, then summs = fma(dmin, sum, summs) once per super-block.
// ================================================================================================
float dot_row_q5_K_q8_K(int64_t nb, const block_q5_K* x, const block_q8_K* y) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const __m128i mzero = _mm_setzero_si128();
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.f;
    for (int64_t i = 0; i < nb; ++i) {
        const uint8_t* q5 = x[i].qs;
        const int8_t* q8 = y[i].qs;
        const float d = y[i].d * fp16_to_f32(x[i].d);
        const float dmin = -y[i].d * fp16_to_f32(x[i].dmin);

        uint8_t sm[16];
        unpack_q4_K_scales(x[i].scales, sm);
        const __m256i mins_and_scales = _mm256_cvtepu8_epi16(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(sm)));

        const __m256i q8sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].bsums));
        const __m128i q8s = _mm_hadd_epi16(_mm256_extracti128_si256(q8sums, 0), _mm256_extracti128_si256(q8sums, 1));
        const __m128i prod = _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
        const __m128i hsum = _mm_hadd_epi32(_mm_hadd_epi32(prod, mzero), mzero);
        // One rounding: llama.cpp's builds contract `summs += dmin * sum` into an FMA (checked in
        // libggml-cpu's ggml_vec_dot_q5_K_q8_K), and this file is built with -ffp-contract=off.
        summs = std::fma(dmin, static_cast<float>(_mm_extract_epi32(hsum, 0)), summs);

        const __m128i sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
        const __m256i scales = _mm256_set_m128i(sc128, sc128);
        // The fifth bits: qh shifted right by one per 32 elements, so the wanted bit of every byte
        // sits at bit 0; << 4 and a mask put it at bit 4 (ggml masks and shifts per register
        // instead; the integer sums are the same).
        __m256i hbits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qh));
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < QK_K / 64; ++j) {
            const __m256i scale_0 = _mm256_shuffle_epi8(scales, scale_shuffle_k4(2 * j + 0));
            const __m256i scale_1 = _mm256_shuffle_epi8(scales, scale_shuffle_k4(2 * j + 1));
            const __m256i q5bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q5));
            q5 += 32;
            const __m256i q5_0 = _mm256_or_si256(_mm256_and_si256(q5bits, m4), _mm256_and_si256(_mm256_slli_epi16(hbits, 4), bit4));
            const __m256i q5_1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q5bits, 4), m4), _mm256_and_si256(_mm256_slli_epi16(hbits, 3), bit4));
            hbits = _mm256_srli_epi16(hbits, 2);

            const __m256i q8_0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8));
            q8 += 32;
            const __m256i q8_1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8));
            q8 += 32;
            const __m256i p16_0 = _mm256_madd_epi16(scale_0, _mm256_maddubs_epi16(q5_0, q8_0));
            const __m256i p16_1 = _mm256_madd_epi16(scale_1, _mm256_maddubs_epi16(q5_1, q8_1));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_0, p16_1));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_float_8(acc) + summs;
}

// ================================================================================================
// Q6_K x Q8_K: weights enter maddubs as unsigned 0..63; the -32 offset is 32 * scale * bsum.
// ================================================================================================
float dot_row_q6_K_q8_K(int64_t nb, const block_q6_K* x, const block_q8_K* y) {
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i m15 = _mm256_set1_epi8(15);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
        const float d = y[i].d * fp16_to_f32(x[i].d);
        const uint8_t* q4 = x[i].ql;
        const uint8_t* qh = x[i].qh;
        const int8_t* q8 = y[i].qs;

        const __m256i q8sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].bsums));
        const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].scales));
        const __m256i scales_16 = _mm256_cvtepi8_epi16(scales);
        const __m256i q8sclsub = _mm256_slli_epi32(_mm256_madd_epi16(q8sums, scales_16), 5);

        __m256i sumi = _mm256_setzero_si256();
        int is = 0;
        for (int j = 0; j < QK_K / 128; ++j) {
            const __m256i q4bits1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q4));
            q4 += 32;
            const __m256i q4bits2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q4));
            q4 += 32;
            const __m256i q4bitsH = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh));
            qh += 32;

            // Top two bits of the four 32-element quarters, moved to bits 4..5.
            const __m256i q4h_0 = _mm256_slli_epi16(_mm256_and_si256(q4bitsH, m3), 4);
            const __m256i q4h_1 = _mm256_slli_epi16(_mm256_and_si256(q4bitsH, _mm256_set1_epi8(12)), 2);
            const __m256i q4h_2 = _mm256_and_si256(q4bitsH, _mm256_set1_epi8(48));
            const __m256i q4h_3 = _mm256_srli_epi16(_mm256_and_si256(q4bitsH, _mm256_set1_epi8(-64)), 2);

            const __m256i q4_0 = _mm256_or_si256(_mm256_and_si256(q4bits1, m15), q4h_0);
            const __m256i q4_1 = _mm256_or_si256(_mm256_and_si256(q4bits2, m15), q4h_1);
            const __m256i q4_2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m15), q4h_2);
            const __m256i q4_3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m15), q4h_3);

            const __m256i q8_0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 0));
            const __m256i q8_1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 32));
            const __m256i q8_2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 64));
            const __m256i q8_3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 96));
            q8 += 128;

            const __m256i sc0 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, scale_shuffle_q6(is + 0)));
            const __m256i sc1 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, scale_shuffle_q6(is + 1)));
            const __m256i sc2 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, scale_shuffle_q6(is + 2)));
            const __m256i sc3 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, scale_shuffle_q6(is + 3)));
            is += 4;

            const __m256i p0 = _mm256_madd_epi16(sc0, _mm256_maddubs_epi16(q4_0, q8_0));
            const __m256i p1 = _mm256_madd_epi16(sc1, _mm256_maddubs_epi16(q4_1, q8_1));
            const __m256i p2 = _mm256_madd_epi16(sc2, _mm256_maddubs_epi16(q4_2, q8_2));
            const __m256i p3 = _mm256_madd_epi16(sc3, _mm256_maddubs_epi16(q4_3, q8_3));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p2, p3));
        }
        sumi = _mm256_sub_epi32(sumi, q8sclsub);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_float_8(acc);
}

template <typename Block, float (*DotRow)(int64_t, const Block*, const block_q8_K*)>
void vec_dot_k_rows(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* act) {
    const auto* y = static_cast<const block_q8_K*>(act);
    for (int64_t r = 0; r < nr; ++r) {
        const auto* x = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + r * stride);
        out[r] = DotRow(n / QK_K, x, y);
    }
}

// ================================================================================================
// Q8_K quantize, bit-identical to the scalar reference: the same float multiply and the same
// magic-number rounding (so even NaN/inf inputs give the same bytes), truncation to int8 as a
// C cast does.
// ================================================================================================
void quantize_row_q8_K(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q8_K*>(vy);
    const __m256 sign_mask = _mm256_set1_ps(-0.0f);
    const __m256 magic = _mm256_set1_ps(12582912.f);
    const __m256i mant = _mm256_set1_epi32(0x007fffff);
    const __m256i bias = _mm256_set1_epi32(0x00400000);
    const __m256i i127 = _mm256_set1_epi32(127);
    // Low byte of each int32, per 128-bit lane, into that lane's first 4 bytes.
    const __m256i low_bytes = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                               0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i gather = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t i = 0; i < n / QK_K; ++i) {
        // max_ps(v, acc) returns acc when v is NaN: NaNs are skipped, as `ax > amax` skips them.
        __m256 vmax = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8) {
            vmax = _mm256_max_ps(_mm256_andnot_ps(sign_mask, _mm256_loadu_ps(x + j)), vmax);
        }
        __m128 m = _mm_max_ps(_mm256_extractf128_ps(vmax, 1), _mm256_castps256_ps128(vmax));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float amax = _mm_cvtss_f32(m);
        if (!amax) {
            std::memset(&y[i], 0, sizeof(block_q8_K));
            x += QK_K;
            continue;
        }
        float max = 0;  // the first element of largest magnitude, with its sign
        for (int j = 0; j < QK_K; ++j) {
            if (std::fabs(x[j]) == amax) { max = x[j]; break; }
        }
        const float iscale = -127.f / max;
        const __m256 vs = _mm256_set1_ps(iscale);
        for (int j = 0; j < QK_K; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; ++k) {
                __m256 p = _mm256_mul_ps(vs, _mm256_loadu_ps(x + j + 8 * k));
                __asm__("" : "+x"(p));  // keep mul and add apart: a fused multiply-add rounds once
                const __m256 v = _mm256_add_ps(p, magic);
                const __m256i r = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(v), mant), bias);
                q[k] = _mm256_shuffle_epi8(_mm256_min_epi32(r, i127), low_bytes);  // 4 bytes per lane
            }
            // q[k] holds elements 8k..8k+3 in lane 0 dword 0 and 8k+4..8k+7 in lane 1 dword 0.
            const __m256i ab = _mm256_unpacklo_epi32(q[0], q[1]);  // lane0: e0-3 e8-11, lane1: e4-7 e12-15
            const __m256i cd = _mm256_unpacklo_epi32(q[2], q[3]);
            const __m256i abcd = _mm256_unpacklo_epi64(ab, cd);    // lane0: 0-3 8-11 16-19 24-27
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs + j),
                                _mm256_permutevar8x32_epi32(abcd, gather));
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            const __m256i v16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y[i].qs + 16 * j)));
            __m128i s = _mm_add_epi16(_mm256_extracti128_si256(v16, 1), _mm256_castsi256_si128(v16));
            s = _mm_hadd_epi16(s, s);
            s = _mm_hadd_epi16(s, s);
            s = _mm_hadd_epi16(s, s);
            y[i].bsums[j] = static_cast<int16_t>(_mm_extract_epi16(s, 0));
        }
        y[i].d = 1 / iscale;
        x += QK_K;
    }
}

}  // namespace

void fill_table_avx2_k(KernelTable& t) {
    auto i = [](QType q) { return static_cast<int>(q); };
    t.vec_dot[i(QType::Q4_K)] = vec_dot_k_rows<block_q4_K, dot_row_q4_K_q8_K>;
    t.vec_dot[i(QType::Q5_K)] = vec_dot_k_rows<block_q5_K, dot_row_q5_K_q8_K>;
    t.vec_dot[i(QType::Q6_K)] = vec_dot_k_rows<block_q6_K, dot_row_q6_K_q8_K>;
    t.quantize_row[i(QType::Q8_K)] = quantize_row_q8_K;
}

}  // namespace eg

#include "avx2_target_end.h"

#else  // not x86-64: nothing to add to the table

namespace eg {
void fill_table_avx2_k(KernelTable&) {}
}  // namespace eg

#endif
