// transformer.cpp — see transformer.h. Shapes are written (rows, cols) in comments.
#include "transformer.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace eg {

// ================================================================================================
// Loading: tensors -> weights, every shape and type checked against the spec
// ================================================================================================
namespace {

WeightView view_of(const GGUFFile& f, const std::string& name, int64_t cols, int64_t rows) {
    const GGUFTensor& t = f.tensor(name);
    if (!ggml_type_info(t.type) || t.type >= kTypeCount || !type_supported(t.type))
        throw UnsupportedError("tensor " + name + " has type id " + std::to_string(t.type) +
                               ", which the native engine does not compute with");
    if (t.n_dims > 2 || t.ne[0] != cols || t.ne[1] != rows)
        throw GGUFError("tensor " + name + " has shape [" + std::to_string(t.ne[0]) + ", " + std::to_string(t.ne[1]) +
                        "], expected [" + std::to_string(cols) + ", " + std::to_string(rows) + "]");
    WeightView v;
    v.type = static_cast<QType>(t.type);
    v.cols = cols;
    v.rows = rows;
    v.data = t.data;
    v.name = name;
    v.row_stride = row_size(v.type, cols);
    v.file_mapped = true;  // GGUFFile maps its file read-only
    if (v.row_stride * static_cast<size_t>(rows) != t.nbytes) throw GGUFError("tensor " + name + " has the wrong byte size");
    return v;
}

// A vector (norm weight, bias, rope factors) used in place; it must be F32 of length n.
const float* vector_of(const GGUFFile& f, const std::string& name, int64_t n) {
    const GGUFTensor& t = f.tensor(name);
    if (t.type != static_cast<int32_t>(QType::F32)) throw UnsupportedError("tensor " + name + " is not F32");
    if (t.n_dims != 1 || t.ne[0] != n)
        throw GGUFError("tensor " + name + " has length " + std::to_string(t.ne[0]) + ", expected " + std::to_string(n));
    return reinterpret_cast<const float*>(t.data);  // GGUF data is aligned (>= 8 bytes, checked at open)
}

}  // namespace

std::unique_ptr<Model> Model::load(std::shared_ptr<GGUFFile> file, std::unique_ptr<ComputeBackend> backend) {
    EG_CHECK(file && backend, "Model::load needs a file and a backend");
    std::unique_ptr<Model> m(new Model());
    m->file_ = std::move(file);
    m->backend_ = std::move(backend);
    const GGUFFile& f = *m->file_;
    m->spec_ = read_model_spec(f);
    const ModelSpec& s = m->spec_;
    const HParams& h = s.hp;
    ComputeBackend& be = *m->backend_;
    auto weight = [&](const std::string& name, int64_t cols, int64_t rows) { return be.prepare(view_of(f, name, cols, rows)); };

    m->tok_embd_ = weight("token_embd.weight", h.n_embd, h.n_vocab);
    m->output_norm_ = vector_of(f, "output_norm.weight", h.n_embd);
    m->output_ = s.tied_output ? m->tok_embd_ : weight("output.weight", h.n_embd, h.n_vocab);
    const float* freq_factors = s.rope_freq_factors ? vector_of(f, "rope_freqs.weight", s.layers[0].rope.n_rot / 2) : nullptr;
    const int64_t q_dim = s.q_dim(), kv_dim = s.kv_dim(), d = h.n_embd;
    for (int32_t l = 0; l < h.n_layer; ++l) {
        const LayerSpec& ls = s.layers[l];
        const std::string p = "blk." + std::to_string(l) + ".";
        LayerWeights L;
        L.attn_norm = vector_of(f, p + "attn_norm.weight", d);
        L.wq = weight(p + "attn_q.weight", d, q_dim);
        L.wk = weight(p + "attn_k.weight", d, kv_dim);
        L.wv = weight(p + "attn_v.weight", d, kv_dim);
        L.wo = weight(p + "attn_output.weight", q_dim, d);
        if (ls.q_bias) L.bq = vector_of(f, p + "attn_q.bias", q_dim);
        if (ls.k_bias) L.bk = vector_of(f, p + "attn_k.bias", kv_dim);
        if (ls.v_bias) L.bv = vector_of(f, p + "attn_v.bias", kv_dim);
        if (ls.q_norm) L.q_norm = vector_of(f, p + "attn_q_norm.weight", h.head_dim);
        if (ls.k_norm) L.k_norm = vector_of(f, p + "attn_k_norm.weight", h.head_dim);
        if (ls.post_attn_norm) L.post_attn_norm = vector_of(f, p + "post_attention_norm.weight", d);
        L.ffn_norm = vector_of(f, p + "ffn_norm.weight", d);
        L.w_gate = weight(p + "ffn_gate.weight", d, h.n_ff);
        L.w_up = weight(p + "ffn_up.weight", d, h.n_ff);
        L.w_down = weight(p + "ffn_down.weight", h.n_ff, d);
        if (ls.post_ffn_norm) L.post_ffn_norm = vector_of(f, p + "post_ffw_norm.weight", d);
        m->layers_.push_back(L);
        RopeParams r = ls.rope;
        r.freq_factors = freq_factors;
        m->layer_rope_.push_back(r);
    }
    if (f.find_tensor("blk." + std::to_string(h.n_layer) + ".attn_norm.weight"))
        throw GGUFError("the file has more layers than block_count says");

    const int64_t B = kMaxBatch;
    m->x_.resize(B * d);
    m->xn_.resize(B * d);
    m->tmp_.resize(B * d);
    m->q_.resize(B * q_dim);
    m->attn_.resize(B * q_dim);
    m->k_.resize(B * kv_dim);
    m->v_.resize(B * kv_dim);
    m->gate_.resize(B * h.n_ff);
    m->up_.resize(B * h.n_ff);
    m->logits_.resize(h.n_vocab);
    return m;
}

