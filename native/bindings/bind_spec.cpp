// bind_spec.cpp — the model description and the KV sizing function, for the store, the fit check
// and the backends (one parser, in C++; Python never re-reads hyper-parameters itself).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cerrno>
#include <string>

#include "bindings.h"
#include "kv_cache.h"
#include "model_spec.h"
#include "spec_dict.h"

namespace py = pybind11;

namespace {

// A model's KV shape: from its spec when the native engine runs it, else from the hyper-parameters
// with every layer global (a conservative estimate for what llama.cpp would allocate).
eg::KVShape kv_shape_of(const eg::GGUFFile& f) {
    eg::KVShape s;
    if (eg::architecture_supported(f.architecture())) {
        try {
            const eg::ModelSpec spec = eg::read_model_spec(f);
            s.n_embd_kv = static_cast<int32_t>(spec.kv_dim());
            s.head_dim = spec.hp.head_dim;
            s.layer_windows = spec.layer_windows();
            return s;
        } catch (const eg::UnsupportedError&) {
            // a shape the engine does not run (llama.cpp will): sized below as all-global
        }
    }
    const eg::HParams h = eg::read_hparams(f);
    s.head_dim = std::max(h.head_dim, h.head_dim_v);
    s.n_embd_kv = h.n_head_kv * s.head_dim;
    s.layer_windows.assign(h.n_layer, 0);
    return s;
}

}  // namespace

eg::QType kv_type_from(const std::string& name) {
    if (name == "f16") return eg::QType::F16;
    if (name == "q8_0") return eg::QType::Q8_0;
    if (name == "f32") return eg::QType::F32;
    throw eg::Error("kv_type must be 'f16', 'q8_0' or 'f32', not '" + name + "'");
}

py::dict layout_dict(const eg::KVLayout& L) {
    py::dict d;
    d["nbytes"] = L.bytes();
    d["block_tokens"] = L.block_tokens;
    d["n_seq"] = L.n_seq_max;
    py::list groups;
    for (const eg::KVLayout::Group& g : L.groups) {
        py::dict gd;
        gd["window"] = g.window;
        gd["layers"] = g.layers;
        gd["ring_blocks"] = g.ring_blocks;
        gd["n_blocks"] = g.n_blocks;
        gd["block_bytes"] = g.block_bytes;
        gd["nbytes"] = static_cast<size_t>(g.n_blocks) * g.block_bytes;
        groups.append(gd);
    }
    d["groups"] = groups;
    return d;
}

py::dict hparams_dict(const eg::HParams& h) {
    py::dict d;
    d["arch"] = h.arch;
    d["n_layer"] = h.n_layer;
    d["n_embd"] = h.n_embd;
    d["n_head"] = h.n_head;
    d["n_head_kv"] = h.n_head_kv;
    d["head_dim"] = h.head_dim;
    d["head_dim_v"] = h.head_dim_v;
    d["n_ff"] = h.n_ff;
    d["n_vocab"] = h.n_vocab;
    d["n_ctx_train"] = h.n_ctx_train;
    d["n_swa"] = h.n_swa;
    return d;
}

py::dict spec_dict(const eg::ModelSpec& s) {
    py::dict d = hparams_dict(s.hp);
    d["norm_eps"] = s.norm_eps;
    d["rms_eps"] = s.norm_eps;
    d["activation"] = s.act == eg::Activation::GeluTanh ? "gelu_tanh" : "silu";
    d["embd_scale"] = s.embd_scale;
    d["q_scale"] = s.q_scale;
    d["kq_scale"] = s.kq_scale;
    d["final_logit_softcap"] = s.final_logit_softcap;
    d["tied_output"] = s.tied_output;
    d["rope_freq_factors"] = s.rope_freq_factors;
    d["rope_freq_base"] = s.layers.empty() ? 0.0f : s.layers.back().rope.freq_base;
    d["rope_freq_scale"] = s.layers.empty() ? 1.0f : s.layers.back().rope.freq_scale;
    d["n_rot"] = s.layers.empty() ? 0 : s.layers.back().rope.n_rot;
    py::list layers;
    for (const eg::LayerSpec& l : s.layers) {
        py::dict ld;
        ld["window"] = l.window;
        ld["rope_freq_base"] = l.rope.freq_base;
        ld["rope_freq_scale"] = l.rope.freq_scale;
        ld["rope_neox"] = l.rope.neox;
        ld["q_bias"] = l.q_bias;
        ld["k_bias"] = l.k_bias;
        ld["v_bias"] = l.v_bias;
        ld["q_norm"] = l.q_norm;
        ld["k_norm"] = l.k_norm;
        ld["post_attn_norm"] = l.post_attn_norm;
        ld["post_ffn_norm"] = l.post_ffn_norm;
        layers.append(ld);
    }
    d["layers"] = layers;
    return d;
}

void bind_spec(py::module_& m) {
    m.def("supported_architectures", &eg::supported_architectures,
          "The architectures the native engine runs (decided here and nowhere else).");
    m.def(
        "model_spec",
        [](const eg::GGUFFile& f) { return spec_dict(eg::read_model_spec(f)); }, py::arg("file"),
        "The ModelSpec of an open GGUFFile as a dict; UnsupportedModelError when the engine cannot run it.");
    m.def(
        "hparams", [](const eg::GGUFFile& f) { return hparams_dict(eg::read_hparams(f)); }, py::arg("file"),
        "Hyper-parameters of any llama-style GGUFFile (llama.cpp's defaults applied).");
    m.def(
        "kv_cache_layout",
        [](const eg::GGUFFile& f, int64_t n_tokens, int32_t n_seq, const std::string& kv_type, int32_t block_tokens) {
            return layout_dict(eg::plan_kv_cache(kv_shape_of(f), n_tokens, n_seq, kv_type_from(kv_type), block_tokens, 64));
        },
        py::arg("file"), py::arg("n_tokens"), py::arg("n_seq") = 1, py::arg("kv_type") = "f16", py::arg("block_tokens") = 32,
        "The KV cache the native engine would allocate for this file (the sizing function shared by the cache, the "
        "fit check and the store): {'nbytes', 'groups': [...]}.");
}
