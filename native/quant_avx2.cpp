// quant_avx2.cpp — x86-64 AVX2+FMA+F16C kernels for the 32-element block formats and float rows.
//
// Compiled for every x86-64 build with a per-file target pragma; cpu_isa.cpp calls
// fill_table_avx2 only after checking the CPU has AVX2, FMA and F16C. Integer parts are exact;
// the float side accumulates in eight lanes reduced in a fixed order, exactly as quant_ref.cpp does,
// so results are bit-identical to the scalar reference.
#include "kernels.h"

#include <algorithm>  // before the AVX2 target region: library code must not be compiled for AVX2
#include <type_traits>

#if defined(__x86_64__) || defined(_M_X64)

#include "avx2_target_begin.h"

#include <immintrin.h>

#include <cmath>

namespace eg {
namespace {

// ---- helpers -----------------------------------------------------------------------------------
inline float h2f(fp16_t h) { return _cvtsh_ss(h); }

inline float hsum_ps(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

inline int hsum_epi32(__m256i v) {
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, _MM_SHUFFLE(1, 0, 3, 2)));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(r);
}

// 16 packed bytes -> 32 bytes 0..15: low 128 bits = low nibbles (elements 0..15), high = high nibbles.
inline __m256i nibbles_to_bytes(const uint8_t* p) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

// 32 bits -> 32 bytes, 0xFF where the bit is set.
inline __m256i bits_to_bytes(const uint8_t* p) {
    uint32_t x32;
    std::memcpy(&x32, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(x32)), shuf);
    bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

// Unsigned bytes (<= 15, or <= 31 as a sum) times signed bytes, pairwise into 8 x int32 -> float.
inline __m256 dot_u8_s8(__m256i u, __m256i s) {
    const __m256i p16 = _mm256_maddubs_epi16(u, s);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

// Signed x signed bytes (|x| <= 127 or x = -128 with |y| <= 127) via the sign trick.
inline __m256 dot_s8_s8(__m256i x, __m256i y) {
    return dot_u8_s8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

template <typename Block>
inline const Block* row_ptr(const void* w, size_t stride, int64_t r) {
    return reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + r * stride);
}

// Streaming weights (decode): one row at a time, measured 1.3-1.8x faster here than interleaving
// rows, since one sequential weight stream per thread suits the prefetchers. The activation's
// block scales are converted to floats once per call (they are shared by every row), which
// takes two f16 conversions per block off the per-row path. Batches of tokens go to
// gemm_avx2.cpp's register tiles. Every row's arithmetic is the same in all of these, so results
// are bit-identical.
constexpr int64_t kScaleChunk = 256;  // blocks whose activation scales are converted at a time

template <typename BlockAct>
inline void act_scales(const BlockAct* y, int64_t nb, float* d, float* s) {
    for (int64_t i = 0; i < nb; ++i) {
        d[i] = h2f(y[i].d);
        if constexpr (std::is_same_v<BlockAct, block_q8_1>) s[i] = h2f(y[i].s);
    }
}

// One row against activation blocks y[0..nb) whose scales are dy[] (and sy[] for Q8_1); the row's
// running sums are carried in acc/summs so long rows can be fed in chunks.
inline void q4_0_row_f(int64_t nb, const block_q4_0* x, const block_q8_0* y, const float* dy, const float*, __m256& acc,
                       float&) {
    const __m256i eight = _mm256_set1_epi8(8);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < nb; ++i) {
        const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
        const __m256i off = _mm256_maddubs_epi16(eight, qy);
        const __m256i qx = nibbles_to_bytes(x[i].qs);
        const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(qx, qy), off);
        const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * dy[i]), p, acc);
    }
}
inline void q4_1_row_f(int64_t nb, const block_q4_1* x, const block_q8_1* y, const float* dy, const float* sy,
                       __m256& acc, float& summs) {
    for (int64_t i = 0; i < nb; ++i) {
        const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
        const __m256 p = dot_u8_s8(nibbles_to_bytes(x[i].qs), qy);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * dy[i]), p, acc);
        summs += h2f(x[i].m) * sy[i];
    }
}
inline void q8_0_row_f(int64_t nb, const block_q8_0* x, const block_q8_0* y, const float* dy, const float*, __m256& acc,
                       float&) {
    for (int64_t i = 0; i < nb; ++i) {
        const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
        const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * dy[i]), dot_s8_s8(qx, qy), acc);
    }
}

