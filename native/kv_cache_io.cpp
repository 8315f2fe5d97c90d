// kv_cache_io.cpp — KVCache::seq_export / seq_import: one sequence's blocks as bytes, so a prompt
// prefix computed once can be stored on disk and loaded at the next start (edgegen/prompt_cache.py
// adds the file header, the model and engine checks and the checksum).
//
// Layout: int64 length, then per group int64 lo (lowest stored position; 0 for global groups),
// then per group the blocks of logical blocks lo/B .. (length-1)/B, each block_bytes long, as the
// cache stores them (f16 transposed or q8_0 rows): no conversion, so a round trip is exact.
#include <cstring>
#include <string>

#include "kv_cache.h"

namespace eg {

namespace {

int64_t first_block(int64_t lo, int32_t B) { return lo / B; }
int64_t end_block(int64_t len, int32_t B) { return len == 0 ? 0 : (len - 1) / B + 1; }

}  // namespace

std::vector<uint8_t> KVCache::seq_export(int32_t seq) const {
    check_seq(seq);
    EG_CHECK(reserved_[seq] == 0, "cannot export a sequence in the middle of a step");
    const int32_t B = lay_.block_tokens;
    const int64_t len = lens_[seq];
    size_t size = sizeof(int64_t) * (1 + n_groups());
    for (int gi = 0; gi < n_groups(); ++gi)
        size += static_cast<size_t>(end_block(len, B) - first_block(groups_[gi].lo[seq], B)) * g(gi).block_bytes;
    std::vector<uint8_t> out(size);
    uint8_t* p = out.data();
    std::memcpy(p, &len, sizeof len);
    p += sizeof len;
    for (int gi = 0; gi < n_groups(); ++gi) {
        const int64_t lo = groups_[gi].lo[seq];
        std::memcpy(p, &lo, sizeof lo);
        p += sizeof lo;
    }
    for (int gi = 0; gi < n_groups(); ++gi) {
        const GroupState& st = groups_[gi];
        const int32_t R = g(gi).ring_blocks;
        for (int64_t lb = first_block(st.lo[seq], B); lb < end_block(len, B); ++lb) {
            const int32_t b = st.tables[seq][static_cast<size_t>(R ? lb % R : lb)];
            std::memcpy(p, block_ptr(gi, b, 0, 0), g(gi).block_bytes);
            p += g(gi).block_bytes;
        }
    }
    return out;
}

void KVCache::seq_import(int32_t seq, const uint8_t* data, size_t size) {
    check_seq(seq);
    const int32_t B = lay_.block_tokens;
    const size_t head = sizeof(int64_t) * (1 + n_groups());
    EG_CHECK(size >= head, "KV data too short for this cache's layout");
    int64_t len = 0;
    std::memcpy(&len, data, sizeof len);
    std::vector<int64_t> lo(n_groups());
    std::memcpy(lo.data(), data + sizeof len, sizeof(int64_t) * n_groups());
    EG_CHECK(len >= 0 && len <= int64_t(1) << 40, "KV data has an invalid length");
    size_t want = head;
    std::vector<int64_t> need(n_groups());
    for (int gi = 0; gi < n_groups(); ++gi) {
        const int32_t R = g(gi).ring_blocks;
        EG_CHECK(lo[gi] >= 0 && lo[gi] % B == 0 && (len == 0 ? lo[gi] == 0 : lo[gi] < len) && (R || lo[gi] == 0),
                 "KV data has an invalid window start");
        need[gi] = end_block(len, B) - first_block(lo[gi], B);
        EG_CHECK(!R || need[gi] <= R, "KV data holds more of a window than this cache's ring");
        want += static_cast<size_t>(need[gi]) * g(gi).block_bytes;
    }
    EG_CHECK(size == want, "KV data size does not match this cache's layout (" + std::to_string(size) + " bytes, expected " +
                               std::to_string(want) + ")");
    for (int gi = 0; gi < n_groups(); ++gi) {
        // room: the free blocks and those only seq holds (its old contents are dropped); checked
        // before anything changes, so a refusal leaves seq as it was
        int64_t room = n_free_blocks(gi);
        for (const int32_t b : groups_[gi].tables[seq]) room += b >= 0 && groups_[gi].refs[static_cast<size_t>(b)] == 1;
        if (need[gi] > room)
            throw KVCacheFullError("KV cache full: loading " + std::to_string(len) + " cached tokens needs " +
                                   std::to_string(need[gi]) + " blocks but " + std::to_string(room) + " are free");
    }
    seq_truncate(seq, 0);
    const uint8_t* p = data + head;
    for (int gi = 0; gi < n_groups(); ++gi) {
        GroupState& st = groups_[gi];
        const int32_t R = g(gi).ring_blocks;
        auto& table = st.tables[seq];
        for (int64_t lb = first_block(lo[gi], B); lb < end_block(len, B); ++lb) {
            const int32_t b = alloc_block(gi);
            std::memcpy(block_ptr(gi, b, 0, 0), p, g(gi).block_bytes);
            p += g(gi).block_bytes;
            if (R)
                table[static_cast<size_t>(lb % R)] = b;
            else
                table.push_back(b);
        }
        st.lo[seq] = lo[gi];
    }
    lens_[seq] = len;
}

}  // namespace eg
