// membench.cpp — see membench.h.
#include "membench.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "common.h"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace eg {

namespace {

#if defined(__x86_64__)
__attribute__((target("avx2"))) uint64_t read_avx2(const uint8_t* p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
    }
    const __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    return static_cast<uint64_t>(_mm256_extract_epi64(a, 0) ^ _mm256_extract_epi64(a, 3));
}
#endif

uint64_t read_generic(const uint8_t* p, size_t n) {
#if defined(__aarch64__)
    uint8x16_t a0 = vdupq_n_u8(0), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 64 <= n; i += 64) {
        a0 = veorq_u8(a0, vld1q_u8(p + i));
        a1 = veorq_u8(a1, vld1q_u8(p + i + 16));
        a2 = veorq_u8(a2, vld1q_u8(p + i + 32));
        a3 = veorq_u8(a3, vld1q_u8(p + i + 48));
    }
    const uint64x2_t a = vreinterpretq_u64_u8(veorq_u8(veorq_u8(a0, a1), veorq_u8(a2, a3)));
    return vgetq_lane_u64(a, 0) ^ vgetq_lane_u64(a, 1);
#else
    uint64_t acc = 0;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v;
        std::memcpy(&v, p + i, 8);
        acc ^= v;
    }
    return acc;
#endif
}

bool have_avx2() {
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}

}  // namespace

double measure_read_bandwidth(ThreadPool& pool, size_t bytes, int repeats) {
    EG_CHECK(bytes >= 1 << 20 && bytes <= (size_t(1) << 34), "bandwidth buffer must be 1 MiB .. 16 GiB");
    EG_CHECK(repeats >= 1, "repeats must be >= 1");
    bytes &= ~size_t(4095);
    std::unique_ptr<uint8_t, decltype(&std::free)> buf(static_cast<uint8_t*>(std::aligned_alloc(4096, bytes)), &std::free);
    EG_CHECK(buf != nullptr, "out of memory for the bandwidth buffer");
    uint8_t* p = buf.get();
    // First touch from the threads that will read, so pages land near them.
    pool.run([&](int ith, int nth) {
        int64_t b, e;
        split_range(static_cast<int64_t>(bytes), ith, nth, 4096, &b, &e);
        for (int64_t i = b; i < e; ++i) p[i] = static_cast<uint8_t>(i * 131);
    });
    const bool avx2 = have_avx2();
    std::vector<uint64_t> sink(pool.size());
    double best = 0.0;
    for (int rep = 0; rep <= repeats; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        pool.run([&](int ith, int nth) {
            int64_t b, e;
            split_range(static_cast<int64_t>(bytes), ith, nth, 4096, &b, &e);
#if defined(__x86_64__)
            sink[ith] ^= avx2 ? read_avx2(p + b, e - b) : read_generic(p + b, e - b);
#else
            (void)avx2;
            sink[ith] ^= read_generic(p + b, e - b);
#endif
        });
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (rep > 0) best = std::max(best, bytes / s / 1e9);  // rep 0 warms caches and TLBs
    }
    volatile uint64_t keep = 0;
    for (uint64_t v : sink) keep = keep ^ v;
    (void)keep;
    return best;
}

}  // namespace eg
