// sampler.h — picks the next token from a row of logits, in native code next to the forward pass.
//
// Order (as llama.cpp's default chain): allowed-token mask (structured output) -> logit bias -> repetition/presence/frequency penalties
// over the last `penalty_last_n` tokens -> greedy if temperature <= 0, else top-k -> top-p ->
// min-p (on the softmax of the biased, penalised logits) -> temperature -> a seeded draw.
// The RNG is a std::mt19937 turned into doubles by hand, so one seed gives one output on every
// platform.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <utility>
#include <vector>

namespace eg {

struct SamplerParams {
    float temperature = 0.0f;   // <= 0: greedy
    int32_t top_k = 0;          // <= 0: off
    float top_p = 1.0f;         // >= 1: off
    float min_p = 0.0f;         // <= 0: off
    float repeat_penalty = 1.0f;
    float presence_penalty = 0.0f;
    float frequency_penalty = 0.0f;
    int32_t penalty_last_n = 64;
    std::vector<std::pair<int32_t, float>> logit_bias;
    uint64_t seed = 0;

    void validate(int32_t n_vocab) const;  // throws eg::Error naming the bad field
};

class Sampler {
public:
    Sampler(const SamplerParams& params, int32_t n_vocab);

    // Returns the chosen token; `logits` (n_vocab floats) is modified in place.
    // `allowed`, when given, is a bitmask of ceil(n_vocab/32) words (bit i of word i/32 set =
    // token i allowed), e.g. a grammar's mask: every other token is removed before bias,
    // penalties and the rest see the logits. Throws eg::Error when it allows no token.
    int32_t sample(float* logits, const uint32_t* allowed = nullptr);
    // Records a token (prompt or generated) for the penalties.
    void accept(int32_t token);

    const SamplerParams& params() const { return p_; }
    int32_t n_vocab() const { return n_vocab_; }

private:
    SamplerParams p_;
    int32_t n_vocab_;
    std::mt19937 rng_;
    std::deque<int32_t> history_;
    std::vector<std::pair<float, int32_t>> cand_;  // scratch: (logit, id)

    void apply_mask(float* logits, const uint32_t* allowed) const;
};

}  // namespace eg
