// py_offload.h — a MatmulProvider implemented by a Python object (edgegen.accelerators), for the
// offload backend (offload_backend.h). The forward pass runs with the GIL released; each provider
// call takes it for its duration.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "offload_backend.h"

// The provider object needs offer(name, qtype, rows, cols, data) -> int, run(ids, x, outs) -> bool
// and observe(ids, x, outs); x and outs are numpy views valid only during the call.
std::shared_ptr<eg::MatmulProvider> make_py_provider(pybind11::object provider);

pybind11::dict offload_stats_dict(eg::OffloadStats& s);
std::string offload_mode_name(const eg::OffloadStats& s);
void set_offload_mode(eg::OffloadStats& s, const std::string& mode);