template <typename BlockW, typename BlockAct,
          void (*RowF)(int64_t, const BlockW*, const BlockAct*, const float*, const float*, __m256&, float&)>
void vec_dot_stream(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    constexpr bool kHasSums = std::is_same_v<BlockAct, block_q8_1>;  // Q4_1's m * s terms
    const int64_t nb = n / 32;
    const auto* y = static_cast<const BlockAct*>(a);
    float dy[kScaleChunk], sy[kScaleChunk];
    if (nb <= kScaleChunk) {  // the usual case: every row in one pass
        act_scales(y, nb, dy, sy);
        for (int64_t r = 0; r < nr; ++r) {
            __m256 acc = _mm256_setzero_ps();
            float summs = 0.0f;
            RowF(nb, row_ptr<BlockW>(w, stride, r), y, dy, sy, acc, summs);
            out[r] = kHasSums ? hsum_ps(acc) + summs : hsum_ps(acc);
        }
        return;
    }
    for (int64_t r = 0; r < nr; ++r) {  // very long rows: the scales converted chunk by chunk
        __m256 acc = _mm256_setzero_ps();
        float summs = 0.0f;
        const BlockW* x = row_ptr<BlockW>(w, stride, r);
        for (int64_t i0 = 0; i0 < nb; i0 += kScaleChunk) {
            const int64_t m = std::min(kScaleChunk, nb - i0);
            act_scales(y + i0, m, dy, sy);
            RowF(m, x + i0, y + i0, dy, sy, acc, summs);
        }
        out[r] = kHasSums ? hsum_ps(acc) + summs : hsum_ps(acc);
    }
}

// ---- Q5_0 x Q8_0 ---------------------------------------------------------------------------------
// q in 0..31 taken unsigned: (q - 16) * y = maddubs(q, y) - maddubs(16, y) per int16 pair (no
// saturation: 2 * 31 * 127 < 32767), and the second term depends only on the activation block, so
// it is formed once per call with the activation scales and shared by every row. The int32 lanes
// equal those of ggml's sign-trick kernel exactly, so the floats that follow are its floats.
inline void q5_0_row(int64_t nb, const block_q5_0* x, const block_q8_0* y, const float* dy, const __m256i* off,
                     __m256& acc) {
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < nb; ++i) {
        const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
        const __m256i qx = _mm256_or_si256(nibbles_to_bytes(x[i].qs), _mm256_and_si256(bits_to_bytes(x[i].qh), bit4));
        const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(qx, qy), _mm256_load_si256(off + i));
        const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * dy[i]), p, acc);
    }
}

inline void q5_0_act_terms(const block_q8_0* y, int64_t nb, float* dy, __m256i* off) {
    const __m256i sixteen = _mm256_set1_epi8(16);
    for (int64_t i = 0; i < nb; ++i) {
        dy[i] = h2f(y[i].d);
        _mm256_store_si256(off + i, _mm256_maddubs_epi16(sixteen, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs))));
    }
}

void vec_dot_q5_0(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    const int64_t nb = n / 32;
    const auto* y = static_cast<const block_q8_0*>(a);
    float dy[kScaleChunk];
    alignas(32) __m256i off[kScaleChunk];
    if (nb <= kScaleChunk) {
        q5_0_act_terms(y, nb, dy, off);
        for (int64_t r = 0; r < nr; ++r) {
            __m256 acc = _mm256_setzero_ps();
            q5_0_row(nb, row_ptr<block_q5_0>(w, stride, r), y, dy, off, acc);
            out[r] = hsum_ps(acc);
        }
        return;
    }
    for (int64_t r = 0; r < nr; ++r) {  // very long rows: the activation terms chunk by chunk
        __m256 acc = _mm256_setzero_ps();
        const block_q5_0* x = row_ptr<block_q5_0>(w, stride, r);
        for (int64_t i0 = 0; i0 < nb; i0 += kScaleChunk) {
            const int64_t m = std::min(kScaleChunk, nb - i0);
            q5_0_act_terms(y + i0, m, dy, off);
            q5_0_row(m, x + i0, y + i0, dy, off, acc);
        }
        out[r] = hsum_ps(acc);
    }
}

