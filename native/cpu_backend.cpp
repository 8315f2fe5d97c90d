// cpu_backend.cpp — the CPU compute backend: every operation of compute_backend.h on the kernel
// table (scalar / AVX2 / NEON, picked once at run time) and a persistent thread pool.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "compute_backend.h"
#include "kernels.h"
#include "matmul.h"
#include "model_spec.h"
#include "repack.h"
#include "threadpool.h"

namespace eg {

namespace {

class CpuBackend final : public ComputeBackend {
public:
    CpuBackend(int n_threads, bool exact) : pool_(n_threads), exact_(exact) {}
    std::string name() const override { return std::string("cpu-") + kernels().isa; }
    int n_threads() const override { return pool_.size(); }

    Weight prepare(const WeightView& v) override {
        if (!kernels().vec_dot[static_cast<int>(v.type)] || !kernels().dequantize_row[static_cast<int>(v.type)])
            throw UnsupportedError(std::string("no CPU kernel for weights of type ") + type_traits(v.type).name);
        Weight w;
        w.view = v;
        if (!exact_ && can_pack(kernels(), v.type, v.rows, v.cols)) {
            w.cpu_packed = pack_rows(v.type, v.data, v.row_stride, v.rows, v.cols, &pool_);
            // The products read only the packed copy now: the mapped rows leave RSS (get_rows and
            // the exact fallback re-read what they touch from the page cache).
            if (v.file_mapped) release_mapped_pages(v.data, v.row_stride * static_cast<size_t>(v.rows));
        }
        return w;
    }

    void matmul(std::initializer_list<MatJob> jobs, const float* x, int64_t n_tok) override {
        const KernelTable& kt = kernels();
        MatmulJob mj[8];
        int n = 0;
        bool same_act = true;
        const QType at = type_traits(jobs.begin()->w->view.type).vec_dot_type;
        EG_CHECK(jobs.size() <= 8, "at most 8 products share an input");
        for (const MatJob& j : jobs) {
            const WeightView& w = j.w->view;
            EG_CHECK(w.cols == jobs.begin()->w->view.cols, "products sharing an input need the same width");
            mj[n++] = MatmulJob{w.type, w.data, w.row_stride, w.rows, j.y, j.y_stride ? j.y_stride : w.rows};
            // packed rows, while the table in use has their products (an ISA switch falls back)
            if (j.w->cpu_packed && kt.packed_dot[static_cast<int>(w.type)]) mj[n - 1].packed = j.w->cpu_packed.get();
            same_act = same_act && type_traits(w.type).vec_dot_type == at;
        }
        const int64_t cols = jobs.begin()->w->view.cols;
        if (same_act) {
            matmul_multi(kt, pool_, mj, n, cols, x, n_tok);
        } else {  // mixed formats: one product at a time
            for (int i = 0; i < n; ++i)
                eg::matmul(kt, pool_, mj[i].wtype, mj[i].w, mj[i].w_stride, mj[i].n_rows, cols, x, n_tok, mj[i].y,
                           mj[i].y_stride);
        }
    }

    void get_rows(const Weight& w, const int32_t* ids, int64_t n, float* out) override {
        const auto deq = kernels().dequantize_row[static_cast<int>(w.view.type)];
        for (int64_t i = 0; i < n; ++i) deq(w.view.data + ids[i] * w.view.row_stride, out + i * w.view.cols, w.view.cols);
    }

    // The small element-wise steps run on the pool when a batch makes them worth a fork/join
    // (prefill); one decode token keeps them on the calling thread.
    void rms_norm(const float* x, const float* w, float* y, int64_t n_rows, int64_t n, float eps) override {
        parallel_rows(n_rows, n_rows * n, [&](int64_t r) { eg::rms_norm(x + r * n, w, y + r * n, n, eps); });
    }

    void rope(float* x, int64_t n_tok, int64_t row_stride, int32_t n_heads, int32_t head_dim, int64_t pos0,
              const RopeParams& p) override {
        parallel_rows(n_tok, n_tok * n_heads * head_dim,
                      [&](int64_t t) { eg::rope(x + t * row_stride, n_heads, head_dim, static_cast<double>(pos0 + t), p); });
    }

    void glu(Activation act, float* gate, const float* up, int64_t n) override {
        const KernelTable& kt = kernels();
        const auto fn = act == Activation::GeluTanh ? kt.gelu_mul : kt.silu_mul;
        constexpr int64_t kChunk = 1024;  // element-wise: any split gives the same values
        parallel_rows((n + kChunk - 1) / kChunk, n, [&](int64_t c) {
            const int64_t b = c * kChunk;
            fn(std::min(kChunk, n - b), gate + b, up + b);
        });
    }

