// activations_avx2.cpp — AVX2+FMA versions of activations_ref.cpp, bit-identical to it.
#include "kernels.h"

#include <cmath>  // before the AVX2 target region: library code must not be compiled for AVX2

#if defined(__x86_64__) || defined(_M_X64)

#include "avx2_target_begin.h"

#include <immintrin.h>

namespace eg {
namespace {

// ggml's ggml_v_expf (AVX2 + FMA).
inline __m256 v_expf(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1))));
    const __m256i c = _mm256_castps_si256(
        _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), n), _mm256_set1_ps(126), _CMP_GT_OQ));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    if (!_mm256_movemask_ps(_mm256_castsi256_ps(c))) return _mm256_fmadd_ps(j, k, k);
    const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                       _mm256_set1_epi32(static_cast<int>(0x82000000u)));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    const __m256i d = _mm256_castps_si256(
        _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), n), _mm256_set1_ps(192), _CMP_GT_OQ));
    return _mm256_or_ps(
        _mm256_and_ps(_mm256_castsi256_ps(d), _mm256_mul_ps(s1, s1)),
        _mm256_andnot_ps(_mm256_castsi256_ps(d),
                         _mm256_or_ps(_mm256_and_ps(_mm256_castsi256_ps(c), _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1)),
                                      _mm256_andnot_ps(_mm256_castsi256_ps(c), _mm256_fmadd_ps(k, j, k)))));
}

void silu_mul_avx2(int64_t n, float* gate, const float* up) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(gate + i);
        const __m256 e = v_expf(_mm256_sub_ps(_mm256_setzero_ps(), x));
        const __m256 s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// The GeGLU of activations_ref.cpp, eight lanes at a time: F16C rounds x to f16 (to nearest
// even, as the scalar conversion does), a 32-bit gather at byte offset 2h reads table entry h in
// its low half, and the two cut-offs are blended in; NaN fails both comparisons, as in the scalar.
void gelu_mul_avx2(int64_t n, float* gate, const float* up) {
    const fp16_t* table = gelu_f16_table();
    const int* base = reinterpret_cast<const int*>(table);
    const __m256 hi = _mm256_set1_ps(10.0f), lo = _mm256_set1_ps(-10.0f);
    const __m256i low16 = _mm256_set1_epi32(0xFFFF);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(gate + i);
        const __m256 u = _mm256_loadu_ps(up + i);
        const __m256i h = _mm256_cvtepu16_epi32(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
        const __m256i g = _mm256_and_si256(_mm256_i32gather_epi32(base, h, 2), low16);
        const __m256 gx = _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(g), _mm256_extracti128_si256(g, 1)));
        __m256 y = _mm256_blendv_ps(_mm256_mul_ps(gx, u), _mm256_mul_ps(x, u), _mm256_cmp_ps(x, hi, _CMP_GE_OQ));
        y = _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LE_OQ), y);  // +0.0f below -10
        _mm256_storeu_ps(gate + i, y);
    }
    for (; i < n; ++i) {
        const float x = gate[i];
        gate[i] = x <= -10.0f ? 0.0f : x >= 10.0f ? x * up[i] : _cvtsh_ss(table[_cvtss_sh(x, 0)]) * up[i];
    }
}

void softmax_avx2(int64_t n, float* x) {
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    float lanes[8];
    _mm256_storeu_ps(lanes, vmax);
    float max = -INFINITY;
    for (float l : lanes) max = std::fmax(max, l);
    for (; i < n; ++i) max = std::fmax(max, x[i]);
    double sum = 0.0;
    i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = v_expf(_mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(max)));
        _mm256_storeu_ps(x + i, v);
        __m128 h = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        sum += static_cast<double>(_mm_cvtss_f32(h));
    }
    for (; i < n; ++i) {
        x[i] = std::exp(x[i] - max);
        sum += static_cast<double>(x[i]);
    }
    const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / sum));
    i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    const float invs = static_cast<float>(1.0 / sum);
    for (; i < n; ++i) x[i] *= invs;
}

// ggml's AVX2 quantize_row_q8_0 / q8_1 for one block; returns the sum of the quants.
inline int quantize_block_act(const float* x, int8_t* qs, float* d_out) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[k]));
    }
    __m128 m = _mm_max_ps(_mm256_extractf128_ps(amax, 1), _mm256_castps256_ps128(amax));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float max = _mm_cvtss_f32(m);
    *d_out = max / 127.0f;
    const __m256 id = _mm256_set1_ps(max != 0.0f ? 127.0f / max : 0.0f);
    __m256i q[4];
    for (int k = 0; k < 4; ++k)
        q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256i sum4 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), p);
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum4), _mm256_extracti128_si256(sum4, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

void quantize_act_q8_0(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q8_0*>(vy);
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        float d;
        quantize_block_act(x + i * QK8_0, y[i].qs, &d);
        y[i].d = f32_to_fp16(d);
    }
}

