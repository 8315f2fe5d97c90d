// bind_engine.cpp — the native LLM engine: Model, KVCache, Sampler.
//
// Each model-running call (eval, decode, shift) releases the GIL and holds the model's lock, so
// one loaded model can be shared by Python threads safely; they simply take turns.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cerrno>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bindings.h"
#include "py_model.h"
#include "gguf.h"
#include "kv_cache.h"
#include "py_offload.h"
#include "sampler.h"
#include "spec_dict.h"
#include "transformer.h"

namespace py = pybind11;

namespace {

using I32Array = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;
using U32Array = py::array_t<uint32_t, py::array::c_style>;

void set_typed_error(const char* cls, const char* msg) {
    py::object err = py::module_::import("edgegen.errors").attr(cls);
    PyErr_SetString(err.ptr(), msg);
}

struct PyCache {
    std::shared_ptr<PyModel> owner;  // a cache is tied to its model's shapes and lock
    std::unique_ptr<eg::KVCache> cache;
};

std::shared_ptr<PyCache> new_cache(const std::shared_ptr<PyModel>& m, int64_t n_tokens, const std::string& kv_type,
                                   int32_t n_seq, int32_t block_tokens) {
    auto c = std::make_shared<PyCache>();
    c->owner = m;
    c->cache = std::make_unique<eg::KVCache>(m->model->plan_cache(n_tokens, n_seq, kv_type_from(kv_type), block_tokens));
    return c;
}

std::vector<int32_t> tokens_of(const I32Array& a) {
    if (a.ndim() != 1) throw eg::Error("tokens must be a 1-D sequence of ints");
    return std::vector<int32_t>(a.data(), a.data() + a.shape(0));
}

// An allowed-token bitmask from Python: None, or ceil(n_vocab/32) uint32 words (no conversion:
// a mask of another dtype is a caller bug we name rather than silently reinterpret).
const uint32_t* mask_of(const py::object& allowed, int64_t n_vocab) {
    if (allowed.is_none()) return nullptr;
    if (!py::isinstance<U32Array>(allowed)) throw eg::Error("allowed must be a numpy uint32 array (a token bitmask)");
    U32Array a = py::reinterpret_borrow<U32Array>(allowed);
    const int64_t words = (n_vocab + 31) / 32;
    if (a.ndim() != 1 || a.shape(0) != words)
        throw eg::Error("allowed must hold ceil(n_vocab/32) = " + std::to_string(words) + " uint32 words");
    return a.data();
}

void check_same_model(const PyModel& m, const PyCache& c) {
    if (c.owner.get() != &m) throw eg::Error("this KV cache belongs to another model");
}

py::array_t<float> eval(const std::shared_ptr<PyModel>& m, PyCache& c, int32_t seq, const I32Array& toks, bool all_logits) {
    check_same_model(*m, c);
    const std::vector<int32_t> t = tokens_of(toks);
    const int64_t nv = m->model->spec().hp.n_vocab;
    py::array_t<float> out = all_logits ? py::array_t<float>({static_cast<py::ssize_t>(t.size()), static_cast<py::ssize_t>(nv)})
                                        : py::array_t<float>({static_cast<py::ssize_t>(nv)});
    float* o = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(m->mu);
        m->model->forward(*c.cache, seq, t.data(), static_cast<int64_t>(t.size()), all_logits, o);
    }
    return out;
}

int32_t decode(const std::shared_ptr<PyModel>& m, PyCache& c, int32_t seq, const I32Array& toks, eg::Sampler& s,
               const py::object& allowed) {
    check_same_model(*m, c);
    const std::vector<int32_t> t = tokens_of(toks);
    const uint32_t* mask = mask_of(allowed, m->model->spec().hp.n_vocab);  // `allowed` outlives the call
    py::gil_scoped_release nogil;
    std::lock_guard<std::mutex> lock(m->mu);
    return m->model->decode(*c.cache, seq, t.data(), static_cast<int64_t>(t.size()), s, mask);
}

