// bind_lora.cpp — LoRA adapters (native/lora.h): LoraAdapter(model, file) validates and prepares
// an adapter for one loaded model; Model.set_adapters(seq, [(adapter, scale), ...]) picks what a
// sequence's next tokens run through. Loading maps the adapter file only; the base weights are
// never touched, so switching adapters between requests is a table update.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bindings.h"
#include "lora.h"
#include "py_model.h"

namespace py = pybind11;

namespace {

struct PyAdapter {
    std::shared_ptr<PyModel> owner;  // the adapter's matrices were checked against this model
    std::shared_ptr<const eg::LoraAdapter> adapter;
};

std::shared_ptr<PyAdapter> load_adapter(const std::shared_ptr<PyModel>& m, std::shared_ptr<eg::GGUFFile> f) {
    auto pa = std::make_shared<PyAdapter>();
    pa->owner = m;
    py::gil_scoped_release nogil;
    std::lock_guard<std::mutex> lock(m->mu);
    pa->adapter = eg::LoraAdapter::load(std::move(f), *m->model);
    return pa;
}

void set_adapters(const std::shared_ptr<PyModel>& m, int32_t seq, const std::vector<std::pair<std::shared_ptr<PyAdapter>, float>>& sel) {
    eg::LoraSelection s;
    for (const auto& [pa, scale] : sel) {
        if (!pa) throw eg::Error("set_adapters: None is not an adapter");
        if (pa->owner.get() != m.get()) throw eg::AdapterError("this adapter was loaded for another model");
        s.push_back(eg::LoraUse{pa->adapter, scale});
    }
    py::gil_scoped_release nogil;
    std::lock_guard<std::mutex> lock(m->mu);
    m->model->set_adapters(seq, std::move(s));
}

using Selection = std::vector<std::pair<std::shared_ptr<PyAdapter>, float>>;

// Tests: the low-rank part of one product over a batch whose rows are grouped by selection, as a
// batched forward pass of several sequences applies it (y starts at 0, so y = Σ s·B·(A·x) per group).
py::array_t<float> lora_delta(const std::shared_ptr<PyModel>& m, int32_t layer, const std::string& target,
                              const py::array_t<float, py::array::c_style | py::array::forcecast>& x,
                              const std::vector<std::tuple<int64_t, int64_t, Selection>>& groups) {
    static const std::map<std::string, eg::LoraSlot> slots = {
        {"attn_q", eg::LoraSlot::Q},       {"attn_k", eg::LoraSlot::K},   {"attn_v", eg::LoraSlot::V},
        {"attn_output", eg::LoraSlot::O},  {"ffn_gate", eg::LoraSlot::Gate}, {"ffn_up", eg::LoraSlot::Up},
        {"ffn_down", eg::LoraSlot::Down},  {"output", eg::LoraSlot::Output}};
    const auto it = slots.find(target);
    if (it == slots.end()) throw eg::Error("unknown target " + target);
    if (x.ndim() != 2) throw eg::Error("x must be (rows, cols)");
    std::vector<eg::LoraSelection> sels;
    sels.reserve(groups.size());
    std::vector<eg::LoraRunner::Rows> rows;
    int64_t n_out = 0;
    for (const auto& [row0, n, sel] : groups) {
        if (row0 < 0 || n < 0 || row0 + n > x.shape(0)) throw eg::Error("row group outside x");
        eg::LoraSelection s;
        for (const auto& [pa, scale] : sel) {
            if (pa->owner.get() != m.get()) throw eg::AdapterError("this adapter was loaded for another model");
            const eg::LoraPair* p = pa->adapter->pair(layer, it->second);
            if (!p) throw eg::Error("the adapter does not adapt " + target + " of that layer");
            if (p->a.view.cols != x.shape(1)) throw eg::Error("x has the wrong width");
            n_out = p->b.view.rows;
            s.push_back(eg::LoraUse{pa->adapter, scale});
        }
        sels.push_back(std::move(s));
        rows.push_back(eg::LoraRunner::Rows{row0, n, nullptr});
    }
    for (size_t i = 0; i < rows.size(); ++i) rows[i].sel = &sels[i];
    if (n_out == 0) throw eg::Error("no adapter in any group");
    py::array_t<float> y({x.shape(0), static_cast<py::ssize_t>(n_out)});
    std::fill(y.mutable_data(), y.mutable_data() + y.size(), 0.0f);
    float* yp = y.mutable_data();
    const float* xp = x.data();
    const int64_t cols = x.shape(1);
    {
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(m->mu);
        eg::LoraRunner runner;
        runner.begin(rows);
        runner.apply(m->model->backend(), layer, xp, cols, {{it->second, yp, n_out}});
    }
    return y;
}

}  // namespace

void bind_lora(py::module_& m) {
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const eg::AdapterError& e) {
            py::object err = py::module_::import("edgegen.errors").attr("AdapterError");
            PyErr_SetString(err.ptr(), e.what());
        }
    });

    py::class_<PyAdapter, std::shared_ptr<PyAdapter>>(m, "LoraAdapter",
                                                      "A GGUF LoRA adapter validated against one loaded Model.")
        .def(py::init(&load_adapter), py::arg("model"), py::arg("file"),
             "Validate an open adapter GGUFFile against `model` and prepare its matrices (AdapterError names a mismatch).")
        .def(py::init([](const std::shared_ptr<PyModel>& model, const std::string& path) {
                 std::shared_ptr<eg::GGUFFile> f;
                 {
                     py::gil_scoped_release nogil;
                     f = eg::GGUFFile::open(path);
                 }
                 return load_adapter(model, std::move(f));
             }),
             py::arg("model"), py::arg("path"))
        .def_property_readonly("alpha", [](const PyAdapter& a) { return a.adapter->alpha(); })
        .def_property_readonly("max_rank", [](const PyAdapter& a) { return a.adapter->max_rank(); })
        .def_property_readonly("targets", [](const PyAdapter& a) { return a.adapter->targets(); },
                               "The base tensors the adapter changes, in file order.")
        .def_property_readonly("nbytes", [](const PyAdapter& a) { return a.adapter->nbytes(); })
        .def_property_readonly("path", [](const PyAdapter& a) { return a.adapter->file().path(); });

    m.def("check_lora_scale", &eg::check_lora_scale, py::arg("scale"));
    m.def("lora_delta", &lora_delta, py::arg("model"), py::arg("layer"), py::arg("target"), py::arg("x"), py::arg("groups"),
          "Tests: Σ scale·B·(A·x) of one product for rows grouped by selection [(row0, n, [(adapter, scale)])].");

    // A method of Model (bound in bind_engine.cpp), added here so the adapter code stays in one place.
    py::object model_cls = m.attr("Model");
    model_cls.attr("set_adapters") = py::cpp_function(
        &set_adapters, py::name("set_adapters"), py::is_method(model_cls), py::arg("seq"), py::arg("adapters"),
        "The adapters (LoraAdapter, scale) sequence `seq` runs through from its next token on; [] for the base model.");
    model_cls.attr("adapter_count") = py::cpp_function(
        [](const std::shared_ptr<PyModel>& pm, int32_t seq) {
            const eg::LoraSelection* s = pm->model->adapters(seq);
            return s ? s->size() : size_t(0);
        },
        py::name("adapter_count"), py::is_method(model_cls), py::arg("seq"),
        "How many adapters (with a non-zero scale) sequence `seq` runs through.");
}