void quantize_act_q8_1(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q8_1*>(vy);
    for (int64_t i = 0; i < n / QK8_1; ++i) {
        float d;
        const int sum = quantize_block_act(x + i * QK8_1, y[i].qs, &d);
        y[i].d = f32_to_fp16(d);
        y[i].s = f32_to_fp16(d * static_cast<float>(sum));
    }
}

float dot_f16_chunks_avx2(int64_t n_chunks, const uint8_t* const* bases, size_t offset, const fp16_t* y) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t c = 0; c < n_chunks; ++c) {
        const auto* x = reinterpret_cast<const fp16_t*>(bases[c] + offset);
        for (int j = 0; j < 4; ++j) {
            const __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 8 * j)));
            const __m256 b = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + 32 * c + 8 * j)));
            acc[j] = _mm256_fmadd_ps(a, b, acc[j]);
        }
    }
    const __m256 s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

void round_f16_avx2(int64_t n, float* x) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; ++i) x[i] = _cvtsh_ss(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
}

// ggml's reduction of the four accumulators (see dot_f16_chunks_avx2).
inline float reduce4(const __m256* acc) {
    const __m256 s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

inline __m256 load_f16x8(const void* p) { return _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(p))); }

// y is converted once for all rows; two rows at a time give eight independent fma chains.
void dot_f16_rows_avx2(int64_t n_chunks, int64_t n_rows, const uint8_t* base, size_t row_stride, const fp16_t* y,
                       float* out) {
    __m256 yf[32];  // a head is at most 256 values
    for (int64_t k = 0; k < 4 * n_chunks; ++k) yf[k] = load_f16x8(y + 8 * k);
    int64_t j = 0;
    for (; j + 2 <= n_rows; j += 2) {
        const auto* x0 = reinterpret_cast<const fp16_t*>(base + j * row_stride);
        const auto* x1 = reinterpret_cast<const fp16_t*>(base + (j + 1) * row_stride);
        __m256 a0[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        __m256 a1[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int64_t k = 0; k < 4 * n_chunks; ++k) {
            a0[k & 3] = _mm256_fmadd_ps(load_f16x8(x0 + 8 * k), yf[k], a0[k & 3]);
            a1[k & 3] = _mm256_fmadd_ps(load_f16x8(x1 + 8 * k), yf[k], a1[k & 3]);
        }
        out[j] = reduce4(a0);
        out[j + 1] = reduce4(a1);
    }
    for (; j < n_rows; ++j) {
        const auto* x0 = reinterpret_cast<const fp16_t*>(base + j * row_stride);
        __m256 a0[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int64_t k = 0; k < 4 * n_chunks; ++k) a0[k & 3] = _mm256_fmadd_ps(load_f16x8(x0 + 8 * k), yf[k], a0[k & 3]);
        out[j] = reduce4(a0);
    }
}

// Eight keys per vector (keys in lanes): each lane accumulates exactly as dot_f16_chunks does
// for its key (four 8-wide accumulator sets, reduced in ggml's order), with no horizontal sums.
// NQ queries share each converted load of keys.
#define EG_UNROLL_ALL _Pragma("GCC unroll 8")
template <int NQ>
inline void f16t_group(int64_t hd, const uint8_t* base, size_t ds, const float* const* q, __m256* res) {
    __m256 t[NQ][4];
    EG_UNROLL_ALL for (int lp = 0; lp < 4; ++lp) {
        __m256 s2[NQ][2];
        EG_UNROLL_ALL for (int h = 0; h < 2; ++h) {
            const int l = lp + 4 * h;
            __m256 a[NQ][4];
            EG_UNROLL_ALL for (int i = 0; i < NQ; ++i)
                EG_UNROLL_ALL for (int k = 0; k < 4; ++k) a[i][k] = _mm256_setzero_ps();
            for (int64_t c = 0; c < hd / 32; ++c)
                EG_UNROLL_ALL for (int k = 0; k < 4; ++k) {
                    const int64_t e = 32 * c + 8 * k + l;
                    const __m256 x = load_f16x8(base + e * ds);
                    EG_UNROLL_ALL for (int i = 0; i < NQ; ++i) a[i][k] = _mm256_fmadd_ps(x, _mm256_broadcast_ss(q[i] + e), a[i][k]);
                }
            EG_UNROLL_ALL for (int i = 0; i < NQ; ++i)
                s2[i][h] = _mm256_add_ps(_mm256_add_ps(a[i][0], a[i][2]), _mm256_add_ps(a[i][1], a[i][3]));
        }
        EG_UNROLL_ALL for (int i = 0; i < NQ; ++i) t[i][lp] = _mm256_add_ps(s2[i][0], s2[i][1]);
    }
    EG_UNROLL_ALL for (int i = 0; i < NQ; ++i) res[i] = _mm256_add_ps(_mm256_add_ps(t[i][0], t[i][1]), _mm256_add_ps(t[i][2], t[i][3]));
}

#undef EG_UNROLL_ALL

void dot_f16t_avx2(int64_t hd, int64_t n_keys, const uint8_t* base, size_t dim_stride, int64_t n_q, const float* q,
                   size_t q_stride, float* out, size_t out_stride) {
    for (int64_t j0 = 0; j0 < n_keys; j0 += 8) {
        const int64_t nk = n_keys - j0 < 8 ? n_keys - j0 : 8;
        const uint8_t* b = base + 2 * j0;
        int64_t i = 0;
        for (; i < n_q; ) {
            __m256 res[2];
            const float* qs[2] = {q + i * q_stride, q + (i + 1) * q_stride};
            const int nq = n_q - i >= 2 ? 2 : 1;
            if (nq == 2) f16t_group<2>(hd, b, dim_stride, qs, res);
            else f16t_group<1>(hd, b, dim_stride, qs, res);
            for (int r = 0; r < nq; ++r) {
                float* o = out + (i + r) * out_stride + j0;
                if (nk == 8) {
                    _mm256_storeu_ps(o, res[r]);
                } else {
                    alignas(32) float tmp[8];
                    _mm256_store_ps(tmp, res[r]);
                    for (int64_t j = 0; j < nk; ++j) o[j] = tmp[j];
                }
            }
            i += nq;
        }
    }
}

// Two outputs at a time: eight independent fma chains sharing each load of y.
void dot_f16_cols_avx2(int64_t n_chunks, const uint8_t* const* bases, size_t offset0, size_t step, int64_t n_out,
                       const float* y, float* out) {
    int64_t o = 0;
    for (; o + 2 <= n_out; o += 2) {
        __m256 a0[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        __m256 a1[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        const size_t off0 = offset0 + o * step, off1 = off0 + step;
        for (int64_t c = 0; c < n_chunks; ++c) {
            const uint8_t* b = bases[c];
            for (int q = 0; q < 4; ++q) {
                const __m256 yv = _mm256_loadu_ps(y + 32 * c + 8 * q);
                a0[q] = _mm256_fmadd_ps(load_f16x8(b + off0 + 16 * q), yv, a0[q]);
                a1[q] = _mm256_fmadd_ps(load_f16x8(b + off1 + 16 * q), yv, a1[q]);
            }
        }
        out[o] = reduce4(a0);
        out[o + 1] = reduce4(a1);
    }
    for (; o < n_out; ++o) {
        __m256 a0[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        const size_t off0 = offset0 + o * step;
        for (int64_t c = 0; c < n_chunks; ++c)
            for (int q = 0; q < 4; ++q)
                a0[q] = _mm256_fmadd_ps(load_f16x8(bases[c] + off0 + 16 * q), _mm256_loadu_ps(y + 32 * c + 8 * q), a0[q]);
        out[o] = reduce4(a0);
    }
}

}  // namespace

void fill_table_avx2_act(KernelTable& t) {
    t.quantize_act[static_cast<int>(QType::Q8_K)] = t.quantize_row[static_cast<int>(QType::Q8_K)];
    t.quantize_act[static_cast<int>(QType::Q8_0)] = quantize_act_q8_0;
    t.quantize_act[static_cast<int>(QType::Q8_1)] = quantize_act_q8_1;
    t.silu_mul = silu_mul_avx2;
    t.gelu_mul = gelu_mul_avx2;
    t.softmax = softmax_avx2;
    t.round_f16 = round_f16_avx2;
    t.dot_f16_chunks = dot_f16_chunks_avx2;
    t.dot_f16_rows = dot_f16_rows_avx2;
    t.dot_f16t = dot_f16t_avx2;
    t.dot_f16_cols = dot_f16_cols_avx2;
}

}  // namespace eg

#include "avx2_target_end.h"

#else  // not x86-64

namespace eg {
void fill_table_avx2_act(KernelTable&) {}
}  // namespace eg

#endif
