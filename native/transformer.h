// transformer.h — the llama-architecture forward pass over weights read in place from a GGUF file.
//
//   auto model = eg::Model::load("smollm2.gguf", n_threads);
//   eg::KVCache kv(model->kv_config(n_blocks, eg::QType::F16, n_seq));
//   model->forward(kv, seq, tokens, n, /*all_logits=*/false, logits);   // logits: (n_vocab,)
//
// Every product goes through the kernel dispatch table (never a concrete ISA function), so an
// accelerator provider can later take the table's place.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <utility>
#include <memory>
#include <string>
#include <vector>

#include "gguf.h"
#include "kernels.h"
#include "kv_cache.h"
#include "ops.h"
#include "threadpool.h"

namespace eg {

// A valid file this engine cannot run (architecture, tensor type, rope scaling); the binding
// raises edgegen.UnsupportedModelError so callers can fall back to another backend.
struct UnsupportedError : Error {
    using Error::Error;
};

struct ModelConfig {
    std::string arch;
    int32_t n_layer = 0, n_embd = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0, n_vocab = 0;
    int64_t n_ctx_train = 0;
    float rms_eps = 1e-5f;
    RopeParams rope;
    bool tied_output = false;  // output head shares token_embd
};

// A weight matrix used in place: rows of ne0 elements, ne1 rows.
struct WeightView {
    QType type = QType::F32;
    int64_t ne0 = 0, ne1 = 0;
    const uint8_t* data = nullptr;
    size_t row_stride = 0;
};

struct LayerWeights {
    const float* attn_norm = nullptr;  // (n_embd)
    WeightView wq, wk, wv, wo;         // (n_embd -> n_head*hd), (n_embd -> n_kv*hd) x2, (n_head*hd -> n_embd)
    const float* ffn_norm = nullptr;   // (n_embd)
    WeightView w_gate, w_up, w_down;   // (n_embd -> n_ff) x2, (n_ff -> n_embd)
};

class Model {
public:
    // Maps, validates and wires the file. Throws GGUFError (malformed) or Error (unsupported).
    static std::unique_ptr<Model> load(const std::string& path, int n_threads);

    const ModelConfig& config() const { return cfg_; }
    ThreadPool& pool() { return *pool_; }
    const GGUFFile& file() const { return *file_; }

    KVCache::Config kv_config(int64_t n_blocks, QType type, int32_t n_seq_max, int32_t block_tokens = 32) const;

    // Runs tokens[0..n) of sequence `seq` at positions seq_len.. seq_len+n-1, appending their
    // K/V to the cache. logits_out: (n_vocab) for the last token, or (n, n_vocab) if all_logits.
    // Throws KVCacheFullError before changing anything when the cache cannot hold n more.
    void forward(KVCache& kv, int32_t seq, const int32_t* tokens, int64_t n, bool all_logits, float* logits_out);

    // Largest batch one internal step processes; longer inputs run in chunks of this size.
    static constexpr int64_t kMaxBatch = 64;

private:
    Model() = default;
    void forward_chunk(KVCache& kv, int32_t seq, const int32_t* tokens, int64_t n, bool all_logits,
                       float* logits_out);
    void attention(KVCache& kv, int32_t layer, int32_t seq, int64_t start, int64_t n);
    void product(const WeightView& w, const float* x, int64_t n_tok, float* y);
    // Products sharing the input x, in one parallel region.
    void products(std::initializer_list<std::pair<const WeightView&, float*>> outs, const float* x, int64_t n_tok);
    void ensure_scratch(int64_t n_ctx);

    std::shared_ptr<GGUFFile> file_;
    std::unique_ptr<ThreadPool> pool_;
    ModelConfig cfg_;
    WeightView tok_embd_, output_;
    const float* output_norm_ = nullptr;
    std::vector<LayerWeights> layers_;

    // scratch, sized for kMaxBatch tokens
    std::vector<float> x_;      // (batch, n_embd)  residual stream
    std::vector<float> xn_;     // (batch, n_embd)  normed input of a block
    std::vector<float> q_;      // (batch, n_head*hd)
    std::vector<float> k_;      // (batch, n_kv*hd)
    std::vector<float> v_;      // (batch, n_kv*hd)
    std::vector<float> attn_;   // (batch, n_head*hd)
    std::vector<float> tmp_;    // (batch, n_embd)  product output before the residual add
    std::vector<float> gate_;   // (batch, n_ff)
    std::vector<float> up_;     // (batch, n_ff)
    struct Scratch {                  // one per worker thread, sized for the cache's context
        std::vector<float> scores;      // (heads of a task, n_ctx padded to 32) scores, then probabilities
        std::vector<const uint8_t*> bases;  // (n_blocks) V^T block pointers
        std::vector<float> qf;          // (heads of a task, hd) queries rounded to f16
        std::vector<uint8_t> qact;      // query in the cache type's activation format
    };
    std::vector<Scratch> scratch_;
    int64_t scratch_ctx_ = 0;
    // floats per head in Scratch::scores: the context rounded up to whole 32-token chunks, + 32
    size_t s_stride() const { return static_cast<size_t>((scratch_ctx_ + 63) & ~int64_t(31)); }
};

}  // namespace eg
