// fuzz_kv_cache — random sequences of KV cache operations (append, fork/share, truncate, context
// shift, clear) on random layouts (f16/f32/q8_0, global and sliding-window layer groups, several
// sequences), each checked against a plain model of what every sequence must hold: its length,
// and for every stored position the row written for exactly that token of exactly that sequence
// (so a row leaking between sequences, a lost copy-on-write or a stale ring slot is caught).
// Rows are exact (kv_model.h's exact_row_value: one byte pattern per token, layer and K/V in every
// cache type), so after every operation every stored row of every sequence is checked whole by
// a fingerprint of its bytes, read through the attention's view, together with the block
// accounting (reference counts equal table references, free blocks unreferenced); at the end
// every row is also read back through read_row and compared value by value; then clearing every
// sequence must free every block.
// A refused operation (eg::Error, KVCacheFullError) must leave the model state unchanged.
#include "kv_model.h"

using fuzz::Harness;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    // Smaller than kv_import's layouts, every path still reached: up to 3 layers (a global group
    // and two windows), 128 positions (several blocks of 32 or 64 for f16, up to 128 of 1 token
    // otherwise), windows up to 64 and chunks up to 32 tokens (rings that wrap)
    fuzz::RandomLayout rl;
    rl.max_layers = 3;
    rl.max_window = 64;
    rl.max_tokens = 128;
    rl.max_max_batch = 32;
    if (!rl.read(in)) return 0;
    const eg::KVLayout& lay = rl.lay;
    const eg::KVShape& shape = rl.shape;
    const int32_t n_seq = rl.n_seq, max_batch = rl.max_batch, n_layer = static_cast<int32_t>(shape.layer_windows.size());
    eg::KVCache cache(lay);
    Harness h{cache, lay, std::vector<std::vector<int64_t>>(n_seq), 1, 0.0f, true, {}, {}, {}};
    const int32_t n_head_kv = shape.n_embd_kv / shape.head_dim;
    const std::vector<eg::RopeParams> rope(n_layer);  // n_rot 0: keys keep their values when moved
    const auto& table = fuzz::table;

    for (int op = 0; op < 48 && in.remaining_bytes() > 0; ++op) {
        const int kind = in.ConsumeIntegralInRange<int>(0, 5);
        const int32_t seq = in.ConsumeIntegralInRange<int32_t>(0, n_seq - 1);
        auto& m = h.model[seq];
        const int64_t len = static_cast<int64_t>(m.size());
        // Mostly plausible arguments, sometimes anything (negative, huge) to test the refusals.
        auto arg = [&](int64_t hi) {
            return in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(0, std::max<int64_t>(hi, 0))
                                    : in.ConsumeIntegral<int64_t>();
        };
        try {
            switch (kind) {
                case 0:
                case 1: h.append(seq, arg(2 * max_batch)); break;
                case 2: {  // truncate
                    const int64_t p = arg(len);
                    const bool must_work = p == 0 || (p >= cache.seq_resume_min(seq) && p <= len);
                    try {
                        cache.seq_truncate(seq, p);
                    } catch (const eg::Error&) {
                        FUZZ_REQUIRE(!must_work);
                        throw;
                    }
                    m.resize(static_cast<size_t>(p));
                    break;
                }
                case 3: {  // fork (share)
                    const int32_t dst = in.ConsumeIntegralInRange<int32_t>(0, n_seq - 1);
                    const int64_t n = arg(len);
                    cache.seq_fork(seq, dst, n);
                    FUZZ_REQUIRE(dst != seq && n >= 0 && n <= len);
                    h.model[dst].assign(m.begin(), m.begin() + n);
                    break;
                }
                case 4: {  // context shift
                    const int64_t keep = arg(len), discard = arg(len);
                    cache.seq_shift(seq, keep, discard, rope, n_head_kv, table());
                    FUZZ_REQUIRE(keep >= 0 && discard >= 0 && keep <= len && discard <= len - keep);
                    m.erase(m.begin() + keep, m.begin() + keep + discard);
                    break;
                }
                case 5: cache.seq_clear(seq); m.clear(); break;
            }
        } catch (const eg::Error&) {
            // refused (KVCacheFullError included): the state must be the one before the call
        }
        // every sequence, not only the touched ones: a write through a lost copy-on-write lands
        // in another sequence
        for (int32_t s = 0; s < n_seq; ++s) h.check_fingerprints(s);
        h.check_blocks();
    }
    h.check_all();
    for (int32_t s = 0; s < n_seq; ++s) cache.seq_clear(s);
    for (int gi = 0; gi < cache.n_groups(); ++gi) FUZZ_REQUIRE(cache.n_free_blocks(gi) == lay.groups[gi].n_blocks);
    return 0;
}
