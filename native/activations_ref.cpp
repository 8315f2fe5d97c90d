// activations_ref.cpp — scalar reference of the forward pass's float kernels and activation
// quantizers, written to produce exactly what ggml's x86 AVX2 code produces (same polynomial for
// exp, same rounding, same reduction order), so that edgegen on any ISA tracks llama.cpp closely
// and the SIMD versions can be tested for bit equality against this file.
#include <cmath>

#include "kernels.h"

namespace eg {

namespace {

// ggml's vectorised expf (ARM optimized-routines polynomial, max error ~1.5 ulp), one lane.
float expf_ggml(float x) {
    const float r = 0x1.8p23f;
    const float z = std::fma(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
    const uint32_t e = f32_bits(z) << 23;
    const float k = f32_from_bits(e + f32_bits(1.0f));
    const bool c = std::fabs(n) > 126.0f;
    const float u = b * b;
    const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                             u, 0x1.ffffecp-1f * b);
    if (!c) return std::fma(j, k, k);
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = f32_from_bits(g + 0x7f000000u);
    const float s2 = f32_from_bits(e - g);
    if (std::fabs(n) > 192.0f) return s1 * s1;
    return std::fma(s2, j, s2) * s1;
}

// Sum of 8 lanes in the order of ggml's AVX2 horizontal add.
float hsum8(const float* a) {
    const float l0 = a[0] + a[4], l1 = a[1] + a[5], l2 = a[2] + a[6], l3 = a[3] + a[7];
    return (l0 + l2) + (l1 + l3);
}

void silu_mul_ref(int64_t n, float* gate, const float* up) {
    const int64_t n8 = n & ~int64_t(7);
    for (int64_t i = 0; i < n8; ++i) {
        const float x = gate[i];
        gate[i] = x / (1.0f + expf_ggml(0.0f - x)) * up[i];
    }
    for (int64_t i = n8; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// ggml_gelu_f32: 0.5f*x*(1.0f + tanhf(SQRT_2_OVER_PI*x*(1.0f + GELU_COEF_A*x*x))). llama.cpp's
// x86 builds (GCC, gnu11, so -ffp-contract=fast, with FMA) contract `1.0f + A*x*x` into
// fma(A*x, x, 1) (checked in libggml-cpu's ggml_cpu_init); written out here so every build and
// ISA gets that rounding. Without it one table entry (0xBFFF) differs from llama.cpp's.
float gelu_tanh_f32(float x) {
    constexpr float kCoefA = 0.044715f;
    constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
    return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * std::fma(kCoefA * x, x, 1.0f)));
}

void gelu_mul_ref(int64_t n, float* gate, const float* up) {
    const fp16_t* table = gelu_f16_table();
    for (int64_t i = 0; i < n; ++i) {
        const float x = gate[i];
        if (x <= -10.0f) {
            gate[i] = 0.0f;
        } else if (x >= 10.0f) {
            gate[i] = x * up[i];
        } else {
            gate[i] = fp16_to_f32(table[f32_to_fp16(x)]) * up[i];
        }
    }
}

void softmax_ref(int64_t n, float* x) {
    float max = -INFINITY;
    for (int64_t i = 0; i < n; ++i) max = std::fmax(max, x[i]);
    double sum = 0.0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int k = 0; k < 8; ++k) x[i + k] = expf_ggml(x[i + k] - max);
        sum += static_cast<double>(hsum8(x + i));
    }
    for (; i < n; ++i) {
        x[i] = std::exp(x[i] - max);
        sum += static_cast<double>(x[i]);
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t t = 0; t < n; ++t) x[t] *= inv;
}

// One 32-element block as ggml's AVX2 quantize_row_q8_0/q8_1: d = amax/127, q = rint(x * 127/amax).
int quantize_block_act(const float* x, int8_t* qs, float* d_out) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
        qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));  // default mode: half to even
        sum += qs[j];
    }
    *d_out = d;
    return sum;
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

void round_f16_ref(int64_t n, float* x) {
    for (int64_t i = 0; i < n; ++i) x[i] = fp16_to_f32(f32_to_fp16(x[i]));
}

