// batch_decode.cpp — Model::step: one forward pass over several sequences (see batch_decode.h).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "transformer.h"

namespace eg {

void Model::step(KVCache& kv, SeqStep* steps, int32_t n_steps) {
    EG_CHECK(n_steps > 0, "a step needs at least one sequence");
    check_cache(kv);
    const int32_t n_vocab = spec_.hp.n_vocab;
    std::vector<int32_t> seqs(n_steps);
    std::vector<int64_t> counts(n_steps);
    int64_t rows = 0, n_sampled = 0;
    for (int32_t i = 0; i < n_steps; ++i) {
        const SeqStep& st = steps[i];
        EG_CHECK(st.n > 0 && st.tokens, "every sequence of a step needs at least one token");
        EG_CHECK(!st.sample || st.sampler, "a sequence that samples needs a sampler");
        for (int32_t j = 0; j < i; ++j)
            EG_CHECK(steps[j].seq != st.seq, "sequence " + std::to_string(st.seq) + " appears twice in one step");
        for (int64_t t = 0; t < st.n; ++t)
            EG_CHECK(st.tokens[t] >= 0 && st.tokens[t] < n_vocab,
                     "token id " + std::to_string(st.tokens[t]) + " outside the vocabulary of " + std::to_string(n_vocab));
        seqs[i] = st.seq;
        counts[i] = st.n;
        rows += st.n;
        n_sampled += st.sample || st.logits_out ? 1 : 0;
    }
    EG_CHECK(rows <= kMaxBatch, "a step takes at most " + std::to_string(kMaxBatch) + " token rows, got " +
                                    std::to_string(rows));
    // All or nothing: room for every sequence's rows is checked before any block is taken.
    kv.check_room(seqs.data(), counts.data(), n_steps);
    for (int32_t i = 0; i < n_steps; ++i) kv.reserve(seqs[i], counts[i]);

    std::vector<Segment> segs(n_steps);
    std::vector<int32_t> tokens(rows);
    std::vector<int64_t> out_rows;
    out_rows.reserve(n_sampled);
    int64_t row = 0;
    for (int32_t i = 0; i < n_steps; ++i) {
        const SeqStep& st = steps[i];
        segs[i] = Segment{st.seq, kv.seq_len(st.seq), row, st.n};
        std::copy_n(st.tokens, st.n, &tokens[row]);
        row += st.n;
        if (st.sample || st.logits_out) out_rows.push_back(row - 1);
    }
    step_logits_.resize(static_cast<size_t>(std::max<int64_t>(n_sampled, 1)) * n_vocab);
    forward_segments(kv, segs.data(), n_steps, tokens.data(), rows, out_rows.data(), n_sampled, step_logits_.data());

    int64_t k = 0;
    for (int32_t i = 0; i < n_steps; ++i) {
        SeqStep& st = steps[i];
        st.next = -1;
        if (st.sampler)
            for (int64_t t = 0; t < st.n; ++t) st.sampler->accept(st.tokens[t]);
        if (!st.sample && !st.logits_out) continue;
        float* lg = &step_logits_[static_cast<size_t>(k++) * n_vocab];
        if (st.logits_out) std::copy_n(lg, n_vocab, st.logits_out);
        if (!st.sample) continue;
        st.next = st.sampler->sample(lg, st.allowed);  // the mask goes first in the sampler's chain
    }
}

}  // namespace eg
