// transformer.h — the decoder forward pass over weights read in place from a GGUF file.
//
//   auto file = eg::GGUFFile::open("model.gguf");
//   auto model = eg::Model::load(file, eg::make_cpu_backend(n_threads));
//   eg::KVCache kv(model->plan_cache(n_ctx, n_seq, eg::QType::F16));
//   int32_t next = model->decode(kv, seq, tokens, n, sampler);      // forward + sampling
//   model->forward(kv, seq, tokens, n, /*all_logits=*/false, logits); // logits: (n_vocab,)
//
// One forward pass serves every architecture the ModelSpec describes (llama, qwen2, qwen3,
// gemma3); where they differ it is by a property of the spec, not by the architecture's name.
// Everything heavy goes through the ComputeBackend.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "batch_decode.h"
#include "compute_backend.h"
#include "gguf.h"
#include "kv_cache.h"
#include "lora.h"
#include "model_spec.h"
#include "sampler.h"

namespace eg {

struct LayerWeights {
    const float* attn_norm = nullptr;              // (n_embd)
    Weight wq, wk, wv, wo;                         // (n_embd -> q_dim), (n_embd -> kv_dim) x2, (q_dim -> n_embd)
    const float *bq = nullptr, *bk = nullptr, *bv = nullptr;  // (q_dim), (kv_dim) x2, when the spec has biases
    const float *q_norm = nullptr, *k_norm = nullptr;         // (head_dim), per-head RMS norms
    const float* post_attn_norm = nullptr;         // (n_embd)
    const float* ffn_norm = nullptr;               // (n_embd)
    Weight w_gate, w_up, w_down;                   // (n_embd -> n_ff) x2, (n_ff -> n_embd)
    const float* post_ffn_norm = nullptr;          // (n_embd)
};

class Model {
public:
    // Wires a validated file's weights to a backend. Throws UnsupportedError (a valid file this
    // engine does not run) or GGUFError (inconsistent file).
    static std::unique_ptr<Model> load(std::shared_ptr<GGUFFile> file, std::unique_ptr<ComputeBackend> backend);

    const ModelSpec& spec() const { return spec_; }
    ComputeBackend& backend() { return *backend_; }
    const GGUFFile& file() const { return *file_; }

    // The cache layout for this model (the sizing function the fit check and store share).
    KVLayout plan_cache(int64_t n_tokens, int32_t n_seq, QType type, int32_t block_tokens = 32) const;
    KVShape kv_shape() const;

    // Runs tokens[0..n) of sequence `seq` at positions seq_len.. seq_len+n-1, appending their
    // K/V to the cache. logits_out: (n_vocab) for the last token, or (n, n_vocab) if all_logits.
    // Throws KVCacheFullError before changing anything when the cache cannot hold n more.
    void forward(KVCache& kv, int32_t seq, const int32_t* tokens, int64_t n, bool all_logits, float* logits_out);

    // One decode step: forward over tokens, the sampler sees them, then picks the next token
    // from the last logits, restricted to `allowed` when given (see Sampler::sample).
    int32_t decode(KVCache& kv, int32_t seq, const int32_t* tokens, int64_t n, Sampler& sampler,
                   const uint32_t* allowed = nullptr);

    // One forward pass over several sequences (batch_decode.h): each steps[i] appends its tokens
    // to its own sequence; those with `sample` get steps[i].next. At most kMaxBatch rows in all,
    // sequences distinct. Throws KVCacheFullError before changing anything when the cache cannot
    // hold every sequence's new rows. A single sequence's rows get exactly forward()'s arithmetic.
    void step(KVCache& kv, SeqStep* steps, int32_t n_steps);

    // LoRA adapters for sequence `seq`'s rows from now on (lora.cpp; empty or all scales 0: the
    // base model). The KV cache does not know: callers keep prefixes of different selections apart.
    void set_adapters(int32_t seq, LoraSelection sel);
    const LoraSelection* adapters(int32_t seq) const;  // nullptr: none

    // Context shift with every layer's rope (see KVCache::seq_shift).
    void shift(KVCache& kv, int32_t seq, int64_t n_keep, int64_t n_discard);

    // Largest batch one internal step processes; longer inputs run in chunks of this size.
    static constexpr int64_t kMaxBatch = 64;

private:
    Model() = default;
    void check_cache(const KVCache& kv) const;
    void forward_chunk(KVCache& kv, int32_t seq, const int32_t* tokens, int64_t n, bool all_logits, float* logits_out);
    // A run of consecutive activation rows that belong to one sequence.
    struct Segment {
        int32_t seq;
        int64_t start;  // position of the first row
        int64_t row0, n;
    };
    // The pass over rows [0, n_rows) made of `segs`; logits of rows `out_rows` (ascending) go to
    // logits_out (one n_vocab row each).
    void forward_segments(KVCache& kv, const Segment* segs, int32_t n_segs, const int32_t* tokens, int64_t n_rows,
                          const int64_t* out_rows, int64_t n_out, float* logits_out);
    void attention_block(KVCache& kv, int32_t l, const Segment* segs, int32_t n_segs, int64_t n);
    void ffn_block(int32_t l, int64_t n);

    std::shared_ptr<GGUFFile> file_;
    std::unique_ptr<ComputeBackend> backend_;
    ModelSpec spec_;
    std::vector<RopeParams> layer_rope_;  // spec rope + this file's frequency factors
    Weight tok_embd_, output_;
    const float* output_norm_ = nullptr;
    std::vector<LayerWeights> layers_;
    std::vector<float> logits_;  // (n_vocab) decode's last logits
    std::vector<float> step_logits_;  // (sampled rows, n_vocab) of step()
    std::map<int32_t, LoraSelection> seq_lora_;  // per sequence: adapters and scales
    LoraRunner lora_;                            // the low-rank products of the current batch

    // activations, sized for kMaxBatch tokens
    std::vector<float> x_;      // (batch, n_embd)  residual stream
    std::vector<float> xn_;     // (batch, n_embd)  normed input of a block
    std::vector<float> q_;      // (batch, q_dim)
    std::vector<float> k_;      // (batch, kv_dim)
    std::vector<float> v_;      // (batch, kv_dim)
    std::vector<float> attn_;   // (batch, q_dim)
    std::vector<float> tmp_;    // (batch, n_embd)  block output before the residual add
    std::vector<float> gate_;   // (batch, n_ff)
    std::vector<float> up_;     // (batch, n_ff)
};

}  // namespace eg
