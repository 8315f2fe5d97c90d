// fuzz_gguf — arbitrary bytes through GGUFFile::open() (the production open/fstat/mmap path and
// every structural and semantic check), then every accessor the engine, store and fit check use
// on a file that was accepted. The only acceptable failure is eg::Error (GGUFError,
// UnsupportedError): anything else — a crash, a sanitizer report, another exception, an
// accepted file whose views leave the mapping — is a finding.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "gguf.h"
#include "model_spec.h"

namespace {

void check_accepted(const eg::GGUFFile& f) {
    const uint8_t* lo = f.bytes();
    const uint8_t* hi = lo + f.size();
    auto inside = [&](const void* p, uint64_t n) {
        const uint8_t* b = static_cast<const uint8_t*>(p);
        return b >= lo && b <= hi && n <= static_cast<uint64_t>(hi - b);
    };
    volatile uint8_t sink = 0;
    for (const eg::GGUFKeyValue& kv : f.metadata()) {
        FUZZ_REQUIRE(inside(kv.key.data(), kv.key.size()));
        FUZZ_REQUIRE(f.find(kv.key) != nullptr);
        const eg::GGUFValue& v = kv.value;
        if (v.type == eg::GGUFType::STRING) FUZZ_REQUIRE(inside(v.str.data(), v.str.size()));
        if (v.type == eg::GGUFType::ARRAY) {
            for (std::string_view s : v.array_strings) FUZZ_REQUIRE(inside(s.data(), s.size()));
            if (v.array_data) {
                const uint64_t n = v.array_count * eg::gguf_type_size(v.array_type);
                FUZZ_REQUIRE(inside(v.array_data, n));
                if (n) sink ^= v.array_data[n - 1];
            }
        }
        // The typed getters either answer or throw GGUFError.
        try { (void)f.get_int(kv.key); } catch (const eg::GGUFError&) {}
        try { (void)f.get_float(kv.key); } catch (const eg::GGUFError&) {}
        try { (void)f.get_string(kv.key); } catch (const eg::GGUFError&) {}
        try { (void)f.get_bool(kv.key, false); } catch (const eg::GGUFError&) {}
    }
    for (const eg::GGUFTensor& t : f.tensors()) {
        FUZZ_REQUIRE(inside(t.name.data(), t.name.size()));
        FUZZ_REQUIRE(t.data != nullptr && inside(t.data, t.nbytes));
        FUZZ_REQUIRE(t.n_elements() > 0);
        FUZZ_REQUIRE(&f.tensor(t.name) == &t);
        if (t.nbytes) sink ^= t.data[t.nbytes - 1];
    }
    (void)sink;
    // What the store, the fit check and the native engine read next.
    try {
        const eg::HParams h = eg::read_hparams(f);
        FUZZ_REQUIRE(h.n_layer >= 1 && h.n_head >= 1 && h.n_head_kv >= 1 && h.head_dim >= 1);
    } catch (const eg::Error&) {}
    try {
        const eg::ModelSpec s = eg::read_model_spec(f);
        FUZZ_REQUIRE(static_cast<int32_t>(s.layers.size()) == s.hp.n_layer);
    } catch (const eg::Error&) {}
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static fuzz::MemFile file;
    const std::string& path = file.write(data, size);
    try {
        auto f = eg::GGUFFile::open(path);
        check_accepted(*f);
    } catch (const eg::Error&) {
        // GGUFError / GGUFOpenError / UnsupportedError: the clean refusal
    }
    return 0;
}
