// bind_kernels.cpp — numpy in, numpy out: quantize / dequantize / products / ISA control.
//
// Every call that computes releases the GIL. Inputs are checked here (shape, dtype, contiguity,
// block multiples) so the kernels below only ever see valid arguments.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "bindings.h"
#include "cpu_topology.h"
#include "kernels.h"
#include "matmul.h"
#include "membench.h"
#include "repack.h"
#include "threadpool.h"

namespace py = pybind11;
using eg::QType;

namespace {

using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;
using U8Array = py::array_t<uint8_t, py::array::c_style>;

QType parse_qtype(const py::object& q) {
    if (py::isinstance<py::str>(q)) return eg::type_from_name(q.cast<std::string>());
    if (py::isinstance<py::int_>(q)) {
        const int64_t id = q.cast<int64_t>();
        if (id < 0 || id >= eg::kTypeCount || !eg::type_supported(static_cast<int32_t>(id)))
            throw eg::Error("unsupported tensor type id " + std::to_string(id));
        return static_cast<QType>(id);
    }
    throw py::type_error("qtype must be a type name such as 'q4_0' or a ggml type id");
}

std::shared_ptr<eg::ThreadPool>& default_pool_slot() {
    static std::shared_ptr<eg::ThreadPool> pool;
    return pool;
}

std::shared_ptr<eg::ThreadPool> default_pool() {
    auto& slot = default_pool_slot();
    if (!slot) slot = std::make_shared<eg::ThreadPool>(0);
    return slot;
}

std::shared_ptr<eg::ThreadPool> pick_pool(const py::object& pool) {
    if (pool.is_none()) return default_pool();
    return pool.cast<std::shared_ptr<eg::ThreadPool>>();
}

// Shape (..., n) of floats -> (rows, n).
void rows_cols(const py::array& a, int64_t* rows, int64_t* cols) {
    if (a.ndim() < 1) throw eg::Error("expected an array with at least one dimension");
    *cols = a.shape(a.ndim() - 1);
    *rows = 1;
    for (py::ssize_t i = 0; i + 1 < a.ndim(); ++i) *rows *= a.shape(i);
}

std::vector<py::ssize_t> shape_with_last(const py::array& a, py::ssize_t last) {
    std::vector<py::ssize_t> s(a.shape(), a.shape() + a.ndim());
    s.back() = last;
    return s;
}

U8Array quantize(F32Array x, const py::object& qtype_obj) {
    const QType q = parse_qtype(qtype_obj);
    int64_t rows, cols;
    rows_cols(x, &rows, &cols);
    const size_t rs = eg::row_size(q, cols);
    const eg::KernelTable& kt = eg::kernels();
    const auto fn = kt.quantize_row[static_cast<int>(q)];
    if (!fn) throw eg::Error(std::string("quantizing to ") + eg::type_traits(q).name + " is not supported");
    U8Array out(shape_with_last(x, static_cast<py::ssize_t>(rs)));
    const float* src = x.data();
    uint8_t* dst = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        for (int64_t r = 0; r < rows; ++r) fn(src + r * cols, dst + r * rs, cols);
    }
    return out;
}

F32Array dequantize(U8Array data, const py::object& qtype_obj) {
    const QType q = parse_qtype(qtype_obj);
    const eg::TypeTraits& tr = eg::type_traits(q);
    int64_t rows, row_bytes;
    rows_cols(data, &rows, &row_bytes);
    if (row_bytes % tr.type_size != 0)
        throw eg::Error("row of " + std::to_string(row_bytes) + " bytes is not a whole number of " + tr.name +
                        " blocks (" + std::to_string(tr.type_size) + " bytes each)");
    const int64_t cols = row_bytes / tr.type_size * tr.block_size;
    const auto fn = eg::kernels().dequantize_row[static_cast<int>(q)];
    if (!fn) throw eg::Error(std::string("dequantizing ") + tr.name + " is not supported");
    F32Array out(shape_with_last(data, static_cast<py::ssize_t>(cols)));
    const uint8_t* src = data.data();
    float* dst = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        for (int64_t r = 0; r < rows; ++r) fn(src + r * row_bytes, dst + r * cols, cols);
    }
    return out;
}

U8Array quantize_activations(F32Array x, const py::object& weight_qtype) {
    const QType q = parse_qtype(weight_qtype);
    const QType at = eg::type_traits(q).vec_dot_type;
    int64_t rows, cols;
    rows_cols(x, &rows, &cols);
    const size_t rs = eg::row_size(at, cols);
    eg::row_size(q, cols);  // the weight's block size must divide the row too
    U8Array out(shape_with_last(x, static_cast<py::ssize_t>(rs)));
    const float* src = x.data();
    uint8_t* dst = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        eg::quantize_activations(eg::kernels(), q, src, rows, cols, dst);
    }
    return out;
}

