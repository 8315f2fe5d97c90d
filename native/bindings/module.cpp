// module.cpp — registers every binding; the bindings themselves live one concept per file.
#include "bindings.h"

PYBIND11_MODULE(_native, m) {
    m.doc() = "edgegen native runtime: GGUF views, kernels, forward pass";
    bind_kernels(m);
    bind_gguf(m);
    bind_spec(m);
    bind_engine(m);
    bind_lora(m);
}
