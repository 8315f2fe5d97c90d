// bind_gguf.cpp — exposes eg::GGUFFile to Python as edgegen._native.GGUFFile.
//
// The object exports the whole mapping through the (read-only) buffer protocol, so
// edgegen/gguf.py builds zero-copy numpy views with np.frombuffer; each view holds a reference
// to this object, which keeps the mapping alive. Other bindings take std::shared_ptr<GGUFFile>.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cerrno>
#include <cstring>

#include "bindings.h"
#include "gguf.h"

namespace py = pybind11;
using eg::GGUFFile;
using eg::GGUFType;
using eg::GGUFValue;

namespace {

[[noreturn]] void raise_typed(const char* cls, const std::string& msg) {
    py::object err = py::module_::import("edgegen.errors").attr(cls);
    PyErr_SetString(err.ptr(), msg.c_str());
    throw py::error_already_set();
}

py::str to_str(std::string_view s) { return py::str(s.data(), s.size()); }  // UTF-8 checked at open()

template <typename T>
py::array copy_array(const GGUFValue& v) {
    py::array_t<T> out(static_cast<py::ssize_t>(v.array_count));
    if (v.array_count) std::memcpy(out.mutable_data(), v.array_data, v.array_count * sizeof(T));
    return std::move(out);
}

py::object to_python(const GGUFValue& v) {
    switch (v.type) {
        case GGUFType::UINT8: case GGUFType::UINT16: case GGUFType::UINT32: case GGUFType::UINT64:
            return py::int_(v.u64);
        case GGUFType::INT8: case GGUFType::INT16: case GGUFType::INT32: case GGUFType::INT64:
            return py::int_(v.i64);
        case GGUFType::FLOAT32: case GGUFType::FLOAT64: return py::float_(v.f64);
        case GGUFType::BOOL: return py::bool_(v.b);
        case GGUFType::STRING: return to_str(v.str);
        case GGUFType::ARRAY: break;
    }
    switch (v.array_type) {
        case GGUFType::STRING: {
            py::list out(v.array_strings.size());
            for (size_t i = 0; i < v.array_strings.size(); ++i) out[i] = to_str(v.array_strings[i]);
            return std::move(out);
        }
        case GGUFType::UINT8: return copy_array<uint8_t>(v);
        case GGUFType::INT8: return copy_array<int8_t>(v);
        case GGUFType::UINT16: return copy_array<uint16_t>(v);
        case GGUFType::INT16: return copy_array<int16_t>(v);
        case GGUFType::UINT32: return copy_array<uint32_t>(v);
        case GGUFType::INT32: return copy_array<int32_t>(v);
        case GGUFType::UINT64: return copy_array<uint64_t>(v);
        case GGUFType::INT64: return copy_array<int64_t>(v);
        case GGUFType::FLOAT32: return copy_array<float>(v);
        case GGUFType::FLOAT64: return copy_array<double>(v);
        case GGUFType::BOOL: return copy_array<bool>(v);
        case GGUFType::ARRAY: break;
    }
    throw std::logic_error("unreachable: nested array survived validation");
}

std::shared_ptr<GGUFFile> open_file(const std::string& path) {
    try {
        py::gil_scoped_release nogil;
        return GGUFFile::open(path);
    } catch (const eg::GGUFOpenError& e) {
        raise_typed(e.err == ENOENT ? "ModelNotFoundError" : "ModelFormatError", e.what());
    } catch (const eg::Error& e) {
        raise_typed("ModelFormatError", path + ": " + e.what());
    }
}

}  // namespace

void bind_gguf(py::module_& m) {
    py::class_<GGUFFile, std::shared_ptr<GGUFFile>>(m, "GGUFFile", py::buffer_protocol(),
                                                    "A validated, read-only memory mapping of a GGUF file.")
        .def_static("open", &open_file, py::arg("path"),
                    "Map and validate a GGUF file; raises ModelFormatError / ModelNotFoundError.")
        .def_buffer([](GGUFFile& f) {
            return py::buffer_info(const_cast<uint8_t*>(f.bytes()), 1, py::format_descriptor<uint8_t>::format(), 1,
                                   {static_cast<py::ssize_t>(f.size())}, {1}, /*readonly=*/true);
        })
        .def_property_readonly("path", &GGUFFile::path)
        .def_property_readonly("version", &GGUFFile::version)
        .def_property_readonly("alignment", &GGUFFile::alignment)
        .def_property_readonly("data_offset", &GGUFFile::data_offset)
        .def_property_readonly("size", &GGUFFile::size)
        .def(
            "metadata",
            [](const GGUFFile& f) {
                py::list out;
                for (const eg::GGUFKeyValue& kv : f.metadata())
                    out.append(py::make_tuple(to_str(kv.key), to_python(kv.value), eg::gguf_type_name(kv.value.type)));
                return out;
            },
            "[(key, value, gguf type name)] in file order; numeric arrays come back as numpy copies.")
        .def(
            "metadata_summary",
            [](const GGUFFile& f) {
                py::list out;
                for (const eg::GGUFKeyValue& kv : f.metadata()) {
                    py::object v = kv.value.type == GGUFType::ARRAY
                                       ? py::object(py::make_tuple(eg::gguf_type_name(kv.value.array_type),
                                                                   kv.value.array_count))
                                       : to_python(kv.value);
                    out.append(py::make_tuple(to_str(kv.key), v, eg::gguf_type_name(kv.value.type)));
                }
                return out;
            },
            "Like metadata(), but each array comes back as (element type name, length) without copying it "
            "(a 262k-token vocabulary stays in the mapping).")
        .def(
            "tensors",
            [](const GGUFFile& f) {
                py::list out;
                for (const eg::GGUFTensor& t : f.tensors()) {
                    py::tuple shape(t.n_dims);
                    for (uint32_t d = 0; d < t.n_dims; ++d) shape[d] = py::int_(t.ne[d]);
                    out.append(py::make_tuple(to_str(t.name), shape, t.type, eg::ggml_type_info(t.type)->name,
                                              f.data_offset() + t.offset, t.nbytes));
                }
                return out;
            },
            "[(name, shape in ggml order, type id, type name, absolute file offset, nbytes)] in file order.");

    m.def(
        "ggml_type_info",
        [](int32_t id) -> py::object {
            const eg::GGMLTypeInfo* ti = eg::ggml_type_info(id);
            if (!ti) return py::none();
            return py::make_tuple(ti->name, ti->block_size, ti->type_size);
        },
        py::arg("type_id"), "(name, block_size, type_size) of a ggml tensor type id, or None if unknown.");
}
