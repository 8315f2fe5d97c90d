// quant_neon.cpp — aarch64 baseline NEON kernels (armv8-a, no dotprod): every aarch64 CPU has them.
//
// Int8 block dots widen with vmull_s8 and pair-add into int32 with vpadalq_s16, so no int16 sum
// can overflow even for -128 * -128 (products are widened before any addition). Float rows use
// four fused multiply-add accumulators and a scalar tail. quantize_row_q8_0 / q8_1 are
// bit-identical to quant_ref.cpp: same float ops, and vcvtaq_s32_f32 rounds half away from zero
// exactly like roundf. Entries not filled here fall back to the scalar reference.
#include "kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include <cmath>
#include <cstring>

namespace eg {
namespace {

inline int32x4_t dot_i8x16(int32x4_t acc, int8x16_t a, int8x16_t b) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
}

#include "quant_neon_kernels.h"
#include "quant_k_neon_kernels.h"

// ================================================================================================
// Float weights x f32 activations
// ================================================================================================
// Each loader returns 4 weights as f32, starting at element i.
inline float32x4_t load4_f32(const float* p) { return vld1q_f32(p); }
inline float32x4_t load4_f16(const fp16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
inline float32x4_t load4_bf16(const bf16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }

inline float scalar_f32(float v) { return v; }
inline float scalar_f16(fp16_t v) { return h2f(v); }
inline float scalar_bf16(bf16_t v) { return bf16_to_f32(v); }

template <typename T, float32x4_t (*Load4)(const T*), float (*ToF32)(T)>
void vec_dot_float_rows(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    const auto* x = static_cast<const float*>(a);
    for (int64_t r = 0; r < nr; ++r) {
        const auto* row = reinterpret_cast<const T*>(static_cast<const uint8_t*>(w) + r * stride);
        float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0, acc2 = acc0, acc3 = acc0;
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            acc0 = vfmaq_f32(acc0, Load4(row + i), vld1q_f32(x + i));
            acc1 = vfmaq_f32(acc1, Load4(row + i + 4), vld1q_f32(x + i + 4));
            acc2 = vfmaq_f32(acc2, Load4(row + i + 8), vld1q_f32(x + i + 8));
            acc3 = vfmaq_f32(acc3, Load4(row + i + 12), vld1q_f32(x + i + 12));
        }
        for (; i + 4 <= n; i += 4) acc0 = vfmaq_f32(acc0, Load4(row + i), vld1q_f32(x + i));
        float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
        for (; i < n; ++i) sum += ToF32(row[i]) * x[i];
        out[r] = sum;
    }
}

// ================================================================================================
// Activation quantizers (bit-identical to the scalar reference)
// ================================================================================================
// Quantizes one block of 32 floats to int8 with q = round-half-away(x * id); returns d and sum(q).
inline float quantize_block_q8(const float* x, int8_t* qs, int32_t* qsum) {
    float32x4_t v[8];
    float32x4_t amax4 = vdupq_n_f32(0.0f);
    for (int j = 0; j < 8; ++j) {
        v[j] = vld1q_f32(x + 4 * j);
        amax4 = vmaxq_f32(amax4, vabsq_f32(v[j]));
    }
    const float amax = vmaxvq_f32(amax4);
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    int32x4_t sum = vdupq_n_s32(0);
    for (int j = 0; j < 8; j += 2) {
        const int32x4_t q0 = vcvtaq_s32_f32(vmulq_n_f32(v[j], id));
        const int32x4_t q1 = vcvtaq_s32_f32(vmulq_n_f32(v[j + 1], id));
        sum = vaddq_s32(sum, vaddq_s32(q0, q1));
        const int16x8_t q16 = vcombine_s16(vmovn_s32(q0), vmovn_s32(q1));
        vst1_s8(qs + 4 * j, vmovn_s16(q16));
    }
    *qsum = vaddvq_s32(sum);
    return d;
}

void quantize_row_q8_0(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q8_0*>(vy);
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        int32_t unused;
        y[i].d = f32_to_fp16(quantize_block_q8(x + i * QK8_0, y[i].qs, &unused));
    }
}

void quantize_row_q8_1(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q8_1*>(vy);
    for (int64_t i = 0; i < n / QK8_1; ++i) {
        int32_t sum;
        const float d = quantize_block_q8(x + i * QK8_1, y[i].qs, &sum);
        y[i].d = f32_to_fp16(d);
        y[i].s = f32_to_fp16(sum * d);
    }
}

