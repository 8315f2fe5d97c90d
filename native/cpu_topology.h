// cpu_topology.h — how many threads to run when the caller does not say.
//
// Decode and prefill split every product evenly across the pool, so one slow core sets the pace
// of all: on big.LITTLE boards (RK3588: 4x Cortex-A76 + 4x Cortex-A55, QCS6490: 1+3 Cortex-A78 +
// 4x A55) running on the little cores too makes a step slower, not faster. The kernel reports
// each core's relative capacity in /sys/devices/system/cpu/cpuN/cpu_capacity (1024 = the
// biggest); where capacities differ we count only the "big" cores, else every physical core
// (SMT siblings share one core's execution units and gain nothing on these kernels).
#pragma once

#include <string>
#include <vector>

namespace eg {

struct CpuInfo {
    int id = 0;
    bool online = true;
    std::string core_key;  // physical_package_id:core_id; SMT siblings share it
    int capacity = 0;      // 0 where the kernel does not report one
};

// Reads cpuN/{online,topology/*,cpu_capacity} under `cpu_root`; CPUs outside this process's
// affinity mask are left out when `cpu_root` is the real sysfs tree.
std::vector<CpuInfo> read_cpu_topology(const std::string& cpu_root);

// A core counts as big when its capacity is above this share of the largest: A55 next to A76
// reports ~0.4-0.52, an A78 "gold" next to its "prime" ~0.9.
constexpr double kBigCoreCapacityShare = 0.6;

// Physical cores to use by default (the big ones on a heterogeneous board), at least 1.
int default_thread_count(const std::string& cpu_root = "/sys/devices/system/cpu");

}  // namespace eg
