// threadpool.cpp — see threadpool.h for the design.
#include "threadpool.h"

#include "cpu_topology.h"


#if defined(__x86_64__)
#include <immintrin.h>
#define EG_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define EG_PAUSE() __asm__ __volatile__("yield")
#else
#define EG_PAUSE() ((void)0)
#endif

namespace eg {

namespace {
constexpr int kSpinIterations = 20000;  // ~50-100 us of polling before a worker sleeps
}

void spin_wait_step(int& iteration) {
    if (++iteration < 2000) {
        EG_PAUSE();
    } else {
        std::this_thread::yield();
    }
}

int physical_core_count() { return default_thread_count(); }

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads > 0 ? n_threads : physical_core_count()) {
    workers_.reserve(n_threads_ - 1);
    for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_.store(true);
        generation_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
    std::lock_guard<std::mutex> run_lock(run_mu_);
    if (n_threads_ == 1) {
        fn(0, 1);
        return;
    }
    job_ = &fn;
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    {
        std::lock_guard<std::mutex> lock(mu_);
        generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    fn(0, n_threads_);
    for (int it = 0; pending_.load(std::memory_order_acquire) != 0;) spin_wait_step(it);
    job_ = nullptr;
}

void ThreadPool::worker_main(int ith) {
    uint64_t seen = 0;
    for (;;) {
        // Spin first: the next product usually follows within microseconds during decode.
        uint64_t gen = generation_.load(std::memory_order_acquire);
        for (int spin = 0; gen == seen && spin < kSpinIterations;) {
            spin_wait_step(spin);
            gen = generation_.load(std::memory_order_acquire);
        }
        if (gen == seen) {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
            gen = generation_.load(std::memory_order_acquire);
        }
        seen = gen;
        if (stop_.load()) return;
        (*job_)(ith, n_threads_);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

}  // namespace eg
