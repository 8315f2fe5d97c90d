// batch_decode.h — one forward pass over several sequences (Model::step, batch_decode.cpp).
//
// A step takes, for each active sequence, the tokens it appends this step: the token it sampled
// last (decode) or a chunk of its pending prompt (prefill). All rows go through every weight
// product together, so each weight is read once per step for all sequences; rope, the KV writes
// and attention run per sequence on its own positions and cache table.
//
// Why a sequence's output does not depend on its neighbours: every operation of the pass is
// computed per token row with the same arithmetic whatever the batch holds —
//   * products: each (weight row, token row) pair has its own accumulator fed block by block in
//     the same order for one token or a register tile of several (gemm_avx2.cpp, gemm_k_avx2.cpp;
//     tests/kernels/test_matmul.py checks batch == one token at a time bit for bit);
//   * the activation quantization, rms_norm, rope, glu and the residual adds are per row;
//   * attention reads only the row's own sequence's keys, in the same order (per (token, head)
//     task; the head-group split gives the same values, test_incremental_equals_batch);
//   * the sampler is the sequence's own (its RNG, its penalty history).
// So greedy and seeded sampling give bit-identical tokens alone or in any batch
// (tests/engine/test_batch_decode.py checks it on real models).
#pragma once

#include <cstdint>

#include "sampler.h"

namespace eg {

// What one sequence does in one step. Kept in one struct so per-sequence state that later work
// adds (a LoRA adapter selection, issue 18) has one place to go.
struct SeqStep {
    int32_t seq = 0;                   // the KV cache sequence
    const int32_t* tokens = nullptr;   // tokens appended at positions seq_len .. seq_len + n - 1
    int64_t n = 0;
    Sampler* sampler = nullptr;        // sees the tokens (penalty history); null: no sampler
    bool sample = false;               // pick the next token from the last row's logits (needs sampler)
    // Optional token mask (ceil(n_vocab / 32) words, bit set = allowed), as Sampler::sample takes
    // it with grammar-constrained decoding (issue 13); nullptr: every token allowed.
    const uint32_t* allowed = nullptr;
    float* logits_out = nullptr;       // optional: the last row's logits (n_vocab), before sampling
    int32_t next = -1;                 // out: the sampled token when `sample`
};

}  // namespace eg