// One step of several sequences: items are (seq, tokens, sampler or None, sample[, allowed]).
// Returns the sampled token per item (-1 where not sampled). A mask array is borrowed from its
// item, which the caller's list keeps alive for the call.
std::vector<int32_t> step(const std::shared_ptr<PyModel>& m, PyCache& c, const py::list& items) {
    check_same_model(*m, c);
    const size_t n = items.size();
    std::vector<std::vector<int32_t>> toks(n);
    std::vector<eg::SeqStep> steps(n);
    for (size_t i = 0; i < n; ++i) {
        const py::tuple it = items[i].cast<py::tuple>();
        if (it.size() != 4 && it.size() != 5)
            throw eg::Error("step items are (seq, tokens, sampler or None, sample[, allowed mask or None])");
        eg::SeqStep& st = steps[i];
        st.seq = it[0].cast<int32_t>();
        toks[i] = tokens_of(it[1].cast<I32Array>());
        st.tokens = toks[i].data();
        st.n = static_cast<int64_t>(toks[i].size());
        st.sampler = it[2].is_none() ? nullptr : it[2].cast<eg::Sampler*>();
        st.sample = it[3].cast<bool>();
        if (it.size() == 5) st.allowed = mask_of(it[4], m->model->spec().hp.n_vocab);
    }
    std::vector<int32_t> out(n, -1);
    {
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(m->mu);
        m->model->step(*c.cache, steps.data(), static_cast<int32_t>(n));
    }
    for (size_t i = 0; i < n; ++i) out[i] = steps[i].next;
    return out;
}

std::shared_ptr<PyModel> load_model(std::shared_ptr<eg::GGUFFile> file, int n_threads, const std::string& compute,
                                    const py::object& provider, int64_t min_batch, const py::object& exact_obj) {
    const bool exact = exact_obj.is_none() ? eg::exact_kernels_default() : exact_obj.cast<bool>();
    if (compute != "cpu" && compute != "counting" && compute != "offload")
        throw eg::Error("compute must be 'cpu', 'counting' or 'offload', not '" + compute + "'");
    if ((compute == "offload") != !provider.is_none()) throw eg::Error("compute='offload' goes with a provider, and only it");
    auto pm = std::make_shared<PyModel>();
    std::shared_ptr<eg::MatmulProvider> prov = provider.is_none() ? nullptr : make_py_provider(provider);
    py::gil_scoped_release nogil;
    std::unique_ptr<eg::ComputeBackend> be = eg::make_cpu_backend(n_threads, exact);
    if (compute == "counting") {
        pm->op_counts = std::shared_ptr<int64_t[]>(new int64_t[eg::kOpCount]());
        be = eg::make_counting_backend(std::move(be), pm->op_counts);
    }
    if (compute == "offload") {  // see edgegen/accelerators
        pm->offload = std::make_shared<eg::OffloadStats>();
        be = eg::make_offload_backend(std::move(be), std::move(prov), min_batch, pm->offload);
    }
    pm->model = eg::Model::load(std::move(file), std::move(be));
    return pm;
}

}  // namespace

