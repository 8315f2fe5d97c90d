// avx2_target_begin.h — enables AVX2+FMA+F16C for the code that follows, in this file only.
// Include it after the system headers of an x86-64 kernel file and close the region with
// avx2_target_end.h; cpu_isa.cpp checks the CPU before any such code runs. No include guard:
// each kernel file opens its own region.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
