// compute_backend.h — the seam between the forward pass and the hardware that runs it.
//
// The forward pass (transformer.cpp) calls only this interface for everything heavy: it never
// names an ISA function, a thread pool or a vendor API. The CPU backend (cpu_backend.cpp: the
// kernel table + thread pool) implements every operation. A backend that only does some of them
// well (an NPU taking batched products, say) derives from DelegatingBackend, overrides those, and
// leaves the rest to the CPU backend it wraps.
//
//   auto cpu = eg::make_cpu_backend(n_threads);
//   eg::Weight w = cpu->prepare(view);                 // once per weight, at load
//   cpu->matmul({{&w, y}}, x, n_tok);                  // y: (n_tok, w.rows)
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "common.h"
#include "kv_cache.h"
#include "ops.h"

namespace eg {

enum class Activation : int32_t;

// A weight matrix used in place from the mapped file: rows of `cols` elements, `rows` rows.
struct WeightView {
    QType type = QType::F32;
    int64_t cols = 0, rows = 0;
    const uint8_t* data = nullptr;
    size_t row_stride = 0;
    std::string name;  // the tensor's name in the file (an offloading backend picks weights by it)
    bool file_mapped = false;  // data lies in a read-only file mapping (its pages may be dropped)
};

struct PackedRows;  // repack.h

// A weight as a backend holds it: the mapped rows (every backend can fall back to them) and,
// when a backend prepared its own copy (repacked, uploaded), an opaque handle it owns.
struct Weight {
    WeightView view;
    std::shared_ptr<void> prepared;  // backend-private; null when the rows are used as they are
    const void* owner = nullptr;     // the backend that made `prepared`
    // The CPU backend's repacked rows (repack.h: its fast path), kept apart from `prepared` so a
    // delegating backend that prepares its own copy leaves the CPU's decode path as it was.
    std::shared_ptr<const PackedRows> cpu_packed;
};

// One product of a batch sharing the same input: y[t * y_stride + r] = dot(row r of w, x row t).
struct MatJob {
    const Weight* w;
    float* y;
    int64_t y_stride;  // 0: the weight's row count
};

// Attention of n_tok consecutive new tokens of one sequence over a KV layer view (their own keys
// already written). Query t is at position pos0 + t and sees positions max(lo, pos - window + 1)
// (window 0: from 0) through pos. Layouts: q (n_tok, n_head * head_dim), out likewise.
struct AttentionArgs {
    const float* q;
    float* out;
    int64_t n_tok, pos0;
    int32_t n_head, n_head_kv, head_dim;
    float kq_scale;
    KVLayerView kv;
};

class ComputeBackend {
public:
    virtual ~ComputeBackend() = default;
    virtual std::string name() const = 0;
    virtual int n_threads() const = 0;

    // Called once per weight at load; the result is what later calls receive.
    virtual Weight prepare(const WeightView& view) = 0;
    // Products sharing one input x (n_tok, cols); all jobs must have the same cols.
    virtual void matmul(std::initializer_list<MatJob> jobs, const float* x, int64_t n_tok) = 0;
    // out (n, cols): rows ids[i] of w converted to floats (token embeddings).
    virtual void get_rows(const Weight& w, const int32_t* ids, int64_t n, float* out) = 0;
    // y (n_rows, n) = rms_norm(x (n_rows, n)) * w (n); y may alias x.
    virtual void rms_norm(const float* x, const float* w, float* y, int64_t n_rows, int64_t n, float eps) = 0;
    // Rotates n_tok rows of n_heads heads (rows `row_stride` floats apart) for positions pos0 + t.
    virtual void rope(float* x, int64_t n_tok, int64_t row_stride, int32_t n_heads, int32_t head_dim, int64_t pos0,
                      const RopeParams& p) = 0;
    // gate[i] = act(gate[i]) * up[i] for i < n (a gated feed-forward's activation).
    virtual void glu(Activation act, float* gate, const float* up, int64_t n) = 0;
    virtual void attention(const AttentionArgs& args) = 0;
    // Several sequences' attention (a multi-sequence step): the same values as attention() on each;
    // a backend may run them together (the CPU backend: one fork/join for all).
    virtual void attention_batch(const AttentionArgs* args, int32_t n) {
        for (int32_t i = 0; i < n; ++i) attention(args[i]);
    }
    // Writes n_tok K and V rows (n_tok, n_embd_kv) of a layer at positions pos0.. into the cache.
    virtual void store_kv(KVCache& kv, int32_t layer, int32_t seq, int64_t pos0, int64_t n_tok, const float* k,
                          const float* v) = 0;
};

// The CPU backend: the kernel table picked at run time (scalar / AVX2 / NEON) and a thread pool
// of n_threads (<= 0: physical cores). Unless `exact`, Q4_0 / Q4_1 / Q8_0 weights are repacked at
// load where the ISA has products for them (repack.h: faster decode, the same values) and their
// mapped pages released; exact: the file's rows are used as they are.
std::unique_ptr<ComputeBackend> make_cpu_backend(int n_threads, bool exact);
std::unique_ptr<ComputeBackend> make_cpu_backend(int n_threads);  // exact = exact_kernels_default()
// EDGEGEN_EXACT_KERNELS=1 in the environment: the exact path by default.
bool exact_kernels_default();

// Forwards every operation to `inner`; derive and override what the new backend takes.
class DelegatingBackend : public ComputeBackend {
public:
    explicit DelegatingBackend(std::unique_ptr<ComputeBackend> inner) : inner_(std::move(inner)) {}
    std::string name() const override { return inner_->name(); }
    int n_threads() const override { return inner_->n_threads(); }
    Weight prepare(const WeightView& v) override { return inner_->prepare(v); }
    void matmul(std::initializer_list<MatJob> jobs, const float* x, int64_t n_tok) override {
        inner_->matmul(jobs, x, n_tok);
    }
    void get_rows(const Weight& w, const int32_t* ids, int64_t n, float* out) override { inner_->get_rows(w, ids, n, out); }
    void rms_norm(const float* x, const float* w, float* y, int64_t n_rows, int64_t n, float eps) override {
        inner_->rms_norm(x, w, y, n_rows, n, eps);
    }
    void rope(float* x, int64_t n_tok, int64_t row_stride, int32_t n_heads, int32_t head_dim, int64_t pos0,
              const RopeParams& p) override {
        inner_->rope(x, n_tok, row_stride, n_heads, head_dim, pos0, p);
    }
    void glu(Activation act, float* gate, const float* up, int64_t n) override { inner_->glu(act, gate, up, n); }
    void attention(const AttentionArgs& a) override { inner_->attention(a); }
    void attention_batch(const AttentionArgs* a, int32_t n) override { inner_->attention_batch(a, n); }
    void store_kv(KVCache& kv, int32_t layer, int32_t seq, int64_t pos0, int64_t n_tok, const float* k,
                  const float* v) override {
        inner_->store_kv(kv, layer, seq, pos0, n_tok, k, v);
    }

protected:
    ComputeBackend& inner() { return *inner_; }

private:
    std::unique_ptr<ComputeBackend> inner_;
};

// A DelegatingBackend that counts the calls of each operation (tests: the forward pass goes
// through the interface and nowhere else; an override of one operation sees every use of it).
std::unique_ptr<ComputeBackend> make_counting_backend(std::unique_ptr<ComputeBackend> inner,
                                                      std::shared_ptr<int64_t[]> counts);
enum CountedOp : int { kOpPrepare, kOpMatmul, kOpGetRows, kOpRmsNorm, kOpRope, kOpGlu, kOpAttention, kOpStoreKV, kOpCount };

}  // namespace eg