// The weights repacked for the fast path (repack.h); throws when this ISA has no packed products
// for the type or the row count is not a multiple of 8.
std::shared_ptr<const eg::PackedRows> pack_for_product(QType q, const uint8_t* w, int64_t row_bytes, int64_t n_rows,
                                                       int64_t n_cols) {
    if (!eg::can_pack(eg::kernels(), q, n_rows, n_cols))
        throw eg::Error(std::string("no packed products for ") + eg::type_traits(q).name + " with " +
                        std::to_string(n_rows) + " rows on " + eg::kernels().isa);
    return eg::pack_rows(q, w, static_cast<size_t>(row_bytes), n_rows, n_cols);
}

F32Array matmul(U8Array w, const py::object& qtype_obj, F32Array x, const py::object& pool_obj, bool packed,
                const py::object& rows_obj) {
    const QType q = parse_qtype(qtype_obj);
    const eg::TypeTraits& tr = eg::type_traits(q);
    if (w.ndim() != 2) throw eg::Error("weights must be a 2-D uint8 array (rows, row_bytes)");
    const int64_t n_rows = w.shape(0), row_bytes = w.shape(1);
    if (row_bytes <= 0 || row_bytes % tr.type_size != 0)
        throw eg::Error("weight rows of " + std::to_string(row_bytes) + " bytes are not whole " + tr.name + " blocks");
    const int64_t n_cols = row_bytes / tr.type_size * tr.block_size;
    if (x.ndim() != 1 && x.ndim() != 2) throw eg::Error("activations must be 1-D (cols,) or 2-D (tokens, cols)");
    const int64_t x_cols = x.shape(x.ndim() - 1);
    if (x_cols != n_cols)
        throw eg::Error("activation length " + std::to_string(x_cols) + " does not match the weights' " +
                        std::to_string(n_cols) + " columns");
    const int64_t n_tok = x.ndim() == 2 ? x.shape(0) : 1;
    auto pool = pick_pool(pool_obj);
    F32Array y = x.ndim() == 2 ? F32Array({static_cast<py::ssize_t>(n_tok), static_cast<py::ssize_t>(n_rows)})
                               : F32Array({static_cast<py::ssize_t>(n_rows)});
    const uint8_t* wp = w.data();
    const float* xp = x.data();
    float* yp = y.mutable_data();
    if (!rows_obj.is_none()) {  // one thread's share of the rows, as matmul_multi hands it out
        const auto range = rows_obj.cast<std::pair<int64_t, int64_t>>();
        if (!packed) throw eg::Error("rows= is for the packed products (packed=True)");
        if (range.first < 0 || range.first >= range.second || range.second > n_rows)
            throw eg::Error("rows must be (r0, r1) with 0 <= r0 < r1 <= " + std::to_string(n_rows));
        std::fill_n(yp, n_tok * n_rows, std::numeric_limits<float>::quiet_NaN());
        {
            py::gil_scoped_release nogil;
            const auto pk = pack_for_product(q, wp, row_bytes, n_rows, n_cols);
            const size_t act_row = eg::row_size(tr.vec_dot_type, n_cols);
            std::vector<uint8_t> act(act_row * n_tok);
            eg::quantize_activations(eg::kernels(), q, xp, n_tok, n_cols, act.data());
            eg::packed_product(eg::kernels(), *pk, range.first, range.second, act.data(), act_row, n_tok, yp, n_rows);
        }
        return y;
    }
    {
        py::gil_scoped_release nogil;
        eg::MatmulJob job{q, wp, static_cast<size_t>(row_bytes), n_rows, yp, n_rows};
        const auto pk = packed ? pack_for_product(q, wp, row_bytes, n_rows, n_cols) : nullptr;
        job.packed = pk.get();
        eg::matmul_multi(eg::kernels(), *pool, &job, 1, n_cols, xp, n_tok);
    }
    return y;
}