// ggml's AVX2 reduction of four 8-lane accumulators.
float reduce_f16_acc(const float (&acc)[4][8]) {
    float s[8];
    for (int l = 0; l < 8; ++l) s[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    const float t0 = s[0] + s[4], t1 = s[1] + s[5], t2 = s[2] + s[6], t3 = s[3] + s[7];
    return (t0 + t1) + (t2 + t3);
}

float dot_f16_chunks_ref(int64_t n_chunks, const uint8_t* const* bases, size_t offset, const fp16_t* y) {
    float acc[4][8] = {};
    for (int64_t c = 0; c < n_chunks; ++c) {
        const auto* x = reinterpret_cast<const fp16_t*>(bases[c] + offset);
        for (int j = 0; j < 4; ++j)
            for (int l = 0; l < 8; ++l)
                acc[j][l] = std::fma(fp16_to_f32(x[8 * j + l]), fp16_to_f32(y[32 * c + 8 * j + l]), acc[j][l]);
    }
    return reduce_f16_acc(acc);
}

void dot_f16_rows_ref(int64_t n_chunks, int64_t n_rows, const uint8_t* base, size_t row_stride, const fp16_t* y,
                      float* out) {
    const uint8_t* chunks[8];  // a head is at most 256 values
    for (int64_t j = 0; j < n_rows; ++j) {
        for (int64_t c = 0; c < n_chunks; ++c) chunks[c] = base + j * row_stride + c * 64;
        out[j] = dot_f16_chunks_ref(n_chunks, chunks, 0, y);
    }
}

void dot_f16t_ref(int64_t hd, int64_t n_keys, const uint8_t* base, size_t dim_stride, int64_t n_q, const float* q,
                  size_t q_stride, float* out, size_t out_stride) {
    for (int64_t i = 0; i < n_q; ++i) {
        for (int64_t j = 0; j < n_keys; ++j) {
            float acc[4][8] = {};
            for (int64_t c = 0; c < hd / 32; ++c)
                for (int k = 0; k < 4; ++k)
                    for (int l = 0; l < 8; ++l) {
                        const int64_t e = 32 * c + 8 * k + l;
                        const float x = fp16_to_f32(*reinterpret_cast<const fp16_t*>(base + e * dim_stride + 2 * j));
                        acc[k][l] = std::fma(x, q[i * q_stride + e], acc[k][l]);
                    }
            out[i * out_stride + j] = reduce_f16_acc(acc);
        }
    }
}

void dot_f16_cols_ref(int64_t n_chunks, const uint8_t* const* bases, size_t offset0, size_t step, int64_t n_out,
                      const float* y, float* out) {
    for (int64_t k = 0; k < n_out; ++k) {
        float acc[4][8] = {};
        for (int64_t c = 0; c < n_chunks; ++c) {
            const auto* x = reinterpret_cast<const fp16_t*>(bases[c] + offset0 + k * step);
            for (int j = 0; j < 4; ++j)
                for (int l = 0; l < 8; ++l) acc[j][l] = std::fma(fp16_to_f32(x[8 * j + l]), y[32 * c + 8 * j + l], acc[j][l]);
        }
        out[k] = reduce_f16_acc(acc);
    }
}

}  // namespace

const fp16_t* gelu_f16_table() {
    // Built on first use (thread-safe static): 65536 tanhf calls, about a millisecond.
    static const struct Table {
        fp16_t v[(1 << 16) + 2];
        Table() : v() {
            for (uint32_t h = 0; h < (1u << 16); ++h)
                v[h] = f32_to_fp16(gelu_tanh_f32(fp16_to_f32(static_cast<fp16_t>(h))));
        }
    } table;
    return table.v;
}

void fill_table_scalar_act(KernelTable& t) {
    for (int i = 0; i < kTypeCount; ++i) t.quantize_act[i] = t.quantize_row[i];  // Q8_K, F32: as quantize_row
    t.quantize_act[static_cast<int>(QType::Q8_0)] = quantize_act_q8_0;
    t.quantize_act[static_cast<int>(QType::Q8_1)] = quantize_act_q8_1;
    t.silu_mul = silu_mul_ref;
    t.gelu_mul = gelu_mul_ref;
    t.softmax = softmax_ref;
    t.round_f16 = round_f16_ref;
    t.dot_f16_chunks = dot_f16_chunks_ref;
    t.dot_f16_rows = dot_f16_rows_ref;
    t.dot_f16t = dot_f16t_ref;
    t.dot_f16_cols = dot_f16_cols_ref;
}

}  // namespace eg
