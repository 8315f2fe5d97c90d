// gguf_checks.cpp — semantic checks run by GGUFFile::open() after the structural parse:
// the tokenizer metadata is self-consistent, and (for llama-style architectures) the
// hyper-parameters agree with the tensor shapes, so the forward pass can trust both.
#include <set>
#include <string>

#include "gguf.h"
#include "model_spec.h"

namespace eg {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw GGUFError(msg); }

constexpr int64_t kMaxLayers = 1 << 12;

// Architectures whose tensors follow llama.cpp's llama layout (separate q/k/v, blk.N.* names).
bool llama_style(const std::string& arch) {
    static const std::set<std::string> archs = {"llama", "mistral", "gemma", "gemma2", "gemma3",
                                                "qwen2", "qwen3", "granite", "smollm3"};
    return archs.count(arch) != 0;
}

// "blk.<N>.<rest>" -> N, or -1 when the name has another form.
int64_t block_index(std::string_view name) {
    constexpr std::string_view prefix = "blk.";
    if (name.substr(0, prefix.size()) != prefix) return -1;
    int64_t n = 0;
    size_t i = prefix.size();
    const size_t start = i;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9') {
        if (n > kMaxLayers * 1000) return -2;  // absurd index: reported by the caller
        n = n * 10 + (name[i] - '0');
        ++i;
    }
    if (i == start || i >= name.size() || name[i] != '.') return -1;
    return n;
}

}  // namespace

void GGUFFile::check_vocab() const {
    const GGUFValue* tokens = find("tokenizer.ggml.tokens");
    int64_t n_vocab = -1;
    if (tokens) {
        if (tokens->type != GGUFType::ARRAY || tokens->array_type != GGUFType::STRING)
            fail("tokenizer.ggml.tokens must be an array of strings");
        if (tokens->array_count == 0) fail("tokenizer.ggml.tokens is empty");
        if (tokens->array_count > (1u << 31) - 1) fail("tokenizer.ggml.tokens has too many entries");
        n_vocab = static_cast<int64_t>(tokens->array_count);
    }
    // Per-token arrays must line up with the vocabulary.
    struct PerToken {
        const char* key;
        GGUFType type;
    };
    for (const PerToken& p : {PerToken{"tokenizer.ggml.scores", GGUFType::FLOAT32},
                              PerToken{"tokenizer.ggml.token_type", GGUFType::INT32}}) {
        const GGUFValue* v = find(p.key);
        if (!v) continue;
        if (!tokens) fail(std::string(p.key) + " is present without tokenizer.ggml.tokens");
        if (v->type != GGUFType::ARRAY || v->array_type != p.type)
            fail(std::string(p.key) + " must be an array of " + gguf_type_name(p.type));
        if (static_cast<int64_t>(v->array_count) != n_vocab)
            fail(std::string(p.key) + " has " + std::to_string(v->array_count) + " entries for " +
                 std::to_string(n_vocab) + " tokens");
    }
    if (const GGUFValue* m = find("tokenizer.ggml.merges"))
        if (m->type != GGUFType::ARRAY || m->array_type != GGUFType::STRING)
            fail("tokenizer.ggml.merges must be an array of strings");
    if (const GGUFValue* m = find("tokenizer.ggml.model"))
        if (m->type != GGUFType::STRING) fail("tokenizer.ggml.model must be a string");

    // Every special-token id (tokenizer.ggml.<name>_token_id) must name a real token.
    constexpr std::string_view prefix = "tokenizer.ggml.", suffix = "_token_id";
    for (const GGUFKeyValue& kv : kv_) {
        const std::string_view k = kv.key;
        if (k.size() <= prefix.size() + suffix.size() || k.substr(0, prefix.size()) != prefix ||
            k.substr(k.size() - suffix.size()) != suffix)
            continue;
        if (!kv.value.is_integer()) fail(std::string(k) + " must be an integer");
        if (!tokens) fail(std::string(k) + " is present without tokenizer.ggml.tokens");
        const int64_t id = get_int(k);  // throws if a uint64 does not fit
        if (id < 0 || id >= n_vocab)
            fail(std::string(k) + " = " + std::to_string(id) + " is outside the vocabulary [0, " +
                 std::to_string(n_vocab) + ")");
    }
}

