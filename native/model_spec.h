// model_spec.h — what a GGUF model is, read once from its metadata and tensor list.
//
// The forward pass, the KV cache sizing, the store and the fit check all read the model through
// a ModelSpec; nothing else parses hyper-parameters or learns an architecture's name. Adding an
// architecture means teaching read_model_spec() its properties and, where its arithmetic differs,
// one marked block of the forward pass.
//
//   auto file = eg::GGUFFile::open("gemma-3-270m.gguf");
//   eg::ModelSpec spec = eg::read_model_spec(*file);   // throws UnsupportedError / GGUFError
//   spec.layers[5].window   // 0: global attention; > 0: sliding window of that many tokens
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf.h"
#include "ops.h"

namespace eg {

// A valid file this engine cannot run (architecture, tensor type, rope scaling); the binding
// raises edgegen.UnsupportedModelError so callers can fall back to another backend.
struct UnsupportedError : Error {
    using Error::Error;
};

enum class Activation : int32_t { SiLU = 0, GeluTanh = 1 };  // the gate of a gated (GLU) FFN

// Hyper-parameters every llama-style file states (or implies), with llama.cpp's defaults. Read
// for any architecture with that layout, including ones only llama.cpp runs: the store's memory
// estimate and the file validator use these too.
struct HParams {
    std::string arch;
    int32_t n_layer = 0, n_embd = 0, n_head = 0, n_head_kv = 0, head_dim = 0, head_dim_v = 0, n_ff = 0;
    int32_t n_vocab = 0;
    int64_t n_ctx_train = 0;
    int32_t n_swa = 0;  // sliding window length (tokens) of the local layers; 0: none
};
// Throws GGUFError when a value is missing, of the wrong type or out of range.
HParams read_hparams(const GGUFFile& f);

struct LayerSpec {
    int32_t window = 0;  // 0: attends to every earlier position; > 0: the last `window` positions
    RopeParams rope;     // per layer: Gemma 3's local layers use another base
    bool q_bias = false, k_bias = false, v_bias = false;  // Qwen2
    bool q_norm = false, k_norm = false;                  // per-head RMS norms (Qwen3, Gemma 3)
    bool post_attn_norm = false, post_ffn_norm = false;   // Gemma 3 "sandwich" norms
};

struct ModelSpec {
    HParams hp;
    float norm_eps = 1e-5f;
    Activation act = Activation::SiLU;
    float embd_scale = 0.0f;       // token embeddings multiplied by this (Gemma: sqrt(n_embd)); 0: not scaled
    float q_scale = 0.0f;          // queries multiplied by this before attention (Gemma); 0: not scaled
    float kq_scale = 1.0f;         // attention scores multiplied by this inside the softmax
    float final_logit_softcap = 0.0f;  // logits = c * tanh(logits / c) when > 0
    bool tied_output = false;      // the output head is token_embd
    bool rope_freq_factors = false;  // rope_freqs.weight divides the rotation angles (Llama 3.1+)
    std::vector<LayerSpec> layers;

    int64_t q_dim() const { return int64_t(hp.n_head) * hp.head_dim; }
    int64_t kv_dim() const { return int64_t(hp.n_head_kv) * hp.head_dim; }
    // Per layer: 0 (global) or the sliding window; what the KV cache groups layers by.
    std::vector<int32_t> layer_windows() const;
};

// The one list of architectures the native engine runs.
const std::vector<std::string>& supported_architectures();
bool architecture_supported(const std::string& arch);

// Reads and checks everything the forward pass relies on (tensor presence, shapes, types are
// checked when the weights are wired). Throws UnsupportedError for a valid file this engine does
// not run, GGUFError for an inconsistent one.
ModelSpec read_model_spec(const GGUFFile& f);

}  // namespace eg
