// offload_backend.cpp — batched products to a MatmulProvider, everything else to the CPU backend.
#include "offload_backend.h"

#include <exception>
#include <vector>

namespace eg {

namespace {

class OffloadBackend final : public DelegatingBackend {
public:
    OffloadBackend(std::unique_ptr<ComputeBackend> cpu, std::shared_ptr<MatmulProvider> provider, int64_t min_batch,
                   std::shared_ptr<OffloadStats> stats)
        : DelegatingBackend(std::move(cpu)), provider_(std::move(provider)), min_batch_(min_batch), stats_(std::move(stats)) {}

    std::string name() const override { return "offload(" + DelegatingBackend::name() + ")"; }

    Weight prepare(const WeightView& v) override {
        Weight w = DelegatingBackend::prepare(v);  // the CPU keeps its own use of the rows (decode)
        const int64_t id = provider_->offer(v);
        if (id >= 0) {
            w.prepared = std::make_shared<int64_t>(id);
            w.owner = this;
        }
        return w;
    }

    void matmul(std::initializer_list<MatJob> jobs, const float* x, int64_t n_tok) override {
        const OffloadMode mode = static_cast<OffloadMode>(stats_->mode.load());
        if (n_tok < min_batch_ || mode == OffloadMode::Off) return DelegatingBackend::matmul(jobs, x, n_tok);
        int64_t ids[8], rows[8];
        float* ys[8];
        int64_t strides[8];
        int n = 0;
        bool all_ours = true;
        int64_t macs = 0, out_floats = 0;
        for (const MatJob& j : jobs) {
            if (n == 8 || j.w->owner != this || !j.w->prepared) {
                all_ours = false;
                break;
            }
            ids[n] = *static_cast<const int64_t*>(j.w->prepared.get());
            rows[n] = j.w->view.rows;
            ys[n] = j.y;
            strides[n] = j.y_stride ? j.y_stride : j.w->view.rows;
            macs += j.w->view.rows * j.w->view.cols * n_tok;
            out_floats += j.w->view.rows * n_tok;
            ++n;
        }
        const int64_t cols = jobs.begin()->w->view.cols;
        if (!all_ours) {
            ++stats_->cpu_batched;
            return DelegatingBackend::matmul(jobs, x, n_tok);
        }
        const MatmulProvider::Batch batch{ids, rows, ys, strides, n, x, n_tok, cols};
        if (mode == OffloadMode::Calibrate) {
            DelegatingBackend::matmul(jobs, x, n_tok);
            guarded([&] { provider_->observe(batch); });
            return;
        }
        bool ran = false;
        guarded([&] { ran = provider_->run(batch); });
        if (!ran) {
            ++stats_->cpu_batched;
            return DelegatingBackend::matmul(jobs, x, n_tok);
        }
        ++stats_->calls;
        stats_->products += n;
        stats_->tokens += n_tok;
        stats_->macs += macs;
        stats_->bytes_in += n_tok * cols * static_cast<int64_t>(sizeof(float));
        stats_->bytes_out += out_floats * static_cast<int64_t>(sizeof(float));
    }

private:
    // A provider failure must not kill a generation: the message is kept for the caller to log,
    // offloading is switched off and the CPU computes (the call that failed too).
    template <typename F>
    void guarded(const F& fn) {
        try {
            fn();
        } catch (const std::exception& e) {
            std::lock_guard<std::mutex> lock(stats_->mu);
            stats_->error = e.what();
            stats_->mode = static_cast<int>(OffloadMode::Off);
        }
    }

    std::shared_ptr<MatmulProvider> provider_;
    int64_t min_batch_;
    std::shared_ptr<OffloadStats> stats_;
};

}  // namespace

std::unique_ptr<ComputeBackend> make_offload_backend(std::unique_ptr<ComputeBackend> cpu,
                                                     std::shared_ptr<MatmulProvider> provider, int64_t min_batch,
                                                     std::shared_ptr<OffloadStats> stats) {
    EG_CHECK(cpu && provider && stats, "an offload backend needs a CPU backend, a provider and a stats block");
    EG_CHECK(min_batch >= 2, "min_batch must be at least 2 (decode steps stay on the CPU)");
    return std::make_unique<OffloadBackend>(std::move(cpu), std::move(provider), min_batch, std::move(stats));
}

}  // namespace eg
