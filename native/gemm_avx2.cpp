// gemm_avx2.cpp — batched products (prefill) for Q4_0, Q4_1, Q5_0 and Q8_0 weights on AVX2.
//
// A register tile of RM weight rows x RN tokens: each weight block is unpacked once for RN
// tokens and each activation block loaded once for RM rows. Every (row, token) pair keeps its
// own 8-lane accumulator and does exactly the arithmetic of quant_avx2.cpp's one-row kernels,
// in the same order, so a batch gives bit-identical results to one token at a time (and to the
// scalar reference, and to llama.cpp's x86 decode path).
#include "kernels.h"

#include <cstring>  // before the AVX2 target region
#include <type_traits>

#if defined(__x86_64__) || defined(_M_X64)

#include "avx2_target_begin.h"

#include <immintrin.h>

#include "avx2_helpers.h"

namespace eg {
namespace {

using avx2::h2f;
using avx2::hsum_ps;
using avx2::nibbles_to_bytes;

// 32 bits -> 32 bytes, 0xFF where the bit is set (quant_avx2.cpp's).
inline __m256i bits_to_bytes(const uint8_t* p) {
    uint32_t x32;
    std::memcpy(&x32, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(x32)), shuf);
    bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

// A block's 32 quants as unsigned bytes: 0..15 (Q4_0, Q4_1) or 0..31 (Q5_0, fifth bit from qh).
inline __m256i block_bytes(const block_q4_0& b) { return nibbles_to_bytes(b.qs); }
inline __m256i block_bytes(const block_q4_1& b) { return nibbles_to_bytes(b.qs); }
inline __m256i block_bytes(const block_q5_0& b) {
    return _mm256_or_si256(nibbles_to_bytes(b.qs), _mm256_and_si256(bits_to_bytes(b.qh), _mm256_set1_epi8(0x10)));
}

inline __m256 i16_pairs_to_ps(__m256i p16) { return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1))); }

// Fully unrolled tile loops let GCC keep each accumulator in one register (or one spill slot).
#define EG_UNROLL _Pragma("GCC unroll 4")

template <typename Block>
inline const Block* blocks_at(const uint8_t* base, size_t stride, int64_t k) {
    return reinterpret_cast<const Block*>(base + k * stride);
}

// The products dx[r] * dy[t] of the rows' and tokens' block scales for one block, as the one-row
// kernels form them (one float multiply each), into sc[4 * r + t]; computed as one outer product
// so the inner loop only broadcasts them from memory (a load, not an ALU operation).
template <int RM, int RN, typename BX, typename BY>
inline void scale_products(const uint8_t* w, size_t ws, const uint8_t* a, size_t as, int64_t i, float* sc) {
    uint16_t hx[4] = {0, 0, 0, 0}, hy[4] = {0, 0, 0, 0};
    EG_UNROLL for (int r = 0; r < RM; ++r) hx[r] = blocks_at<BX>(w, ws, r)[i].d;
    EG_UNROLL for (int t = 0; t < RN; ++t) hy[t] = blocks_at<BY>(a, as, t)[i].d;
    const __m128 dx = _mm_cvtph_ps(_mm_set_epi16(0, 0, 0, 0, hx[3], hx[2], hx[1], hx[0]));
    const __m128 dy = _mm_cvtph_ps(_mm_set_epi16(0, 0, 0, 0, hy[3], hy[2], hy[1], hy[0]));
    const __m256 dyy = _mm256_set_m128(dy, dy);
    const __m256 dxx = _mm256_castps128_ps256(dx);
    _mm256_store_ps(sc, _mm256_mul_ps(_mm256_permutevar8x32_ps(dxx, _mm256_set_epi32(1, 1, 1, 1, 0, 0, 0, 0)), dyy));
    if (RM > 2)
        _mm256_store_ps(sc + 8, _mm256_mul_ps(_mm256_permutevar8x32_ps(dxx, _mm256_set_epi32(3, 3, 3, 3, 2, 2, 2, 2)), dyy));
}

// A 4- or 5-bit block's 32 values as bytes: unpacked here, or (U) read from the tile's rows
// unpacked once per call into `wu` (row r's block i at wu + (r * nb + i) * 32), which shares the
// unpacking among all the call's tokens instead of the four of a register tile.
template <bool U, typename Block>
inline __m256i unpacked(const Block& b, const uint8_t* wu, int64_t nb, int r, int64_t i) {
    if constexpr (U) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wu + (r * nb + i) * 32));
    return block_bytes(b);
}

