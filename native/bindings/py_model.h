// py_model.h — the Python-side handle of a loaded model, shared by the binding files that take
// one (bind_engine.cpp: Model, KVCache; bind_lora.cpp: adapters).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "transformer.h"

struct PyModel {
    std::unique_ptr<eg::Model> model;
    std::shared_ptr<int64_t[]> op_counts;  // compute="counting" only
    std::mutex mu;  // one forward pass at a time per model (activation buffers are per model)
};