KVShape Model::kv_shape() const {
    KVShape k;
    k.n_embd_kv = static_cast<int32_t>(spec_.kv_dim());
    k.head_dim = spec_.hp.head_dim;
    k.layer_windows = spec_.layer_windows();
    return k;
}

KVLayout Model::plan_cache(int64_t n_tokens, int32_t n_seq, QType type, int32_t block_tokens) const {
    return plan_kv_cache(kv_shape(), n_tokens, n_seq, type, block_tokens, static_cast<int32_t>(kMaxBatch));
}

void Model::check_cache(const KVCache& kv) const {
    const KVShape& ks = kv.layout().shape;
    const KVShape mine = kv_shape();
    EG_CHECK(ks.n_embd_kv == mine.n_embd_kv && ks.head_dim == mine.head_dim && ks.layer_windows == mine.layer_windows &&
                 kv.layout().max_batch >= kMaxBatch,
             "the KV cache was made for another model");
}

// ================================================================================================
// Forward pass
// ================================================================================================
void Model::forward(KVCache& kv, int32_t seq, const int32_t* tokens, int64_t n, bool all_logits, float* logits_out) {
    EG_CHECK(n > 0, "no tokens to evaluate");
    check_cache(kv);
    const int32_t n_vocab = spec_.hp.n_vocab;
    for (int64_t i = 0; i < n; ++i)
        EG_CHECK(tokens[i] >= 0 && tokens[i] < n_vocab,
                 "token id " + std::to_string(tokens[i]) + " outside the vocabulary of " + std::to_string(n_vocab));
    // All or nothing: every block the whole input needs is checked before any work.
    kv.check_room(seq, n);
    for (int64_t i0 = 0; i0 < n; i0 += kMaxBatch) {
        const int64_t nb = std::min(kMaxBatch, n - i0);
        kv.reserve(seq, nb);
        const bool last = i0 + nb == n;
        float* out = all_logits ? logits_out + i0 * n_vocab : (last ? logits_out : nullptr);
        forward_chunk(kv, seq, tokens + i0, nb, all_logits, out);
    }
}

void Model::forward_chunk(KVCache& kv, int32_t seq, const int32_t* tokens, int64_t n, bool all_logits,
                          float* logits_out) {
    const Segment seg{seq, kv.seq_len(seq), 0, n};
    int64_t rows[kMaxBatch];
    const int64_t first = all_logits ? 0 : n - 1;
    for (int64_t r = first; r < n; ++r) rows[r - first] = r;
    forward_segments(kv, &seg, 1, tokens, n, rows, logits_out ? n - first : 0, logits_out);
}

