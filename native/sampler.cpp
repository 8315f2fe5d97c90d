// sampler.cpp — see sampler.h.
#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>

#include "common.h"

namespace eg {

void SamplerParams::validate(int32_t n_vocab) const {
    EG_CHECK(std::isfinite(temperature) && temperature >= 0.0f, "temperature must be a finite number >= 0");
    EG_CHECK(std::isfinite(top_p) && top_p > 0.0f && top_p <= 1.0f, "top_p must be in (0, 1]");
    EG_CHECK(std::isfinite(min_p) && min_p >= 0.0f && min_p <= 1.0f, "min_p must be in [0, 1]");
    EG_CHECK(std::isfinite(repeat_penalty) && repeat_penalty > 0.0f, "repeat_penalty must be > 0");
    EG_CHECK(std::isfinite(presence_penalty) && std::isfinite(frequency_penalty), "penalties must be finite");
    EG_CHECK(penalty_last_n >= 0 && penalty_last_n <= 1 << 20, "penalty_last_n must be in 0..1048576");
    for (const auto& [id, bias] : logit_bias) {
        EG_CHECK(id >= 0 && id < n_vocab, "logit_bias token id " + std::to_string(id) + " outside the vocabulary");
        EG_CHECK(!std::isnan(bias), "logit_bias values must not be NaN");
    }
}

Sampler::Sampler(const SamplerParams& params, int32_t n_vocab)
    : p_(params), n_vocab_(n_vocab), rng_(static_cast<std::mt19937::result_type>(params.seed ^ (params.seed >> 32))) {
    EG_CHECK(n_vocab > 0, "empty vocabulary");
    p_.validate(n_vocab);
    cand_.reserve(n_vocab);
}

void Sampler::accept(int32_t token) {
    if (p_.penalty_last_n == 0) return;
    history_.push_back(token);
    while (static_cast<int32_t>(history_.size()) > p_.penalty_last_n) history_.pop_front();
}

// Disallowed tokens become -inf; they then lose every later step, greedy included. Words past
// the vocabulary's end are ignored, so a mask may carry padding bits.
void Sampler::apply_mask(float* logits, const uint32_t* allowed) const {
    bool any = false;
    const int32_t n_words = (n_vocab_ + 31) / 32;
    for (int32_t w = 0; w < n_words; ++w) {
        const int32_t base = w * 32;
        const int32_t end = std::min(base + 32, n_vocab_);
        const uint32_t bits = allowed[w];
        if (bits == 0xFFFFFFFFu && end - base == 32) {
            any = true;
            continue;
        }
        for (int32_t i = base; i < end; ++i) {
            if (bits >> (i - base) & 1u) any = true;
            else logits[i] = -INFINITY;
        }
    }
    if (!any) throw Error("the allowed-token mask allows no token: the constraint cannot continue");
}

int32_t Sampler::sample(float* logits, const uint32_t* allowed) {
    if (allowed) apply_mask(logits, allowed);
    for (const auto& [id, bias] : p_.logit_bias) logits[id] += bias;  // -inf bans a token

    const bool penalise = p_.repeat_penalty != 1.0f || p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f;
    if (penalise && !history_.empty()) {
        std::unordered_map<int32_t, int32_t> counts;
        for (int32_t t : history_) ++counts[t];
        for (const auto& [t, c] : counts) {
            if (t < 0 || t >= n_vocab_) continue;
            float& l = logits[t];
            l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
            l -= c * p_.frequency_penalty + (c > 0 ? 1.0f : 0.0f) * p_.presence_penalty;
        }
    }

    if (p_.temperature <= 0.0f) {  // greedy: first maximum, as llama.cpp
        int32_t best = 0;
        for (int32_t i = 1; i < n_vocab_; ++i)
            if (logits[i] > logits[best]) best = i;
        if (allowed && !(allowed[best / 32] >> (best % 32) & 1u)) {
            // every allowed token was biased to -inf too: take the first allowed one
            for (int32_t i = 0; i < n_vocab_; ++i)
                if (allowed[i / 32] >> (i % 32) & 1u) return i;
        }
        return best;
    }

    cand_.clear();
    for (int32_t i = 0; i < n_vocab_; ++i)
        if (std::isfinite(logits[i]) || logits[i] > 0) cand_.emplace_back(logits[i], i);
    if (cand_.empty()) throw Error("every token is banned: no candidate left to sample");
    auto by_logit = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    size_t n = cand_.size();
    if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < n) {
        std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), by_logit);
        n = static_cast<size_t>(p_.top_k);
    } else {
        std::sort(cand_.begin(), cand_.end(), by_logit);
    }
    // probabilities of the survivors (sorted, descending)
    std::vector<double> prob(n);
    const double max = cand_[0].first;
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += prob[i] = std::exp(static_cast<double>(cand_[i].first) - max);
    if (p_.top_p < 1.0f) {
        double cum = 0.0;
        for (size_t i = 0; i < n; ++i) {
            cum += prob[i] / sum;
            if (cum >= p_.top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (p_.min_p > 0.0f) {
        const double floor = prob[0] * p_.min_p;  // relative to the most likely token
        size_t keep = 1;
        while (keep < n && prob[keep] >= floor) ++keep;
        n = keep;
    }
    // temperature, then a draw
    std::vector<double> w(n);
    double wsum = 0.0;
    for (size_t i = 0; i < n; ++i)
        wsum += w[i] = std::exp((static_cast<double>(cand_[i].first) - max) / p_.temperature);
    const uint64_t bits = (static_cast<uint64_t>(rng_()) << 21) ^ rng_();  // 53 random bits
    const double u = static_cast<double>(bits & ((uint64_t(1) << 53) - 1)) / static_cast<double>(uint64_t(1) << 53);
    double target = u * wsum, acc = 0.0;
    for (size_t i = 0; i < n; ++i) {
        acc += w[i];
        if (target < acc) return cand_[i].second;
    }
    return cand_[n - 1].second;
}

}  // namespace eg
