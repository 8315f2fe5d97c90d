// spec_dict.h — Python views of the model description shared by bind_spec.cpp and bind_engine.cpp.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

#include "kv_cache.h"
#include "model_spec.h"

eg::QType kv_type_from(const std::string& name);
pybind11::dict spec_dict(const eg::ModelSpec& s);
pybind11::dict hparams_dict(const eg::HParams& h);
pybind11::dict layout_dict(const eg::KVLayout& L);
