// quant_k_ref.cpp — scalar reference for the k-quants: Q4_K, Q5_K, Q6_K weights, Q8_K activations.
//
// Ported operation for operation from ggml (ggml-quants.c: quantize_row_q{4,5,6,8}_K_ref,
// make_qkx2_quants, make_qx_quants), so quantized bytes equal llama.cpp's when it quantizes without
// an importance matrix; the dot products follow ggml's x86 kernels (see below), not its generic ones. Same float
// ops in the same order: build with -ffp-contract=off, since a fused multiply-add changes the
// rounding of e.g. `scale*l + min - x`.
//
// Q8_K follows current ggml: iscale = -127/max (older ggml used -128; ggml changed it for the
// IQ2 AVX paths), so activations lie in [-127, 127] and every int16 product sum below is exact.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels.h"

namespace eg {
namespace {

#include "quant_k_search.h"  // the scale searches: inside this anonymous namespace

// ================================================================================================
// Q4_K: 8 sub-blocks of 32, x = d*sc*q - dmin*m, q in [0, 15]
// ================================================================================================
void quantize_row_q4_K(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q4_K*>(vy);
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];
    uint8_t Laux[32];
    float weights[32];
    float mins[QK_K / 32];
    float scales[QK_K / 32];
    for (int64_t i = 0; i < nb; ++i) {
        float max_scale = 0;  // as the min is subtracted, scales are never negative
        float max_min = 0;
        for (int j = 0; j < QK_K / 32; ++j) {
            float sum_x2 = 0;
            for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
            const float av_x = std::sqrt(sum_x2 / 32);
            for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
            scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                         -1.f, 0.1f, 20, false);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }

        const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        std::memset(y[i].scales, 0, sizeof(y[i].scales));
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
            uint8_t lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
            ls = std::min<uint8_t>(63, ls);
            lm = std::min<uint8_t>(63, lm);
            if (j < 4) {
                y[i].scales[j] = ls;
                y[i].scales[j + 4] = lm;
            } else {
                y[i].scales[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
                y[i].scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
                y[i].scales[j - 0] |= static_cast<uint8_t>((lm >> 4) << 6);
            }
        }
        y[i].d = f32_to_fp16(max_scale / 63.f);
        y[i].dmin = f32_to_fp16(max_min / 63.f);

        // Requantize against the rounded 6-bit scales actually stored.
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, m;
            get_scale_min_k4(j, y[i].scales, &sc, &m);
            const float d = fp16_to_f32(y[i].d) * sc;
            if (!d) continue;
            const float dm = fp16_to_f32(y[i].dmin) * m;
            for (int ii = 0; ii < 32; ++ii) {
                const int l = nearest_int((x[32 * j + ii] + dm) / d);
                L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(15, l)));
            }
        }

        // Each 32-byte group holds two sub-blocks: low nibbles the first, high nibbles the second.
        uint8_t* q = y[i].qs;
        for (int j = 0; j < QK_K; j += 64) {
            for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
            q += 32;
        }
        x += QK_K;
    }
}

void dequantize_row_q4_K(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const block_q4_K*>(vx);
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const uint8_t* q = x[i].qs;
        const float d = fp16_to_f32(x[i].d);
        const float min = fp16_to_f32(x[i].dmin);
        int is = 0;
        uint8_t sc, m;
        for (int j = 0; j < QK_K; j += 64) {
            get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
            is += 2;
        }
    }
}

