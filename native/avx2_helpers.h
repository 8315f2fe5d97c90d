// avx2_helpers.h — small AVX2 helpers shared by the batched-product files (gemm_avx2.cpp,
// gemm_few_avx2.cpp). Include inside the AVX2 target region, after <immintrin.h>. They repeat
// quant_avx2.cpp's arithmetic exactly (the same reduction order), which bit-identity relies on.
#pragma once

namespace eg {
namespace avx2 {

inline float h2f(fp16_t h) { return _cvtsh_ss(h); }

inline float hsum_ps(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

// 16 packed bytes -> 32 bytes 0..15: low 128 bits = low nibbles, high = high nibbles.
inline __m256i nibbles_to_bytes(const uint8_t* p) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

}  // namespace avx2
}  // namespace eg
