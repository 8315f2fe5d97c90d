// gemm_few_avx2.cpp — products of streaming weights with a few tokens at once (several
// sequences' decode steps in one forward pass) for Q4_0, Q4_1 and Q8_0 on AVX2.
//
// A decode step of S sequences multiplies every weight matrix by S activation rows. The weights
// come from memory, as in one-token decode, so the rows are walked one at a time (the sequential
// stream the prefetchers like; gemm_avx2.cpp's 4-row register tiles suit weights resident in L1
// during prefill and measured slower here), and each weight block is loaded and unpacked once for
// all S tokens. Every (row, token) pair does exactly the arithmetic of quant_avx2.cpp's one-row
// kernels (the same integer products, the same scale product h2f(d) * dy, the same fma order and
// reduction), so a sequence's logits are bit-identical whether it runs alone or beside others.
#include "kernels.h"

#include <type_traits>  // before the AVX2 target region

#if defined(__x86_64__) || defined(_M_X64)

#include "avx2_target_begin.h"

#include <immintrin.h>

#include "avx2_helpers.h"

namespace eg {
namespace {

using avx2::h2f;
using avx2::hsum_ps;
using avx2::nibbles_to_bytes;

inline __m256 pairs_to_ps(__m256i p16) { return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1))); }

// Per format: the block unpacked once (`prep`), then its integer product with one token's block
// as 8 float lanes (`dot`), as the one-row kernel forms it.
struct Q4_0Ops {
    using BW = block_q4_0;
    using BA = block_q8_0;
    static __m256i prep(const BW& b) { return nibbles_to_bytes(b.qs); }
    static __m256 dot(__m256i qx, __m256i qy) {  // (q - 8) * y = maddubs(q, y) - maddubs(8, y)
        const __m256i off = _mm256_maddubs_epi16(_mm256_set1_epi8(8), qy);
        return pairs_to_ps(_mm256_sub_epi16(_mm256_maddubs_epi16(qx, qy), off));
    }
};
struct Q4_1Ops {
    using BW = block_q4_1;
    using BA = block_q8_1;
    static __m256i prep(const BW& b) { return nibbles_to_bytes(b.qs); }
    static __m256 dot(__m256i qx, __m256i qy) { return pairs_to_ps(_mm256_maddubs_epi16(qx, qy)); }
};
struct Q8_0Ops {
    using BW = block_q8_0;
    using BA = block_q8_0;
    static __m256i prep(const BW& b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)); }
    static __m256 dot(__m256i qx, __m256i qy) {  // the sign trick: |x| * (y with x's sign)
        return pairs_to_ps(_mm256_maddubs_epi16(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx)));
    }
};

constexpr int kMaxTokens = static_cast<int>(kFewTokens);
constexpr int64_t kMaxBlocks = kFewMaxCols / 32;  // the activation scales fit on the stack

template <typename Ops, int NT>
void multi_rows(int64_t n, float* y, int64_t y_stride, const void* w, size_t w_stride, int64_t nr, const void* act,
                size_t act_stride) {
    using BW = typename Ops::BW;
    using BA = typename Ops::BA;
    constexpr bool kSums = std::is_same_v<BA, block_q8_1>;
    const int64_t nb = n / 32;
    const BA* ys[NT];
    // The tokens' block scales (and Q8_1 sums) as floats, converted once per call and stored
    // token-minor, so one vector multiply forms a block's scale products h2f(d) * dy for every
    // token (lane t: the one-row kernel's scalar product, the same IEEE multiply) and one
    // multiply and one add carry every token's m * s sum.
    alignas(32) float dy[kMaxBlocks][kMaxTokens];
    alignas(32) float sy[kSums ? kMaxBlocks : 1][kMaxTokens];
    for (int t = 0; t < NT; ++t) {
        ys[t] = reinterpret_cast<const BA*>(static_cast<const uint8_t*>(act) + t * act_stride);
        for (int64_t i = 0; i < nb; ++i) {
            dy[i][t] = h2f(ys[t][i].d);
            if constexpr (kSums) sy[i][t] = h2f(ys[t][i].s);
        }
    }
    for (int64_t i = 0; i < nb; ++i)
        for (int t = NT; t < kMaxTokens; ++t) {
            dy[i][t] = 0.0f;
            if constexpr (kSums) sy[i][t] = 0.0f;
        }
    __m256i lane[NT];
    for (int t = 0; t < NT; ++t) lane[t] = _mm256_set1_epi32(t);
    for (int64_t r = 0; r < nr; ++r) {
        const BW* x = reinterpret_cast<const BW*>(static_cast<const uint8_t*>(w) + r * w_stride);
        __m256 acc[NT];
        for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
        __m256 summs = _mm256_setzero_ps();
        for (int64_t i = 0; i < nb; ++i) {
            const __m256i qx = Ops::prep(x[i]);
            const __m256 sc = _mm256_mul_ps(_mm256_set1_ps(h2f(x[i].d)), _mm256_load_ps(dy[i]));
            for (int t = 0; t < NT; ++t) {
                const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ys[t][i].qs));
                acc[t] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(sc, lane[t]), Ops::dot(qx, qy), acc[t]);
            }
            if constexpr (kSums)
                summs = _mm256_add_ps(summs, _mm256_mul_ps(_mm256_set1_ps(h2f(x[i].m)), _mm256_load_ps(sy[i])));
        }
        alignas(32) float sm[8];
        _mm256_store_ps(sm, summs);
        for (int t = 0; t < NT; ++t) y[t * y_stride + r] = kSums ? hsum_ps(acc[t]) + sm[t] : hsum_ps(acc[t]);
    }
}

template <typename Ops>
void multi_dispatch(int64_t n, float* y, int64_t y_stride, const void* w, size_t w_stride, int64_t nr,
                    const void* act, size_t act_stride, int64_t nt) {
    using fn = void (*)(int64_t, float*, int64_t, const void*, size_t, int64_t, const void*, size_t);
    static constexpr fn by_count[kMaxTokens + 1] = {
        nullptr,
        multi_rows<Ops, 1>,
        multi_rows<Ops, 2>,
        multi_rows<Ops, 3>,
        multi_rows<Ops, 4>,
        multi_rows<Ops, 5>,
        multi_rows<Ops, 6>,
        multi_rows<Ops, 7>,
        multi_rows<Ops, 8>,
    };
    EG_CHECK(nt >= 1 && nt <= kMaxTokens, "the streaming multi-token product takes 1..8 tokens");
    EG_CHECK(n / 32 <= kMaxBlocks, "row too long for the streaming multi-token product");
    by_count[nt](n, y, y_stride, w, w_stride, nr, act, act_stride);
}

}  // namespace

void fill_table_avx2_multi(KernelTable& t) {
    t.gemm_few[static_cast<int>(QType::Q4_0)] = multi_dispatch<Q4_0Ops>;
    t.gemm_few[static_cast<int>(QType::Q4_1)] = multi_dispatch<Q4_1Ops>;
    t.gemm_few[static_cast<int>(QType::Q8_0)] = multi_dispatch<Q8_0Ops>;
}

}  // namespace eg

#include "avx2_target_end.h"

#else  // not x86-64

namespace eg {
void fill_table_avx2_multi(KernelTable&) {}
}  // namespace eg

#endif