// ================================================================================================
// Q5_K: Q4_K with 5-bit q in [0, 31]; the fifth bits in qh (make_qkx2_quants with rmin -0.5,
// 15 steps, where Q4_K uses -1 and 20)
// ================================================================================================
void quantize_row_q5_K(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q5_K*>(vy);
    uint8_t L[QK_K];
    uint8_t Laux[32];
    float weights[32];
    float mins[QK_K / 32];
    float scales[QK_K / 32];
    for (int64_t i = 0; i < n / QK_K; ++i) {
        float max_scale = 0;
        float max_min = 0;
        for (int j = 0; j < QK_K / 32; ++j) {
            float sum_x2 = 0;
            for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
            const float av_x = std::sqrt(sum_x2 / 32);
            for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
            scales[j] = make_qkx2_quants(32, 31, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                         -0.5f, 0.1f, 15, false);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        std::memset(y[i].scales, 0, sizeof(y[i].scales));
        for (int j = 0; j < QK_K / 32; ++j) {
            const uint8_t ls = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
            const uint8_t lm = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
            if (j < 4) {
                y[i].scales[j] = ls;
                y[i].scales[j + 4] = lm;
            } else {
                y[i].scales[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
                y[i].scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
                y[i].scales[j - 0] |= static_cast<uint8_t>((lm >> 4) << 6);
            }
        }
        y[i].d = f32_to_fp16(max_scale / 63.f);
        y[i].dmin = f32_to_fp16(max_min / 63.f);

        for (int j = 0; j < QK_K / 32; ++j) {  // requantize against the stored 6-bit scales
            uint8_t sc, m;
            get_scale_min_k4(j, y[i].scales, &sc, &m);
            const float d = fp16_to_f32(y[i].d) * sc;
            if (!d) continue;
            const float dm = fp16_to_f32(y[i].dmin) * m;
            for (int ii = 0; ii < 32; ++ii) {
                const int l = nearest_int((x[32 * j + ii] + dm) / d);
                L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(31, l)));
            }
        }

        // Per 64 elements: low nibbles of 0..31 and high nibbles of 32..63 share qs bytes; their
        // fifth bits go to bits 2k and 2k+1 of qh (k = which 64).
        uint8_t* qh = y[i].qh;
        uint8_t* ql = y[i].qs;
        std::memset(qh, 0, QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int k = 0; k < QK_K; k += 64) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[k + j];
                if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                int l2 = L[k + j + 32];
                if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
            }
            m1 = static_cast<uint8_t>(m1 << 2);
            m2 = static_cast<uint8_t>(m2 << 2);
            ql += 32;
        }
        x += QK_K;
    }
}

void dequantize_row_q5_K(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const block_q5_K*>(vx);
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const uint8_t* ql = x[i].qs;
        const uint8_t* qh = x[i].qh;
        const float d = fp16_to_f32(x[i].d);
        const float min = fp16_to_f32(x[i].dmin);
        int is = 0;
        uint8_t sc, m;
        unsigned u1 = 1, u2 = 2;
        for (int j = 0; j < QK_K; j += 64) {
            get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            is += 2;
            u1 <<= 2;
            u2 <<= 2;
        }
    }
}

// ================================================================================================
// Q6_K: 16 sub-blocks of 16, x = d * sc * (q - 32), q in [0, 63], sc int8
// ================================================================================================
void quantize_row_q6_K(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q6_K*>(vy);
    const int64_t nb = n / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; ++i) {
        float max_scale = 0;
        float max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            const float scale = make_qx_quants_rmse1(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            const float abs_scale = std::fabs(scale);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if (max_abs_scale < kGroupMaxEps) {
            std::memset(&y[i], 0, sizeof(block_q6_K));
            y[i].d = f32_to_fp16(0.f);
            x += QK_K;
            continue;
        }

        const float iscale = -128.f / max_scale;
        y[i].d = f32_to_fp16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            y[i].scales[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = fp16_to_f32(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int(x[16 * j + ii] / d);
                l = std::max(-32, std::min(31, l));
                L[16 * j + ii] = static_cast<int8_t>(l + 32);
            }
        }

        // Per 128 elements: ql holds the low nibbles (elements l and l+64 share a byte, likewise
        // l+32 and l+96); qh holds the top 2 bits of l, l+32, l+64, l+96 in one byte.
        uint8_t* ql = y[i].ql;
        uint8_t* qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l + 0] & 0xF;
                const uint8_t q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF;
                const uint8_t q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = static_cast<uint8_t>(q1 | (q3 << 4));
                ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
                qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                             ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
        x += QK_K;
    }
}

// The 6-bit value of element n + l (n = 0, 32, 64, 96 within a 128-element half) minus 32.
inline int q6_value(const uint8_t* ql, const uint8_t* qh, int l, int quarter) {
    const int low = quarter & 1 ? ql[l + 32] : ql[l];
    const int nib = quarter < 2 ? (low & 0xF) : (low >> 4);
    return (nib | (((qh[l] >> (2 * quarter)) & 3) << 4)) - 32;
}

void dequantize_row_q6_K(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const block_q6_K*>(vx);
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const float d = fp16_to_f32(x[i].d);
        const uint8_t* ql = x[i].ql;
        const uint8_t* qh = x[i].qh;
        const int8_t* sc = x[i].scales;
        for (int half = 0; half < QK_K; half += 128) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                for (int quarter = 0; quarter < 4; ++quarter) {
                    y[l + 32 * quarter] = d * sc[is + 2 * quarter] * q6_value(ql, qh, l, quarter);
                }
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

// ================================================================================================
// Q8_K: activations, x = d * q with float d, q in [-127, 127]; bsums = sums of 16 q's
// ================================================================================================
void quantize_row_q8_K(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q8_K*>(vy);
    for (int64_t i = 0; i < n / QK_K; ++i) {
        float max = 0;
        float amax = 0;
        for (int j = 0; j < QK_K; ++j) {
            const float ax = std::fabs(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (!amax) {  // ggml leaves bsums unset here; zero is their true value
            std::memset(&y[i], 0, sizeof(block_q8_K));
            x += QK_K;
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; ++j) {
            y[i].qs[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[j])));
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii) sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = static_cast<int16_t>(sum);
        }
        y[i].d = 1 / iscale;
        x += QK_K;
    }
}

