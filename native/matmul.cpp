// matmul.cpp — the product driver: activation conversion once, rows split over threads, weight
// tiles reused across tokens.
#include "matmul.h"

#include <algorithm>
#include <atomic>
#include <vector>

namespace eg {

namespace {

constexpr int64_t kRowTile = 16;  // weight rows kept hot in L1 while every token passes over them

}  // namespace

void quantize_activations(const KernelTable& kt, QType wtype, const float* x, int64_t n_tok, int64_t n_cols,
                          uint8_t* out) {
    const QType at = type_traits(wtype).vec_dot_type;
    const size_t act_row = row_size(at, n_cols);
    const quantize_row_fn q = kt.quantize_act[static_cast<int>(at)];
    EG_CHECK(q != nullptr, std::string("no quantizer for ") + type_traits(at).name);
    for (int64_t t = 0; t < n_tok; ++t) q(x + t * n_cols, out + t * act_row, n_cols);
}

void matmul(const KernelTable& kt, ThreadPool& pool, QType wtype, const void* w, size_t w_stride,
            int64_t n_rows, int64_t n_cols, const float* x, int64_t n_tok, float* y, int64_t y_stride) {
    const TypeTraits& wt = type_traits(wtype);
    const QType at = wt.vec_dot_type;
    EG_CHECK(n_rows >= 0 && n_tok >= 0, "negative matrix dimensions");
    EG_CHECK(n_cols > 0 && n_cols % wt.block_size == 0,
             std::string("row length ") + std::to_string(n_cols) + " is not a positive multiple of the " +
                 wt.name + " block size " + std::to_string(wt.block_size));
    EG_CHECK(w_stride >= row_size(wtype, n_cols), "weight row stride smaller than a row");
    EG_CHECK(y_stride >= n_rows, "output row stride smaller than a row");
    const vec_dot_fn dot = kt.vec_dot[static_cast<int>(wtype)];
    const quantize_row_fn quant = kt.quantize_act[static_cast<int>(at)];
    EG_CHECK(dot != nullptr && quant != nullptr, std::string("no kernel for ") + wt.name);
    if (n_rows == 0 || n_tok == 0) return;

    // Activations in the weight type's dot format: float rows are used as they are.
    const size_t act_row = row_size(at, n_cols);
    const bool convert = at != QType::F32;
    thread_local std::vector<uint8_t> act_buf;
    if (convert && act_buf.size() < act_row * n_tok) act_buf.resize(act_row * n_tok);
    const uint8_t* act = convert ? act_buf.data() : reinterpret_cast<const uint8_t*>(x);
    uint8_t* act_mut = act_buf.data();

    // A single token converts in the caller (cheap); a batch converts in parallel, then meets at
    // a spin barrier inside the same parallel region.
    if (convert && n_tok == 1) quant(x, act_mut, n_cols);
    const bool parallel_convert = convert && n_tok > 1;
    std::atomic<int> converted{0};

    const int64_t row_align = n_rows >= 4 * pool.size() ? 4 : 1;
    pool.run([&](int ith, int nth) {
        if (parallel_convert) {
            int64_t t0, t1;
            split_range(n_tok, ith, nth, 1, &t0, &t1);
            for (int64_t t = t0; t < t1; ++t) quant(x + t * n_cols, act_mut + t * act_row, n_cols);
            converted.fetch_add(1, std::memory_order_acq_rel);
            for (int it = 0; converted.load(std::memory_order_acquire) != nth;) spin_wait_step(it);
        }
        int64_t r0, r1;
        split_range(n_rows, ith, nth, row_align, &r0, &r1);
        const uint8_t* wb = static_cast<const uint8_t*>(w);
        if (n_tok == 1) {
            if (r1 > r0) dot(n_cols, y + r0, wb + r0 * w_stride, w_stride, r1 - r0, act);
            return;
        }
        for (int64_t rt = r0; rt < r1; rt += kRowTile) {
            const int64_t nr = std::min(kRowTile, r1 - rt);
            for (int64_t t = 0; t < n_tok; ++t)
                dot(n_cols, y + t * y_stride + rt, wb + rt * w_stride, w_stride, nr, act + t * act_row);
        }
    });
}

}  // namespace eg