void Model::forward_segments(KVCache& kv, const Segment* segs, int32_t n_segs, const int32_t* tokens, int64_t n,
                             const int64_t* out_rows, int64_t n_out, float* logits_out) {
    ComputeBackend& be = *backend_;
    const ModelSpec& s = spec_;
    const int64_t d = s.hp.n_embd;

    be.get_rows(tok_embd_, tokens, n, x_.data());  // x: (n, d)
    if (s.embd_scale != 0.0f)
        for (int64_t i = 0; i < n * d; ++i) x_[i] *= s.embd_scale;
    // LoRA: each sequence's adapters on its own rows
    std::vector<LoraRunner::Rows> lora_rows;
    for (int32_t i = 0; i < n_segs; ++i) lora_rows.push_back({segs[i].row0, segs[i].n, adapters(segs[i].seq)});
    lora_.begin(lora_rows);
    for (int32_t l = 0; l < s.hp.n_layer; ++l) {
        attention_block(kv, l, segs, n_segs, n);
        ffn_block(l, n);
    }
    for (int32_t i = 0; i < n_segs; ++i) kv.commit(segs[i].seq, segs[i].n);

    if (n_out == 0) return;
    // The output rows, normed: in place when they are the last rows (one sequence), else
    // gathered (rms_norm is per row: the same values either way).
    const float* src = &x_[out_rows[0] * d];
    if (out_rows[n_out - 1] - out_rows[0] != n_out - 1) {
        for (int64_t i = 0; i < n_out; ++i) std::copy_n(&x_[out_rows[i] * d], d, &tmp_[i * d]);
        src = tmp_.data();
    }
    be.rms_norm(src, output_norm_, xn_.data(), n_out, d, s.norm_eps);
    be.matmul({{&output_, logits_out, 0}}, xn_.data(), n_out);  // (n_out, n_vocab)
    lora_rows.clear();  // output row i belongs to the segment holding out_rows[i]
    for (int64_t i = 0, g = 0; i < n_out; ++i) {
        while (out_rows[i] >= segs[g].row0 + segs[g].n) ++g;
        const LoraSelection* sel = adapters(segs[g].seq);
        if (!lora_rows.empty() && lora_rows.back().sel == sel && lora_rows.back().row0 + lora_rows.back().n == i)
            ++lora_rows.back().n;
        else
            lora_rows.push_back({i, 1, sel});
    }
    lora_.begin(lora_rows);
    lora_.apply(be, -1, xn_.data(), d, {{LoraSlot::Output, logits_out, s.hp.n_vocab}});
    if (s.final_logit_softcap > 0.0f) {
        const float c = s.final_logit_softcap;
        for (int64_t i = 0; i < n_out * s.hp.n_vocab; ++i) logits_out[i] = std::tanh(logits_out[i] / c) * c;
    }
}

