// cpu_isa.cpp — run-time ISA detection and the per-ISA kernel tables.
//
// One binary serves every CPU of its architecture: SIMD files are compiled with per-file target
// pragmas and only ever called after this file has checked the CPU supports them.
// EDGEGEN_FORCE_ISA=scalar (or another name) overrides the choice at load.
#include <cstdlib>
#include <mutex>
#include <string>

#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define EG_X86 1
#elif defined(__aarch64__)
#include <sys/auxv.h>
#define EG_ARM64 1
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

namespace eg {

namespace {

#if defined(EG_X86)
bool cpu_has_avx2_fma_f16c() {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
    if (!(fma && osxsave && avx && f16c)) return false;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 0x6u) != 0x6u) return false;  // OS saves XMM and YMM state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return b & (1u << 5);
}
#endif

#if defined(EG_ARM64)
bool cpu_has_dotprod() { return getauxval(AT_HWCAP) & HWCAP_ASIMDDP; }
#endif

const char* const kIsaNames[] = {"scalar", "avx2", "neon", "neon_dotprod", nullptr};

KernelTable build_table(const std::string& isa) {
    KernelTable t;
    fill_table_scalar(t);
    fill_table_scalar_k(t);
    fill_table_scalar_act(t);
    if (isa == "avx2") {
        fill_table_avx2(t);
        fill_table_avx2_k(t);
        fill_table_avx2_gemm(t);
        fill_table_avx2_gemm_k(t);
        fill_table_avx2_multi(t);
        fill_table_avx2_packed(t);
        fill_table_avx2_packed_gemm(t);
        fill_table_avx2_act(t);
    } else if (isa == "neon") {
        fill_table_neon(t);
    } else if (isa == "neon_dotprod") {
        fill_table_neon(t);
        fill_table_neon_dotprod(t);
    }
    return t;
}

std::string best_isa() {
#if defined(EG_X86)
    if (cpu_has_avx2_fma_f16c()) return "avx2";
#elif defined(EG_ARM64)
    return cpu_has_dotprod() ? "neon_dotprod" : "neon";
#endif
    return "scalar";
}

struct State {
    std::mutex mu;
    KernelTable tables[4];
    bool built[4] = {false, false, false, false};
    const KernelTable* active = nullptr;
};

State& state() {
    static State s;
    return s;
}

int isa_index(const std::string& isa) {
    for (int i = 0; kIsaNames[i]; ++i)
        if (isa == kIsaNames[i]) return i;
    return -1;
}

const KernelTable& table_locked(State& s, const std::string& isa) {
    const int i = isa_index(isa);
    EG_CHECK(i >= 0, "unknown ISA '" + isa + "' (expected scalar, avx2, neon or neon_dotprod)");
    EG_CHECK(isa_available(isa), "this CPU does not support the '" + isa + "' kernels");
    if (!s.built[i]) {
        s.tables[i] = build_table(isa);
        s.tables[i].isa = kIsaNames[i];
        s.built[i] = true;
    }
    return s.tables[i];
}

}  // namespace

bool isa_available(const std::string& isa) {
    if (isa == "scalar") return true;
#if defined(EG_X86)
    if (isa == "avx2") return cpu_has_avx2_fma_f16c();
#elif defined(EG_ARM64)
    if (isa == "neon") return true;
    if (isa == "neon_dotprod") return cpu_has_dotprod();
#endif
    return false;
}

const char* const* all_isas() { return kIsaNames; }

const KernelTable& kernels_for(const std::string& isa) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    return table_locked(s, isa);
}

const KernelTable& kernels() {
    State& s = state();
    // Fast path: after the first call `active` never goes back to null.
    if (const KernelTable* t = __atomic_load_n(&s.active, __ATOMIC_ACQUIRE)) return *t;
    std::lock_guard<std::mutex> lock(s.mu);
    if (!s.active) {
        std::string isa = best_isa();
        if (const char* forced = std::getenv("EDGEGEN_FORCE_ISA"); forced && *forced) isa = forced;
        __atomic_store_n(&s.active, &table_locked(s, isa), __ATOMIC_RELEASE);
    }
    return *s.active;
}

std::string active_isa() { return kernels().isa; }

void set_isa(const std::string& isa) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    __atomic_store_n(&s.active, &table_locked(s, isa), __ATOMIC_RELEASE);
}

}  // namespace eg
