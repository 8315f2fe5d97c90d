// quant_neon_dotprod.cpp — aarch64 int8 block dots with the armv8.2 dot-product extension (SDOT).
//
// The build targets plain armv8-a; only the kernels in this file are compiled for dotprod, and
// cpu_isa.cpp checks HWCAP_ASIMDDP before installing this layer over the baseline NEON one.
// The target is enabled after every #include on purpose: an inline library function compiled
// here with a wider target could be the copy the linker keeps for the whole program.
// Entries not filled here keep the baseline NEON (or scalar) kernels.
#include "kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("dotprod"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
#endif

namespace eg {
namespace {

inline int32x4_t dot_i8x16(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }

#include "quant_neon_kernels.h"
#include "quant_k_neon_kernels.h"

}  // namespace
}  // namespace eg

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

namespace eg {
// Compiled for the baseline target: only stores the pointers of the dotprod kernels above.
void fill_table_neon_dotprod(KernelTable& t) {
    fill_int8_block_kernels(t);
    fill_k_kernels(t);
}
}  // namespace eg

#else  // not aarch64: nothing to add

namespace eg {
void fill_table_neon_dotprod(KernelTable&) {}
}  // namespace eg

#endif