// ---- Q8_0 x Q8_0 -------------------------------------------------------------------------------
template <int RM, int RN, bool U>
void q8_0_tile(int64_t nb, float* y, int64_t ys, const uint8_t* w, size_t ws, const uint8_t* wu, const uint8_t* a,
               size_t as) {
    __m256 acc[RM][RN];
    EG_UNROLL for (int r = 0; r < RM; ++r)
        EG_UNROLL for (int t = 0; t < RN; ++t) acc[r][t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
        __m256i qy[RN];
        alignas(32) float sc[16];
        scale_products<RM, RN, block_q8_0, block_q8_0>(w, ws, a, as, i, sc);
        EG_UNROLL for (int t = 0; t < RN; ++t)
            qy[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks_at<block_q8_0>(a, as, t)[i].qs));
        EG_UNROLL for (int r = 0; r < RM; ++r) {
            const block_q8_0& b = blocks_at<block_q8_0>(w, ws, r)[i];
            const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
            const __m256i ax = _mm256_sign_epi8(qx, qx);
            EG_UNROLL for (int t = 0; t < RN; ++t) {
                const __m256 p = i16_pairs_to_ps(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy[t], qx)));
                acc[r][t] = _mm256_fmadd_ps(_mm256_broadcast_ss(&sc[4 * r + t]), p, acc[r][t]);
            }
        }
    }
    EG_UNROLL for (int r = 0; r < RM; ++r)
        EG_UNROLL for (int t = 0; t < RN; ++t) y[t * ys + r] = hsum_ps(acc[r][t]);
}

// ---- Q4_0 x Q8_0: (q - 8) * y = maddubs(q, y) - maddubs(8, y), the second term per token ----------
template <int RM, int RN, bool U>
void q4_0_tile(int64_t nb, float* y, int64_t ys, const uint8_t* w, size_t ws, const uint8_t* wu, const uint8_t* a,
               size_t as) {
    __m256 acc[RM][RN];
    EG_UNROLL for (int r = 0; r < RM; ++r)
        EG_UNROLL for (int t = 0; t < RN; ++t) acc[r][t] = _mm256_setzero_ps();
    const __m256i eight = _mm256_set1_epi8(8);
    for (int64_t i = 0; i < nb; ++i) {
        __m256i qy[RN], off[RN];
        alignas(32) float sc[16];
        scale_products<RM, RN, block_q4_0, block_q8_0>(w, ws, a, as, i, sc);
        EG_UNROLL for (int t = 0; t < RN; ++t) {
            qy[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks_at<block_q8_0>(a, as, t)[i].qs));
            off[t] = _mm256_maddubs_epi16(eight, qy[t]);
        }
        EG_UNROLL for (int r = 0; r < RM; ++r) {
            const __m256i qx = unpacked<U>(blocks_at<block_q4_0>(w, ws, r)[i], wu, nb, r, i);
            EG_UNROLL for (int t = 0; t < RN; ++t) {
                const __m256 p = i16_pairs_to_ps(_mm256_sub_epi16(_mm256_maddubs_epi16(qx, qy[t]), off[t]));
                acc[r][t] = _mm256_fmadd_ps(_mm256_broadcast_ss(&sc[4 * r + t]), p, acc[r][t]);
            }
        }
    }
    EG_UNROLL for (int r = 0; r < RM; ++r)
        EG_UNROLL for (int t = 0; t < RN; ++t) y[t * ys + r] = hsum_ps(acc[r][t]);
}

