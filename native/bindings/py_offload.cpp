// py_offload.cpp — see py_offload.h.
#include "py_offload.h"

#include <pybind11/numpy.h>

namespace py = pybind11;

namespace {

class PyMatmulProvider final : public eg::MatmulProvider {
public:
    explicit PyMatmulProvider(py::object obj) : obj_(std::move(obj)) {}
    ~PyMatmulProvider() override {
        py::gil_scoped_acquire gil;
        obj_ = py::object();
    }

    int64_t offer(const eg::WeightView& v) override {
        py::gil_scoped_acquire gil;
        return call([&] {
            // the rows as stored in the mapped file (read-only; they live as long as the model)
            py::memoryview data = py::memoryview::from_memory(v.data, static_cast<py::ssize_t>(v.row_stride * v.rows));
            return obj_.attr("offer")(v.name, eg::type_traits(v.type).name, v.rows, v.cols, data).cast<int64_t>();
        });
    }

    bool run(const Batch& b) override {
        py::gil_scoped_acquire gil;
        return call([&] { return obj_.attr("run")(ids_of(b), input(b), outputs(b)).cast<bool>(); });
    }

    void observe(const Batch& b) override {
        py::gil_scoped_acquire gil;
        call([&] {
            obj_.attr("observe")(ids_of(b), input(b), outputs(b));
            return 0;
        });
    }

private:
    // A Python exception becomes a plain C++ error here, while the GIL is held.
    template <typename F>
    auto call(const F& fn) -> decltype(fn()) {
        try {
            return fn();
        } catch (py::error_already_set& e) {
            throw eg::Error(std::string("accelerator provider failed: ") + e.what());
        } catch (const py::cast_error& e) {
            throw eg::Error(std::string("accelerator provider returned the wrong type: ") + e.what());
        }
    }
    static py::tuple ids_of(const Batch& b) {
        py::tuple t(b.n);
        for (int i = 0; i < b.n; ++i) t[i] = b.ids[i];
        return t;
    }
    // No-copy views: a dummy capsule as base keeps numpy from copying; writes go to the engine.
    static py::array_t<float> input(const Batch& b) {
        py::array_t<float> a({b.n_tok, b.cols}, {b.cols * 4, int64_t(4)}, b.x, py::capsule(b.x, [](void*) {}));
        py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
        return a;
    }
    static py::list outputs(const Batch& b) {
        py::list l;
        for (int i = 0; i < b.n; ++i)
            l.append(py::array_t<float>({b.n_tok, b.rows[i]}, {b.y_strides[i] * 4, int64_t(4)}, b.ys[i],
                                        py::capsule(b.ys[i], [](void*) {})));
        return l;
    }

    py::object obj_;
};

const char* kModes[] = {"off", "calibrate", "on"};

}  // namespace

std::shared_ptr<eg::MatmulProvider> make_py_provider(py::object provider) {
    for (const char* m : {"offer", "run", "observe"})
        if (!py::hasattr(provider, m)) throw eg::Error(std::string("an accelerator provider needs a ") + m + "() method");
    return std::make_shared<PyMatmulProvider>(std::move(provider));
}

py::dict offload_stats_dict(eg::OffloadStats& s) {
    py::dict d;
    d["mode"] = offload_mode_name(s);
    d["calls"] = s.calls.load();
    d["products"] = s.products.load();
    d["tokens"] = s.tokens.load();
    d["macs"] = s.macs.load();
    d["bytes_in"] = s.bytes_in.load();
    d["bytes_out"] = s.bytes_out.load();
    d["cpu_batched"] = s.cpu_batched.load();
    std::lock_guard<std::mutex> lock(s.mu);
    d["error"] = s.error.empty() ? py::object(py::none()) : py::object(py::str(s.error));
    return d;
}

std::string offload_mode_name(const eg::OffloadStats& s) { return kModes[s.mode.load()]; }

void set_offload_mode(eg::OffloadStats& s, const std::string& mode) {
    for (int i = 0; i < 3; ++i)
        if (mode == kModes[i]) {
            s.mode = i;
            if (i != 0) {
                std::lock_guard<std::mutex> lock(s.mu);
                s.error.clear();
            }
            return;
        }
    throw eg::Error("offload mode must be 'off', 'calibrate' or 'on', not '" + mode + "'");
}