void GGUFFile::check_model() const {
    const std::string arch = architecture();
    if (!llama_style(arch)) return;
    const std::string p = arch + ".";

    // Layers: n_layer vs the blk.N tensors.
    const int64_t n_layer = get_int(p + "block_count", -1);
    std::set<int64_t> seen;
    for (const GGUFTensor& t : tensors_) {
        const int64_t b = block_index(t.name);
        if (b == -2) fail("tensor '" + std::string(t.name) + "' has an absurd block index");
        if (b >= 0) seen.insert(b);
    }
    if (n_layer >= 0) {
        if (n_layer == 0 || n_layer > kMaxLayers)
            fail(p + "block_count = " + std::to_string(n_layer) + " is not a sane layer count");
        if (!seen.empty() && *seen.rbegin() >= n_layer)
            fail("tensor blk." + std::to_string(*seen.rbegin()) + ".* exceeds " + p + "block_count = " +
                 std::to_string(n_layer));
        if (!tensors_.empty() && static_cast<int64_t>(seen.size()) != n_layer) {
            int64_t missing = 0;
            while (seen.count(missing)) ++missing;
            fail(p + "block_count = " + std::to_string(n_layer) + " but no tensors for blk." + std::to_string(missing));
        }
    }

    // Width: n_embd vs token_embd; vocabulary vs token_embd rows.
    const int64_t n_embd = get_int(p + "embedding_length", -1);
    const GGUFTensor* embd = find_tensor("token_embd.weight");
    if (n_embd != -1 && n_embd <= 0) fail(p + "embedding_length must be positive");
    if (embd && n_embd > 0 && embd->ne[0] != n_embd)
        fail("token_embd.weight has rows of " + std::to_string(embd->ne[0]) + " but " + p +
             "embedding_length = " + std::to_string(n_embd));
    if (embd) {
        const GGUFValue* tokens = find("tokenizer.ggml.tokens");
        if (tokens && embd->ne[1] != static_cast<int64_t>(tokens->array_count))
            fail("token_embd.weight has " + std::to_string(embd->ne[1]) + " rows for a vocabulary of " +
                 std::to_string(tokens->array_count) + " tokens");
    }

    // Heads: n_head * head_dim vs attn_q, n_head_kv * head_dim vs attn_k / attn_v, read by the
    // engine's one hyper-parameter reader (model_spec.cpp). Per-layer head counts (arrays) are
    // left to the architectures that use them.
    const GGUFValue* hv = find(p + "attention.head_count");
    if (!hv || hv->type == GGUFType::ARRAY || n_embd <= 0 || n_layer <= 0) return;
    const GGUFValue* hkv = find(p + "attention.head_count_kv");
    if (hkv && hkv->type == GGUFType::ARRAY) return;
    const HParams h = read_hparams(*this);
    const int64_t n_head = h.n_head, n_head_kv = h.n_head_kv, head_k = h.head_dim, head_v = h.head_dim_v;
    if (n_head % n_head_kv != 0)
        fail(p + "attention.head_count_kv = " + std::to_string(n_head_kv) + " does not divide head_count = " +
             std::to_string(n_head));
    const GGUFValue* ff = find(p + "feed_forward_length");
    const int64_t n_ff = ff && ff->type != GGUFType::ARRAY ? h.n_ff : -1;

    struct Expect {
        const char* name;
        int64_t ne0, ne1;  // -1: not checked
    };
    const Expect expect[] = {
        {"attn_q", n_embd, n_head * head_k},     {"attn_k", n_embd, n_head_kv * head_k},
        {"attn_v", n_embd, n_head_kv * head_v},  {"attn_output", n_head * head_v, n_embd},
        {"ffn_gate", n_embd, n_ff},              {"ffn_up", n_embd, n_ff},
        {"ffn_down", n_ff, n_embd},
    };
    for (int64_t l = 0; l < n_layer; ++l) {
        for (const Expect& e : expect) {
            const std::string name = "blk." + std::to_string(l) + "." + e.name + ".weight";
            const GGUFTensor* t = find_tensor(name);
            if (!t) continue;
            if ((e.ne0 >= 0 && t->ne[0] != e.ne0) || (e.ne1 >= 0 && t->ne[1] != e.ne1))
                fail(name + " has shape [" + std::to_string(t->ne[0]) + ", " + std::to_string(t->ne[1]) +
                     "] but the hyper-parameters (n_embd " + std::to_string(n_embd) + ", n_head " +
                     std::to_string(n_head) + ", n_head_kv " + std::to_string(n_head_kv) + ", head_dim " +
                     std::to_string(head_k) + ", n_ff " + std::to_string(n_ff) + ") imply [" +
                     std::to_string(e.ne0) + ", " + std::to_string(e.ne1) + "]");
        }
    }
}

}  // namespace eg
