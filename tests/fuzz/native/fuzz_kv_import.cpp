// fuzz_kv_import — KVCache::seq_import (native/kv_cache_io.cpp), the reader of a prompt-cache
// file's KV payload, on arbitrary bytes. The sha256 around the payload is a checksum, not a
// signature: whoever writes the file chooses these bytes.
//
// A random layout (kv_model.h), a few sequences filled and shared through the plain model of
// fuzz_kv_cache, then one import into a random sequence of either the raw remaining input or a
// payload shaped like seq_export's (fuzzed length and window starts, a size off by a fuzzed amount,
// block bytes cycled from the input). Checked: a refused import (eg::Error, KVCacheFullError)
// changes nothing; an accepted one gives the length it declares, exports back to exactly the
// bytes imported, every row of it reads inside the cache, other sequences keep their rows, the
// block accounting holds, and the imported sequence keeps working (append, share, clear); at the
// end clearing every sequence frees every block.
#include <cstring>

#include "kv_model.h"

using fuzz::Harness;

namespace {

// seq_export's layout for this cache: int64 length, int64 lowest position per group, the blocks.
std::vector<uint8_t> shaped_payload(FuzzedDataProvider& in, const eg::KVLayout& lay, int n_groups) {
    const int32_t B = lay.block_tokens;
    const int64_t len = in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(0, 300) : in.ConsumeIntegral<int64_t>();
    std::vector<int64_t> lo(n_groups);
    size_t want = sizeof(int64_t) * (1 + n_groups);
    for (int gi = 0; gi < n_groups; ++gi) {
        const bool ring = lay.groups[gi].ring_blocks > 0;
        lo[gi] = in.ConsumeBool() ? (ring && len > 0 ? in.ConsumeIntegralInRange<int64_t>(0, std::max<int64_t>(len - 1, 0)) / B * B : 0)
                                  : in.ConsumeIntegral<int64_t>();
        if (len >= 0 && len <= 4096 && lo[gi] >= 0 && lo[gi] <= len) {
            const int64_t blocks = (len == 0 ? 0 : (len - 1) / B + 1) - lo[gi] / B;
            want += static_cast<size_t>(std::max<int64_t>(blocks, 0)) * lay.groups[gi].block_bytes;
        }
    }
    const int64_t off = in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<int64_t>(-64, 64);
    const size_t size = static_cast<size_t>(std::clamp<int64_t>(static_cast<int64_t>(want) + off, 0, int64_t(1) << 26));
    std::vector<uint8_t> out(size);
    if (size >= sizeof len) std::memcpy(out.data(), &len, sizeof len);
    for (int gi = 0; gi < n_groups && sizeof(int64_t) * (2 + gi) <= size; ++gi)
        std::memcpy(out.data() + sizeof(int64_t) * (1 + gi), &lo[gi], sizeof(int64_t));
    const std::vector<uint8_t> fill = in.ConsumeRemainingBytes<uint8_t>();
    for (size_t i = sizeof(int64_t) * (1 + n_groups); i < size; ++i) out[i] = fill.empty() ? 0x3c : fill[i % fill.size()];
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    fuzz::RandomLayout rl;
    if (!rl.read(in)) return 0;
    const eg::KVLayout& lay = rl.lay;
    eg::KVCache cache(lay);
    Harness h{cache, lay, std::vector<std::vector<int64_t>>(rl.n_seq), 1, rl.type == eg::QType::Q8_0 ? 0.3f : 0.0f};
    const int n_groups = cache.n_groups();

    // what the other sequences hold: a few appends and shares
    for (int op = in.ConsumeIntegralInRange<int>(0, 4); op > 0; --op) {
        const int32_t seq = in.ConsumeIntegralInRange<int32_t>(0, rl.n_seq - 1);
        try {
            if (in.ConsumeBool()) {
                h.append(seq, in.ConsumeIntegralInRange<int64_t>(1, 2 * rl.max_batch));
            } else {
                const int32_t dst = in.ConsumeIntegralInRange<int32_t>(0, rl.n_seq - 1);
                const int64_t n = static_cast<int64_t>(h.model[seq].size());
                cache.seq_fork(seq, dst, n);
                h.model[dst] = h.model[seq];
            }
        } catch (const eg::Error&) {
        }
    }
    h.check_all();

    const int32_t target = in.ConsumeIntegralInRange<int32_t>(0, rl.n_seq - 1);
    const std::vector<uint8_t> bytes = in.ConsumeBool() ? shaped_payload(in, lay, n_groups) : in.ConsumeRemainingBytes<uint8_t>();
    std::vector<int64_t> free_before(n_groups);
    for (int gi = 0; gi < n_groups; ++gi) free_before[gi] = cache.n_free_blocks(gi);
    bool imported = false;
    try {
        cache.seq_import(target, bytes.data(), bytes.size());
        imported = true;
    } catch (const eg::Error&) {  // KVCacheFullError included: nothing may have changed
        for (int gi = 0; gi < n_groups; ++gi) FUZZ_REQUIRE(cache.n_free_blocks(gi) == free_before[gi]);
    }
    for (int32_t s = 0; s < rl.n_seq; ++s)
        if (s != target || !imported) h.check_rows(s);
    h.check_blocks();
    if (!imported) {
        h.check_all();
        return 0;
    }

    int64_t len = 0;
    std::memcpy(&len, bytes.data(), sizeof len);
    FUZZ_REQUIRE(cache.seq_len(target) == len);
    FUZZ_REQUIRE(cache.seq_export(target) == bytes);
    std::vector<float> row(lay.shape.n_embd_kv);
    for (int32_t l = 0; l < cache.n_layer(); ++l) {
        const eg::KVLayerView v = cache.view(l, target);
        FUZZ_REQUIRE(v.lo >= 0 && v.lo <= len && (v.window > 0 || v.lo == 0));
        for (int64_t p = v.lo; p < len; ++p)
            for (int kv = 0; kv < 2; ++kv) cache.read_row(l, target, p, kv, row.data(), fuzz::table());
    }
    // the imported sequence keeps working: rows appended after it read back; sharing and clearing it
    // keeps the accounting
    h.model[target].assign(static_cast<size_t>(len), -1);  // imported rows: unknown values, not checked
    const int64_t n_new = in.ConsumeIntegralInRange<int64_t>(0, rl.max_batch);
    try {
        h.append(target, n_new);
        for (int32_t l = 0; l < cache.n_layer(); ++l)
            for (int64_t p = std::max(len, cache.view(l, target).lo); p < len + n_new; ++p)
                for (int kv = 0; kv < 2; ++kv) {
                    cache.read_row(l, target, p, kv, row.data(), fuzz::table());
                    for (int32_t d = 0; d < lay.shape.n_embd_kv; ++d)
                        FUZZ_REQUIRE(std::fabs(row[d] - fuzz::row_value(h.model[target][p], l, kv, d)) <= h.tol);
                }
    } catch (const eg::Error&) {
    }
    h.check_blocks();
    const int32_t dst = (target + 1) % rl.n_seq;
    if (dst != target) {
        try {
            cache.seq_fork(target, dst, cache.seq_len(target));
            h.model[dst] = h.model[target];
        } catch (const eg::Error&) {
        }
        h.check_blocks();
    }
    for (int32_t s = 0; s < rl.n_seq; ++s) cache.seq_clear(s);
    for (int gi = 0; gi < n_groups; ++gi) FUZZ_REQUIRE(cache.n_free_blocks(gi) == lay.groups[gi].n_blocks);
    return 0;
}
