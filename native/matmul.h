// matmul.h — quantized matrix products Y = W·X through the dispatch table and the thread pool.
#pragma once

#include <cstdint>

#include "kernels.h"
#include "repack.h"
#include "threadpool.h"

namespace eg {

// Y[t, r] = sum_k W[r, k] * X[t, k]
//   W: n_rows rows of n_cols elements of type `wtype`, rows `w_stride` bytes apart (stored format,
//      used in place; n_cols must be a multiple of the block size)
//   X: n_tok rows of n_cols floats, contiguous              // (n_tok, n_cols)
//   Y: n_tok rows, row t starts at y + t * y_stride floats  // (n_tok, n_rows)
// X is converted once per call to the weight type's activation format (Q8_0 / Q8_1 / Q8_K, or
// kept as floats for F32/F16/BF16 weights); the rows are split over the pool's threads with one
// fork/join per call.
void matmul(const KernelTable& kt, ThreadPool& pool, QType wtype, const void* w, size_t w_stride,
            int64_t n_rows, int64_t n_cols, const float* x, int64_t n_tok, float* y, int64_t y_stride);

// Several products sharing one input X (attention's Q, K, V; the FFN's gate and up): X is
// converted once and all their rows are split over the threads in a single fork/join.
struct MatmulJob {
    QType wtype;
    const void* w;
    size_t w_stride;
    int64_t n_rows;
    float* y;  // (n_tok, y_stride)
    int64_t y_stride;
    const PackedRows* packed = nullptr;  // when set, the products read these rows (repack.h), not w
};
void matmul_multi(const KernelTable& kt, ThreadPool& pool, const MatmulJob* jobs, int n_jobs, int64_t n_cols,
                  const float* x, int64_t n_tok);

// Converts n_tok rows of X to `wtype`'s activation format into `out` (n_tok * row_size bytes).
void quantize_activations(const KernelTable& kt, QType wtype, const float* x, int64_t n_tok, int64_t n_cols,
                          uint8_t* out);

}  // namespace eg
