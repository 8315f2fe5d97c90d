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
    const MatmulJob job{wtype, w, w_stride, n_rows, y, y_stride};
    matmul_multi(kt, pool, &job, 1, n_cols, x, n_tok);
}

void matmul_multi(const KernelTable& kt, ThreadPool& pool, const MatmulJob* jobs, int n_jobs, int64_t n_cols,
                  const float* x, int64_t n_tok) {
    EG_CHECK(n_jobs >= 1 && n_jobs <= 8, "matmul_multi takes 1..8 products");
    EG_CHECK(n_tok >= 0, "negative token count");
    const QType at = type_traits(jobs[0].wtype).vec_dot_type;
    vec_dot_fn dots[8], tiles[8];
    gemm_fn gemms[8], fews[8];
    int64_t row_start[9] = {0};  // jobs' rows concatenated: job j owns [row_start[j], row_start[j+1])
    for (int j = 0; j < n_jobs; ++j) {
        const MatmulJob& jb = jobs[j];
        const TypeTraits& wt = type_traits(jb.wtype);
        EG_CHECK(wt.vec_dot_type == at, "products in one matmul_multi must share an activation format");
        EG_CHECK(jb.n_rows >= 0, "negative matrix dimensions");
        EG_CHECK(n_cols > 0 && n_cols % wt.block_size == 0,
                 std::string("row length ") + std::to_string(n_cols) + " is not a positive multiple of the " +
                     wt.name + " block size " + std::to_string(wt.block_size));
        EG_CHECK(jb.w_stride >= row_size(jb.wtype, n_cols), "weight row stride smaller than a row");
        EG_CHECK(!jb.packed || (jb.packed->type == jb.wtype && jb.packed->rows == jb.n_rows && jb.packed->cols == n_cols),
                 "packed rows do not match the product");
        EG_CHECK(jb.y_stride >= jb.n_rows, "output row stride smaller than a row");
        dots[j] = kt.vec_dot[static_cast<int>(jb.wtype)];
        EG_CHECK(dots[j] != nullptr, std::string("no kernel for ") + wt.name);
        tiles[j] = kt.vec_dot_tile[static_cast<int>(jb.wtype)] ? kt.vec_dot_tile[static_cast<int>(jb.wtype)] : dots[j];
        gemms[j] = kt.gemm[static_cast<int>(jb.wtype)];
        fews[j] = n_tok <= kFewTokens && n_cols <= kFewMaxCols ? kt.gemm_few[static_cast<int>(jb.wtype)] : nullptr;
        row_start[j + 1] = row_start[j] + jb.n_rows;
    }
    const quantize_row_fn quant = kt.quantize_act[static_cast<int>(at)];
    EG_CHECK(quant != nullptr, std::string("no quantizer for ") + type_traits(at).name);
    const int64_t total_rows = row_start[n_jobs];
    if (total_rows == 0 || n_tok == 0) return;

    // Activations in the weights' dot format: float rows are used as they are.
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

    auto body = [&](int ith, int nth) {
        if (parallel_convert) {
            int64_t t0, t1;
            split_range(n_tok, ith, nth, 1, &t0, &t1);
            for (int64_t t = t0; t < t1; ++t) quant(x + t * n_cols, act_mut + t * act_row, n_cols);
            converted.fetch_add(1, std::memory_order_acq_rel);
            for (int it = 0; converted.load(std::memory_order_acquire) != nth;) spin_wait_step(it);
        }
        int64_t r0, r1;
        split_range(total_rows, ith, nth, kPackRows, &r0, &r1);  // whole packed groups where rows allow
        for (int j = 0; j < n_jobs; ++j) {  // the part of each product inside [r0, r1)
            const int64_t b = std::max(r0, row_start[j]) - row_start[j];
            const int64_t e = std::min(r1, row_start[j + 1]) - row_start[j];
            if (e <= b) continue;
            const MatmulJob& jb = jobs[j];
            if (jb.packed) {  // the fast path: the same per-row arithmetic for one token or many
                packed_product(kt, *jb.packed, b, e, act, act_row, n_tok, jb.y, jb.y_stride);
                continue;
            }
            const uint8_t* wb = static_cast<const uint8_t*>(jb.w);
            if (n_tok == 1) {
                dots[j](n_cols, jb.y + b, wb + b * jb.w_stride, jb.w_stride, e - b, act);
                continue;
            }
            if (fews[j]) {  // a few tokens (a multi-sequence decode step): weights streamed once
                fews[j](n_cols, jb.y + b, jb.y_stride, wb + b * jb.w_stride, jb.w_stride, e - b, act, act_row, n_tok);
                continue;
            }
            for (int64_t rt = b; rt < e; rt += kRowTile) {
                const int64_t nr = std::min(kRowTile, e - rt);
                if (gemms[j]) {
                    gemms[j](n_cols, jb.y + rt, jb.y_stride, wb + rt * jb.w_stride, jb.w_stride, nr, act, act_row, n_tok);
                    continue;
                }
                for (int64_t t = 0; t < n_tok; ++t)
                    tiles[j](n_cols, jb.y + t * jb.y_stride + rt, wb + rt * jb.w_stride, jb.w_stride, nr, act + t * act_row);
            }
        }
    };
    // Small products (LoRA's low-rank A·x and B·u: a few thousand multiply-adds) run on the calling
    // thread: a fork/join would cost more than the product. The rows' arithmetic is the same.
    constexpr int64_t kInlineWork = 32768;
    if (total_rows * n_cols * n_tok <= kInlineWork)
        body(0, 1);
    else
        pool.run(body);
}

}  // namespace eg
