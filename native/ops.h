// ops.h — the small element-wise operations of the forward pass (norms, RoPE, activations).
// They are a few percent of the work; each follows ggml's float arithmetic so results track
// llama.cpp's closely.
#pragma once

#include <cstdint>

namespace eg {

// y = x / sqrt(mean(x^2) + eps) * w          x, y, w: (n,); y may alias x
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);

struct RopeParams {
    int32_t n_rot = 0;         // rotated dimensions per head (<= head_dim), even
    float freq_base = 10000;   // theta base
    float freq_scale = 1.0f;   // 1 / linear scaling factor
    bool neox = false;         // false: rotate adjacent pairs (llama); true: halves (neox/gemma)
    const float* freq_factors = nullptr;  // (n_rot / 2) divisors of the angles (Llama 3.1+), or none
};

// Rotates each of n_heads head vectors (head_dim floats each, contiguous) for position `pos`.
// A negative or fractional-free delta works too: rotating by p then by -p is the identity,
// which is how the KV cache re-rotates keys after a context shift.
void rope(float* x, int32_t n_heads, int32_t head_dim, double pos, const RopeParams& p);


}  // namespace eg