    void store_kv(KVCache& kv, int32_t layer, int32_t seq, int64_t pos0, int64_t n_tok, const float* k,
                  const float* v) override {
        const int64_t E = kv.layout().shape.n_embd_kv;
        for (int64_t t = 0; t < n_tok; ++t) {
            kv.write_k(layer, seq, pos0 + t, k + t * E, kernels());
            kv.write_v(layer, seq, pos0 + t, v + t * E, kernels());
        }
    }

    void attention(const AttentionArgs& a) override { attention_batch(&a, 1); }
    void attention_batch(const AttentionArgs* args, int32_t n) override;

private:
    // fn(i) for i in [0, n): on the pool when `work` (elements touched) is large enough.
    template <typename F>
    void parallel_rows(int64_t n, int64_t work, const F& fn) {
        constexpr int64_t kMinParallelWork = 16384;
        if (work < kMinParallelWork || n < 2 || pool_.size() < 2) {
            for (int64_t i = 0; i < n; ++i) fn(i);
            return;
        }
        pool_.run([&](int ith, int nth) {
            int64_t b, e;
            split_range(n, ith, nth, 1, &b, &e);
            for (int64_t i = b; i < e; ++i) fn(i);
        });
    }

    struct Scratch {                         // one per worker thread
        std::vector<float> scores;           // (heads of a task, keys padded to 32) scores, then probabilities
        std::vector<const uint8_t*> bases;   // V^T 32-token chunk pointers
        std::vector<float> qf;               // (heads of a task, hd) queries rounded to f16
        std::vector<uint8_t> qact;           // query in the cache type's activation format
    };
    void ensure_scratch(int64_t max_keys, int32_t group, int32_t head_dim);
    // How one AttentionArgs splits into tasks (a task: one token's head, or its heads sharing a
    // KV head), and one task's work.
    struct AttnPlan {
        const AttentionArgs* a;
        int64_t heads_per_task, tasks_per_token, n_tasks;
    };
    AttnPlan plan_attention(const AttentionArgs& a);
    void attend(const AttnPlan& p, int64_t task, Scratch& s) const;

