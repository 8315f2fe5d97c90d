// fuzz_sampler — arbitrary sampler parameters (NaN, infinities, negative and huge values, logit
// biases on any id), arbitrary logits and a history of any token ids. The constructor either
// refuses the parameters with eg::Error or the sampler returns a token inside the vocabulary,
// deterministically for a seed, never a banned (-inf biased) token while an unbanned token with a
// finite logit remains.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "fuzz_util.h"
#include "common.h"
#include "sampler.h"

namespace {

float any_float(FuzzedDataProvider& in) {
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
        case 0: return in.ConsumeFloatingPoint<float>();  // anything, NaN and infinities included
        case 1: return in.ConsumeFloatingPointInRange<float>(-2.0f, 2.0f);
        case 2: return static_cast<float>(in.ConsumeIntegralInRange<int>(-3, 3));
        default: return -INFINITY;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    const int32_t n_vocab = in.ConsumeIntegralInRange<int32_t>(1, 300);
    eg::SamplerParams p;
    p.temperature = any_float(in);
    p.top_k = in.ConsumeIntegral<int32_t>();
    p.top_p = any_float(in);
    p.min_p = any_float(in);
    p.repeat_penalty = any_float(in);
    p.presence_penalty = any_float(in);
    p.frequency_penalty = any_float(in);
    p.penalty_last_n = in.ConsumeBool() ? in.ConsumeIntegralInRange<int32_t>(0, 100) : in.ConsumeIntegral<int32_t>();
    p.seed = in.ConsumeIntegral<uint64_t>();
    const int n_bias = in.ConsumeIntegralInRange<int>(0, 8);
    for (int i = 0; i < n_bias; ++i) {
        const int32_t id = in.ConsumeBool() ? in.ConsumeIntegralInRange<int32_t>(0, n_vocab - 1) : in.ConsumeIntegral<int32_t>();
        p.logit_bias.emplace_back(id, any_float(in));
    }
    std::vector<int32_t> history(in.ConsumeIntegralInRange<size_t>(0, 64));
    for (int32_t& t : history) t = in.ConsumeBool() ? in.ConsumeIntegralInRange<int32_t>(0, n_vocab - 1) : in.ConsumeIntegral<int32_t>();
    std::vector<float> logits(n_vocab);
    bool finite = true;
    for (float& l : logits) {
        l = in.ConsumeBool() ? in.ConsumeFloatingPointInRange<float>(-30.0f, 30.0f) : any_float(in);
        finite = finite && std::isfinite(l);
    }

    auto run = [&](std::vector<float> x, int32_t& out) -> bool {
        try {
            eg::Sampler s(p, n_vocab);
            for (int32_t t : history) s.accept(t);
            out = s.sample(x.data());
            return true;
        } catch (const eg::Error&) {
            return false;
        }
    };
    int32_t a = -1, b = -1;
    const bool ok = run(logits, a);
    if (!ok) return 0;
    FUZZ_REQUIRE(a >= 0 && a < n_vocab);
    FUZZ_REQUIRE(run(logits, b) && a == b);  // one seed, one answer
    // Banned tokens stay banned while a finite, unbanned choice exists (finite logits, finite
    // penalties and biases other than the -inf bans).
    bool sane = finite && std::isfinite(p.repeat_penalty) && std::isfinite(p.presence_penalty) &&
                std::isfinite(p.frequency_penalty) && std::fabs(p.presence_penalty) < 1e6f &&
                std::fabs(p.frequency_penalty) < 1e6f && p.repeat_penalty > 1e-6f && p.repeat_penalty < 1e6f;
    std::vector<bool> banned(n_vocab, false);
    for (const auto& [id, bias] : p.logit_bias) {
        if (bias == -INFINITY) banned[id] = true;
        else sane = sane && std::isfinite(bias) && std::fabs(bias) < 1e6f;
    }
    bool any_allowed = false;
    for (int32_t i = 0; i < n_vocab; ++i) any_allowed = any_allowed || !banned[i];
    if (sane && any_allowed) FUZZ_REQUIRE(!banned[a]);
    return 0;
}