void dequantize_row_q8_K(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const block_q8_K*>(vx);
    for (int64_t i = 0; i < n / QK_K; ++i) {
        for (int j = 0; j < QK_K; ++j) *y++ = x[i].d * x[i].qs[j];
    }
}

// ================================================================================================
// Dot products with Q8_K activations, in the arithmetic of ggml's x86 kernels (and so of
// quant_k_avx2.cpp, bit for bit): integer sums in eight int32 lanes, lane k holding elements
// 4k..4k+3 of every 32-element chunk (what maddubs + madd produce); one fused multiply-add per lane
// and super-block; the lanes reduced as hsum_float_8 does. The integer parts are exact in any
// order, so only the lane assignment and the float steps matter. Following ggml's generic code
// instead (lanes = element index mod 8) gives other float roundings, which Gemma 3's large
// activations amplify into whole-logit differences; here the scalar path is a true reference.
// ================================================================================================

// ((x4+x0)+(x6+x2)) + ((x5+x1)+(x7+x3)): ggml's hsum_float_8.
inline float hsum_float_8_ref(const float x[8]) {
    const float r0 = x[4] + x[0], r1 = x[5] + x[1], r2 = x[6] + x[2], r3 = x[7] + x[3];
    return (r0 + r2) + (r1 + r3);
}

// sumi[k] += scale * sum over e in 4k..4k+3 of q[e] * q8[e], for one 32-element chunk.
inline void madd_chunk(int32_t sumi[8], const uint8_t q[32], const int8_t* q8, int32_t scale_lo, int32_t scale_hi) {
    for (int k = 0; k < 8; ++k) {
        int32_t s = 0;
        for (int e = 4 * k; e < 4 * k + 4; ++e) s += static_cast<int32_t>(q[e]) * q8[e];
        sumi[k] += (k < 4 ? scale_lo : scale_hi) * s;
    }
}

// Q4_K / Q5_K's min term: the per-pair sums of bsums times the mins, as _mm_madd_epi16 gives them.
inline void min_products(const block_q8_K& y, const uint8_t* mins, int32_t prod[4]) {
    int32_t q8s[8];
    for (int m = 0; m < 8; ++m) q8s[m] = static_cast<int16_t>(y.bsums[2 * m] + y.bsums[2 * m + 1]);
    for (int k = 0; k < 4; ++k) prod[k] = mins[2 * k] * q8s[2 * k] + mins[2 * k + 1] * q8s[2 * k + 1];
}

template <bool kFifthBit, typename Block>
void q45_K_block(const Block& x, const block_q8_K& y, int32_t sumi[8]) {
    uint8_t sm[16];
    unpack_q4_K_scales(x.scales, sm);
    const uint8_t* q4 = x.qs;
    for (int j = 0; j < QK_K / 64; ++j) {
        uint8_t lo[32], hi[32];
        for (int l = 0; l < 32; ++l) {
            lo[l] = q4[l] & 0xF;
            hi[l] = q4[l] >> 4;
            if constexpr (kFifthBit) {
                lo[l] |= ((x.qh[l] >> (2 * j)) & 1) << 4;
                hi[l] |= ((x.qh[l] >> (2 * j + 1)) & 1) << 4;
            }
        }
        madd_chunk(sumi, lo, y.qs + 64 * j, sm[2 * j], sm[2 * j]);
        madd_chunk(sumi, hi, y.qs + 64 * j + 32, sm[2 * j + 1], sm[2 * j + 1]);
        q4 += 32;
    }
}

float dot_row_q4_K_q8_K(int64_t nb, const block_q4_K* x, const block_q8_K* y) {
    float acc[8] = {}, acc_m[4] = {};
    for (int64_t i = 0; i < nb; ++i) {
        const float d = y[i].d * fp16_to_f32(x[i].d);
        const float dmin = -y[i].d * fp16_to_f32(x[i].dmin);
        uint8_t sm[16];
        unpack_q4_K_scales(x[i].scales, sm);
        int32_t prod[4];
        min_products(y[i], sm + 8, prod);
        for (int k = 0; k < 4; ++k) acc_m[k] = std::fma(dmin, static_cast<float>(prod[k]), acc_m[k]);
        int32_t sumi[8] = {};
        q45_K_block<false>(x[i], y[i], sumi);
        for (int k = 0; k < 8; ++k) acc[k] = std::fma(d, static_cast<float>(sumi[k]), acc[k]);
    }
    const float m = (acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]);
    return hsum_float_8_ref(acc) + m;
}