void bind_engine(py::module_& m) {
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const eg::KVCacheFullError& e) {
            set_typed_error("MemoryBudgetError", e.what());
        } catch (const eg::UnsupportedError& e) {
            set_typed_error("UnsupportedModelError", e.what());
        } catch (const eg::GGUFOpenError& e) {
            set_typed_error(e.err == ENOENT ? "ModelNotFoundError" : "ModelFormatError", e.what());
        } catch (const eg::GGUFError& e) {
            set_typed_error("ModelFormatError", e.what());
        }
    });

    py::class_<PyModel, std::shared_ptr<PyModel>>(m, "Model", "A GGUF model on edgegen's engine (see supported_architectures()).")
        .def(py::init([](std::shared_ptr<eg::GGUFFile> file, int n_threads, const std::string& compute,
                         const py::object& provider, int64_t min_batch, const py::object& exact) {
                 return load_model(std::move(file), n_threads, compute, provider, min_batch, exact);
             }),
             py::arg("file"), py::arg("n_threads") = 0, py::arg("compute") = "cpu", py::arg("provider") = py::none(),
             py::arg("min_batch") = 16, py::arg("exact") = py::none(),
             "Wire an open GGUFFile's weights (the file is mapped once, shared with the caller). "
             "compute='offload': batched products of >= min_batch tokens go to `provider` (edgegen.accelerators). "
             "exact=False: Q4_0/Q4_1/Q8_0 weights repacked at load for faster decode (the same values); "
             "True: the file's rows as they are; None (default): repacked unless EDGEGEN_EXACT_KERNELS=1.")
        .def(py::init([](const std::string& path, int n_threads, const std::string& compute, const py::object& provider,
                         int64_t min_batch, const py::object& exact) {
                 std::shared_ptr<eg::GGUFFile> f;
                 {
                     py::gil_scoped_release nogil;
                     f = eg::GGUFFile::open(path);
                 }
                 return load_model(std::move(f), n_threads, compute, provider, min_batch, exact);
             }),
             py::arg("path"), py::arg("n_threads") = 0, py::arg("compute") = "cpu", py::arg("provider") = py::none(),
             py::arg("min_batch") = 16, py::arg("exact") = py::none())
        .def_property_readonly("spec", [](const PyModel& pm) { return spec_dict(pm.model->spec()); })
        .def_property_readonly("config", [](const PyModel& pm) { return spec_dict(pm.model->spec()); },
                               "Alias of spec (hyper-parameters and per-layer properties).")
        .def_property_readonly("n_threads", [](PyModel& pm) { return pm.model->backend().n_threads(); })
        .def_property_readonly("compute", [](PyModel& pm) { return pm.model->backend().name(); })
        .def_property_readonly("op_counts", [](const PyModel& pm) -> py::object {
            if (!pm.op_counts) return py::none();
            static const char* names[] = {"prepare", "matmul", "get_rows", "rms_norm", "rope", "glu", "attention", "store_kv"};
            py::dict d;
            for (int i = 0; i < eg::kOpCount; ++i) d[names[i]] = pm.op_counts[i];
            return std::move(d);
        }, "Calls per backend operation (compute='counting'), else None.")
        .def_property("offload_mode",
            [](const PyModel& pm) -> py::object { return pm.offload ? py::object(py::str(offload_mode_name(*pm.offload))) : py::none(); },
            [](PyModel& pm, const std::string& mode) {
                if (!pm.offload) throw eg::Error("offload_mode needs a model made with compute='offload'");
                py::gil_scoped_release nogil;  // a running forward pass may need the GIL for its provider
                std::lock_guard<std::mutex> lock(pm.mu);  // not in the middle of a forward pass
                set_offload_mode(*pm.offload, mode);
            }, "'off', 'calibrate' (CPU results shown to the provider) or 'on' (compute='offload'), else None.")
        .def_property_readonly("offload_stats", [](PyModel& pm) -> py::object {
            return pm.offload ? py::object(offload_stats_dict(*pm.offload)) : py::none();
        }, "What went to the provider (calls, products, tokens, macs, bytes_in/out), batched calls left on the CPU, "
           "and the provider's error when it was switched off.")
        .def("cache_layout", [](const PyModel& pm, int64_t n_tokens, int32_t n_seq, const std::string& kv_type, int32_t block_tokens) {
            return layout_dict(pm.model->plan_cache(n_tokens, n_seq, kv_type_from(kv_type), block_tokens));
        }, py::arg("n_tokens"), py::arg("n_seq") = 1, py::arg("kv_type") = "f16", py::arg("block_tokens") = 32,
           "The layout (bytes, layer groups) new_cache would allocate.")
        .def("new_cache", &new_cache, py::arg("n_tokens"), py::arg("kv_type") = "f16", py::arg("n_seq") = 1,
             py::arg("block_tokens") = 32,
             "A KV cache holding n_tokens positions of global layers in all (shared by up to n_seq sequences); "
             "sliding-window layers keep a ring of their window per sequence.")
        .def("eval", &eval, py::arg("cache"), py::arg("seq"), py::arg("tokens"), py::arg("all_logits") = false,
             "Append tokens to sequence `seq`; logits of the last token (n_vocab,) or of all (n, n_vocab).")
        .def("decode", &decode, py::arg("cache"), py::arg("seq"), py::arg("tokens"), py::arg("sampler"),
             py::arg("allowed") = py::none(),
             "Append tokens, then sample the next token from the last logits (one native call); "
             "`allowed`: an optional token bitmask (uint32, ceil(n_vocab/32) words) the sample must obey.")
        .def("step", &step, py::arg("cache"), py::arg("items"),
             "One forward pass over several sequences: items are (seq, tokens, sampler or None, sample[, allowed]); "
             "returns the token each sampling item picked (-1 for the others). At most 64 tokens in all. "
             "`allowed`: an optional token bitmask as decode takes it.")
        .def("kv_shift", [](const std::shared_ptr<PyModel>& pm, PyCache& c, int32_t seq, int64_t n_keep, int64_t n_discard) {
            check_same_model(*pm, c);
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(pm->mu);
            pm->model->shift(*c.cache, seq, n_keep, n_discard);
        }, py::arg("cache"), py::arg("seq"), py::arg("n_keep"), py::arg("n_discard"),
           "Context shift: keep n_keep tokens, drop the next n_discard, re-rotate the keys of the rest.");

    py::class_<PyCache, std::shared_ptr<PyCache>>(m, "KVCache", "Paged KV cache of one model (see Model.new_cache).")
        .def("seq_len", [](const PyCache& c, int32_t s) { return c.cache->seq_len(s); }, py::arg("seq"))
        .def("seq_resume_min", [](const PyCache& c, int32_t s) { return c.cache->seq_resume_min(s); }, py::arg("seq"),
             "Smallest length > 0 the sequence can be truncated or forked to (sliding-window rings forget).")
        .def("seq_truncate", [](PyCache& c, int32_t s, int64_t p) {
            std::lock_guard<std::mutex> lock(c.owner->mu);
            c.cache->seq_truncate(s, p);
        }, py::arg("seq"), py::arg("p"))
        .def("seq_clear", [](PyCache& c, int32_t s) {
            std::lock_guard<std::mutex> lock(c.owner->mu);
            c.cache->seq_clear(s);
        }, py::arg("seq"))
        .def("seq_fork", [](PyCache& c, int32_t src, int32_t dst, int64_t n) {
            std::lock_guard<std::mutex> lock(c.owner->mu);
            c.cache->seq_fork(src, dst, n);
        }, py::arg("src"), py::arg("dst"), py::arg("n"))
        .def("seq_export", [](PyCache& c, int32_t s) {
            std::vector<uint8_t> b;
            {
                std::lock_guard<std::mutex> lock(c.owner->mu);
                b = c.cache->seq_export(s);
            }
            return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
        }, py::arg("seq"), "The sequence's stored blocks as bytes (exact; for prompt cache files).")
        .def("seq_import", [](PyCache& c, int32_t s, const py::bytes& data) {
            const std::string_view v(data);
            std::lock_guard<std::mutex> lock(c.owner->mu);
            c.cache->seq_import(s, reinterpret_cast<const uint8_t*>(v.data()), v.size());
        }, py::arg("seq"), py::arg("data"), "Make `seq` the sequence seq_export() wrote (same layout only).")
        .def("block_table", [](const PyCache& c, int32_t s, int group) { return c.cache->block_table(s, group); },
             py::arg("seq"), py::arg("group") = 0)
        .def("block_refcount", [](const PyCache& c, int32_t b, int group) { return c.cache->block_refcount(b, group); },
             py::arg("block"), py::arg("group") = 0)
        .def("free_blocks", [](const PyCache& c, int group) { return c.cache->n_free_blocks(group); }, py::arg("group") = 0)
        .def_property_readonly("n_free_blocks", [](const PyCache& c) { return c.cache->n_free_blocks(0); })
        .def_property_readonly("n_blocks", [](const PyCache& c) { return c.cache->layout().groups[0].n_blocks; })
        .def_property_readonly("block_tokens", [](const PyCache& c) { return c.cache->block_tokens(); })
        .def_property_readonly("n_seq", [](const PyCache& c) { return c.cache->n_seq_max(); })
        .def_property_readonly("nbytes", [](const PyCache& c) { return c.cache->bytes_total(); })
        .def_property_readonly("layout", [](const PyCache& c) { return layout_dict(c.cache->layout()); })
        .def_property_readonly("kv_type", [](const PyCache& c) { return std::string(eg::type_traits(c.cache->type()).name); });

    py::class_<eg::Sampler>(m, "Sampler", "Token sampler (see sampler.h for the order of the steps).")
        .def(py::init([](int32_t n_vocab, float temperature, int32_t top_k, float top_p, float min_p, float repeat_penalty,
                         float presence_penalty, float frequency_penalty, int32_t penalty_last_n,
                         const std::map<int32_t, float>& logit_bias, uint64_t seed) {
                 eg::SamplerParams p;
                 p.temperature = temperature;
                 p.top_k = top_k;
                 p.top_p = top_p;
                 p.min_p = min_p;
                 p.repeat_penalty = repeat_penalty;
                 p.presence_penalty = presence_penalty;
                 p.frequency_penalty = frequency_penalty;
                 p.penalty_last_n = penalty_last_n;
                 p.logit_bias.assign(logit_bias.begin(), logit_bias.end());
                 p.seed = seed;
                 return eg::Sampler(p, n_vocab);
             }),
             py::arg("n_vocab"), py::arg("temperature") = 0.0f, py::arg("top_k") = 0, py::arg("top_p") = 1.0f,
             py::arg("min_p") = 0.0f, py::arg("repeat_penalty") = 1.0f, py::arg("presence_penalty") = 0.0f,
             py::arg("frequency_penalty") = 0.0f, py::arg("penalty_last_n") = 64,
             py::arg("logit_bias") = std::map<int32_t, float>{}, py::arg("seed") = 0)
        .def("accept", &eg::Sampler::accept, py::arg("token"))
        .def("sample", [](eg::Sampler& s, F32Array logits, const py::object& allowed) {
            if (logits.ndim() != 1 || logits.shape(0) != s.n_vocab()) throw eg::Error("logits must have shape (n_vocab,)");
            std::vector<float> l(logits.data(), logits.data() + logits.size());
            const uint32_t* mask = mask_of(allowed, s.n_vocab());
            return s.sample(l.data(), mask);
        }, py::arg("logits"), py::arg("allowed") = py::none(),
           "Sample from a copy of `logits` (n_vocab,), restricted to the `allowed` token bitmask when given.");
}
