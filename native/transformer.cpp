// transformer.cpp — see transformer.h. Shapes are written (rows, cols) in comments.
#include "transformer.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "matmul.h"

namespace eg {

// ================================================================================================
// Loading: metadata -> config, tensors -> views, every shape and type checked
// ================================================================================================
namespace {

WeightView view_of(const GGUFTensor& t, int64_t ne0, int64_t ne1, const std::string& name) {
    if (!type_supported(t.type))
        throw UnsupportedError("tensor " + name + " has type id " + std::to_string(t.type) +
                               ", which the native engine does not compute with");
    if (t.n_dims > 2 || t.ne[0] != ne0 || t.ne[1] != ne1)
        throw GGUFError("tensor " + name + " has shape [" + std::to_string(t.ne[0]) + ", " + std::to_string(t.ne[1]) +
                        "], expected [" + std::to_string(ne0) + ", " + std::to_string(ne1) + "]");
    WeightView v;
    v.type = static_cast<QType>(t.type);
    v.ne0 = ne0;
    v.ne1 = ne1;
    v.data = t.data;
    v.row_stride = row_size(v.type, ne0);
    if (v.row_stride * static_cast<size_t>(ne1) != t.nbytes) throw GGUFError("tensor " + name + " has the wrong byte size");
    if (!kernels().vec_dot[t.type] || !kernels().dequantize_row[t.type])
        throw UnsupportedError("no kernel for tensor " + name + " of type " + type_traits(v.type).name);
    return v;
}

const float* norm_of(const GGUFFile& f, const std::string& name, int64_t n) {
    const GGUFTensor& t = f.tensor(name);
    if (t.type != static_cast<int32_t>(QType::F32)) throw UnsupportedError("norm " + name + " is not F32");
    if (t.n_dims != 1 || t.ne[0] != n) throw GGUFError("norm " + name + " has the wrong length");
    return reinterpret_cast<const float*>(t.data);  // GGUF data is aligned (>= 8 bytes, checked at open)
}

int32_t positive_int(const GGUFFile& f, const std::string& key, int64_t fallback, int64_t max) {
    const int64_t v = f.get_int(key, fallback);
    if (v <= 0 || v > max) throw GGUFError(key + " = " + std::to_string(v) + " is out of range");
    return static_cast<int32_t>(v);
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path, int n_threads) {
    std::unique_ptr<Model> m(new Model());
    m->file_ = GGUFFile::open(path);
    const GGUFFile& f = *m->file_;
    ModelConfig& c = m->cfg_;
    c.arch = f.architecture();
    if (c.arch != "llama")
        throw UnsupportedError("architecture '" + c.arch + "' is not supported by the native engine (llama only)");
    const std::string a = c.arch + ".";
    c.n_layer = positive_int(f, a + "block_count", -1, 1024);
    c.n_embd = positive_int(f, a + "embedding_length", -1, 1 << 16);
    c.n_ff = positive_int(f, a + "feed_forward_length", -1, 1 << 18);
    c.n_head = positive_int(f, a + "attention.head_count", -1, 1024);
    c.n_head_kv = positive_int(f, a + "attention.head_count_kv", c.n_head, 1024);
    c.head_dim = positive_int(f, a + "attention.key_length", c.n_embd / c.n_head, 1024);
    if (f.get_int(a + "attention.value_length", c.head_dim) != c.head_dim)
        throw UnsupportedError("different key and value head sizes are not supported");
    if (c.n_head % c.n_head_kv != 0) throw GGUFError("head_count is not a multiple of head_count_kv");
    if (c.head_dim % 32 != 0 || c.head_dim > 256) throw UnsupportedError("head size must be a multiple of 32, <= 256");
    c.n_ctx_train = f.get_int(a + "context_length", 2048);
    c.rms_eps = static_cast<float>(f.get_float(a + "attention.layer_norm_rms_epsilon", 1e-5));
    c.rope.n_rot = positive_int(f, a + "rope.dimension_count", c.head_dim, c.head_dim);
    if (c.rope.n_rot % 2 != 0) throw GGUFError("rope.dimension_count must be even");
    c.rope.freq_base = static_cast<float>(f.get_float(a + "rope.freq_base", 10000.0));
    const std::string scaling = f.get_string(a + "rope.scaling.type", "none");
    const double factor = f.get_float(a + "rope.scaling.factor", f.get_float(a + "rope.scale_linear", 1.0));
    if (scaling == "linear" || (scaling == "none" && factor != 1.0)) {
        if (!(factor > 0.0 && factor < 1e6)) throw GGUFError("rope scaling factor out of range");
        c.rope.freq_scale = static_cast<float>(1.0 / factor);
    } else if (scaling != "none") {
        throw UnsupportedError("rope scaling '" + scaling + "' is not supported by the native engine");
    }
    c.rope.neox = std::getenv("EG_NEOX") != nullptr;  // llama: adjacent pairs (the converter permuted Q/K rows for this)

    const GGUFTensor& emb = f.tensor("token_embd.weight");
    c.n_vocab = static_cast<int32_t>(emb.ne[1]);
    m->tok_embd_ = view_of(emb, c.n_embd, c.n_vocab, "token_embd.weight");
    m->output_norm_ = norm_of(f, "output_norm.weight", c.n_embd);
    if (const GGUFTensor* out = f.find_tensor("output.weight")) {
        m->output_ = view_of(*out, c.n_embd, c.n_vocab, "output.weight");
    } else {
        m->output_ = m->tok_embd_;
        c.tied_output = true;
    }
    const int64_t q_dim = int64_t(c.n_head) * c.head_dim, kv_dim = int64_t(c.n_head_kv) * c.head_dim;
    for (int32_t l = 0; l < c.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        if (f.find_tensor(p + "attn_q.bias") || f.find_tensor(p + "attn_q_norm.weight"))
            throw UnsupportedError("attention biases / q-k norms are not supported by the native engine");
        LayerWeights L;
        L.attn_norm = norm_of(f, p + "attn_norm.weight", c.n_embd);
        L.wq = view_of(f.tensor(p + "attn_q.weight"), c.n_embd, q_dim, p + "attn_q.weight");
        L.wk = view_of(f.tensor(p + "attn_k.weight"), c.n_embd, kv_dim, p + "attn_k.weight");
        L.wv = view_of(f.tensor(p + "attn_v.weight"), c.n_embd, kv_dim, p + "attn_v.weight");
        L.wo = view_of(f.tensor(p + "attn_output.weight"), q_dim, c.n_embd, p + "attn_output.weight");
        L.ffn_norm = norm_of(f, p + "ffn_norm.weight", c.n_embd);
        L.w_gate = view_of(f.tensor(p + "ffn_gate.weight"), c.n_embd, c.n_ff, p + "ffn_gate.weight");
        L.w_up = view_of(f.tensor(p + "ffn_up.weight"), c.n_embd, c.n_ff, p + "ffn_up.weight");
        L.w_down = view_of(f.tensor(p + "ffn_down.weight"), c.n_ff, c.n_embd, p + "ffn_down.weight");
        m->layers_.push_back(L);
    }
    if (f.find_tensor("blk." + std::to_string(c.n_layer) + ".attn_norm.weight"))
        throw GGUFError("the file has more layers than block_count says");

    m->pool_ = std::make_unique<ThreadPool>(n_threads);
    const int64_t B = kMaxBatch;
    m->x_.resize(B * c.n_embd);
    m->xn_.resize(B * c.n_embd);
    m->tmp_.resize(B * c.n_embd);
    m->q_.resize(B * q_dim);
    m->attn_.resize(B * q_dim);
    m->k_.resize(B * kv_dim);
    m->v_.resize(B * kv_dim);
    m->gate_.resize(B * c.n_ff);
    m->up_.resize(B * c.n_ff);
    return m;
}

KVCache::Config Model::kv_config(int64_t n_blocks, QType type, int32_t n_seq_max, int32_t block_tokens) const {
    KVCache::Config k;
    k.n_layer = cfg_.n_layer;
    k.n_embd_kv = cfg_.n_head_kv * cfg_.head_dim;
    k.head_dim = cfg_.head_dim;
    k.type = type;
    k.block_tokens = block_tokens;
    k.n_blocks = n_blocks;
    k.n_seq_max = n_seq_max;
    return k;
}

void Model::ensure_scratch(int64_t n_ctx) {
    if (n_ctx <= scratch_ctx_ && !scratch_.empty()) return;
    scratch_ctx_ = n_ctx;
    const int64_t padded = s_stride();
    scratch_.assign(pool_->size(), Scratch{});
    for (Scratch& s : scratch_) {
        s.scores.assign(padded * (cfg_.n_head / cfg_.n_head_kv), 0.0f);
        s.bases.assign(padded / 32 + 1, nullptr);
        s.qf.assign(static_cast<size_t>(cfg_.head_dim) * (cfg_.n_head / cfg_.n_head_kv), 0.0f);
        s.qact.assign(row_size(QType::Q8_0, cfg_.head_dim) + row_size(QType::Q8_K, 256), 0);
    }
}

// ================================================================================================
// Forward pass
// ================================================================================================
void Model::product(const WeightView& w, const float* x, int64_t n_tok, float* y) {
    matmul(kernels(), *pool_, w.type, w.data, w.row_stride, w.ne1, w.ne0, x, n_tok, y, w.ne1);
}

void Model::products(std::initializer_list<std::pair<const WeightView&, float*>> outs, const float* x, int64_t n_tok) {
    MatmulJob jobs[8];
    int n = 0;
    bool same_act = true;
    const QType at = type_traits(outs.begin()->first.type).vec_dot_type;
    for (const auto& [w, y] : outs) {
        jobs[n++] = MatmulJob{w.type, w.data, w.row_stride, w.ne1, y, w.ne1};
        same_act = same_act && type_traits(w.type).vec_dot_type == at;
    }
    if (same_act) {
        matmul_multi(kernels(), *pool_, jobs, n, outs.begin()->first.ne0, x, n_tok);
    } else {  // mixed formats (rare): one product at a time
        for (const auto& [w, y] : outs) product(w, x, n_tok, y);
    }
}

void Model::forward(KVCache& kv, int32_t seq, const int32_t* tokens, int64_t n, bool all_logits, float* logits_out) {
    EG_CHECK(n > 0, "no tokens to evaluate");
    const KVCache::Config& kc = kv.config();
    EG_CHECK(kc.n_layer == cfg_.n_layer && kc.n_embd_kv == cfg_.n_head_kv * cfg_.head_dim && kc.head_dim == cfg_.head_dim,
             "the KV cache was made for another model");
    for (int64_t i = 0; i < n; ++i)
        EG_CHECK(tokens[i] >= 0 && tokens[i] < cfg_.n_vocab,
                 "token id " + std::to_string(tokens[i]) + " outside the vocabulary of " + std::to_string(cfg_.n_vocab));
    kv.reserve(seq, n);  // all or nothing: throws KVCacheFullError before any work
    ensure_scratch(static_cast<int64_t>(kc.n_blocks) * kc.block_tokens);
    for (int64_t i0 = 0; i0 < n; i0 += kMaxBatch) {
        const int64_t nb = std::min(kMaxBatch, n - i0);
        const bool last = i0 + nb == n;
        float* out = all_logits ? logits_out + i0 * cfg_.n_vocab : (last ? logits_out : nullptr);
        forward_chunk(kv, seq, tokens + i0, nb, all_logits, out);
    }
}

void Model::forward_chunk(KVCache& kv, int32_t seq, const int32_t* tokens, int64_t n, bool all_logits,
                          float* logits_out) {
    const KernelTable& kt = kernels();
    const ModelConfig& c = cfg_;
    const int64_t d = c.n_embd, q_dim = int64_t(c.n_head) * c.head_dim, kv_dim = int64_t(c.n_head_kv) * c.head_dim;
    const int64_t start = kv.seq_len(seq);

    // x: (n, d) token embeddings
    const auto embed = kt.dequantize_row[static_cast<int>(tok_embd_.type)];
    for (int64_t i = 0; i < n; ++i) embed(tok_embd_.data + tokens[i] * tok_embd_.row_stride, &x_[i * d], d);

    for (int32_t l = 0; l < c.n_layer; ++l) {
        const LayerWeights& L = layers_[l];
        // ---- attention block -----------------------------------------------------------------
        for (int64_t i = 0; i < n; ++i) rms_norm(&x_[i * d], L.attn_norm, &xn_[i * d], d, c.rms_eps);
        // q: (n, q_dim), k and v: (n, kv_dim), in one parallel region
        products({{L.wq, q_.data()}, {L.wk, k_.data()}, {L.wv, v_.data()}}, xn_.data(), n);
        for (int64_t i = 0; i < n; ++i) {
            rope(&q_[i * q_dim], c.n_head, c.head_dim, static_cast<double>(start + i), c.rope);
            rope(&k_[i * kv_dim], c.n_head_kv, c.head_dim, static_cast<double>(start + i), c.rope);
            kv.write_k(l, seq, start + i, &k_[i * kv_dim], kt);
            kv.write_v(l, seq, start + i, &v_[i * kv_dim], kt);
        }
        attention(kv, l, seq, start, n);          // attn_: (n, q_dim)
        product(L.wo, attn_.data(), n, tmp_.data());
        for (int64_t i = 0; i < n * d; ++i) x_[i] += tmp_[i];
        // ---- feed-forward block (SwiGLU) -----------------------------------------------------
        for (int64_t i = 0; i < n; ++i) rms_norm(&x_[i * d], L.ffn_norm, &xn_[i * d], d, c.rms_eps);
        products({{L.w_gate, gate_.data()}, {L.w_up, up_.data()}}, xn_.data(), n);  // (n, n_ff) each
        kt.silu_mul(n * c.n_ff, gate_.data(), up_.data());
        product(L.w_down, gate_.data(), n, tmp_.data());  // (n, d)
        for (int64_t i = 0; i < n * d; ++i) x_[i] += tmp_[i];
    }
    kv.commit(seq, n);

    if (!logits_out) return;
    const int64_t first = all_logits ? 0 : n - 1;
    const int64_t rows = n - first;
    for (int64_t i = first; i < n; ++i) rms_norm(&x_[i * d], output_norm_, &xn_[(i - first) * d], d, c.rms_eps);
    product(output_, xn_.data(), rows, logits_out);  // (rows, n_vocab)
}

void Model::attention(KVCache& kv, int32_t layer, int32_t seq, int64_t start, int64_t n) {
    const KernelTable& kt = kernels();
    const ModelConfig& c = cfg_;
    const KVCache::Config& kc = kv.config();
    const int64_t hd = c.head_dim, q_dim = int64_t(c.n_head) * hd;
    const int32_t group = c.n_head / c.n_head_kv;
    const int64_t B = kc.block_tokens;
    const size_t row_bytes = kv.row_bytes(), head_bytes = kv.head_bytes();
    const std::vector<int32_t>& table = kv.block_table(seq);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const bool f16 = kv.transposed();
    // A task is one token's heads that share a KV head (f16 caches, enough of them to keep every
    // thread busy: the keys are converted once for the group) or one token's single head.
    const int64_t heads_per_task = f16 && n * c.n_head_kv >= 2 * pool_->size() ? group : 1;
    const int64_t tasks_per_token = c.n_head / heads_per_task;
    const int64_t n_tasks = n * tasks_per_token;
    const size_t sc_stride = s_stride();
    // non-f16 caches: scores by the table's dot kernel, values by y += p * row
    const auto dot = kt.vec_dot[static_cast<int>(kc.type)];
    const auto mad_f32 = kt.vec_mad[static_cast<int>(QType::F32)];
    const auto dequant = kt.dequantize_row[static_cast<int>(kc.type)];
    const QType act_type = type_traits(kc.type).vec_dot_type;
    const auto q_quant = kt.quantize_act[static_cast<int>(act_type)];

    pool_->run([&](int ith, int nth) {
        Scratch& s = scratch_[ith];
        // Tasks interleaved over threads: a causal batch's later tokens attend to more keys.
        for (int64_t task = ith; task < n_tasks; task += nth) {
            const int64_t i = task / tasks_per_token, h = (task % tasks_per_token) * heads_per_task, g = h / group;
            const int64_t L = start + i + 1;        // causal: keys 0..start+i
            const int64_t n_blk = (L + B - 1) / B;
            const float* qh = &q_[i * q_dim + h * hd];
            float* out = &attn_[i * q_dim + h * hd];
            float* sc = s.scores.data();            // (heads, L rounded up to 32) scores, then probabilities
            if (f16) {
                // As llama.cpp: q and the probabilities are rounded to f16, dot products run in
                // ggml's order, softmax over a multiple of 8 (padding is -inf, so exactly 0).
                std::copy(qh, qh + heads_per_task * hd, s.qf.data());
                kt.round_f16(heads_per_task * hd, s.qf.data());
                for (int64_t blk = 0; blk < n_blk; ++blk)
                    kt.dot_f16t(hd, std::min(B, L - blk * B), kv.k_block(layer, table[blk]) + g * hd * B * 2, B * 2,
                                heads_per_task, s.qf.data(), hd, sc + blk * B, sc_stride);
                const int64_t n_chunks = (L + 31) / 32;  // V^T in 32-token chunks, B / 32 per block
                for (int64_t ch = 0; ch < n_chunks; ++ch)
                    s.bases[ch] = kv.v_block(layer, table[ch * 32 / B]) + (ch * 32 % B) * 2;
                for (int64_t k = 0; k < heads_per_task; ++k) {
                    float* sk = sc + k * sc_stride;
                    for (int64_t j = 0; j < L; ++j) sk[j] *= scale;
                    const int64_t L8 = (L + 7) & ~int64_t(7);
                    for (int64_t j = L; j < L8; ++j) sk[j] = -INFINITY;
                    kt.softmax(L8, sk);
                    kt.round_f16(L, sk);  // llama.cpp multiplies V by f16 probabilities
                    std::fill(sk + L, sk + n_chunks * 32, 0.0f);
                    kt.dot_f16_cols(n_chunks, s.bases.data(), static_cast<size_t>(g * hd) * B * 2, static_cast<size_t>(B) * 2,
                                    hd, sk, out + k * hd);
                }
                continue;
            }
            // Quantized caches: llama.cpp's flash-attention arithmetic (it needs flash attention
            // for a quantized V): one pass over the keys with an online softmax in expf, the
            // values dequantized to f32 and accumulated with fused multiply-adds.
            const void* act = qh;
            if (act_type != QType::F32) {
                q_quant(qh, s.qact.data(), hd);
                act = s.qact.data();
            }
            float S = 0.0f, M = -INFINITY;
            float* acc = out;
            float* v32 = sc;  // scratch: one dequantized value row
            std::fill(acc, acc + hd, 0.0f);
            for (int64_t j = 0; j < L; ++j) {
                float sj;
                dot(hd, &sj, kv.k_block(layer, table[j / B]) + (j % B) * row_bytes + g * head_bytes, row_bytes, 1, act);
                sj = sj * scale;
                float ms = 1.0f, vs = 1.0f;
                if (sj > M) {
                    const float m_old = M;
                    M = sj;
                    ms = std::exp(m_old - M);
                    for (int64_t d = 0; d < hd; ++d) acc[d] *= ms;
                } else {
                    vs = std::exp(sj - M);
                }
                dequant(kv.v_block(layer, table[j / B]) + (j % B) * row_bytes + g * head_bytes, v32, hd);
                mad_f32(hd, acc, v32, vs);
                S = std::fma(S, ms, vs);  // contracted in the x86 build of ggml
            }
            const float s_inv = S == 0.0f ? 0.0f : 1.0f / S;
            for (int64_t d = 0; d < hd; ++d) acc[d] *= s_inv;
        }
    });
}

}  // namespace eg
