// activations_neon.cpp — aarch64 versions of activations_ref.cpp's float kernels, bit-identical
// to it. Installed by fill_table_neon (so the dotprod table has them too); entries not set here
// keep the scalar reference.
// Every kernel here is bit-identical to the reference (checked by native/tests/kernel_parity.cpp
// under qemu): the reference is written in ggml's AVX2 lane order, which NEON reproduces with
// pairs of 4-lane registers and fused multiply-adds where the reference fuses.
#include "kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include <cmath>

namespace eg {
namespace {

// GeGLU through ggml's f16 GELU table: the conversions and the multiply run four lanes at a
// time (FCVTN rounds to nearest even, as the scalar f32_to_fp16 does); NEON has no gather, so
// the four table entries are read one by one. Cut-offs as in the reference: 0 at x <= -10,
// x * up at x >= 10, NaN through the table.
void gelu_mul_neon(int64_t n, float* gate, const float* up) {
    const fp16_t* table = gelu_f16_table();
    const float32x4_t hi = vdupq_n_f32(10.0f), lo = vdupq_n_f32(-10.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t x = vld1q_f32(gate + i);
        const float32x4_t u = vld1q_f32(up + i);
        const uint16x4_t h = vreinterpret_u16_f16(vcvt_f16_f32(x));
        uint16x4_t g = vdup_n_u16(0);
        g = vld1_lane_u16(table + vget_lane_u16(h, 0), g, 0);
        g = vld1_lane_u16(table + vget_lane_u16(h, 1), g, 1);
        g = vld1_lane_u16(table + vget_lane_u16(h, 2), g, 2);
        g = vld1_lane_u16(table + vget_lane_u16(h, 3), g, 3);
        float32x4_t y = vmulq_f32(vcvt_f32_f16(vreinterpret_f16_u16(g)), u);
        y = vbslq_f32(vcgeq_f32(x, hi), vmulq_f32(x, u), y);
        y = vbslq_f32(vcleq_f32(x, lo), vdupq_n_f32(0.0f), y);
        vst1q_f32(gate + i, y);
    }
    for (; i < n; ++i) {
        const float x = gate[i];
        gate[i] = x <= -10.0f ? 0.0f : x >= 10.0f ? x * up[i] : fp16_to_f32(table[f32_to_fp16(x)]) * up[i];
    }
}


// ---- the rest of activations_ref.cpp, bit-identical to it ----------------------------------------
// The reference follows ggml's AVX2 code, which works on 8 lanes; F8 is two NEON registers
// standing in for one __m256 so that every lane sees the same operations in the same order.
struct F8 {
    float32x4_t lo, hi;
};
inline F8 f8_load(const float* p) { return {vld1q_f32(p), vld1q_f32(p + 4)}; }
inline void f8_store(float* p, F8 v) {
    vst1q_f32(p, v.lo);
    vst1q_f32(p + 4, v.hi);
}
inline F8 f8_zero() { return {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}; }
inline F8 f8_add(F8 a, F8 b) { return {vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)}; }
inline F8 f8_fma(F8 acc, F8 a, F8 b) { return {vfmaq_f32(acc.lo, a.lo, b.lo), vfmaq_f32(acc.hi, a.hi, b.hi)}; }
inline F8 f8_load_f16(const void* p) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(static_cast<const uint16_t*>(p)));
    return {vcvt_f32_f16(vget_low_f16(h)), vcvt_high_f32_f16(h)};
}
// With t_k = l_k + l_{k+4}, ggml's two AVX2 horizontal sums of 8 lanes differ in pairing:
//   softmax's (hsum8):            (t0 + t2) + (t1 + t3)
//   the f16 dots' (two HADDPS):   (t0 + t1) + (t2 + t3)
inline float f8_hsum_softmax(F8 v) {
    const float32x4_t t = vaddq_f32(v.lo, v.hi);
    const float32x2_t p = vadd_f32(vget_low_f32(t), vget_high_f32(t));  // (t0+t2, t1+t3)
    return vget_lane_f32(p, 0) + vget_lane_f32(p, 1);
}
inline float f8_hsum_hadd(F8 v) {
    const float32x4_t t = vaddq_f32(v.lo, v.hi);
    const float32x4_t p = vpaddq_f32(t, t);  // (t0+t1, t2+t3, ...)
    return vgetq_lane_f32(p, 0) + vgetq_lane_f32(p, 1);
}
// Four 8-lane accumulators reduced in ggml's order (reduce_f16_acc in activations_ref.cpp).
inline float reduce4(const F8* acc) { return f8_hsum_hadd(f8_add(f8_add(acc[0], acc[2]), f8_add(acc[1], acc[3]))); }