    ThreadPool pool_;
    bool exact_;  // the file's rows as they are (no repacking)
    std::vector<Scratch> scratch_;
    size_t s_stride_ = 0;  // floats per head in Scratch::scores
    int32_t scratch_group_ = 0, scratch_hd_ = 0;
};

void CpuBackend::ensure_scratch(int64_t max_keys, int32_t group, int32_t head_dim) {
    // keys of a query rounded up to whole 32-token chunks, + one block of slack before the window
    const size_t stride = static_cast<size_t>((max_keys + 63) & ~int64_t(31));
    if (stride <= s_stride_ && group <= scratch_group_ && head_dim <= scratch_hd_ && !scratch_.empty()) return;
    s_stride_ = std::max(stride, s_stride_);
    scratch_group_ = std::max(group, scratch_group_);
    scratch_hd_ = std::max(head_dim, scratch_hd_);
    scratch_.assign(pool_.size(), Scratch{});
    for (Scratch& s : scratch_) {
        s.scores.assign(s_stride_ * scratch_group_, 0.0f);
        s.bases.assign(s_stride_ / 32 + 1, nullptr);
        s.qf.assign(static_cast<size_t>(scratch_hd_) * scratch_group_, 0.0f);
        s.qact.assign(row_size(QType::Q8_0, scratch_hd_) + row_size(QType::Q8_K, 256), 0);
    }
}

CpuBackend::AttnPlan CpuBackend::plan_attention(const AttentionArgs& a) {
    const KVLayerView& kv = a.kv;
    const int32_t group = a.n_head / a.n_head_kv;
    const int64_t B = kv.block_tokens;
    // keys a query reads, counted from the start of the block holding its first visible key
    const int64_t max_keys = kv.window ? std::min<int64_t>(a.pos0 + a.n_tok, kv.window + B) : a.pos0 + a.n_tok;
    ensure_scratch(max_keys + B, group, a.head_dim);
    // A task is one token's heads that share a KV head (f16 caches, enough of them to keep every
    // thread busy: the keys are converted once for the group) or one token's single head.
    const int64_t heads_per_task = kv.transposed && a.n_tok * a.n_head_kv >= 2 * pool_.size() ? group : 1;
    const int64_t tasks_per_token = a.n_head / heads_per_task;
    return AttnPlan{&a, heads_per_task, tasks_per_token, a.n_tok * tasks_per_token};
}

void CpuBackend::attention_batch(const AttentionArgs* args, int32_t n) {
    std::vector<AttnPlan> plans;
    plans.reserve(n);
    std::vector<int64_t> first_task(n + 1, 0);  // plan i owns tasks [first_task[i], first_task[i + 1])
    for (int32_t i = 0; i < n; ++i) {
        plans.push_back(plan_attention(args[i]));
        first_task[i + 1] = first_task[i] + plans.back().n_tasks;
    }
    const int64_t total = first_task[n];
    // Tasks interleaved over threads: a causal batch's later tokens attend to more keys. One
    // fork/join for every sequence of a step.
    pool_.run([&](int ith, int nth) {
        Scratch& s = scratch_[ith];
        int32_t i = 0;
        for (int64_t task = ith; task < total; task += nth) {
            while (task >= first_task[i + 1]) ++i;
            attend(plans[i], task - first_task[i], s);
        }
    });
}

void CpuBackend::attend(const AttnPlan& p, int64_t task, Scratch& s) const {
    const AttentionArgs& a = *p.a;
    const KernelTable& kt = kernels();
    const KVLayerView& kv = a.kv;
    const int64_t hd = a.head_dim, q_dim = int64_t(a.n_head) * hd;
    const int32_t group = a.n_head / a.n_head_kv;
    const int64_t B = kv.block_tokens;
    const bool f16 = kv.transposed;
    const int64_t heads_per_task = p.heads_per_task, tasks_per_token = p.tasks_per_token;
    const size_t sc_stride = s_stride_;
    const float scale = a.kq_scale;
    // non-f16 caches: scores by the table's dot kernel, values by y += p * row
    const auto dot = kt.vec_dot[static_cast<int>(kv.type)];
    const auto mad_f32 = kt.vec_mad[static_cast<int>(QType::F32)];
    const auto dequant = kt.dequantize_row[static_cast<int>(kv.type)];
    const QType act_type = type_traits(kv.type).vec_dot_type;
    const auto q_quant = kt.quantize_act[static_cast<int>(act_type)];
    const int64_t i = task / tasks_per_token, h = (task % tasks_per_token) * heads_per_task, g = h / group;
    const int64_t pos = a.pos0 + i;
    const int64_t first = std::max<int64_t>(kv.lo, kv.window ? pos - kv.window + 1 : 0);  // first visible key
    const float* qh = a.q + i * q_dim + h * hd;
    float* out = a.out + i * q_dim + h * hd;
    if (f16) {
        // As llama.cpp: q and the probabilities are rounded to f16, dot products run in
        // ggml's order, softmax over a multiple of 8 (padding and masked keys are -inf,
        // so exactly 0). Keys are scored from the start of `first`'s block.
        const int64_t b0 = first / B, base = b0 * B, L = pos + 1 - base, skip = first - base;
        const int64_t n_blk = (L + B - 1) / B;
        float* sc = s.scores.data();  // (heads, L rounded up to 32)
        std::copy(qh, qh + heads_per_task * hd, s.qf.data());
        kt.round_f16(heads_per_task * hd, s.qf.data());
        for (int64_t blk = 0; blk < n_blk; ++blk)
            kt.dot_f16t(hd, std::min(B, L - blk * B), kv.k(b0 + blk) + g * hd * B * 2, B * 2, heads_per_task,
                        s.qf.data(), hd, sc + blk * B, sc_stride);
        const int64_t n_chunks = (L + 31) / 32;  // V^T in 32-token chunks, B / 32 per block
        for (int64_t ch = 0; ch < n_chunks; ++ch) s.bases[ch] = kv.v(b0 + ch * 32 / B) + (ch * 32 % B) * 2;
        for (int64_t k = 0; k < heads_per_task; ++k) {
            float* sk = sc + k * sc_stride;
            for (int64_t j = 0; j < skip; ++j) sk[j] = -INFINITY;
            for (int64_t j = skip; j < L; ++j) sk[j] *= scale;
            const int64_t L8 = (L + 7) & ~int64_t(7);
            for (int64_t j = L; j < L8; ++j) sk[j] = -INFINITY;
            kt.softmax(L8, sk);
            kt.round_f16(L, sk);  // llama.cpp multiplies V by f16 probabilities
            std::fill(sk + L, sk + n_chunks * 32, 0.0f);
            kt.dot_f16_cols(n_chunks, s.bases.data(), static_cast<size_t>(g * hd) * B * 2, static_cast<size_t>(B) * 2,
                            hd, sk, out + k * hd);
        }
        return;
    }
    // Quantized caches: llama.cpp's flash-attention arithmetic (it needs flash attention
    // for a quantized V): one pass over the keys with an online softmax in expf, the
    // values dequantized to f32 and accumulated with fused multiply-adds.
    const void* act = qh;
    if (act_type != QType::F32) {
        q_quant(qh, s.qact.data(), hd);
        act = s.qact.data();
    }
    float S = 0.0f, M = -INFINITY;
    float* acc = out;
    float* v32 = s.scores.data();  // scratch: one dequantized value row
    std::fill(acc, acc + hd, 0.0f);
    for (int64_t j = first; j <= pos; ++j) {
        float sj;
        const size_t at = (j % B) * kv.row_bytes + g * kv.head_bytes;
        dot(hd, &sj, kv.k(j / B) + at, kv.row_bytes, 1, act);
        sj = sj * scale;
        float ms = 1.0f, vs = 1.0f;
        if (sj > M) {
            const float m_old = M;
            M = sj;
            ms = std::exp(m_old - M);
            for (int64_t d = 0; d < hd; ++d) acc[d] *= ms;
        } else {
            vs = std::exp(sj - M);
        }
        dequant(kv.v(j / B) + at, v32, hd);
        mad_f32(hd, acc, v32, vs);
        S = std::fma(S, ms, vs);  // contracted in the x86 build of ggml
    }
    const float s_inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int64_t d = 0; d < hd; ++d) acc[d] *= s_inv;
}

// ---- counting wrapper (tests) --------------------------------------------------------------------
class CountingBackend final : public DelegatingBackend {
public:
    CountingBackend(std::unique_ptr<ComputeBackend> inner, std::shared_ptr<int64_t[]> counts)
        : DelegatingBackend(std::move(inner)), c_(std::move(counts)) {}
    std::string name() const override { return "counting(" + DelegatingBackend::name() + ")"; }
    Weight prepare(const WeightView& v) override { return ++c_[kOpPrepare], DelegatingBackend::prepare(v); }
    void matmul(std::initializer_list<MatJob> jobs, const float* x, int64_t n_tok) override {
        ++c_[kOpMatmul];
        DelegatingBackend::matmul(jobs, x, n_tok);
    }
    void get_rows(const Weight& w, const int32_t* ids, int64_t n, float* out) override {
        ++c_[kOpGetRows];
        DelegatingBackend::get_rows(w, ids, n, out);
    }
    void rms_norm(const float* x, const float* w, float* y, int64_t r, int64_t n, float eps) override {
        ++c_[kOpRmsNorm];
        DelegatingBackend::rms_norm(x, w, y, r, n, eps);
    }
    void rope(float* x, int64_t n_tok, int64_t stride, int32_t nh, int32_t hd, int64_t pos0, const RopeParams& p) override {
        ++c_[kOpRope];
        DelegatingBackend::rope(x, n_tok, stride, nh, hd, pos0, p);
    }
    void glu(Activation act, float* gate, const float* up, int64_t n) override {
        ++c_[kOpGlu];
        DelegatingBackend::glu(act, gate, up, n);
    }
    void attention(const AttentionArgs& a) override {
        ++c_[kOpAttention];
        DelegatingBackend::attention(a);
    }
    void attention_batch(const AttentionArgs* a, int32_t n) override {
        c_[kOpAttention] += n;
        DelegatingBackend::attention_batch(a, n);
    }
    void store_kv(KVCache& kv, int32_t l, int32_t seq, int64_t pos0, int64_t n, const float* k, const float* v) override {
        ++c_[kOpStoreKV];
        DelegatingBackend::store_kv(kv, l, seq, pos0, n, k, v);
    }

private:
    std::shared_ptr<int64_t[]> c_;
};

}  // namespace

bool exact_kernels_default() {
    const char* e = std::getenv("EDGEGEN_EXACT_KERNELS");
    return e && *e && std::string(e) != "0";
}

std::unique_ptr<ComputeBackend> make_cpu_backend(int n_threads, bool exact) {
    return std::make_unique<CpuBackend>(n_threads, exact);
}
std::unique_ptr<ComputeBackend> make_cpu_backend(int n_threads) { return make_cpu_backend(n_threads, exact_kernels_default()); }

std::unique_ptr<ComputeBackend> make_counting_backend(std::unique_ptr<ComputeBackend> inner,
                                                      std::shared_ptr<int64_t[]> counts) {
    return std::make_unique<CountingBackend>(std::move(inner), std::move(counts));
}

}  // namespace eg
