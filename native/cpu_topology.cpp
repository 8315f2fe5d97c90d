// cpu_topology.cpp — see cpu_topology.h.
#include "cpu_topology.h"

#include <dirent.h>
#include <sched.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <thread>

namespace eg {

namespace {

constexpr const char* kSysCpuRoot = "/sys/devices/system/cpu";

bool read_first_token(const std::string& path, std::string* out) {
    std::ifstream f(path);
    return static_cast<bool>(f >> *out);
}

// "cpu12" -> 12; anything else ("cpufreq", "cpuidle") -> -1.
int cpu_dir_index(const char* name) {
    if (std::string(name).rfind("cpu", 0) != 0 || !name[3]) return -1;
    int v = 0;
    for (const char* p = name + 3; *p; ++p) {
        if (!std::isdigit(static_cast<unsigned char>(*p)) || v > 100000) return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

}  // namespace

std::vector<CpuInfo> read_cpu_topology(const std::string& cpu_root) {
    std::vector<CpuInfo> cpus;
    DIR* dir = opendir(cpu_root.c_str());
    if (!dir) return cpus;
    while (const dirent* e = readdir(dir)) {
        const int id = cpu_dir_index(e->d_name);
        if (id < 0) continue;
        const std::string base = cpu_root + "/" + e->d_name + "/";
        CpuInfo c;
        c.id = id;
        std::string tok;
        if (read_first_token(base + "online", &tok)) c.online = tok != "0";  // cpu0 often has none
        std::string core, pkg;
        if (read_first_token(base + "topology/core_id", &core) &&
            read_first_token(base + "topology/physical_package_id", &pkg))
            c.core_key = pkg + ":" + core;
        else
            c.core_key = "cpu" + std::to_string(id);  // no topology: count each CPU as a core
        if (read_first_token(base + "cpu_capacity", &tok)) {
            try {
                c.capacity = std::max(0, std::stoi(tok));
            } catch (...) {
                c.capacity = 0;
            }
        }
        cpus.push_back(c);
    }
    closedir(dir);
    std::sort(cpus.begin(), cpus.end(), [](const CpuInfo& a, const CpuInfo& b) { return a.id < b.id; });

    // A container or `taskset` may allow fewer CPUs than the machine has.
    cpu_set_t allowed;
    if (cpu_root == kSysCpuRoot && sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
        cpus.erase(std::remove_if(cpus.begin(), cpus.end(),
                                  [&](const CpuInfo& c) { return c.id >= CPU_SETSIZE || !CPU_ISSET(c.id, &allowed); }),
                   cpus.end());
    }
    return cpus;
}

int default_thread_count(const std::string& cpu_root) {
    std::vector<CpuInfo> cpus = read_cpu_topology(cpu_root);
    cpus.erase(std::remove_if(cpus.begin(), cpus.end(), [](const CpuInfo& c) { return !c.online; }), cpus.end());
    if (cpus.empty()) {
        const unsigned n = std::thread::hardware_concurrency();
        return n > 0 ? static_cast<int>(n) : 1;
    }
    int max_cap = 0, min_cap = 0;
    bool all_report = true;
    for (const CpuInfo& c : cpus) {
        all_report = all_report && c.capacity > 0;
        max_cap = std::max(max_cap, c.capacity);
        min_cap = min_cap == 0 ? c.capacity : std::min(min_cap, c.capacity);
    }
    const bool heterogeneous = all_report && min_cap < max_cap;
    std::set<std::string> cores;
    for (const CpuInfo& c : cpus)
        if (!heterogeneous || c.capacity > kBigCoreCapacityShare * max_cap) cores.insert(c.core_key);
    return std::max<int>(1, static_cast<int>(cores.size()));
}

}  // namespace eg