// Q8_K (activations of the k-quant products), bit-identical to quant_k_ref.cpp's
// quantize_row_q8_K: the value of largest magnitude (the first one on ties) sets the scale
// -127/max; FCVTNS rounds half to even as ggml's nearest_int does for these magnitudes.
void quantize_row_q8_K(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q8_K*>(vy);
    for (int64_t i = 0; i < n / QK_K; ++i, x += QK_K) {
        float32x4_t amax4 = vdupq_n_f32(0.0f);
        for (int j = 0; j < QK_K; j += 4) amax4 = vmaxq_f32(amax4, vabsq_f32(vld1q_f32(x + j)));
        const float amax = vmaxvq_f32(amax4);
        if (!(amax > 0.0f)) {  // all zero (or NaN, which the reference's strict > also never picks)
            std::memset(&y[i], 0, sizeof(block_q8_K));
            continue;
        }
        int first = 0;
        while (std::fabs(x[first]) != amax) ++first;
        const float iscale = -127.f / x[first];
        const float32x4_t vs = vdupq_n_f32(iscale);
        for (int j = 0; j < QK_K; j += 16) {
            int32x4_t q[4];
            for (int k = 0; k < 4; ++k)
                q[k] = vminq_s32(vcvtnq_s32_f32(vmulq_f32(vs, vld1q_f32(x + j + 4 * k))), vdupq_n_s32(127));
            const int16x8_t lo = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
            const int16x8_t hi = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
            vst1q_s8(y[i].qs + j, vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi)));
            y[i].bsums[j / 16] = static_cast<int16_t>(vaddvq_s32(vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3]))));
        }
        y[i].d = 1 / iscale;
    }
}

// ================================================================================================
// y += s * row (attention over cached V rows), fused as the reference.
// ================================================================================================
void vec_mad_f32(int64_t n, float* y, const void* row, float s) {
    const auto* x = static_cast<const float*>(row);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), s));
    for (; i < n; ++i) y[i] = std::fma(x[i], s, y[i]);
}

void vec_mad_f16(int64_t n, float* y, const void* row, float s) {
    const auto* x = static_cast<const fp16_t*>(row);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), load4_f16(x + i), s));
    for (; i < n; ++i) y[i] = std::fma(s, h2f(x[i]), y[i]);
}

void vec_mad_q8_0(int64_t n, float* y, const void* row, float s) {
    const auto* x = static_cast<const block_q8_0*>(row);
    for (int64_t b = 0; b < n / QK8_0; ++b) {
        const float ds = s * fp16_to_f32(x[b].d);
        float* yb = y + b * QK8_0;
        for (int j = 0; j < QK8_0; j += 8) {
            const int16x8_t q = vmovl_s8(vld1_s8(x[b].qs + j));
            const float32x4_t q0 = vcvtq_f32_s32(vmovl_s16(vget_low_s16(q)));
            const float32x4_t q1 = vcvtq_f32_s32(vmovl_high_s16(q));
            vst1q_f32(yb + j, vfmaq_n_f32(vld1q_f32(yb + j), q0, ds));
            vst1q_f32(yb + j + 4, vfmaq_n_f32(vld1q_f32(yb + j + 4), q1, ds));
        }
    }
}

}  // namespace

void fill_table_neon(KernelTable& t) {
    auto i = [](QType q) { return static_cast<int>(q); };
    fill_int8_block_kernels(t);
    fill_k_kernels(t);
    t.quantize_row[i(QType::Q8_K)] = quantize_row_q8_K;  // before the activation layer copies it
    t.vec_mad[i(QType::F32)] = vec_mad_f32;
    t.vec_mad[i(QType::F16)] = vec_mad_f16;
    t.vec_mad[i(QType::Q8_0)] = vec_mad_q8_0;
    fill_table_neon_act(t);
    t.vec_dot[i(QType::F32)] = vec_dot_float_rows<float, load4_f32, scalar_f32>;
    t.vec_dot[i(QType::F16)] = vec_dot_float_rows<fp16_t, load4_f16, scalar_f16>;
    t.vec_dot[i(QType::BF16)] = vec_dot_float_rows<bf16_t, load4_bf16, scalar_bf16>;
    t.quantize_row[i(QType::Q8_0)] = quantize_row_q8_0;
    t.quantize_row[i(QType::Q8_1)] = quantize_row_q8_1;
}

}  // namespace eg

#else  // not aarch64: nothing to add

namespace eg {
void fill_table_neon(KernelTable&) {}
}  // namespace eg

#endif
