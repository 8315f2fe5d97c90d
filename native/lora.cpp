// lora.cpp — see lora.h. The checks follow llama.cpp's llama_adapter_lora_init_impl so the same
// file means the same adapter in both engines; the arithmetic follows its build_lora_mm
// (res = W·x; for each adapter: res += scale · (B · (A · x))).
#include "lora.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "kernels.h"
#include "model_spec.h"
#include "transformer.h"

namespace eg {

namespace {

constexpr const char* kSuffixA = ".lora_a";
constexpr const char* kSuffixB = ".lora_b";
constexpr int32_t kMaxRank = 8192;  // far above any practical LoRA; a larger value is a broken file

bool ends_with(std::string_view s, std::string_view suf) {
    return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf;
}

// "blk.N.<name>.weight" / "output.weight" -> (layer, slot); false for anything else.
bool slot_of(const std::string& base, int32_t n_layer, int32_t* layer, LoraSlot* slot) {
    if (base == "output.weight") {
        *layer = -1;
        *slot = LoraSlot::Output;
        return true;
    }
    static const std::map<std::string, LoraSlot> names = {
        {"attn_q.weight", LoraSlot::Q},       {"attn_k.weight", LoraSlot::K},   {"attn_v.weight", LoraSlot::V},
        {"attn_output.weight", LoraSlot::O},  {"ffn_gate.weight", LoraSlot::Gate},
        {"ffn_up.weight", LoraSlot::Up},      {"ffn_down.weight", LoraSlot::Down},
    };
    if (base.compare(0, 4, "blk.") != 0) return false;
    const size_t dot = base.find('.', 4);
    if (dot == std::string::npos || dot == 4 || dot > 10) return false;
    int64_t l = 0;
    for (size_t i = 4; i < dot; ++i) {
        if (base[i] < '0' || base[i] > '9') return false;
        l = l * 10 + (base[i] - '0');
    }
    const auto it = names.find(base.substr(dot + 1));
    if (it == names.end() || l >= n_layer) return false;
    *layer = static_cast<int32_t>(l);
    *slot = it->second;
    return true;
}

WeightView matrix_view(const GGUFTensor& t) {
    WeightView v;
    v.type = static_cast<QType>(t.type);
    v.cols = t.ne[0];
    v.rows = t.ne[1];
    v.data = t.data;
    v.row_stride = row_size(v.type, v.cols);
    return v;
}

std::string shape(const GGUFTensor& t) { return "[" + std::to_string(t.ne[0]) + ", " + std::to_string(t.ne[1]) + "]"; }

// Runs up to eight products sharing x through the backend's batched call (it takes a brace list).
void matmul_n(ComputeBackend& be, const MatJob* j, int n, const float* x, int64_t n_tok) {
    switch (n) {
        case 1: return be.matmul({j[0]}, x, n_tok);
        case 2: return be.matmul({j[0], j[1]}, x, n_tok);
        case 3: return be.matmul({j[0], j[1], j[2]}, x, n_tok);
        case 4: return be.matmul({j[0], j[1], j[2], j[3]}, x, n_tok);
        case 5: return be.matmul({j[0], j[1], j[2], j[3], j[4]}, x, n_tok);
        case 6: return be.matmul({j[0], j[1], j[2], j[3], j[4], j[5]}, x, n_tok);
        case 7: return be.matmul({j[0], j[1], j[2], j[3], j[4], j[5], j[6]}, x, n_tok);
        default: return be.matmul({j[0], j[1], j[2], j[3], j[4], j[5], j[6], j[7]}, x, n_tok);
    }
}

// llama.cpp multiplies an F16 (BF16) matrix by activations converted to F16 (BF16): the same
// rounding here makes F16/BF16 adapters agree with it to float noise, not to a few tenths of a nat.
// Returns the rounded copy (in `buf`) or x itself for F32 and Q8_0 matrices.
const float* activations_for(QType t, const float* x, int64_t n, std::vector<float>& buf) {
    if (t != QType::F16 && t != QType::BF16) return x;
    if (buf.size() < static_cast<size_t>(n)) buf.resize(n);
    if (t == QType::F16) {
        std::copy(x, x + n, buf.begin());
        kernels().round_f16(n, buf.data());
    } else {
        for (int64_t i = 0; i < n; ++i) buf[i] = bf16_to_f32(f32_to_bf16(x[i]));
    }
    return buf.data();
}

// B (n_out rows of rank, any LoRA type) transposed into rank rows of n_out: F16 stays F16 (same
// bytes to stream per token), F32 / BF16 / Q8_0 become F32; every value is exact.
void transpose_b(const WeightView& b, LoraPair& p) {
    const int64_t rank = b.cols, n_out = b.rows;
    std::vector<float> row(rank);
    const auto dequantize = kernels().dequantize_row[static_cast<int>(b.type)];
    p.bt_type = b.type == QType::F16 ? QType::F16 : QType::F32;
    const size_t elem = p.bt_type == QType::F16 ? sizeof(fp16_t) : sizeof(float);
    p.bt.assign(static_cast<size_t>(rank * n_out) * elem, 0);
    for (int64_t o = 0; o < n_out; ++o) {
        dequantize(static_cast<const uint8_t*>(b.data) + o * b.row_stride, row.data(), rank);
        for (int64_t k = 0; k < rank; ++k) {
            if (p.bt_type == QType::F16)
                reinterpret_cast<fp16_t*>(p.bt.data())[k * n_out + o] = f32_to_fp16(row[k]);  // exact: came from f16
            else
                reinterpret_cast<float*>(p.bt.data())[k * n_out + o] = row[k];
        }
    }
}

}  // namespace

void check_lora_scale(float scale) {
    if (!std::isfinite(scale) || std::fabs(scale) > 1e4f)
        throw AdapterError("adapter scale " + std::to_string(scale) + " is not a finite number within [-1e4, 1e4]");
}

std::shared_ptr<LoraAdapter> LoraAdapter::load(std::shared_ptr<GGUFFile> file, Model& model) {
    EG_CHECK(file, "LoraAdapter::load needs a file");
    const GGUFFile& f = *file;
    const GGUFFile& base = model.file();
    const ModelSpec& spec = model.spec();
    const std::string what = "adapter " + f.path();
    auto fail = [&](const std::string& msg) -> AdapterError { return AdapterError(what + ": " + msg); };

    const GGUFValue* gt = f.find("general.type");
    if (!gt || gt->type != GGUFType::STRING || f.get_string("general.type") != "adapter")
        throw fail("general.type is not 'adapter' (is this a model file rather than a LoRA adapter?)");
    const std::string kind = f.get_string("adapter.type", "");
    if (kind != "lora") throw fail("adapter.type is '" + kind + "', expected 'lora'");
    if (f.architecture() != spec.hp.arch)
        throw fail("made for architecture '" + f.architecture() + "', the base model is '" + spec.hp.arch + "'");
    const GGUFValue* av = f.find("adapter.lora.alpha");
    double alpha = 0.0;
    if (av) {
        if (av->type != GGUFType::FLOAT32 && av->type != GGUFType::FLOAT64) throw fail("adapter.lora.alpha must be a float");
        alpha = f.get_float("adapter.lora.alpha");
    }
    if (!std::isfinite(alpha) || alpha < 0.0 || alpha > 1e6) throw fail("adapter.lora.alpha = " + std::to_string(alpha) + " is not a sane value");

    auto ad = std::shared_ptr<LoraAdapter>(new LoraAdapter());
    ad->file_ = std::move(file);
    ad->model_ = &model;
    ad->alpha_ = static_cast<float>(alpha);
    ad->n_layer_ = spec.hp.n_layer;
    ad->index_.assign(static_cast<size_t>(spec.hp.n_layer) * kPerLayer + 1, -1);

    // Pair up <base>.lora_a / <base>.lora_b (file order kept for the messages).
    std::map<std::string, std::pair<const GGUFTensor*, const GGUFTensor*>> pairs;
    std::vector<std::string> order;
    for (const GGUFTensor& t : f.tensors()) {
        const std::string name(t.name);
        const bool is_a = ends_with(name, kSuffixA), is_b = ends_with(name, kSuffixB);
        if (!is_a && !is_b) throw fail("tensor '" + name + "' is neither a .lora_a nor a .lora_b tensor");
        const std::string target = name.substr(0, name.size() - 7);
        auto& p = pairs[target];
        if (!p.first && !p.second) order.push_back(target);
        (is_a ? p.first : p.second) = &t;
    }
    if (order.empty()) throw fail("it holds no LoRA tensors");

    for (const std::string& target : order) {
        const GGUFTensor* a = pairs[target].first;
        const GGUFTensor* b = pairs[target].second;
        if (!a || !b) throw fail("the LoRA pair for '" + target + "' is missing its " + (a ? "lora_b" : "lora_a") + " tensor");
        const GGUFTensor* w = base.find_tensor(target);
        if (!w) throw fail("target tensor '" + target + "' does not exist in the base model");
        int32_t layer = 0;
        LoraSlot slot;
        if (!slot_of(target, spec.hp.n_layer, &layer, &slot))
            throw UnsupportedError(what + ": target '" + target +
                                   "' is not a product the native engine adapts (attention and feed-forward "
                                   "matrices and output.weight are)");
        for (const GGUFTensor* t : {a, b}) {
            const QType q = static_cast<QType>(t->type);
            if (!(q == QType::F32 || q == QType::F16 || q == QType::BF16 || q == QType::Q8_0))
                throw fail("tensor '" + std::string(t->name) + "' has type id " + std::to_string(t->type) +
                           "; LoRA matrices must be F32, F16, BF16 or Q8_0");
            if (t->n_dims != 2) throw fail("tensor '" + std::string(t->name) + "' is not a matrix");
        }
        // llama.cpp's checks: A is [n_in, rank], B is [rank, n_out], W is [n_in, n_out].
        if (w->ne[0] != a->ne[0] || w->ne[1] != b->ne[1])
            throw fail("'" + target + "' is " + shape(*w) + " but lora_a is " + shape(*a) + " and lora_b is " + shape(*b) +
                       " (expected [" + std::to_string(w->ne[0]) + ", rank] and [rank, " + std::to_string(w->ne[1]) +
                       "]; are A and B transposed, or is this adapter for another base model?)");
        if (a->ne[1] != b->ne[0])
            throw fail("'" + target + "': lora_a has rank " + std::to_string(a->ne[1]) + " but lora_b has rank " +
                       std::to_string(b->ne[0]));
        const int64_t rank = a->ne[1];
        if (rank < 1 || rank > std::min<int64_t>({w->ne[0], w->ne[1], kMaxRank}))
            throw fail("'" + target + "' has rank " + std::to_string(rank) + ", more than the matrix it adapts (" +
                       shape(*w) + ") allows");
        LoraPair p;
        p.a = model.backend().prepare(matrix_view(*a));
        p.b = model.backend().prepare(matrix_view(*b));
        p.rank = static_cast<int32_t>(rank);
        p.alpha = static_cast<float>(alpha);
        transpose_b(matrix_view(*b), p);
        const int32_t i = slot == LoraSlot::Output ? ad->n_layer_ * kPerLayer : layer * kPerLayer + static_cast<int32_t>(slot);
        ad->index_[i] = static_cast<int32_t>(ad->pairs_.size());
        const size_t bt_bytes = p.bt.size();
        ad->pairs_.push_back(std::move(p));
        ad->targets_.push_back(target);
        ad->max_rank_ = std::max(ad->max_rank_, static_cast<int32_t>(rank));
        ad->nbytes_ += a->nbytes + b->nbytes + bt_bytes;  // B^T is a heap copy
    }
    return ad;
}

void LoraRunner::begin(std::vector<Rows> groups) {
    groups_ = std::move(groups);
    active_ = false;
    for (const Rows& g : groups_)
        if (g.sel)
            for (const LoraUse& u : *g.sel) active_ = active_ || (u.scale != 0.0f && u.adapter);
}

void LoraRunner::apply(ComputeBackend& be, int32_t layer, const float* x, int64_t cols,
                       std::initializer_list<LoraTarget> targets) {
    if (!active_) return;
    for (const Rows& g : groups_) {
        if (!g.sel || g.n == 0) continue;
        // Every (target, adapter) pair of this group: their A products share the group's rows of x.
        pending_.clear();
        size_t u_size = 0;
        for (const LoraTarget& t : targets)
            for (const LoraUse& use : *g.sel) {
                if (use.scale == 0.0f || !use.adapter) continue;  // scale 0 costs nothing
                const LoraPair* p = use.adapter->pair(layer, t.slot);
                if (!p) continue;
                // llama.cpp's llama_adapter_lora_weight::get_scale, in the same float order
                const float scale = p->alpha != 0.0f ? use.scale * p->alpha / static_cast<float>(p->rank) : use.scale;
                pending_.push_back(Pending{p, &t, scale, u_size});
                u_size += static_cast<size_t>(g.n) * p->rank;
            }
        if (pending_.empty()) continue;
        if (u_.size() < u_size) u_.resize(u_size);
        // A products, batched by the activation rounding their type needs (F32/Q8_0, F16, BF16).
        for (QType kind : {QType::F32, QType::F16, QType::BF16}) {
            MatJob jobs[8];
            int n = 0;
            const float* xg = nullptr;
            for (const Pending& pd : pending_) {
                const QType t = pd.p->a.view.type;
                if ((t == QType::F16 || t == QType::BF16 ? t : QType::F32) != kind) continue;
                if (!xg) xg = activations_for(kind, x + g.row0 * cols, g.n * cols, x_round_);
                jobs[n++] = MatJob{&pd.p->a, u_.data() + pd.u_off, 0};
                if (n == 8) matmul_n(be, jobs, n, xg, g.n), n = 0;  // u: (rows, rank)
            }
            if (n) matmul_n(be, jobs, n, xg, g.n);
        }
        // B products: each has its own input; y += scale * (B·u), as llama.cpp scales the product.
        for (const Pending& pd : pending_) {
            const int64_t n_out = pd.p->b.view.rows;
            if (v_.size() < static_cast<size_t>(g.n * n_out)) v_.resize(g.n * n_out);
            const float* u = activations_for(pd.p->b.view.type, u_.data() + pd.u_off, g.n * pd.p->rank, u_round_);
            if (g.n <= kAxpyRows) {
                // v = sum_k u_k * (row k of B^T): `rank` streaming axpys, no per-output reduction.
                const auto mad = kernels().vec_mad[static_cast<int>(pd.p->bt_type)];
                const size_t row_bytes = pd.p->bt.size() / pd.p->rank;
                std::fill(v_.begin(), v_.begin() + g.n * n_out, 0.0f);
                for (int64_t r = 0; r < g.n; ++r)
                    for (int32_t k = 0; k < pd.p->rank; ++k)
                        mad(n_out, v_.data() + r * n_out, pd.p->bt.data() + k * row_bytes, u[r * pd.p->rank + k]);
            } else {
                be.matmul({{&pd.p->b, v_.data(), 0}}, u, g.n);
            }
            for (int64_t r = 0; r < g.n; ++r) {
                float* y = pd.t->y + (g.row0 + r) * pd.t->y_stride;
                const float* v = v_.data() + r * n_out;
                for (int64_t i = 0; i < n_out; ++i) y[i] += pd.scale * v[i];
            }
        }
    }
}

void Model::set_adapters(int32_t seq, LoraSelection sel) {
    EG_CHECK(seq >= 0, "sequence ids are non-negative");
    LoraSelection kept;
    for (LoraUse& u : sel) {
        EG_CHECK(u.adapter, "no adapter given");
        if (u.adapter->model() != this) throw AdapterError("this adapter was loaded for another model");
        check_lora_scale(u.scale);
        if (u.scale != 0.0f) kept.push_back(std::move(u));
    }
    if (kept.empty())
        seq_lora_.erase(seq);
    else
        seq_lora_[seq] = std::move(kept);
}

const LoraSelection* Model::adapters(int32_t seq) const {
    const auto it = seq_lora_.find(seq);
    return it == seq_lora_.end() ? nullptr : &it->second;
}

}  // namespace eg