float dot_row_q5_K_q8_K(int64_t nb, const block_q5_K* x, const block_q8_K* y) {
    float acc[8] = {}, summs = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = y[i].d * fp16_to_f32(x[i].d);
        const float dmin = -y[i].d * fp16_to_f32(x[i].dmin);
        uint8_t sm[16];
        unpack_q4_K_scales(x[i].scales, sm);
        int32_t prod[4];
        min_products(y[i], sm + 8, prod);
        // llama.cpp's build contracts `summs += dmin * sum` into one fused multiply-add
        summs = std::fma(dmin, static_cast<float>((prod[0] + prod[1]) + (prod[2] + prod[3])), summs);
        int32_t sumi[8] = {};
        q45_K_block<true>(x[i], y[i], sumi);
        for (int k = 0; k < 8; ++k) acc[k] = std::fma(d, static_cast<float>(sumi[k]), acc[k]);
    }
    return hsum_float_8_ref(acc) + summs;
}

float dot_row_q6_K_q8_K(int64_t nb, const block_q6_K* x, const block_q8_K* y) {
    float acc[8] = {};
    for (int64_t i = 0; i < nb; ++i) {
        const float d = y[i].d * fp16_to_f32(x[i].d);
        const int8_t* sc = x[i].scales;
        int32_t sumi[8] = {};
        const uint8_t* ql = x[i].ql;
        const uint8_t* qh = x[i].qh;
        for (int j = 0; j < QK_K / 128; ++j) {
            uint8_t q[4][32];  // the four 32-element quarters of this 128, unsigned 0..63
            for (int l = 0; l < 32; ++l) {
                q[0][l] = (ql[l] & 15) | ((qh[l] & 3) << 4);
                q[1][l] = (ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4);
                q[2][l] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                q[3][l] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
            }
            for (int s = 0; s < 4; ++s)
                madd_chunk(sumi, q[s], y[i].qs + 128 * j + 32 * s, sc[8 * j + 2 * s], sc[8 * j + 2 * s + 1]);
            ql += 64;
            qh += 32;
        }
        // the -32 offset, per lane as ggml forms it: 32 * (bsum[2k] * sc[2k] + bsum[2k+1] * sc[2k+1])
        for (int k = 0; k < 8; ++k) sumi[k] -= 32 * (y[i].bsums[2 * k] * sc[2 * k] + y[i].bsums[2 * k + 1] * sc[2 * k + 1]);
        for (int k = 0; k < 8; ++k) acc[k] = std::fma(d, static_cast<float>(sumi[k]), acc[k]);
    }
    return hsum_float_8_ref(acc);
}

template <typename Block, float (*DotRow)(int64_t, const Block*, const block_q8_K*)>
void vec_dot_k_rows(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* act) {
    const auto* y = static_cast<const block_q8_K*>(act);
    for (int64_t r = 0; r < nr; ++r) {
        const auto* x = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + r * stride);
        out[r] = DotRow(n / QK_K, x, y);
    }
}

}  // namespace

void fill_table_scalar_k(KernelTable& t) {
    auto i = [](QType q) { return static_cast<int>(q); };
    t.quantize_row[i(QType::Q4_K)] = quantize_row_q4_K;
    t.quantize_row[i(QType::Q5_K)] = quantize_row_q5_K;
    t.quantize_row[i(QType::Q6_K)] = quantize_row_q6_K;
    t.quantize_row[i(QType::Q8_K)] = quantize_row_q8_K;
    t.dequantize_row[i(QType::Q4_K)] = dequantize_row_q4_K;
    t.dequantize_row[i(QType::Q5_K)] = dequantize_row_q5_K;
    t.dequantize_row[i(QType::Q6_K)] = dequantize_row_q6_K;
    t.dequantize_row[i(QType::Q8_K)] = dequantize_row_q8_K;
    t.vec_dot[i(QType::Q4_K)] = vec_dot_k_rows<block_q4_K, dot_row_q4_K_q8_K>;
    t.vec_dot[i(QType::Q5_K)] = vec_dot_k_rows<block_q5_K, dot_row_q5_K_q8_K>;
    t.vec_dot[i(QType::Q6_K)] = vec_dot_k_rows<block_q6_K, dot_row_q6_K_q8_K>;
}

}  // namespace eg
