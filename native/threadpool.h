// threadpool.h — persistent workers; one fork/join per parallel region (one per matrix product).
//
// The calling thread takes part as thread 0. Workers spin briefly on a generation counter after a
// job (decode issues hundreds of small products per token, a sleep/wake per product would cost
// more than the product) and then sleep on a condition variable so an idle pool burns no CPU.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace eg {

class ThreadPool {
public:
    // n_threads <= 0 means the number of physical cores.
    explicit ThreadPool(int n_threads = 0);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }

    // Runs fn(ith, nth) for ith in [0, nth) with nth = size(), and returns when all are done.
    // Calls from several threads are serialised. fn must not throw (errors are reported by the
    // caller after the join); an exception escaping fn terminates, as in std::thread.
    void run(const std::function<void(int, int)>& fn);

private:
    void worker_main(int ith);

    int n_threads_;
    std::vector<std::thread> workers_;
    std::mutex run_mu_;                   // serialises run()
    std::mutex mu_;                       // guards sleeping/wakeup
    std::condition_variable cv_;
    const std::function<void(int, int)>* job_ = nullptr;
    std::atomic<uint64_t> generation_{0};  // bumped once per job
    std::atomic<int> pending_{0};          // workers still running the current job
    std::atomic<bool> stop_{false};
};

// Busy-wait step for short waits: pause first, then yield so an oversubscribed machine (more
// runnable threads than cores) still makes progress instead of burning whole time slices.
void spin_wait_step(int& iteration);

// Physical cores (not SMT siblings) to run on by default: the big ones on a big.LITTLE board
// (cpu_topology.h), at least 1.
int physical_core_count();

// Splits [0, n) into nth nearly equal contiguous ranges aligned to `align`; returns thread ith's.
inline void split_range(int64_t n, int ith, int nth, int64_t align, int64_t* begin, int64_t* end) {
    const int64_t units = (n + align - 1) / align;
    const int64_t per = units / nth, extra = units % nth;
    const int64_t ub = ith * per + (ith < extra ? ith : extra);
    const int64_t ue = ub + per + (ith < extra ? 1 : 0);
    *begin = ub * align < n ? ub * align : n;
    *end = ue * align < n ? ue * align : n;
}

}  // namespace eg
