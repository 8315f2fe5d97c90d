// bindings.h — one bind_* function per wrapped concept; module.cpp only calls them.
#pragma once

#include <pybind11/pybind11.h>

void bind_kernels(pybind11::module_& m);
void bind_gguf(pybind11::module_& m);
void bind_spec(pybind11::module_& m);
void bind_engine(pybind11::module_& m);
void bind_lora(pybind11::module_& m);  // after bind_engine: adds to Model