// Benchmark loop kept in C++ so Python call overhead does not count: cycles through `weights`
// (copies of one matrix, so that together they exceed the caches and every call reads its weights
// from memory, as decode does) until `min_seconds` have passed; returns seconds per product.
double time_matmul(const std::vector<U8Array>& weights, const py::object& qtype_obj, F32Array x,
                   double min_seconds, const py::object& pool_obj, bool packed) {
    const QType q = parse_qtype(qtype_obj);
    const eg::TypeTraits& tr = eg::type_traits(q);
    if (weights.empty()) throw eg::Error("no weight matrices given");
    const int64_t n_rows = weights[0].shape(0), row_bytes = weights[0].shape(1);
    for (const auto& w : weights)
        if (w.ndim() != 2 || w.shape(0) != n_rows || w.shape(1) != row_bytes)
            throw eg::Error("all weight copies must have the same 2-D shape");
    const int64_t n_cols = row_bytes / tr.type_size * tr.block_size;
    if ((x.ndim() != 1 && x.ndim() != 2) || x.shape(x.ndim() - 1) != n_cols)
        throw eg::Error("x must be (cols,) or (tokens, cols) with the weights' column count");
    const int64_t n_tok = x.ndim() == 2 ? x.shape(0) : 1;
    auto pool = pick_pool(pool_obj);
    std::vector<const uint8_t*> ptrs;
    for (const auto& w : weights) ptrs.push_back(w.data());
    std::vector<float> y(n_rows * n_tok);
    const float* xp = x.data();
    py::gil_scoped_release nogil;
    std::vector<std::shared_ptr<const eg::PackedRows>> packs;  // one packed copy per weight copy
    if (packed)
        for (const uint8_t* w : ptrs) packs.push_back(pack_for_product(q, w, row_bytes, n_rows, n_cols));
    const eg::KernelTable& kt = eg::kernels();
    int64_t calls = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double elapsed = 0.0;
    do {
        for (size_t i = 0; i < ptrs.size(); ++i) {
            eg::MatmulJob job{q, ptrs[i], static_cast<size_t>(row_bytes), n_rows, y.data(), n_rows};
            job.packed = packed ? packs[i].get() : nullptr;
            eg::matmul_multi(kt, *pool, &job, 1, n_cols, xp, n_tok);
            ++calls;
        }
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (elapsed < min_seconds);
    return elapsed / static_cast<double>(calls);
}

}  // namespace

