// lora.h — LoRA adapters (GGUF, as llama.cpp's convert_lora_to_gguf.py writes them) applied at run
// time: each adapted product computes W·x + scale·B·(A·x); the base weights stay mapped and
// untouched, so adapters load in milliseconds and switching them costs nothing.
//
// File format (llama.cpp's llama-adapter.cpp): general.type = "adapter", adapter.type = "lora",
// adapter.lora.alpha, and for each adapted base tensor T two tensors "T.lora_a" (ne [n_in, rank])
// and "T.lora_b" (ne [rank, n_out]), in F32, F16, BF16 or Q8_0. The effective scale of one pair is
// llama.cpp's: user_scale * alpha / rank, or user_scale when alpha is 0.
//
//   auto ad = eg::LoraAdapter::load(eg::GGUFFile::open("menu.gguf"), *model);  // validated here
//   model->set_adapters(seq, {{ad, 1.0f}});   // that sequence's rows now go through the adapter
//
// Batches: a LoraRunner applies adapters per group of consecutive rows (one sequence's tokens),
// so sequences with different adapters can share a batch for the base products; each group's
// low-rank products run on its own rows only.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "compute_backend.h"
#include "gguf.h"

namespace eg {

class Model;

// An adapter that does not fit the base model, or a malformed adapter file (the binding raises
// edgegen.AdapterError; the message names the tensor or key at fault).
struct AdapterError : Error {
    using Error::Error;
};

// The products of the forward pass an adapter can target: per layer, then the output head.
enum class LoraSlot : int32_t { Q, K, V, O, Gate, Up, Down, Output, Count };

struct LoraPair {
    Weight a;             // (rank rows of n_in)
    Weight b;             // (n_out rows of rank)
    // B transposed (rank rows of n_out), its exact values as F16 (F16 files) or F32 (the others):
    // for a few rows B·u is rank long axpys instead of n_out dot products of length rank.
    std::vector<uint8_t> bt;
    QType bt_type = QType::F32;
    int32_t rank = 0;
    float alpha = 0.0f;   // the file's adapter.lora.alpha: scale = user_scale * alpha / rank (0: user_scale)
};

class LoraAdapter {
public:
    // Validates `file` against `model` (architecture, every target exists and is a product the
    // engine runs, shapes agree, rank sane, types) and prepares its matrices on the model's
    // backend. Throws AdapterError naming the mismatch; UnsupportedError for a valid adapter this
    // engine cannot apply (a target the forward pass does not multiply, e.g. token_embd).
    static std::shared_ptr<LoraAdapter> load(std::shared_ptr<GGUFFile> file, Model& model);

    // nullptr when the adapter leaves that product alone (layer ignored for LoraSlot::Output).
    const LoraPair* pair(int32_t layer, LoraSlot slot) const {
        const int32_t i = slot == LoraSlot::Output ? n_layer_ * kPerLayer : layer * kPerLayer + static_cast<int32_t>(slot);
        return index_[i] < 0 ? nullptr : &pairs_[index_[i]];
    }
    const Model* model() const { return model_; }
    float alpha() const { return alpha_; }
    int32_t max_rank() const { return max_rank_; }
    size_t n_pairs() const { return pairs_.size(); }
    const std::vector<std::string>& targets() const { return targets_; }  // base tensor names
    size_t nbytes() const { return nbytes_; }  // bytes of A and B (mapped) and B^T (heap)
    const GGUFFile& file() const { return *file_; }

private:
    static constexpr int32_t kPerLayer = static_cast<int32_t>(LoraSlot::Output);
    std::shared_ptr<GGUFFile> file_;
    const Model* model_ = nullptr;
    int32_t n_layer_ = 0, max_rank_ = 0;
    float alpha_ = 0.0f;
    size_t nbytes_ = 0;
    std::vector<LoraPair> pairs_;
    std::vector<int32_t> index_;  // (n_layer * kPerLayer + 1) -> pairs_ index, -1: not adapted
    std::vector<std::string> targets_;
};

// One adapter in use with its scale; a selection is applied in order (llama.cpp's order).
struct LoraUse {
    std::shared_ptr<const LoraAdapter> adapter;
    float scale = 1.0f;
};
using LoraSelection = std::vector<LoraUse>;

// A product to adapt: its output rows (y_stride floats apart) and which weight it multiplied.
struct LoraTarget {
    LoraSlot slot;
    float* y;
    int64_t y_stride;
};

// Applies the selected adapters to a batch whose rows are grouped by selection. The forward pass
// calls begin() once per batch and apply() after each group of base products.
class LoraRunner {
public:
    // Rows [row0, row0 + n) use `sel` (nullptr or empty: the base model alone). The selections
    // must outlive the batch.
    struct Rows {
        int64_t row0, n;
        const LoraSelection* sel;
    };
    void begin(std::vector<Rows> groups);
    void begin_single(int64_t n, const LoraSelection* sel) { begin({Rows{0, n, sel}}); }
    bool active() const { return active_; }
    // y_t += scale_i * B_i (A_i x) for every target, adapter i of each row group; x (rows, cols).
    // Groups of up to kAxpyRows rows (decode) form B·u as axpys over B's transpose; larger ones
    // (prompt chunks) as the backend's batched product, llama.cpp's arithmetic exactly.
    void apply(ComputeBackend& be, int32_t layer, const float* x, int64_t cols, std::initializer_list<LoraTarget> targets);

private:
    struct Pending {
        const LoraPair* p;
        const LoraTarget* t;
        float scale;
        size_t u_off;
    };
    static constexpr int64_t kAxpyRows = 2;
    std::vector<Rows> groups_;
    bool active_ = false;
    std::vector<Pending> pending_;
    std::vector<float> u_;  // A·x for every pending pair, (rows, rank) each
    std::vector<float> v_;  // B·u of one pair, (rows, n_out)
    std::vector<float> x_round_, u_round_;  // activations rounded for F16/BF16 matrices
};

// Checks a user's scale: finite, |scale| <= 1e4 (AdapterError otherwise).
void check_lora_scale(float scale);

}  // namespace eg