// ---- Q5_0 x Q8_0: (q - 16) * y = maddubs(q, y) - maddubs(16, y), q in 0..31 -----------------------
// The one-row kernel forms each pair sum with the sign trick instead; both are the exact integer
// (no int16 saturation: 2 * 31 * 127 < 32767), so the floats that follow are the same.
template <int RM, int RN, bool U>
void q5_0_tile(int64_t nb, float* y, int64_t ys, const uint8_t* w, size_t ws, const uint8_t* wu, const uint8_t* a,
               size_t as) {
    __m256 acc[RM][RN];
    EG_UNROLL for (int r = 0; r < RM; ++r)
        EG_UNROLL for (int t = 0; t < RN; ++t) acc[r][t] = _mm256_setzero_ps();
    const __m256i sixteen = _mm256_set1_epi8(16);
    for (int64_t i = 0; i < nb; ++i) {
        __m256i qy[RN], off[RN];
        alignas(32) float sc[16];
        scale_products<RM, RN, block_q5_0, block_q8_0>(w, ws, a, as, i, sc);
        EG_UNROLL for (int t = 0; t < RN; ++t) {
            qy[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks_at<block_q8_0>(a, as, t)[i].qs));
            off[t] = _mm256_maddubs_epi16(sixteen, qy[t]);
        }
        EG_UNROLL for (int r = 0; r < RM; ++r) {
            const __m256i qx = unpacked<U>(blocks_at<block_q5_0>(w, ws, r)[i], wu, nb, r, i);
            EG_UNROLL for (int t = 0; t < RN; ++t) {
                const __m256 p = i16_pairs_to_ps(_mm256_sub_epi16(_mm256_maddubs_epi16(qx, qy[t]), off[t]));
                acc[r][t] = _mm256_fmadd_ps(_mm256_broadcast_ss(&sc[4 * r + t]), p, acc[r][t]);
            }
        }
    }
    EG_UNROLL for (int r = 0; r < RM; ++r)
        EG_UNROLL for (int t = 0; t < RN; ++t) y[t * ys + r] = hsum_ps(acc[r][t]);
}

