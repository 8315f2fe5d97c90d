// membench.h — this machine's read bandwidth, measured with the widest vector loads available,
// as the yardstick the memory-bound kernels are compared against.
#pragma once

#include <cstddef>

#include "threadpool.h"

namespace eg {

// Reads a buffer of `bytes` (split over the pool's threads) `repeats` times after one warm-up
// pass; returns the best pass in GB/s (1e9 bytes/s).
double measure_read_bandwidth(ThreadPool& pool, size_t bytes, int repeats);

}  // namespace eg
