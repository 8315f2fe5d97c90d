// activations_neon.cpp — aarch64 versions of activations_ref.cpp's float kernels, bit-identical
// to it. Installed by fill_table_neon (so the dotprod table has them too); entries not set here
// keep the scalar reference.
#include "kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>

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

}  // namespace

void fill_table_neon_act(KernelTable& t) { t.gelu_mul = gelu_mul_neon; }

}  // namespace eg

#else  // not aarch64: nothing to add

namespace eg {
void fill_table_neon_act(KernelTable&) {}
}  // namespace eg

#endif