// ---- Q4_1 x Q8_1: d*q*y + m*s, the m*s terms summed apart in floats (mul, then add) ---------------
template <int RM, int RN, bool U>
void q4_1_tile(int64_t nb, float* y, int64_t ys, const uint8_t* w, size_t ws, const uint8_t* wu, const uint8_t* a,
               size_t as) {
    static_assert(RN <= 4, "the offset sums hold up to four tokens per row");
    __m256 acc[RM][RN];
    __m128 summs[RM];
    EG_UNROLL for (int r = 0; r < RM; ++r) {
        summs[r] = _mm_setzero_ps();
        EG_UNROLL for (int t = 0; t < RN; ++t) acc[r][t] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < nb; ++i) {
        __m256i qy[RN];
        alignas(32) float sc[16];
        scale_products<RM, RN, block_q4_1, block_q8_1>(w, ws, a, as, i, sc);
        // The tokens' block sums gathered in a register and converted at once: a float array
        // written lane by lane and read back as one vector stalls on store forwarding (with 1-2
        // tokens per tile that stall was most of the product's time).
        uint16_t hs[4] = {0, 0, 0, 0};
        EG_UNROLL for (int t = 0; t < RN; ++t) {
            const block_q8_1& b = blocks_at<block_q8_1>(a, as, t)[i];
            qy[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
            hs[t] = b.s;
        }
        const __m128 syv = _mm_cvtph_ps(_mm_set_epi16(0, 0, 0, 0, hs[3], hs[2], hs[1], hs[0]));
        EG_UNROLL for (int r = 0; r < RM; ++r) {
            const block_q4_1& b = blocks_at<block_q4_1>(w, ws, r)[i];
            const __m256i qx = unpacked<U>(b, wu, nb, r, i);
            EG_UNROLL for (int t = 0; t < RN; ++t) {
                const __m256 p = i16_pairs_to_ps(_mm256_maddubs_epi16(qx, qy[t]));
                acc[r][t] = _mm256_fmadd_ps(_mm256_broadcast_ss(&sc[4 * r + t]), p, acc[r][t]);
            }
            summs[r] = _mm_add_ps(summs[r], _mm_mul_ps(_mm_set1_ps(h2f(b.m)), syv));
        }
    }
    EG_UNROLL for (int r = 0; r < RM; ++r) {
        alignas(16) float s[4];
        _mm_store_ps(s, summs[r]);
        EG_UNROLL for (int t = 0; t < RN; ++t) y[t * ys + r] = hsum_ps(acc[r][t]) + s[t];
    }
}

using tile_fn = void (*)(int64_t, float*, int64_t, const uint8_t*, size_t, const uint8_t*, const uint8_t*, size_t);

// Tile shape: 4 rows x 4 tokens measured fastest here (Zen 3) for all three formats, though its
// 16 accumulators spill a little; 4x3, 3x4, 2x4 were within 5-15%.
constexpr int kRM = 4, kRN = 4;

struct TileSet {
    tile_fn f[kRM + 1][kRN + 1];  // [rows][tokens], 1-based: the full tile and every edge tile
};

template <template <int, int> class K, int RM>
void fill_tile_row(TileSet& s) {
    s.f[RM][1] = K<RM, 1>::run;
    s.f[RM][2] = K<RM, 2>::run;
    s.f[RM][3] = K<RM, 3>::run;
    s.f[RM][4] = K<RM, 4>::run;
}

template <template <int, int> class K>
TileSet make_tiles() {
    TileSet s{};
    fill_tile_row<K, 1>(s);
    fill_tile_row<K, 2>(s);
    fill_tile_row<K, 3>(s);
    fill_tile_row<K, 4>(s);
    return s;
}

#define EG_TILE_KERNEL(NAME, FN, U)                                                                    \
    template <int RM, int RN>                                                                          \
    struct NAME {                                                                                      \
        static void run(int64_t nb, float* y, int64_t ys, const uint8_t* w, size_t ws, const uint8_t* wu, \
                        const uint8_t* a, size_t as) {                                                 \
            FN<RM, RN, U>(nb, y, ys, w, ws, wu, a, as);                                                \
        }                                                                                              \
    };
EG_TILE_KERNEL(Q8_0Tile, q8_0_tile, false)
EG_TILE_KERNEL(Q4_0Tile, q4_0_tile, false)
EG_TILE_KERNEL(Q4_0TileU, q4_0_tile, true)
EG_TILE_KERNEL(Q5_0Tile, q5_0_tile, false)
EG_TILE_KERNEL(Q5_0TileU, q5_0_tile, true)
EG_TILE_KERNEL(Q4_1Tile, q4_1_tile, false)
EG_TILE_KERNEL(Q4_1TileU, q4_1_tile, true)
#undef EG_TILE_KERNEL

// Unpacking a call's rows once pays when enough tokens share them and they (nearly) fit in L1:
// 28 KiB covers 16 rows of 1536 values (a down projection), measured +10-40% on that shape.
constexpr int64_t kUnpackBytes = 28 * 1024;
constexpr int64_t kUnpackMinTokens = 8;

// Tokens outer, rows inner: the (small) weight tile stays in L1 while token groups pass over it.
// BlockW is the weight block for formats that can be unpacked (Q4_0, Q4_1, Q5_0), void otherwise.
template <typename BlockW, template <int, int> class K, template <int, int> class KU>
void gemm_blocks(int64_t n, float* y, int64_t y_stride, const void* w, size_t w_stride, int64_t nr,
                 const void* act, size_t act_stride, int64_t nt) {
    static const TileSet tiles = make_tiles<K>(), tiles_u = make_tiles<KU>();
    const int64_t nb = n / 32;
    const auto* wb = static_cast<const uint8_t*>(w);
    const auto* ab = static_cast<const uint8_t*>(act);
    alignas(32) uint8_t wu[kUnpackBytes];
    bool use_u = false;
    if constexpr (!std::is_void_v<BlockW>) {
        use_u = nt >= kUnpackMinTokens && nr * nb * 32 <= kUnpackBytes;
        for (int64_t r = 0; use_u && r < nr; ++r)
            for (int64_t i = 0; i < nb; ++i)
                _mm256_store_si256(reinterpret_cast<__m256i*>(wu + (r * nb + i) * 32),
                                   block_bytes(blocks_at<BlockW>(wb, w_stride, r)[i]));
    }
    const TileSet& tl = use_u ? tiles_u : tiles;
    for (int64_t t = 0; t < nt; t += kRN) {
        const int rn = static_cast<int>(nt - t < kRN ? nt - t : kRN);
        for (int64_t r = 0; r < nr; r += kRM) {
            const int rm = static_cast<int>(nr - r < kRM ? nr - r : kRM);
            tl.f[rm][rn](nb, y + t * y_stride + r, y_stride, wb + r * w_stride, w_stride, wu + r * nb * 32,
                         ab + t * act_stride, act_stride);
        }
    }
}

}  // namespace

void fill_table_avx2_gemm(KernelTable& t) {
    t.gemm[static_cast<int>(QType::Q8_0)] = gemm_blocks<void, Q8_0Tile, Q8_0Tile>;
    t.gemm[static_cast<int>(QType::Q4_0)] = gemm_blocks<block_q4_0, Q4_0Tile, Q4_0TileU>;
    t.gemm[static_cast<int>(QType::Q4_1)] = gemm_blocks<block_q4_1, Q4_1Tile, Q4_1TileU>;
    t.gemm[static_cast<int>(QType::Q5_0)] = gemm_blocks<block_q5_0, Q5_0Tile, Q5_0TileU>;
}

}  // namespace eg

#undef EG_UNROLL

#include "avx2_target_end.h"

#else  // not x86-64

namespace eg {
void fill_table_avx2_gemm(KernelTable&) {}
}  // namespace eg

#endif
