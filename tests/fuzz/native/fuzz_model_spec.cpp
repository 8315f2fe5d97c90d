// fuzz_model_spec — the model-spec reader and the KV sizing it feeds, on structurally valid GGUF
// files whose hyper-parameters are chosen by the fuzzer: every key read_hparams/read_model_spec
// consult, present or absent, of any type (integers of every width, floats, strings, arrays,
// bools), with out-of-range values, for the supported architectures and a few others, and tensors
// shaped from those values (so files get past the validator's shape checks and reach the spec
// reader). Random bytes rarely form such files, hence this target next to fuzz_gguf.
// The file is written to a memfd and opened by path: the production open/mmap/validate path.
// Accepted specs must be self-consistent and plan a KV cache or refuse it with eg::Error.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "gguf.h"
#include "kv_cache.h"
#include "model_spec.h"

namespace {

class Writer {
public:
    void u32(uint32_t v) { raw(&v, 4); }
    void u64(uint64_t v) { raw(&v, 8); }
    void str(const std::string& s) {
        u64(s.size());
        raw(s.data(), s.size());
    }
    void raw(const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        buf.insert(buf.end(), b, b + n);
    }
    std::vector<uint8_t> buf;
};

struct Tensor {
    std::string name;
    std::vector<int64_t> ne;
};

// One metadata value of a fuzzer-chosen type. `hint` is a plausible value for the key.
void value(FuzzedDataProvider& in, Writer& w, int64_t hint, const std::string& str_hint) {
    switch (in.ConsumeIntegralInRange<int>(0, 11)) {
        case 0: w.u32(4); w.u32(static_cast<uint32_t>(hint)); break;                       // uint32 = hint
        case 1: w.u32(4); w.u32(in.ConsumeIntegralInRange<uint32_t>(0, 4096)); break;      // small uint32
        case 2: w.u32(5); w.u32(in.ConsumeIntegral<uint32_t>()); break;                     // any int32
        case 3: w.u32(10); w.u64(in.ConsumeIntegral<uint64_t>()); break;                    // any uint64
        case 4: w.u32(11); w.u64(static_cast<uint64_t>(hint) * (in.ConsumeBool() ? 1 : -1)); break;  // int64 +-hint
        case 5: { w.u32(6); const float f = in.ConsumeFloatingPoint<float>(); w.raw(&f, 4); break; }
        case 6: { w.u32(12); const double d = in.ConsumeBool() ? static_cast<double>(hint) : in.ConsumeFloatingPoint<double>(); w.raw(&d, 8); break; }
        case 7: w.u32(8); w.str(in.ConsumeBool() ? str_hint : in.ConsumeRandomLengthString(16)); break;
        case 8: {  // array of int32 / uint32
            w.u32(9);
            w.u32(in.ConsumeBool() ? 5 : 4);
            const uint64_t n = in.ConsumeIntegralInRange<uint64_t>(0, 8);
            w.u64(n);
            for (uint64_t i = 0; i < n; ++i) w.u32(in.ConsumeBool() ? static_cast<uint32_t>(hint) : in.ConsumeIntegral<uint32_t>());
            break;
        }
        case 9: {  // array of bool
            w.u32(9);
            w.u32(7);
            const uint64_t n = in.ConsumeIntegralInRange<uint64_t>(0, 8);
            w.u64(n);
            for (uint64_t i = 0; i < n; ++i) { const uint8_t b = in.ConsumeBool(); w.raw(&b, 1); }
            break;
        }
        case 10: { w.u32(7); const uint8_t b = in.ConsumeBool(); w.raw(&b, 1); break; }
        default: w.u32(0); { const uint8_t b = in.ConsumeIntegral<uint8_t>(); w.raw(&b, 1); } break;  // uint8
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static fuzz::MemFile file;
    FuzzedDataProvider in(data, size);
    static const char* archs[] = {"llama", "qwen2", "qwen3", "gemma3", "mistral", "gemma2", "granite"};
    const std::string arch = in.ConsumeBool() ? archs[in.ConsumeIntegralInRange<int>(0, 6)] : in.ConsumeRandomLengthString(12);
    // Plausible sizes the tensors are built from; the metadata may state them or lie.
    const int64_t n_layer = in.ConsumeIntegralInRange<int64_t>(1, 3);  // small files keep executions fast
    const int64_t head_dim = 32 * in.ConsumeIntegralInRange<int64_t>(1, 2);
    const int64_t n_head_kv = in.ConsumeIntegralInRange<int64_t>(1, 2);
    const int64_t n_head = n_head_kv * in.ConsumeIntegralInRange<int64_t>(1, 2);
    const int64_t n_embd = in.ConsumeBool() ? n_head * head_dim : 32 * in.ConsumeIntegralInRange<int64_t>(1, 2);
    const int64_t n_ff = 32 * in.ConsumeIntegralInRange<int64_t>(1, 2);
    const int64_t n_vocab = in.ConsumeIntegralInRange<int64_t>(1, 8);

    struct Key {
        const char* suffix;
        int64_t hint;
        const char* str_hint;
    };
    const Key keys[] = {
        {"block_count", n_layer, ""}, {"embedding_length", n_embd, ""}, {"feed_forward_length", n_ff, ""},
        {"attention.head_count", n_head, ""}, {"attention.head_count_kv", n_head_kv, ""},
        {"attention.key_length", head_dim, ""}, {"attention.value_length", head_dim, ""},
        {"context_length", 128, ""}, {"attention.sliding_window", 16, ""},
        {"attention.sliding_window_pattern", 2, ""}, {"attention.layer_norm_rms_epsilon", 0, ""},
        {"rope.dimension_count", head_dim, ""}, {"rope.freq_base", 10000, ""}, {"rope.scaling.type", 0, "linear"},
        {"rope.scaling.factor", 2, ""}, {"rope.scale_linear", 2, ""}, {"final_logit_softcapping", 30, ""},
        {"attn_logit_softcapping", 0, ""},
    };
    Writer kv;
    uint64_t n_kv = 1;
    kv.str("general.architecture");
    kv.u32(8);
    kv.str(arch);
    for (const Key& k : keys) {
        if (!in.ConsumeBool()) continue;
        kv.str(arch + "." + k.suffix);
        value(in, kv, k.hint, k.str_hint);
        ++n_kv;
    }

    std::vector<Tensor> tensors = {{"token_embd.weight", {n_embd, n_vocab}}, {"output_norm.weight", {n_embd}}};
    if (in.ConsumeBool()) tensors.push_back({"output.weight", {n_embd, n_vocab}});
    if (in.ConsumeBool()) tensors.push_back({"rope_freqs.weight", {head_dim / 2}});
    for (int64_t l = 0; l < n_layer; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        for (const Tensor& t : std::vector<Tensor>{{"attn_norm.weight", {n_embd}}, {"attn_q.weight", {n_embd, n_head * head_dim}},
                                                   {"attn_k.weight", {n_embd, n_head_kv * head_dim}},
                                                   {"attn_v.weight", {n_embd, n_head_kv * head_dim}},
                                                   {"attn_output.weight", {n_head * head_dim, n_embd}},
                                                   {"ffn_norm.weight", {n_embd}}, {"ffn_gate.weight", {n_embd, n_ff}},
                                                   {"ffn_up.weight", {n_embd, n_ff}}, {"ffn_down.weight", {n_ff, n_embd}}})
            tensors.push_back({b + t.name, t.ne});
        // optional per-layer extras: biases, q/k norms, Gemma's sandwich norms
        static const char* extras[] = {"attn_q.bias", "attn_k.bias", "attn_v.bias", "attn_q_norm.weight",
                                       "attn_k_norm.weight", "post_attention_norm.weight", "post_ffw_norm.weight"};
        for (const char* e : extras)
            if (in.ConsumeIntegralInRange<int>(0, 3) == 0) tensors.push_back({b + e, {head_dim}});
    }

    Writer w;
    w.raw("GGUF", 4);
    w.u32(3);
    w.u64(tensors.size());
    w.u64(n_kv);
    w.raw(kv.buf.data(), kv.buf.size());
    uint64_t offset = 0;
    for (const Tensor& t : tensors) {
        w.str(t.name);
        w.u32(static_cast<uint32_t>(t.ne.size()));
        int64_t n = 1;
        for (int64_t d : t.ne) { w.u64(static_cast<uint64_t>(d)); n *= d; }
        w.u32(24);  // I8: one byte per element keeps the files small
        w.u64(offset);
        offset += (static_cast<uint64_t>(n) + 31) / 32 * 32;
    }
    w.buf.resize((w.buf.size() + 31) / 32 * 32 + offset, 0);

    std::shared_ptr<eg::GGUFFile> f;
    try {
        f = eg::GGUFFile::open(file.write(w.buf.data(), w.buf.size()));
    } catch (const eg::Error&) {
        return 0;
    }
    eg::ModelSpec s;
    try {
        s = eg::read_model_spec(*f);
    } catch (const eg::Error&) {
        return 0;
    }
    FUZZ_REQUIRE(static_cast<int64_t>(s.layers.size()) == s.hp.n_layer);
    FUZZ_REQUIRE(s.hp.n_head >= 1 && s.hp.n_head_kv >= 1 && s.hp.n_head % s.hp.n_head_kv == 0);
    FUZZ_REQUIRE(s.hp.head_dim % 32 == 0 && s.hp.head_dim <= 256 && s.hp.n_ff > 0);
    FUZZ_REQUIRE(s.norm_eps > 0.0f && s.norm_eps < 1.0f);
    for (const eg::LayerSpec& L : s.layers) {
        FUZZ_REQUIRE(L.window >= 0);
        FUZZ_REQUIRE(L.rope.n_rot >= 2 && L.rope.n_rot <= s.hp.head_dim && L.rope.n_rot % 2 == 0);
        FUZZ_REQUIRE(L.rope.freq_base > 1.0f && L.rope.freq_scale > 0.0f);
    }
    eg::KVShape shape;
    shape.n_embd_kv = static_cast<int32_t>(s.kv_dim());
    shape.head_dim = s.hp.head_dim;
    shape.layer_windows = s.layer_windows();
    const int64_t n_tokens = in.ConsumeIntegralInRange<int64_t>(1, 1 << 20);
    try {
        const eg::KVLayout lay = eg::plan_kv_cache(shape, n_tokens, in.ConsumeIntegralInRange<int32_t>(1, 8),
                                                   eg::QType::F16, 32, in.ConsumeIntegralInRange<int32_t>(1, 512));
        FUZZ_REQUIRE(lay.bytes() > 0 && lay.layer_group.size() == s.layers.size());
        for (size_t l = 0; l < s.layers.size(); ++l) FUZZ_REQUIRE(lay.layer_group[l] >= 0 && lay.layer_slot[l] >= 0);
    } catch (const eg::Error&) {
    }
    return 0;
}
