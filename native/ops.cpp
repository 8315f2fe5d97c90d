// ops.cpp — see ops.h.
#include "ops.h"

#include <cmath>

namespace eg {

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
    double sum = 0.0;  // ggml accumulates the squares in double
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
    const float mean = static_cast<float>(sum / n);
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void rope(float* x, int32_t n_heads, int32_t head_dim, double pos, const RopeParams& p) {
    // theta_i = pos * base^(-2i/n_rot), built by repeated multiplication in float as ggml does
    const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_rot));
    float cache[512];  // cos/sin pairs for n_rot <= 256
    float theta = static_cast<float>(pos);
    for (int32_t i = 0; i < p.n_rot; i += 2) {
        // ggml: rope_yarn(theta / ff, freq_scale, ...) with ff = 1 when the model has no factors
        const float t = p.freq_scale * (p.freq_factors ? theta / p.freq_factors[i / 2] : theta);
        cache[i] = std::cos(t);
        cache[i + 1] = std::sin(t);
        theta *= theta_scale;
    }
    for (int32_t h = 0; h < n_heads; ++h) {
        float* v = x + static_cast<int64_t>(h) * head_dim;
        // Which product is fused follows the x86 build of ggml (g++ -O3 -march=native contracts
        // its rotation this way), so queries and keys match llama.cpp's bit for bit.
        const int32_t off = p.neox ? p.n_rot / 2 : 1;
        for (int32_t i = 0; i < p.n_rot; i += 2) {
            const float c = cache[i], s = cache[i + 1];
            float* a = v + (p.neox ? i / 2 : i);
            const float x0 = a[0], x1 = a[off];
            a[0] = std::fma(x0, c, -(x1 * s));
            a[off] = std::fma(x0, s, x1 * c);
        }
    }
}



}  // namespace eg