void bind_kernels(py::module_& m) {
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const eg::Error& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        }
    });

    py::class_<eg::ThreadPool, std::shared_ptr<eg::ThreadPool>>(m, "ThreadPool",
                                                                "Persistent worker threads for the kernels.")
        .def(py::init<int>(), py::arg("n_threads") = 0,
             "n_threads <= 0 uses the number of physical cores.")
        .def_property_readonly("size", &eg::ThreadPool::size);

    m.def("default_pool", &default_pool, "The shared pool used when a call gets no pool (physical cores).");
    m.def("physical_cores", &eg::physical_core_count);
    m.def("default_thread_count", &eg::default_thread_count, py::arg("cpu_root") = "/sys/devices/system/cpu",
          "Threads used when none are given: physical cores, only the big ones where the kernel reports\n"
          "differing cpu_capacity (big.LITTLE). `cpu_root` points at a sysfs-like tree (tests).");
    m.def("cpu_topology", [](const std::string& cpu_root) {
        py::list out;
        for (const eg::CpuInfo& c : eg::read_cpu_topology(cpu_root)) {
            py::dict d;
            d["id"] = c.id;
            d["online"] = c.online;
            d["core"] = c.core_key;
            d["capacity"] = c.capacity;
            out.append(d);
        }
        return out;
    }, py::arg("cpu_root") = "/sys/devices/system/cpu", "Per CPU: id, online, core (package:core), capacity (0 = not reported).");

    m.def("active_isa", &eg::active_isa, "Kernel set in use: scalar, avx2, neon or neon_dotprod.");
    m.def("set_isa", &eg::set_isa, py::arg("isa"), "Switch the kernel set (tests and benchmarks).");
    m.def("available_isas", [] {
        std::vector<std::string> out;
        for (const char* const* n = eg::all_isas(); *n; ++n)
            if (eg::isa_available(*n)) out.emplace_back(*n);
        return out;
    });

    m.def("type_info", [](const py::object& q) {
        const eg::TypeTraits& tr = eg::type_traits(parse_qtype(q));
        py::dict d;
        d["name"] = tr.name;
        d["block_size"] = tr.block_size;
        d["type_size"] = tr.type_size;
        d["activation_type"] = eg::type_traits(tr.vec_dot_type).name;
        return d;
    }, py::arg("qtype"));
    m.def("row_size", [](const py::object& q, int64_t n) { return eg::row_size(parse_qtype(q), n); },
          py::arg("qtype"), py::arg("n"));

    m.def("quantize", &quantize, py::arg("x"), py::arg("qtype"),
          "float32 (..., n) -> uint8 (..., row_bytes) in the given format.");
    m.def("dequantize", &dequantize, py::arg("data"), py::arg("qtype"),
          "uint8 (..., row_bytes) -> float32 (..., n).");
    m.def("quantize_activations", &quantize_activations, py::arg("x"), py::arg("weight_qtype"),
          "float32 (..., n) -> the weight type's activation format (q8_0 / q8_1 / q8_K / f32 bytes).");
    m.def("matmul", &matmul, py::arg("w"), py::arg("qtype"), py::arg("x"), py::arg("pool") = py::none(),
          py::arg("packed") = false, py::arg("rows") = py::none(),
          "Y = W·X: w uint8 (rows, row_bytes); x float32 (cols,) -> (rows,) or (tokens, cols) -> (tokens, rows).\n"
          "packed=True: through the fast path's repacked rows (repack.h; Q4_0/Q4_1/Q8_0, rows a multiple of 8).\n"
          "rows=(r0, r1) with packed=True: only those rows, on this thread, as one thread's share of a product\n"
          "(a share may cut an 8-row group); the other rows of Y are NaN.");
    // The forward pass's float kernels, exposed so tests can hold them against references.
    m.def("softmax", [](F32Array x) {
        F32Array y(x.size());
        std::memcpy(y.mutable_data(), x.data(), sizeof(float) * x.size());
        eg::kernels().softmax(static_cast<int64_t>(x.size()), y.mutable_data());
        return y;
    }, py::arg("x"), "Softmax of a 1-D float32 array, as the attention computes it.");
    m.def("silu_mul", [](F32Array gate, F32Array up) {
        if (gate.size() != up.size()) throw eg::Error("gate and up must have the same size");
        F32Array y(gate.size());
        std::memcpy(y.mutable_data(), gate.data(), sizeof(float) * gate.size());
        eg::kernels().silu_mul(static_cast<int64_t>(gate.size()), y.mutable_data(), up.data());
        return y;
    }, py::arg("gate"), py::arg("up"), "silu(gate) * up, as the feed-forward block computes it.");
    m.def("gelu_mul", [](F32Array gate, F32Array up) {
        if (gate.size() != up.size()) throw eg::Error("gate and up must have the same size");
        F32Array y(gate.size());
        std::memcpy(y.mutable_data(), gate.data(), sizeof(float) * gate.size());
        eg::kernels().gelu_mul(static_cast<int64_t>(gate.size()), y.mutable_data(), up.data());
        return y;
    }, py::arg("gate"), py::arg("up"), "gelu_tanh(gate) * up (GeGLU), as llama.cpp's CPU backend computes it.");
    m.def("gelu_f16_table", [] {
        py::array_t<uint16_t> out(1 << 16);
        std::memcpy(out.mutable_data(), eg::gelu_f16_table(), sizeof(uint16_t) << 16);
        return out;
    }, "ggml's GELU table: entry h = f16(gelu(f32(h))) for every f16 bit pattern h (uint16 bits).");
    m.def("dot_f16", [](py::array_t<uint16_t, py::array::c_style> x, py::array_t<uint16_t, py::array::c_style> y) {
        if (x.size() != y.size() || x.size() % 32 != 0) throw eg::Error("x and y must be equal lengths, multiples of 32");
        std::vector<const uint8_t*> bases;
        for (py::ssize_t c = 0; c < x.size() / 32; ++c) bases.push_back(reinterpret_cast<const uint8_t*>(x.data() + 32 * c));
        return eg::kernels().dot_f16_chunks(static_cast<int64_t>(bases.size()), bases.data(), 0, y.data());
    }, py::arg("x"), py::arg("y"), "Dot product of two f16 vectors (uint16 bits) in ggml's order.");
    m.def("time_matmul", &time_matmul, py::arg("weights"), py::arg("qtype"), py::arg("x"),
          py::arg("min_seconds") = 0.2, py::arg("pool") = py::none(), py::arg("packed") = false,
          "Benchmark helper: seconds per product with x (cols,) or (tokens, cols), cycling through weight copies\n"
          "(packed=True: each copy repacked first, the fast path's products).");
    m.def("measure_read_bandwidth", [](size_t bytes, int repeats, const py::object& pool_obj) {
        auto pool = pick_pool(pool_obj);
        py::gil_scoped_release nogil;
        return eg::measure_read_bandwidth(*pool, bytes, repeats);
    }, py::arg("bytes") = size_t(256) << 20, py::arg("repeats") = 5, py::arg("pool") = py::none(),
       "Best-of-repeats read bandwidth in GB/s with vector loads over a buffer much larger than the caches.");
}