// ggml's vectorised expf, the same operations as expf_ggml in activations_ref.cpp, four lanes.
inline float32x4_t v_expf(float32x4_t x) {
    const float32x4_t r = vdupq_n_f32(0x1.8p23f);
    const float32x4_t z = vfmaq_f32(r, x, vdupq_n_f32(0x1.715476p+0f));
    const float32x4_t n = vsubq_f32(z, r);
    const float32x4_t b = vfmsq_f32(vfmsq_f32(x, n, vdupq_n_f32(0x1.62e4p-1f)), n, vdupq_n_f32(0x1.7f7d1cp-20f));
    const uint32x4_t e = vshlq_n_u32(vreinterpretq_u32_f32(z), 23);
    const float32x4_t k = vreinterpretq_f32_u32(vaddq_u32(e, vreinterpretq_u32_f32(vdupq_n_f32(1.0f))));
    const uint32x4_t c = vcagtq_f32(n, vdupq_n_f32(126.0f));
    const float32x4_t u = vmulq_f32(b, b);
    const float32x4_t j = vfmaq_f32(vmulq_f32(vdupq_n_f32(0x1.ffffecp-1f), b),
                                    vfmaq_f32(vfmaq_f32(vdupq_n_f32(0x1.fffdb6p-2f), vdupq_n_f32(0x1.555e66p-3f), b),
                                              vfmaq_f32(vdupq_n_f32(0x1.573e2ep-5f), vdupq_n_f32(0x1.0e4020p-7f), b), u),
                                    u);
    const float32x4_t normal = vfmaq_f32(k, j, k);
    if (vmaxvq_u32(c) == 0) return normal;
    const uint32x4_t g = vandq_u32(vcleq_f32(n, vdupq_n_f32(0.0f)), vdupq_n_u32(0x82000000u));
    const float32x4_t s1 = vreinterpretq_f32_u32(vaddq_u32(g, vdupq_n_u32(0x7f000000u)));
    const float32x4_t s2 = vreinterpretq_f32_u32(vsubq_u32(e, g));
    const uint32x4_t d = vcagtq_f32(n, vdupq_n_f32(192.0f));
    const float32x4_t scaled = vmulq_f32(vfmaq_f32(s2, s2, j), s1);
    return vbslq_f32(d, vmulq_f32(s1, s1), vbslq_f32(c, scaled, normal));
}

void silu_mul_neon(int64_t n, float* gate, const float* up) {
    const int64_t n8 = n & ~int64_t(7);  // the reference's polynomial covers whole groups of 8
    for (int64_t i = 0; i < n8; i += 4) {
        const float32x4_t x = vld1q_f32(gate + i);
        const float32x4_t e = v_expf(vsubq_f32(vdupq_n_f32(0.0f), x));
        const float32x4_t s = vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), e));
        vst1q_f32(gate + i, vmulq_f32(s, vld1q_f32(up + i)));
    }
    for (int64_t i = n8; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void softmax_neon(int64_t n, float* x) {
    // FMAXNM ignores a NaN operand as fmax does; the order of a max does not matter.
    float32x4_t vmax = vdupq_n_f32(-INFINITY);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vmax = vmaxnmq_f32(vmax, vld1q_f32(x + i));
    float max = vmaxnmvq_f32(vmax);
    for (; i < n; ++i) max = std::fmax(max, x[i]);
    const float32x4_t vm = vdupq_n_f32(max);
    double sum = 0.0;
    i = 0;
    for (; i + 8 <= n; i += 8) {
        const F8 v = {v_expf(vsubq_f32(vld1q_f32(x + i), vm)), v_expf(vsubq_f32(vld1q_f32(x + i + 4), vm))};
        f8_store(x + i, v);
        sum += static_cast<double>(f8_hsum_softmax(v));
    }
    for (; i < n; ++i) {
        x[i] = std::exp(x[i] - max);
        sum += static_cast<double>(x[i]);
    }
    const float inv = static_cast<float>(1.0 / sum);
    i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), inv));
    for (; i < n; ++i) x[i] *= inv;
}

