// repack.h — weights repacked once at load into row-interleaved groups: the fast decode path.
//
// A weight's rows are stored as groups of kPackRows (8) rows. Within a group, column block b is
// one record: the 8 rows' f16 scales side by side (and, for Q4_1, their 8 mins), then the 8 rows'
// quants interleaved four bytes at a time, so one 256-bit load holds the same four bytes of every
// row and one broadcast activation word serves all 8 (lane i of every register is row i):
//   Q4_0: d[8]         | 4 x 32 bytes: load k, lane i = row i's qs[4k..4k+3]   (144 bytes / record)
//   Q4_1: d[8] | m[8]  | the same                                              (160 bytes)
//   Q8_0: d[8]         | 8 x 32 bytes: load k, lane i = row i's qs[4k..4k+3]   (272 bytes)
// Q4's low nibbles of load k are columns 4k..4k+3 and its high nibbles columns 16+4k..16+4k+3,
// exactly as in the GGUF block, so packing only moves bytes. A group's records follow each other
// (one sequential stream per group), and groups follow each other.
//
// The products on this layout (packed_dot_fn, repack_avx2.cpp) perform ggml's x86 float
// operations for 8 rows at once (its 8 int32 lanes per block are registers here, its 8 float
// lanes are 8 accumulators), so they are bit-identical to vec_dot's and to llama.cpp's x86 decode;
// tests/kernels/test_packed.py checks it. The CPU backend repacks Q4_0 / Q4_1 / Q8_0 weights at
// load (the default) unless told to compute with the file's rows (EDGEGEN_EXACT_KERNELS=1, or
// Model(exact=True)): the same values, without the packing's load time.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "common.h"
#include "kernels.h"
#include "threadpool.h"

namespace eg {

constexpr int64_t kPackRows = 8;

// Bytes of one record (8 rows x one 32-column block) of type t; 0 when t is not packed.
size_t packed_record_bytes(QType t);

// A repacked weight, owned (the mapped file's pages are not needed by the products after this).
struct PackedRows {
    QType type = QType::F32;
    int64_t rows = 0, cols = 0;
    size_t group_bytes = 0;  // one group of 8 rows: (cols / 32) records
    std::unique_ptr<uint8_t, decltype(&std::free)> data{nullptr, &std::free};
    const uint8_t* group(int64_t g) const { return data.get() + g * group_bytes; }
};

// Whether `kt` has products on the packed layout for type t and the matrix can be packed
// (rows a multiple of 8).
bool can_pack(const KernelTable& kt, QType t, int64_t rows, int64_t cols);

// Repacks `rows` rows of `cols` elements (rows `stride` bytes apart), on `pool`'s threads when
// given and the matrix is large. Precondition: can_pack.
std::shared_ptr<const PackedRows> pack_rows(QType t, const uint8_t* w, size_t stride, int64_t rows, int64_t cols,
                                            ThreadPool* pool = nullptr);

// out[t * y_stride + r] for rows r in [r0, r1) and tokens t < n_tok: the same values whatever
// the row range or token count (each row's arithmetic is fixed), so prefill and decode agree.
// act: n_tok activation rows (the weight type's vec_dot_type), act_stride bytes apart.
void packed_product(const KernelTable& kt, const PackedRows& p, int64_t r0, int64_t r1, const uint8_t* act,
                    size_t act_stride, int64_t n_tok, float* y, int64_t y_stride);

// Drops the process's resident copy of the whole pages inside [p, p + n) of a read-only file
// mapping (they are re-read from the page cache if touched again): after packing, the mapped
// rows no longer count in RSS. Only for memory mapped from a file.
void release_mapped_pages(const void* p, size_t n);

}  // namespace eg
