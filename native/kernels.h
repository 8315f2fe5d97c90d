// kernels.h — the dispatch table every product goes through.
//
// One KernelTable per ISA. It is filled in layers: the scalar reference first, then each SIMD
// file overwrites the entries it implements (so a missing SIMD kernel silently falls back to
// the reference, never to nothing). The forward pass calls only through the table: this is
// also the seam where an accelerator provider would slot in.
#pragma once

#include "common.h"

namespace eg {

// Dot products of `nr` consecutive weight rows with one activation row.
//   n:          elements per row (a multiple of the weight type's block size)
//   out:        nr floats; out[r] = dot(row r, act)
//   w:          first weight row, in the weight type; rows are `row_stride` bytes apart
//   act:        the activation row, already converted to the weight type's vec_dot_type
// Preconditions (checked by callers, not here): n % block_size == 0, nr >= 1.
using vec_dot_fn = void (*)(int64_t n, float* out, const void* w, size_t row_stride, int64_t nr,
                            const void* act);

// Products of `nr` weight rows with `nt` activation rows (a batch of tokens):
//   y[t * y_stride + r] = dot(row r, activation row t), activation rows `act_stride` bytes apart.
// Bit-identical to calling vec_dot once per token; only the memory traffic differs.
using gemm_fn = void (*)(int64_t n, float* y, int64_t y_stride, const void* w, size_t w_stride, int64_t nr,
                         const void* act, size_t act_stride, int64_t nt);

// Convert n floats to one row of a type (n % block_size == 0).
using quantize_row_fn = void (*)(const float* x, void* y, int64_t n);
// Convert one row of a type back to n floats.
using dequantize_row_fn = void (*)(const void* x, float* y, int64_t n);

// y[0..n) += s * row, with `row` one row of a type (n % block_size == 0): the attention's
// probability-weighted sum over cached V rows.
using vec_mad_fn = void (*)(int64_t n, float* y, const void* row, float s);

// gate[i] = silu(gate[i]) * up[i] (the SwiGLU of the feed-forward block).
using silu_mul_fn = void (*)(int64_t n, float* gate, const float* up);
// gate[i] = gelu_tanh(gate[i]) * up[i] (GeGLU: Gemma's feed-forward block), as llama.cpp's CPU
// ggml_vec_geglu_f32 computes it: 0 for x <= -10, x * up for x >= 10, otherwise the f16 table
// below looked up at f16(x), widened to float, times up.
using gelu_mul_fn = void (*)(int64_t n, float* gate, const float* up);
// In-place softmax of n scores.
using softmax_fn = void (*)(int64_t n, float* x);
// x[i] = the f16 value nearest x[i] (round half to even), kept as a float.
using round_f16_fn = void (*)(int64_t n, float* x);

// Dot product of two f16 vectors of 32 * n_chunks values, in ggml's order (four 8-lane float
// accumulators, then its AVX2 reduction), so attention scores match llama.cpp's. Chunk c of x
// starts at bases[c] + offset bytes (K rows, or V^T rows spread over cache blocks); y is contiguous.
using dot_f16_chunks_fn = float (*)(int64_t n_chunks, const uint8_t* const* bases, size_t offset, const fp16_t* y);
// The same dot product for many vectors at once (attention over a whole cache block), each
// result bit-identical to dot_f16_chunks':
//   rows: out[j] = dot(x_j, y), x_j the 32 * n_chunks contiguous values at base + j * row_stride
//         (the keys of one cache block);
//   cols: out[k] = dot_f16_chunks(n_chunks, bases, offset0 + k * step, y) (V^T rows), with y
//         given as floats that are exactly f16 values (the rounded attention probabilities).
using dot_f16_rows_fn = void (*)(int64_t n_chunks, int64_t n_rows, const uint8_t* base, size_t row_stride,
                                 const fp16_t* y, float* out);
// Attention scores against keys stored transposed (an f16 cache block): for n_q queries and
// n_keys keys, out[i * out_stride + j] = dot(key j, query i), bit-identical to dot_f16_chunks.
// Key j's value e is the f16 at base + e * dim_stride + 2 * j; query i is hd floats (exact f16
// values) at q + i * q_stride. Keys are read in groups of eight: dim_stride must cover
// n_keys rounded up to a multiple of 8 (the extra lanes are computed and dropped).
using dot_f16t_fn = void (*)(int64_t hd, int64_t n_keys, const uint8_t* base, size_t dim_stride, int64_t n_q,
                             const float* q, size_t q_stride, float* out, size_t out_stride);
// Products on row-interleaved weights (repack.h): groups g < n_groups of 8 rows, each
// group_bytes long, against one activation row; out[8 * g + i] = row 8g + i, bit-identical to
// vec_dot on the same rows.
using packed_dot_fn = void (*)(int64_t n, const uint8_t* groups, size_t group_bytes, int64_t n_groups,
                               const void* act, float* out);
// The same products for n_tok activation rows at once (act_stride bytes apart), each group's
// weights read once for all of them: y[t * y_stride + 8 * g + i] = row 8g + i against token t,
// bit-identical to packed_dot per (row, token).
using packed_gemm_fn = void (*)(int64_t n, const uint8_t* groups, size_t group_bytes, int64_t n_groups,
                                const void* act, size_t act_stride, int64_t n_tok, float* y, int64_t y_stride);
using dot_f16_cols_fn = void (*)(int64_t n_chunks, const uint8_t* const* bases, size_t offset0, size_t step,
                                 int64_t n_out, const float* y, float* out);

// The most tokens a gemm_few kernel takes: a decode step of up to eight sequences.
constexpr int64_t kFewTokens = 8;
constexpr int64_t kFewMaxCols = 8192;  // and rows up to this length (longer ones use gemm)

struct KernelTable {
    const char* isa = "scalar";
    // Activation quantizers (float -> Q8_0 / Q8_1 / Q8_K for products). They follow ggml's x86
    // SIMD arithmetic (id = 127/amax, round half to even) rather than the weight quantizers'
    // reference arithmetic, so products match llama.cpp's bit for bit on x86.
    quantize_row_fn quantize_act[kTypeCount] = {};
    silu_mul_fn silu_mul = nullptr;
    gelu_mul_fn gelu_mul = nullptr;
    softmax_fn softmax = nullptr;
    round_f16_fn round_f16 = nullptr;
    dot_f16_chunks_fn dot_f16_chunks = nullptr;
    dot_f16_rows_fn dot_f16_rows = nullptr;
    dot_f16t_fn dot_f16t = nullptr;
    dot_f16_cols_fn dot_f16_cols = nullptr;
    vec_dot_fn vec_dot[kTypeCount] = {};              // indexed by weight type
    // Same products, tuned for rows already in cache (a weight tile reused by a batch of tokens):
    // results are bit-identical to vec_dot's; null means "use vec_dot".
    vec_dot_fn vec_dot_tile[kTypeCount] = {};
    // Register-tiled batch products (prefill); null means "vec_dot_tile per token".
    gemm_fn gemm[kTypeCount] = {};
    // Streaming products with a few tokens (1..kFewTokens: several sequences' decode steps),
    // bit-identical per (row, token) to vec_dot; null means "use gemm".
    gemm_fn gemm_few[kTypeCount] = {};
    vec_mad_fn vec_mad[kTypeCount] = {};              // indexed by row type (F32, F16, Q8_0)
    // The fast decode path's products on repacked weights (repack.h); null: not packed.
    packed_dot_fn packed_dot[kTypeCount] = {};
    // Their few-token products (a multi-sequence decode step); null: packed_dot once per token.
    packed_gemm_fn packed_gemm[kTypeCount] = {};
    quantize_row_fn quantize_row[kTypeCount] = {};    // indexed by destination type
    dequantize_row_fn dequantize_row[kTypeCount] = {};
};

// ---- layer fillers: each file defines its own; on the wrong architecture it does nothing ------
void fill_table_scalar(KernelTable& t);        // quant_ref.cpp: F32/F16/BF16, Q4_0, Q4_1, Q5_0, Q8_0, Q8_1
void fill_table_scalar_k(KernelTable& t);      // quant_k_ref.cpp: Q4_K, Q6_K, Q8_K
void fill_table_avx2(KernelTable& t);          // quant_avx2.cpp
void fill_table_avx2_k(KernelTable& t);        // quant_k_avx2.cpp
void fill_table_avx2_gemm(KernelTable& t);     // gemm_avx2.cpp: Q4_0, Q4_1, Q5_0, Q8_0 batches
void fill_table_avx2_gemm_k(KernelTable& t);   // gemm_k_avx2.cpp: Q4_K, Q5_K, Q6_K batches
void fill_table_avx2_multi(KernelTable& t);    // gemm_few_avx2.cpp: Q4_0, Q4_1, Q8_0, few tokens
void fill_table_avx2_packed(KernelTable& t);   // repack_avx2.cpp: Q4_0, Q4_1, Q8_0 on repacked rows
void fill_table_avx2_packed_gemm(KernelTable& t);  // gemm_packed_avx2.cpp: the same, a few tokens
void fill_table_neon(KernelTable& t);          // quant_neon.cpp (aarch64 baseline)
void fill_table_neon_dotprod(KernelTable& t);  // quant_neon_dotprod.cpp (armv8.2 dotprod)
void fill_table_scalar_act(KernelTable& t);    // activations_ref.cpp: quantize_act, silu_mul, softmax
void fill_table_avx2_act(KernelTable& t);      // activations_avx2.cpp
void fill_table_neon_act(KernelTable& t);      // activations_neon.cpp (called by fill_table_neon)

// ggml's GELU table (ggml_table_gelu_f16): entry h = f16(gelu_tanh(f32(h))) for every f16 bit
// pattern h, computed once in float with ggml's formula and the C library's tanhf
// (activations_ref.cpp). Two entries of padding follow entry 65535, so a 32-bit gather at any
// index stays inside the table. Every ISA reads this one table.
const fp16_t* gelu_f16_table();

// ---- ISA selection (cpu_isa.cpp) ---------------------------------------------------------------
// Names: "scalar", "avx2", "neon", "neon_dotprod". The active table is picked once from CPU
// features, or from EDGEGEN_FORCE_ISA; tests may switch it with set_isa().
const KernelTable& kernels();
const KernelTable& kernels_for(const std::string& isa);  // throws if the CPU lacks it
std::string active_isa();
void set_isa(const std::string& isa);
bool isa_available(const std::string& isa);
const char* const* all_isas();  // nullptr-terminated list, most capable last

}  // namespace eg