// One 32-value block as activations_ref.cpp's quantize_block_act: d = amax/127, q = round half
// to even of x * (127/amax) (FCVTNS); returns the sum of the quants.
inline int quantize_block_act(const float* x, int8_t* qs, float* d_out) {
    float32x4_t v[8];
    float32x4_t amax = vdupq_n_f32(0.0f);
    for (int k = 0; k < 8; ++k) {
        v[k] = vld1q_f32(x + 4 * k);
        amax = vmaxnmq_f32(amax, vabsq_f32(v[k]));
    }
    const float max = vmaxnmvq_f32(amax);
    *d_out = max / 127.0f;
    const float id = max != 0.0f ? 127.0f / max : 0.0f;
    int32x4_t sum = vdupq_n_s32(0);
    for (int k = 0; k < 8; k += 2) {
        const int32x4_t q0 = vcvtnq_s32_f32(vmulq_n_f32(v[k], id));
        const int32x4_t q1 = vcvtnq_s32_f32(vmulq_n_f32(v[k + 1], id));
        sum = vaddq_s32(sum, vaddq_s32(q0, q1));
        const int16x8_t q16 = vcombine_s16(vqmovn_s32(q0), vqmovn_s32(q1));
        vst1_s8(qs + 4 * k, vqmovn_s16(q16));
    }
    return vaddvq_s32(sum);
}

void quantize_act_q8_0(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q8_0*>(vy);
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        float d;
        quantize_block_act(x + i * QK8_0, y[i].qs, &d);
        y[i].d = f32_to_fp16(d);
    }
}

void quantize_act_q8_1(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q8_1*>(vy);
    for (int64_t i = 0; i < n / QK8_1; ++i) {
        float d;
        const int sum = quantize_block_act(x + i * QK8_1, y[i].qs, &d);
        y[i].d = f32_to_fp16(d);
        y[i].s = f32_to_fp16(d * static_cast<float>(sum));
    }
}

void round_f16_neon(int64_t n, float* x) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vcvt_f32_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; ++i) x[i] = fp16_to_f32(f32_to_fp16(x[i]));
}

float dot_f16_chunks_neon(int64_t n_chunks, const uint8_t* const* bases, size_t offset, const fp16_t* y) {
    F8 acc[4] = {f8_zero(), f8_zero(), f8_zero(), f8_zero()};
    for (int64_t c = 0; c < n_chunks; ++c) {
        const auto* x = reinterpret_cast<const fp16_t*>(bases[c] + offset);
        for (int j = 0; j < 4; ++j) acc[j] = f8_fma(acc[j], f8_load_f16(x + 8 * j), f8_load_f16(y + 32 * c + 8 * j));
    }
    return reduce4(acc);
}

// y converted once for all rows; two rows at a time give sixteen independent fma chains.
void dot_f16_rows_neon(int64_t n_chunks, int64_t n_rows, const uint8_t* base, size_t row_stride, const fp16_t* y,
                       float* out) {
    F8 yf[32];  // a head is at most 256 values
    for (int64_t k = 0; k < 4 * n_chunks; ++k) yf[k] = f8_load_f16(y + 8 * k);
    int64_t j = 0;
    for (; j + 2 <= n_rows; j += 2) {
        const auto* x0 = reinterpret_cast<const fp16_t*>(base + j * row_stride);
        const auto* x1 = reinterpret_cast<const fp16_t*>(base + (j + 1) * row_stride);
        F8 a0[4] = {f8_zero(), f8_zero(), f8_zero(), f8_zero()};
        F8 a1[4] = {f8_zero(), f8_zero(), f8_zero(), f8_zero()};
        for (int64_t k = 0; k < 4 * n_chunks; ++k) {
            a0[k & 3] = f8_fma(a0[k & 3], f8_load_f16(x0 + 8 * k), yf[k]);
            a1[k & 3] = f8_fma(a1[k & 3], f8_load_f16(x1 + 8 * k), yf[k]);
        }
        out[j] = reduce4(a0);
        out[j + 1] = reduce4(a1);
    }
    for (; j < n_rows; ++j) {
        const auto* x0 = reinterpret_cast<const fp16_t*>(base + j * row_stride);
        F8 a0[4] = {f8_zero(), f8_zero(), f8_zero(), f8_zero()};
        for (int64_t k = 0; k < 4 * n_chunks; ++k) a0[k & 3] = f8_fma(a0[k & 3], f8_load_f16(x0 + 8 * k), yf[k]);
        out[j] = reduce4(a0);
    }
}

// Keys stored transposed (keys in lanes): four keys per register, each lane accumulating exactly
// as dot_f16_chunks does for its key (32 partial sums per key, reduced in ggml's order, no
// horizontal sums). Element e of keys j..j+3 is four consecutive f16 at base + e * ds + 2j.
inline float32x4_t load_f16x4(const uint8_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p)))); }

