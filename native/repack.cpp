// repack.cpp — packing weights into row-interleaved groups (repack.h) and the driver of the
// products on them. Plain C++: the ISA-specific products are in the kernel table.
#include "repack.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <type_traits>

namespace eg {

namespace {

// Bytes of the record header (scales, then mins for Q4_1) and of the quants of one row's block.
struct RecordShape {
    size_t header, quants;
};

RecordShape record_shape(QType t) {
    switch (t) {
        case QType::Q4_0: return {kPackRows * sizeof(fp16_t), QK4_0 / 2};
        case QType::Q4_1: return {2 * kPackRows * sizeof(fp16_t), QK4_1 / 2};
        case QType::Q8_0: return {kPackRows * sizeof(fp16_t), QK8_0};
        default: return {0, 0};
    }
}

// One record: 8 rows' block b. `row(i)` points at row i's block b (its GGUF bytes).
template <typename Block>
void pack_record(const Block* const* rows, uint8_t* dst) {
    constexpr size_t kQuants = sizeof(rows[0]->qs);
    auto* d = reinterpret_cast<fp16_t*>(dst);
    for (int64_t i = 0; i < kPackRows; ++i) d[i] = rows[i]->d;
    uint8_t* q = dst + kPackRows * sizeof(fp16_t);
    if constexpr (std::is_same_v<Block, block_q4_1>) {
        auto* m = reinterpret_cast<fp16_t*>(q);
        for (int64_t i = 0; i < kPackRows; ++i) m[i] = rows[i]->m;
        q += kPackRows * sizeof(fp16_t);
    }
    for (size_t k = 0; k < kQuants / 4; ++k)  // load k, lane i: row i's bytes 4k..4k+3
        for (int64_t i = 0; i < kPackRows; ++i) std::memcpy(q + 32 * k + 4 * i, rows[i]->qs + 4 * k, 4);
}

template <typename Block>
void pack_groups(const uint8_t* w, size_t stride, int64_t g0, int64_t g1, int64_t nb, size_t record, uint8_t* out) {
    const Block* rp[kPackRows];
    for (int64_t g = g0; g < g1; ++g) {
        uint8_t* dst = out + g * nb * record;
        for (int64_t b = 0; b < nb; ++b) {
            for (int64_t i = 0; i < kPackRows; ++i)
                rp[i] = reinterpret_cast<const Block*>(w + (g * kPackRows + i) * stride) + b;
            pack_record(rp, dst + b * record);
        }
    }
}

}  // namespace

size_t packed_record_bytes(QType t) {
    const RecordShape s = record_shape(t);
    return s.header + kPackRows * s.quants;
}

bool can_pack(const KernelTable& kt, QType t, int64_t rows, int64_t cols) {
    return packed_record_bytes(t) > 0 && kt.packed_dot[static_cast<int>(t)] != nullptr && rows > 0 &&
           rows % kPackRows == 0 && cols > 0 && cols % 32 == 0;
}

std::shared_ptr<const PackedRows> pack_rows(QType t, const uint8_t* w, size_t stride, int64_t rows, int64_t cols,
                                            ThreadPool* pool) {
    EG_CHECK(packed_record_bytes(t) > 0 && rows % kPackRows == 0 && cols % 32 == 0, "matrix cannot be packed");
    auto p = std::make_shared<PackedRows>();
    p->type = t;
    p->rows = rows;
    p->cols = cols;
    const int64_t nb = cols / 32;
    const size_t record = packed_record_bytes(t);
    p->group_bytes = static_cast<size_t>(nb) * record;
    const size_t total = p->group_bytes * static_cast<size_t>(rows / kPackRows);
    // 64-byte aligned (a cache line), rounded up as aligned_alloc requires
    void* mem = std::aligned_alloc(64, (total + 63) / 64 * 64);
    if (!mem) throw std::bad_alloc();
    p->data.reset(static_cast<uint8_t*>(mem));
    uint8_t* out = p->data.get();
    auto pack = [&](int ith, int nth) {  // first touches of the mapped and the new pages dominate
        int64_t g0, g1;
        split_range(rows / kPackRows, ith, nth, 1, &g0, &g1);
        switch (t) {
            case QType::Q4_0: pack_groups<block_q4_0>(w, stride, g0, g1, nb, record, out); break;
            case QType::Q4_1: pack_groups<block_q4_1>(w, stride, g0, g1, nb, record, out); break;
            case QType::Q8_0: pack_groups<block_q8_0>(w, stride, g0, g1, nb, record, out); break;
            default: break;
        }
    };
    if (pool && total >= (size_t(1) << 20))
        pool->run(pack);
    else
        pack(0, 1);
    return p;
}

void packed_product(const KernelTable& kt, const PackedRows& p, int64_t r0, int64_t r1, const uint8_t* act,
                    size_t act_stride, int64_t n_tok, float* y, int64_t y_stride) {
    const packed_dot_fn dot = kt.packed_dot[static_cast<int>(p.type)];
    // From 4 tokens on: at 2-3 the unpacked copy's stores cost more than the unpacking they save
    // (measured in cache: 2 tokens ~10-20% slower per token than packed_dot, 8 tokens 3-13% faster).
    const bool few_tokens = n_tok >= 4 && n_tok <= kFewTokens;
    const packed_gemm_fn few = few_tokens ? kt.packed_gemm[static_cast<int>(p.type)] : nullptr;
    if (few) {  // a multi-sequence decode step: each group read and unpacked once for every token
        const int64_t g1 = (r1 + kPackRows - 1) / kPackRows;
        for (int64_t g = r0 / kPackRows; g < g1;) {
            const int64_t b = std::max(r0, g * kPackRows), e = std::min(r1, (g + 1) * kPackRows);
            if (e - b == kPackRows) {  // a run of whole groups
                int64_t ge = g + 1;
                while (ge < g1 && (ge + 1) * kPackRows <= r1) ++ge;
                few(p.cols, p.group(g), p.group_bytes, ge - g, act, act_stride, n_tok, y + g * kPackRows, y_stride);
                g = ge;
                continue;
            }
            float tmp[kFewTokens * kPackRows];  // a range that cuts a group: through a buffer
            few(p.cols, p.group(g), p.group_bytes, 1, act, act_stride, n_tok, tmp, kPackRows);
            for (int64_t t = 0; t < n_tok; ++t)
                for (int64_t r = b; r < e; ++r) y[t * y_stride + r] = tmp[t * kPackRows + r - g * kPackRows];
            ++g;
        }
        return;
    }
    // Decode: one pass over the range's groups. A batch: tiles of 4 groups (32 rows, a few KB)
    // stay in cache while every token passes over them.
    const int64_t tile = n_tok == 1 ? r1 - r0 : 4 * kPackRows;
    for (int64_t rt = r0; rt < r1; rt += tile) {
        const int64_t re = std::min(r1, rt + tile);
        const int64_t g0 = rt / kPackRows, g1 = (re + kPackRows - 1) / kPackRows;
        const bool aligned = rt % kPackRows == 0 && re % kPackRows == 0;
        for (int64_t t = 0; t < n_tok; ++t) {
            float* yt = y + t * y_stride;
            const uint8_t* a = act + t * act_stride;
            if (aligned) {
                dot(p.cols, p.group(g0), p.group_bytes, g1 - g0, a, yt + g0 * kPackRows);
                continue;
            }
            for (int64_t g = g0; g < g1; ++g) {  // a range that cuts a group: through a buffer
                float tmp[kPackRows];
                dot(p.cols, p.group(g), p.group_bytes, 1, a, tmp);
                const int64_t b = std::max(rt, g * kPackRows), e = std::min(re, (g + 1) * kPackRows);
                for (int64_t r = b; r < e; ++r) yt[r] = tmp[r - g * kPackRows];
            }
        }
    }
}

void release_mapped_pages(const void* p, size_t n) {
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto b = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const auto e = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
    if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);  // advice: failure changes nothing
}

}  // namespace eg
