// offload_backend.h — a compute backend that hands the batched matrix products of prompt
// processing to an accelerator (an NPU) and leaves everything else to the CPU backend.
//
// The accelerator is a MatmulProvider: it is offered every weight once at load (by name, so it can
// keep what it runs well and decline the rest) and then receives the products of batches of at
// least `min_batch` tokens whose weights it all took. Decode steps (one token) and every other
// operation stay on the CPU. The provider may decline a call (it returns false) and the CPU runs
// it; if it throws, the error is recorded, the provider is switched off and the CPU carries on.
//
//   auto be = eg::make_offload_backend(eg::make_cpu_backend(n), provider, /*min_batch=*/16, stats);
//   stats->mode = eg::OffloadMode::Calibrate;   // CPU results shown to the provider (ranges)
//   stats->mode = eg::OffloadMode::On;          // batched products go to the provider
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "compute_backend.h"

namespace eg {

class MatmulProvider {
public:
    virtual ~MatmulProvider() = default;
    // Offered once per weight at load; returns the provider's id for it (>= 0), or -1 to leave
    // the weight to the CPU.
    virtual int64_t offer(const WeightView& view) = 0;
    // One batch of products sharing an input: x (n_tok, cols), and per product i the weight
    // ids[i] (rows[i] rows) and its result ys[i] (n_tok rows of rows[i], y_strides[i] floats apart).
    struct Batch {
        const int64_t* ids;
        const int64_t* rows;
        float* const* ys;
        const int64_t* y_strides;
        int n;
        const float* x;
        int64_t n_tok, cols;
    };
    // ys = x times each weight transposed. Returns false to decline (the CPU then runs it).
    virtual bool run(const Batch& b) = 0;
    // Calibration: the CPU already computed ys from x; the provider records what it needs (ranges).
    virtual void observe(const Batch& b) = 0;
};

enum class OffloadMode : int { Off = 0, Calibrate = 1, On = 2 };

// Shared with the binding: the mode switch and what crossed the seam (per process, all layers).
struct OffloadStats {
    std::atomic<int> mode{static_cast<int>(OffloadMode::Off)};
    std::atomic<int64_t> calls{0};        // provider calls that ran
    std::atomic<int64_t> products{0};     // products inside those calls
    std::atomic<int64_t> tokens{0};       // tokens of the batches sent (sum over calls)
    std::atomic<int64_t> macs{0};         // multiply-accumulates offloaded
    std::atomic<int64_t> bytes_in{0};     // activations sent (f32)
    std::atomic<int64_t> bytes_out{0};    // results received (f32)
    std::atomic<int64_t> cpu_batched{0};  // batched (>= min_batch) calls left on the CPU
    std::mutex mu;
    std::string error;  // the provider's failure, when it was switched off
};

std::unique_ptr<ComputeBackend> make_offload_backend(std::unique_ptr<ComputeBackend> cpu,
                                                     std::shared_ptr<MatmulProvider> provider, int64_t min_batch,
                                                     std::shared_ptr<OffloadStats> stats);

}  // namespace eg