float32x4_t f16t_keys4(int64_t hd, const uint8_t* base, size_t ds, const float* q) {
    float32x4_t t[4];
    for (int lp = 0; lp < 4; ++lp) {
        float32x4_t s2[2];
        for (int h = 0; h < 2; ++h) {
            const int l = lp + 4 * h;
            float32x4_t a[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
            for (int64_t c = 0; c < hd / 32; ++c)
                for (int k = 0; k < 4; ++k) {
                    const int64_t e = 32 * c + 8 * k + l;
                    a[k] = vfmaq_n_f32(a[k], load_f16x4(base + e * ds), q[e]);
                }
            s2[h] = vaddq_f32(vaddq_f32(a[0], a[2]), vaddq_f32(a[1], a[3]));
        }
        t[lp] = vaddq_f32(s2[0], s2[1]);
    }
    return vaddq_f32(vaddq_f32(t[0], t[1]), vaddq_f32(t[2], t[3]));
}

void dot_f16t_neon(int64_t hd, int64_t n_keys, const uint8_t* base, size_t dim_stride, int64_t n_q, const float* q,
                   size_t q_stride, float* out, size_t out_stride) {
    for (int64_t j0 = 0; j0 < n_keys; j0 += 4) {
        const int64_t nk = n_keys - j0 < 4 ? n_keys - j0 : 4;  // dim_stride covers a multiple of 8 keys
        for (int64_t i = 0; i < n_q; ++i) {
            const float32x4_t r = f16t_keys4(hd, base + 2 * j0, dim_stride, q + i * q_stride);
            float* o = out + i * out_stride + j0;
            if (nk == 4) {
                vst1q_f32(o, r);
            } else {
                float tmp[4];
                vst1q_f32(tmp, r);
                for (int64_t j = 0; j < nk; ++j) o[j] = tmp[j];
            }
        }
    }
}

// Two outputs at a time sharing each load of y.
void dot_f16_cols_neon(int64_t n_chunks, const uint8_t* const* bases, size_t offset0, size_t step, int64_t n_out,
                       const float* y, float* out) {
    int64_t o = 0;
    for (; o + 2 <= n_out; o += 2) {
        F8 a0[4] = {f8_zero(), f8_zero(), f8_zero(), f8_zero()};
        F8 a1[4] = {f8_zero(), f8_zero(), f8_zero(), f8_zero()};
        const size_t off0 = offset0 + o * step, off1 = off0 + step;
        for (int64_t c = 0; c < n_chunks; ++c) {
            const uint8_t* b = bases[c];
            for (int k = 0; k < 4; ++k) {
                const F8 yv = f8_load(y + 32 * c + 8 * k);
                a0[k] = f8_fma(a0[k], f8_load_f16(b + off0 + 16 * k), yv);
                a1[k] = f8_fma(a1[k], f8_load_f16(b + off1 + 16 * k), yv);
            }
        }
        out[o] = reduce4(a0);
        out[o + 1] = reduce4(a1);
    }
    for (; o < n_out; ++o) {
        F8 a0[4] = {f8_zero(), f8_zero(), f8_zero(), f8_zero()};
        const size_t off0 = offset0 + o * step;
        for (int64_t c = 0; c < n_chunks; ++c)
            for (int k = 0; k < 4; ++k) a0[k] = f8_fma(a0[k], f8_load_f16(bases[c] + off0 + 16 * k), f8_load(y + 32 * c + 8 * k));
        out[o] = reduce4(a0);
    }
}

}  // namespace

void fill_table_neon_act(KernelTable& t) {
    t.quantize_act[static_cast<int>(QType::Q8_K)] = t.quantize_row[static_cast<int>(QType::Q8_K)];
    t.quantize_act[static_cast<int>(QType::Q8_0)] = quantize_act_q8_0;
    t.quantize_act[static_cast<int>(QType::Q8_1)] = quantize_act_q8_1;
    t.silu_mul = silu_mul_neon;
    t.gelu_mul = gelu_mul_neon;
    t.softmax = softmax_neon;
    t.round_f16 = round_f16_neon;
    t.dot_f16_chunks = dot_f16_chunks_neon;
    t.dot_f16_rows = dot_f16_rows_neon;
    t.dot_f16t = dot_f16t_neon;
    t.dot_f16_cols = dot_f16_cols_neon;
}

}  // namespace eg

#else  // not aarch64: nothing to add

namespace eg {
void fill_table_neon_act(KernelTable&) {}
}  // namespace eg

#endif
