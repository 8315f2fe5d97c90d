// model_spec.cpp — see model_spec.h. Defaults follow llama.cpp's llama-model.cpp so the same file
// means the same model in both engines.
#include "model_spec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace eg {

namespace {

// An integer hyper-parameter; per-layer arrays (some architectures) count by their largest entry.
int64_t int_or_max(const GGUFFile& f, const std::string& key, int64_t fallback) {
    const GGUFValue* v = f.find(key);
    if (!v || v->type != GGUFType::ARRAY) return f.get_int(key, fallback);
    if (v->array_count == 0 || v->array_count > (1u << 16)) throw GGUFError(key + " is an empty or absurd array");
    const size_t w = gguf_type_size(v->array_type);
    if (!(v->array_type == GGUFType::INT32 || v->array_type == GGUFType::UINT32))
        throw GGUFError(key + " must be an array of 32-bit integers");
    int64_t best = 0;
    for (uint64_t i = 0; i < v->array_count; ++i) {
        int32_t x;
        std::memcpy(&x, v->array_data + i * w, sizeof x);
        best = std::max<int64_t>(best, x);
    }
    return best;
}

int32_t in_range(const std::string& key, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
        throw GGUFError(key + " = " + std::to_string(v) + " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
    return static_cast<int32_t>(v);
}

bool has(const GGUFFile& f, int32_t layer, const char* name) {
    return f.find_tensor("blk." + std::to_string(layer) + "." + name) != nullptr;
}

// Which layers of a Gemma 3 file use the sliding window: llama.cpp's set_swa_pattern(6) (five
// local layers, then a global one), unless the file states the pattern itself.
std::vector<bool> gemma3_sliding_layers(const GGUFFile& f, int32_t n_layer) {
    std::vector<bool> out(n_layer);
    const GGUFValue* pat = f.find("gemma3.attention.sliding_window_pattern");
    if (pat && pat->type == GGUFType::ARRAY && pat->array_type == GGUFType::BOOL) {
        if (pat->array_count != static_cast<uint64_t>(n_layer))
            throw GGUFError("gemma3.attention.sliding_window_pattern has the wrong length");
        for (int32_t l = 0; l < n_layer; ++l) out[l] = pat->array_data[l] != 0;
        return out;
    }
    const int64_t period = pat ? f.get_int("gemma3.attention.sliding_window_pattern") : 6;
    if (period <= 0 || period > n_layer + 1) throw GGUFError("gemma3.attention.sliding_window_pattern is out of range");
    for (int32_t l = 0; l < n_layer; ++l) out[l] = l % period < period - 1;
    return out;
}

// RoPE from the file's keys: base, linear scaling (factor or scale_linear). YaRN, LongRoPE and
// others change the arithmetic and are refused so the caller falls back to llama.cpp.
RopeParams read_rope(const GGUFFile& f, const std::string& a, int32_t head_dim, bool neox) {
    RopeParams r;
    r.n_rot = in_range(a + "rope.dimension_count", f.get_int(a + "rope.dimension_count", head_dim), 2, head_dim);
    if (r.n_rot % 2 != 0) throw GGUFError(a + "rope.dimension_count must be even");
    const double base = f.get_float(a + "rope.freq_base", 10000.0);
    if (!(base > 1.0 && base < 1e12)) throw GGUFError(a + "rope.freq_base is out of range");
    r.freq_base = static_cast<float>(base);
    const std::string scaling = f.get_string(a + "rope.scaling.type", "none");
    const double factor = f.get_float(a + "rope.scaling.factor", f.get_float(a + "rope.scale_linear", 1.0));
    if (scaling == "linear" || (scaling == "none" && factor != 1.0)) {
        if (!(factor > 0.0 && factor < 1e6)) throw GGUFError("rope scaling factor out of range");
        r.freq_scale = static_cast<float>(1.0 / factor);
    } else if (scaling != "none") {
        throw UnsupportedError("rope scaling '" + scaling + "' is not supported by the native engine");
    }
    r.neox = neox;
    return r;
}

}  // namespace

HParams read_hparams(const GGUFFile& f) {
    HParams h;
    h.arch = f.architecture();
    if (h.arch.empty()) throw GGUFError("the file has no general.architecture");
    const std::string a = h.arch + ".";
    h.n_layer = in_range(a + "block_count", f.get_int(a + "block_count"), 1, 4096);
    h.n_embd = in_range(a + "embedding_length", f.get_int(a + "embedding_length"), 1, 1 << 16);
    h.n_ff = in_range(a + "feed_forward_length", int_or_max(f, a + "feed_forward_length", 0), 0, 1 << 20);
    h.n_head = in_range(a + "attention.head_count", int_or_max(f, a + "attention.head_count", -1), 1, 4096);
    h.n_head_kv = in_range(a + "attention.head_count_kv", int_or_max(f, a + "attention.head_count_kv", h.n_head), 1, h.n_head);
    if (!f.find(a + "attention.key_length") && h.n_embd % h.n_head != 0)
        throw GGUFError(a + "embedding_length is not a multiple of attention.head_count");
    h.head_dim = in_range(a + "attention.key_length", f.get_int(a + "attention.key_length", h.n_embd / h.n_head), 1, 4096);
    h.head_dim_v = in_range(a + "attention.value_length", f.get_int(a + "attention.value_length", h.head_dim), 1, 4096);
    h.n_ctx_train = f.get_int(a + "context_length", 2048);
    if (h.n_ctx_train <= 0 || h.n_ctx_train > (int64_t(1) << 30)) throw GGUFError(a + "context_length is out of range");
    h.n_swa = in_range(a + "attention.sliding_window", f.get_int(a + "attention.sliding_window", 0), 0, 1 << 24);
    if (const GGUFTensor* emb = f.find_tensor("token_embd.weight")) {
        h.n_vocab = in_range("token_embd.weight rows", emb->ne[1], 1, int64_t(1) << 30);
    } else if (const GGUFValue* toks = f.find("tokenizer.ggml.tokens")) {
        h.n_vocab = in_range("tokenizer.ggml.tokens", static_cast<int64_t>(toks->array_count), 1, int64_t(1) << 30);
    }
    return h;
}

std::vector<int32_t> ModelSpec::layer_windows() const {
    std::vector<int32_t> w;
    for (const LayerSpec& l : layers) w.push_back(l.window);
    return w;
}

const std::vector<std::string>& supported_architectures() {
    static const std::vector<std::string> archs = {"llama", "qwen2", "qwen3", "gemma3"};
    return archs;
}

bool architecture_supported(const std::string& arch) {
    const auto& a = supported_architectures();
    return std::find(a.begin(), a.end(), arch) != a.end();
}

ModelSpec read_model_spec(const GGUFFile& f) {
    const std::string arch = f.architecture();
    if (!architecture_supported(arch)) {
        std::string list;
        for (const std::string& s : supported_architectures()) list += (list.empty() ? "" : ", ") + s;
        throw UnsupportedError("architecture '" + arch + "' is not supported by the native engine (supported: " + list + ")");
    }
    ModelSpec s;
    s.hp = read_hparams(f);
    const HParams& h = s.hp;
    const std::string a = arch + ".";
    if (h.head_dim_v != h.head_dim) throw UnsupportedError("different key and value head sizes are not supported");
    if (h.n_head % h.n_head_kv != 0) throw GGUFError("head_count is not a multiple of head_count_kv");
    if (h.head_dim % 32 != 0 || h.head_dim > 256) throw UnsupportedError("head size must be a multiple of 32, <= 256");
    if (h.n_ff <= 0) throw GGUFError(a + "feed_forward_length is missing");
    for (const char* key : {"attention.head_count", "attention.head_count_kv", "feed_forward_length"}) {
        const GGUFValue* v = f.find(a + key);
        if (v && v->type == GGUFType::ARRAY) throw UnsupportedError(a + key + " varies per layer; the native engine needs one value");
    }
    s.norm_eps = static_cast<float>(f.get_float(a + "attention.layer_norm_rms_epsilon", 1e-5));
    if (!(s.norm_eps > 0.0f && s.norm_eps < 1.0f)) throw GGUFError(a + "attention.layer_norm_rms_epsilon is out of range");
    s.kq_scale = 1.0f / std::sqrt(static_cast<float>(h.head_dim));
    s.tied_output = f.find_tensor("output.weight") == nullptr;
    s.final_logit_softcap = static_cast<float>(f.get_float(a + "final_logit_softcapping", 0.0));
    if (s.final_logit_softcap < 0.0f) throw GGUFError(a + "final_logit_softcapping is negative");
    if (f.get_float(a + "attn_logit_softcapping", 0.0) != 0.0)
        throw UnsupportedError("attention logit soft-capping is not supported by the native engine");

    const bool neox = arch != "llama";  // llama's converter permutes Q/K rows for adjacent pairs
    const RopeParams rope = read_rope(f, a, h.head_dim, neox);
    s.layers.assign(h.n_layer, LayerSpec{});
    for (int32_t l = 0; l < h.n_layer; ++l) {
        LayerSpec& L = s.layers[l];
        L.rope = rope;
        L.q_bias = has(f, l, "attn_q.bias");
        L.k_bias = has(f, l, "attn_k.bias");
        L.v_bias = has(f, l, "attn_v.bias");
        L.q_norm = has(f, l, "attn_q_norm.weight");
        L.k_norm = has(f, l, "attn_k_norm.weight");
        L.post_attn_norm = has(f, l, "post_attention_norm.weight");
        L.post_ffn_norm = has(f, l, "post_ffw_norm.weight");
    }

    // ---- per-architecture properties ------------------------------------------------------------
    if (arch == "llama") {
        s.rope_freq_factors = f.find_tensor("rope_freqs.weight") != nullptr;
        if (h.n_swa != 0) throw UnsupportedError("llama files with a sliding window are not supported");
    } else if (arch == "qwen2") {
        // q/k/v biases are read per layer above
    } else if (arch == "qwen3") {
        // per-head q/k norms are read per layer above
    } else if (arch == "gemma3") {
        s.act = Activation::GeluTanh;
        s.embd_scale = std::sqrt(static_cast<float>(h.n_embd));
        // llama.cpp scales Q (ggml_scale) and runs the softmax with scale 1: same here, so the
        // f16-rounded queries match. The 27B model (62 layers) uses n_embd / n_head.
        const float scale_dim = h.n_layer == 62 ? static_cast<float>(h.n_embd / h.n_head) : static_cast<float>(h.head_dim);
        s.q_scale = 1.0f / std::sqrt(scale_dim);
        s.kq_scale = 1.0f;
        if (h.n_swa <= 0) throw GGUFError("gemma3.attention.sliding_window is missing");
        const std::vector<bool> sliding = gemma3_sliding_layers(f, h.n_layer);
        for (int32_t l = 0; l < h.n_layer; ++l) {
            LayerSpec& L = s.layers[l];
            if (!sliding[l]) continue;
            L.window = h.n_swa;
            L.rope.freq_base = 10000.0f;  // llama.cpp: rope_freq_base_train_swa
            L.rope.freq_scale = 1.0f;
        }
    }
    for (int32_t l = 0; l < h.n_layer; ++l) {
        const LayerSpec& L = s.layers[l];
        if (arch != "qwen2" && (L.q_bias || L.k_bias || L.v_bias))
            throw UnsupportedError("attention biases are only supported for qwen2");
        if (arch == "llama" && (L.q_norm || L.k_norm || L.post_attn_norm || L.post_ffn_norm))
            throw UnsupportedError("llama files with q/k or post norms are not supported");
        if (L.q_norm != L.k_norm) throw UnsupportedError("a q norm without a k norm (or the reverse) is not supported");
    }
    return s;
}

}  // namespace eg