void Model::attention_block(KVCache& kv, int32_t l, const Segment* segs, int32_t n_segs, int64_t n) {
    ComputeBackend& be = *backend_;
    const ModelSpec& s = spec_;
    const LayerWeights& L = layers_[l];
    const int64_t d = s.hp.n_embd, q_dim = s.q_dim(), kv_dim = s.kv_dim();
    const int32_t hd = s.hp.head_dim;

    be.rms_norm(x_.data(), L.attn_norm, xn_.data(), n, d, s.norm_eps);
    be.matmul({{&L.wq, q_.data(), 0}, {&L.wk, k_.data(), 0}, {&L.wv, v_.data(), 0}}, xn_.data(), n);
    lora_.apply(be, l, xn_.data(), d, {{LoraSlot::Q, q_.data(), q_dim}, {LoraSlot::K, k_.data(), kv_dim}, {LoraSlot::V, v_.data(), kv_dim}});
    // ---- qwen2: q/k/v biases
    auto add_bias = [n](float* y, const float* b, int64_t dim) {
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < dim; ++j) y[i * dim + j] += b[j];
    };
    if (L.bq) add_bias(q_.data(), L.bq, q_dim);
    if (L.bk) add_bias(k_.data(), L.bk, kv_dim);
    if (L.bv) add_bias(v_.data(), L.bv, kv_dim);
    // ---- qwen3, gemma3: per-head RMS norms of q and k, before the rotation
    if (L.q_norm) be.rms_norm(q_.data(), L.q_norm, q_.data(), n * s.hp.n_head, hd, s.norm_eps);
    if (L.k_norm) be.rms_norm(k_.data(), L.k_norm, k_.data(), n * s.hp.n_head_kv, hd, s.norm_eps);
    // Each sequence's rows rotate from its own position.
    for (int32_t i = 0; i < n_segs; ++i) {
        const Segment& g = segs[i];
        be.rope(&q_[g.row0 * q_dim], g.n, q_dim, s.hp.n_head, hd, g.start, layer_rope_[l]);
        be.rope(&k_[g.row0 * kv_dim], g.n, kv_dim, s.hp.n_head_kv, hd, g.start, layer_rope_[l]);
    }
    // ---- gemma3: queries scaled before attention (scores then unscaled)
    if (s.q_scale != 0.0f)
        for (int64_t i = 0; i < n * q_dim; ++i) q_[i] *= s.q_scale;
    // Each sequence writes its own cache rows, then attends over its own keys.
    for (int32_t i = 0; i < n_segs; ++i) {
        const Segment& g = segs[i];
        be.store_kv(kv, l, g.seq, g.start, g.n, &k_[g.row0 * kv_dim], &v_[g.row0 * kv_dim]);
    }
    AttentionArgs args[kMaxBatch];
    for (int32_t i = 0; i < n_segs; ++i) {
        const Segment& g = segs[i];
        args[i] = AttentionArgs{&q_[g.row0 * q_dim], &attn_[g.row0 * q_dim], g.n, g.start, s.hp.n_head, s.hp.n_head_kv,
                                hd, s.kq_scale, kv.view(l, g.seq)};
    }
    if (n_segs == 1)
        be.attention(args[0]);  // attn: (n, q_dim)
    else
        be.attention_batch(args, n_segs);
    be.matmul({{&L.wo, tmp_.data(), 0}}, attn_.data(), n);
    lora_.apply(be, l, attn_.data(), q_dim, {{LoraSlot::O, tmp_.data(), d}});
    // ---- gemma3: norm of the block output before the residual add
    if (L.post_attn_norm) be.rms_norm(tmp_.data(), L.post_attn_norm, tmp_.data(), n, d, s.norm_eps);
    for (int64_t i = 0; i < n * d; ++i) x_[i] += tmp_[i];
}

void Model::ffn_block(int32_t l, int64_t n) {
    ComputeBackend& be = *backend_;
    const ModelSpec& s = spec_;
    const LayerWeights& L = layers_[l];
    const int64_t d = s.hp.n_embd;
    be.rms_norm(x_.data(), L.ffn_norm, xn_.data(), n, d, s.norm_eps);
    be.matmul({{&L.w_gate, gate_.data(), 0}, {&L.w_up, up_.data(), 0}}, xn_.data(), n);  // (n, n_ff) each
    lora_.apply(be, l, xn_.data(), d, {{LoraSlot::Gate, gate_.data(), s.hp.n_ff}, {LoraSlot::Up, up_.data(), s.hp.n_ff}});
    be.glu(s.act, gate_.data(), up_.data(), n * s.hp.n_ff);  // SwiGLU, or GELU-tanh GLU (gemma3)
    be.matmul({{&L.w_down, tmp_.data(), 0}}, gate_.data(), n);  // (n, d)
    lora_.apply(be, l, gate_.data(), s.hp.n_ff, {{LoraSlot::Down, tmp_.data(), d}});
    if (L.post_ffn_norm) be.rms_norm(tmp_.data(), L.post_ffn_norm, tmp_.data(), n, d, s.norm_eps);
    for (int64_t i = 0; i < n * d; ++i) x_[i] += tmp_[i];
}

int32_t Model::decode(KVCache& kv, int32_t seq, const int32_t* tokens, int64_t n, Sampler& sampler,
                      const uint32_t* allowed) {
    forward(kv, seq, tokens, n, false, logits_.data());
    for (int64_t i = 0; i < n; ++i) sampler.accept(tokens[i]);
    return sampler.sample(logits_.data(), allowed);
}

void Model::shift(KVCache& kv, int32_t seq, int64_t n_keep, int64_t n_discard) {
    check_cache(kv);
    kv.seq_shift(seq, n_keep, n_discard, layer_rope_, spec_.hp.n_head_kv, kernels());
}

}  // namespace eg