// ---- float rows ----------------------------------------------------------------------------------
struct LoadF32 {
    static __m256 load8(const uint8_t* row, int64_t i) { return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i); }
    static float load1(const uint8_t* row, int64_t i) { return reinterpret_cast<const float*>(row)[i]; }
};
struct LoadF16 {
    static __m256 load8(const uint8_t* row, int64_t i) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
    }
    static float load1(const uint8_t* row, int64_t i) { return fp16_to_f32(reinterpret_cast<const fp16_t*>(row)[i]); }
};
struct LoadBF16 {
    static __m256 load8(const uint8_t* row, int64_t i) {
        const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    }
    static float load1(const uint8_t* row, int64_t i) { return bf16_to_f32(reinterpret_cast<const bf16_t*>(row)[i]); }
};

template <typename Load>
void vec_dot_float(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    const auto* x = static_cast<const float*>(a);
    for (int64_t r = 0; r < nr; ++r) {
        const uint8_t* row = static_cast<const uint8_t*>(w) + r * stride;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            acc0 = _mm256_fmadd_ps(Load::load8(row, i), _mm256_loadu_ps(x + i), acc0);
            acc1 = _mm256_fmadd_ps(Load::load8(row, i + 8), _mm256_loadu_ps(x + i + 8), acc1);
        }
        for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(Load::load8(row, i), _mm256_loadu_ps(x + i), acc0);
        float s = hsum_ps(_mm256_add_ps(acc0, acc1));
        for (; i < n; ++i) s += Load::load1(row, i) * x[i];
        out[r] = s;
    }
}

// ---- y += s * row ---------------------------------------------------------------------------------
void vec_mad_f32(int64_t n, float* y, const void* row, float s) {
    const auto* x = static_cast<const float*>(row);
    const __m256 sv = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(sv, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] = std::fma(s, x[i], y[i]);
}
void vec_mad_f16(int64_t n, float* y, const void* row, float s) {
    const auto* x = static_cast<const fp16_t*>(row);
    const __m256 sv = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(sv, v, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; ++i) y[i] = std::fma(s, fp16_to_f32(x[i]), y[i]);
}
void vec_mad_q8_0(int64_t n, float* y, const void* row, float s) {
    const auto* x = static_cast<const block_q8_0*>(row);
    for (int64_t b = 0; b < n / QK8_0; ++b) {
        const __m256 ds = _mm256_set1_ps(s * h2f(x[b].d));
        for (int k = 0; k < 4; ++k) {
            const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x[b].qs + 8 * k));
            const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
            float* yy = y + b * QK8_0 + 8 * k;
            _mm256_storeu_ps(yy, _mm256_fmadd_ps(ds, v, _mm256_loadu_ps(yy)));
        }
    }
}

}  // namespace

void fill_table_avx2(KernelTable& t) {
    auto i = [](QType q) { return static_cast<int>(q); };
    t.vec_dot[i(QType::Q4_0)] = vec_dot_stream<block_q4_0, block_q8_0, q4_0_row_f>;
    t.vec_dot[i(QType::Q4_1)] = vec_dot_stream<block_q4_1, block_q8_1, q4_1_row_f>;
    t.vec_dot[i(QType::Q5_0)] = vec_dot_q5_0;
    t.vec_dot[i(QType::Q8_0)] = vec_dot_stream<block_q8_0, block_q8_0, q8_0_row_f>;
    t.vec_dot[i(QType::F32)] = vec_dot_float<LoadF32>;
    t.vec_dot[i(QType::F16)] = vec_dot_float<LoadF16>;
    t.vec_dot[i(QType::BF16)] = vec_dot_float<LoadBF16>;
    t.vec_mad[i(QType::F32)] = vec_mad_f32;
    t.vec_mad[i(QType::F16)] = vec_mad_f16;
    t.vec_mad[i(QType::Q8_0)] = vec_mad_q8_0;
}

}  // namespace eg

#include "avx2_target_end.h"

#else  // not x86-64

namespace eg {
void fill_table_avx2(KernelTable&) {}
}  // namespace eg

#endif
