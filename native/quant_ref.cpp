// quant_ref.cpp — scalar reference kernels: the source of truth every SIMD path is tested against.
//
// Quantizers reproduce ggml's *_ref functions operation for operation (same float ops, same
// rounding), so the bytes equal those of ggml and of gguf-py. Build with -ffp-contract=off: a
// fused multiply-add would change the rounding of `x*id + 8.5f`.
#include <cmath>
#include <string>

#include "kernels.h"

namespace eg {

// ================================================================================================
// Type traits
// ================================================================================================
namespace {

TypeTraits make_traits_table_entry(const char* name, int bs, int ts, QType dot) {
    return TypeTraits{name, bs, ts, dot, true};
}

struct TraitsTable {
    TypeTraits t[kTypeCount];
    TraitsTable() {
        for (auto& e : t) e = TypeTraits{"unsupported", 0, 0, QType::F32, false};
        auto set = [&](QType q, TypeTraits tr) { t[static_cast<int>(q)] = tr; };
        set(QType::F32, make_traits_table_entry("f32", 1, 4, QType::F32));
        set(QType::F16, make_traits_table_entry("f16", 1, 2, QType::F32));
        set(QType::BF16, make_traits_table_entry("bf16", 1, 2, QType::F32));
        set(QType::Q4_0, make_traits_table_entry("q4_0", QK4_0, sizeof(block_q4_0), QType::Q8_0));
        set(QType::Q4_1, make_traits_table_entry("q4_1", QK4_1, sizeof(block_q4_1), QType::Q8_1));
        set(QType::Q5_0, make_traits_table_entry("q5_0", QK5_0, sizeof(block_q5_0), QType::Q8_0));
        set(QType::Q8_0, make_traits_table_entry("q8_0", QK8_0, sizeof(block_q8_0), QType::Q8_0));
        set(QType::Q8_1, make_traits_table_entry("q8_1", QK8_1, sizeof(block_q8_1), QType::Q8_1));
        set(QType::Q4_K, make_traits_table_entry("q4_K", QK_K, sizeof(block_q4_K), QType::Q8_K));
        set(QType::Q5_K, make_traits_table_entry("q5_K", QK_K, sizeof(block_q5_K), QType::Q8_K));
        set(QType::Q6_K, make_traits_table_entry("q6_K", QK_K, sizeof(block_q6_K), QType::Q8_K));
        set(QType::Q8_K, make_traits_table_entry("q8_K", QK_K, sizeof(block_q8_K), QType::Q8_K));
    }
};

const TraitsTable& traits_table() {
    static const TraitsTable table;
    return table;
}

}  // namespace

bool type_supported(int32_t id) {
    return id >= 0 && id < kTypeCount && traits_table().t[id].supported;
}

const TypeTraits& type_traits(QType t) {
    const int id = static_cast<int>(t);
    EG_CHECK(type_supported(id), "unsupported tensor type id " + std::to_string(id));
    return traits_table().t[id];
}

QType type_from_name(const std::string& name) {
    std::string lower;
    for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (int id = 0; id < kTypeCount; ++id) {
        const TypeTraits& tr = traits_table().t[id];
        if (!tr.supported) continue;
        std::string n = tr.name;
        for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (n == lower) return static_cast<QType>(id);
    }
    throw Error("unknown tensor type name '" + name + "'");
}

size_t row_size(QType t, int64_t n) {
    const TypeTraits& tr = type_traits(t);
    EG_CHECK(n >= 0, "negative row length");
    EG_CHECK(n % tr.block_size == 0, std::string("row length ") + std::to_string(n) +
                                         " is not a multiple of the " + tr.name + " block size " +
                                         std::to_string(tr.block_size));
    return static_cast<size_t>(n / tr.block_size) * static_cast<size_t>(tr.type_size);
}

// ================================================================================================
// Float rows
// ================================================================================================
namespace {

void quantize_row_f32(const float* x, void* y, int64_t n) { std::memcpy(y, x, sizeof(float) * n); }
void dequantize_row_f32(const void* x, float* y, int64_t n) { std::memcpy(y, x, sizeof(float) * n); }

void quantize_row_f16(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<fp16_t*>(vy);
    for (int64_t i = 0; i < n; ++i) y[i] = f32_to_fp16(x[i]);
}
void dequantize_row_f16(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const fp16_t*>(vx);
    for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_f32(x[i]);
}

void quantize_row_bf16(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<bf16_t*>(vy);
    for (int64_t i = 0; i < n; ++i) y[i] = f32_to_bf16(x[i]);
}
void dequantize_row_bf16(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const bf16_t*>(vx);
    for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(x[i]);
}

// Float weights take float activations: no quantization error on the activation side.
void vec_dot_f32_f32(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    const auto* x = static_cast<const float*>(a);
    for (int64_t r = 0; r < nr; ++r) {
        const auto* row = reinterpret_cast<const float*>(static_cast<const uint8_t*>(w) + r * stride);
        double s = 0.0;  // the reference accumulates in double: it is the yardstick, not the fast path
        for (int64_t i = 0; i < n; ++i) s += static_cast<double>(row[i]) * x[i];
        out[r] = static_cast<float>(s);
    }
}
void vec_dot_f16_f32(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    const auto* x = static_cast<const float*>(a);
    for (int64_t r = 0; r < nr; ++r) {
        const auto* row = reinterpret_cast<const fp16_t*>(static_cast<const uint8_t*>(w) + r * stride);
        double s = 0.0;
        for (int64_t i = 0; i < n; ++i) s += static_cast<double>(fp16_to_f32(row[i])) * x[i];
        out[r] = static_cast<float>(s);
    }
}
void vec_dot_bf16_f32(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    const auto* x = static_cast<const float*>(a);
    for (int64_t r = 0; r < nr; ++r) {
        const auto* row = reinterpret_cast<const bf16_t*>(static_cast<const uint8_t*>(w) + r * stride);
        double s = 0.0;
        for (int64_t i = 0; i < n; ++i) s += static_cast<double>(bf16_to_f32(row[i])) * x[i];
        out[r] = static_cast<float>(s);
    }
}

// ================================================================================================
// Q4_0: x = (q - 8) * d, d = max / -8 where max is the value of largest magnitude
// ================================================================================================
void quantize_row_q4_0(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q4_0*>(vy);
    const int64_t nb = n / QK4_0;
    for (int64_t i = 0; i < nb; ++i) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK4_0; ++j) {
            const float v = x[i * QK4_0 + j];
            if (amax < std::fabs(v)) { amax = std::fabs(v); max = v; }
        }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            const float x0 = x[i * QK4_0 + j] * id;
            const float x1 = x[i * QK4_0 + QK4_0 / 2 + j] * id;
            const uint8_t xi0 = static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x0 + 8.5f))));
            const uint8_t xi1 = static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x1 + 8.5f))));
            y[i].qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
        }
    }
}
void dequantize_row_q4_0(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const block_q4_0*>(vx);
    for (int64_t i = 0; i < n / QK4_0; ++i) {
        const float d = fp16_to_f32(x[i].d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            y[i * QK4_0 + j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            y[i * QK4_0 + j + QK4_0 / 2] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

// ================================================================================================
// Q4_1: x = q * d + m, d = (max - min) / 15, m = min
// ================================================================================================
void quantize_row_q4_1(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q4_1*>(vy);
    for (int64_t i = 0; i < n / QK4_1; ++i) {
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < QK4_1; ++j) {
            const float v = x[i * QK4_1 + j];
            if (v < min) min = v;
            if (v > max) max = v;
        }
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        y[i].m = f32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            const float x0 = (x[i * QK4_1 + j] - min) * id;
            const float x1 = (x[i * QK4_1 + QK4_1 / 2 + j] - min) * id;
            const uint8_t xi0 = static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x0 + 0.5f))));
            const uint8_t xi1 = static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x1 + 0.5f))));
            y[i].qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
        }
    }
}
void dequantize_row_q4_1(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const block_q4_1*>(vx);
    for (int64_t i = 0; i < n / QK4_1; ++i) {
        const float d = fp16_to_f32(x[i].d), m = fp16_to_f32(x[i].m);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            y[i * QK4_1 + j] = (x[i].qs[j] & 0x0F) * d + m;
            y[i * QK4_1 + j + QK4_1 / 2] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

// ================================================================================================
// Q5_0: x = (q5 - 16) * d, d = max / -16; bit 4 of element j is bit j of qh (little endian)
// ================================================================================================
void quantize_row_q5_0(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q5_0*>(vy);
    for (int64_t i = 0; i < n / QK5_0; ++i) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK5_0; ++j) {
            const float v = x[i * QK5_0 + j];
            if (amax < std::fabs(v)) { amax = std::fabs(v); max = v; }
        }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const float x0 = x[i * QK5_0 + j] * id;
            const float x1 = x[i * QK5_0 + QK5_0 / 2 + j] * id;
            const uint8_t xi0 = static_cast<uint8_t>(std::min(31, static_cast<int>(static_cast<int8_t>(x0 + 16.5f))));
            const uint8_t xi1 = static_cast<uint8_t>(std::min(31, static_cast<int>(static_cast<int8_t>(x1 + 16.5f))));
            y[i].qs[j] = static_cast<uint8_t>((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
            qh |= ((xi1 & 0x10u) >> 4) << (j + QK5_0 / 2);
        }
        std::memcpy(y[i].qh, &qh, sizeof(qh));
    }
}
void dequantize_row_q5_0(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const block_q5_0*>(vx);
    for (int64_t i = 0; i < n / QK5_0; ++i) {
        const float d = fp16_to_f32(x[i].d);
        uint32_t qh;
        std::memcpy(&qh, x[i].qh, sizeof(qh));
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const uint8_t xh0 = ((qh >> (j + 0)) << 4) & 0x10;
            const uint8_t xh1 = ((qh >> (j + 12))) & 0x10;
            const int x0 = ((x[i].qs[j] & 0x0F) | xh0) - 16;
            const int x1 = ((x[i].qs[j] >> 4) | xh1) - 16;
            y[i * QK5_0 + j] = x0 * d;
            y[i * QK5_0 + j + QK5_0 / 2] = x1 * d;
        }
    }
}

// ================================================================================================
// Q8_0 / Q8_1: x = q * d, d = amax / 127, q = round-half-away(x / d); Q8_1 adds s = d * sum(q)
// ================================================================================================
void quantize_row_q8_0(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q8_0*>(vy);
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(x[i * QK8_0 + j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(std::roundf(x[i * QK8_0 + j] * id));
    }
}
void dequantize_row_q8_0(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const block_q8_0*>(vx);
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        const float d = fp16_to_f32(x[i].d);
        for (int j = 0; j < QK8_0; ++j) y[i * QK8_0 + j] = x[i].qs[j] * d;
    }
}

void quantize_row_q8_1(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<block_q8_1*>(vy);
    for (int64_t i = 0; i < n / QK8_1; ++i) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; ++j) amax = std::max(amax, std::fabs(x[i * QK8_1 + j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; ++j) {
            y[i].qs[j] = static_cast<int8_t>(std::roundf(x[i * QK8_1 + j] * id));
            sum += y[i].qs[j];
        }
        y[i].s = f32_to_fp16(sum * d);
    }
}
void dequantize_row_q8_1(const void* vx, float* y, int64_t n) {
    const auto* x = static_cast<const block_q8_1*>(vx);
    for (int64_t i = 0; i < n / QK8_1; ++i) {
        const float d = fp16_to_f32(x[i].d);
        for (int j = 0; j < QK8_1; ++j) y[i * QK8_1 + j] = x[i].qs[j] * d;
    }
}

// ================================================================================================
// Integer dot products (weights x quantized activations), one float multiply per block.
//
// The float side is accumulated in eight lanes (lane k holds elements 4k..4k+3 of every block)
// and reduced in a fixed order: the same arithmetic as the AVX2 kernels and as ggml's x86 code,
// so every ISA that follows it gives bit-identical products (and llama.cpp's, on x86).
// ================================================================================================
inline float hsum_lanes(const float* a) {
    const float l0 = a[0] + a[4], l1 = a[1] + a[5], l2 = a[2] + a[6], l3 = a[3] + a[7];
    return (l0 + l2) + (l1 + l3);
}

// block_lanes(x, y, lanes[8]) fills the eight int32 lane sums of one block and returns the block's
// float scale; `extra` adds a per-block float term summed separately (Q4_1's offset).
template <typename Block, typename BlockAct, typename BlockLanes, typename Extra>
void vec_dot_rows(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a, int block_size,
                  BlockLanes block_lanes, Extra extra) {
    const auto* y = static_cast<const BlockAct*>(a);
    const int64_t nb = n / block_size;
    for (int64_t r = 0; r < nr; ++r) {
        const auto* x = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + r * stride);
        float acc[8] = {};
        float sum_extra = 0.0f;
        for (int64_t i = 0; i < nb; ++i) {
            int32_t lanes[8];
            const float d = block_lanes(x[i], y[i], lanes);
            for (int k = 0; k < 8; ++k) acc[k] = std::fma(d, static_cast<float>(lanes[k]), acc[k]);
            sum_extra += extra(x[i], y[i]);
        }
        out[r] = hsum_lanes(acc) + sum_extra;
    }
}

void vec_dot_q4_0_q8_0(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    vec_dot_rows<block_q4_0, block_q8_0>(n, out, w, stride, nr, a, QK4_0,
        [](const block_q4_0& x, const block_q8_0& y, int32_t* lanes) {
            for (int k = 0; k < 8; ++k) {
                int s = 0;
                for (int e = 4 * k; e < 4 * k + 4; ++e) {
                    const int q = e < 16 ? (x.qs[e] & 0x0F) : (x.qs[e - 16] >> 4);
                    s += (q - 8) * y.qs[e];
                }
                lanes[k] = s;
            }
            return fp16_to_f32(x.d) * fp16_to_f32(y.d);
        },
        [](const block_q4_0&, const block_q8_0&) { return 0.0f; });
}

void vec_dot_q4_1_q8_1(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    vec_dot_rows<block_q4_1, block_q8_1>(n, out, w, stride, nr, a, QK4_1,
        [](const block_q4_1& x, const block_q8_1& y, int32_t* lanes) {
            for (int k = 0; k < 8; ++k) {
                int s = 0;
                for (int e = 4 * k; e < 4 * k + 4; ++e) s += (e < 16 ? (x.qs[e] & 0x0F) : (x.qs[e - 16] >> 4)) * y.qs[e];
                lanes[k] = s;
            }
            return fp16_to_f32(x.d) * fp16_to_f32(y.d);
        },
        [](const block_q4_1& x, const block_q8_1& y) { return fp16_to_f32(x.m) * fp16_to_f32(y.s); });
}

void vec_dot_q5_0_q8_0(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    vec_dot_rows<block_q5_0, block_q8_0>(n, out, w, stride, nr, a, QK5_0,
        [](const block_q5_0& x, const block_q8_0& y, int32_t* lanes) {
            uint32_t qh;
            std::memcpy(&qh, x.qh, sizeof(qh));
            for (int k = 0; k < 8; ++k) {
                int s = 0;
                for (int e = 4 * k; e < 4 * k + 4; ++e) {
                    const int lo = e < 16 ? (x.qs[e] & 0x0F) : (x.qs[e - 16] >> 4);
                    s += ((lo | (((qh >> e) & 1u) << 4)) - 16) * y.qs[e];
                }
                lanes[k] = s;
            }
            return fp16_to_f32(x.d) * fp16_to_f32(y.d);
        },
        [](const block_q5_0&, const block_q8_0&) { return 0.0f; });
}

void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    vec_dot_rows<block_q8_0, block_q8_0>(n, out, w, stride, nr, a, QK8_0,
        [](const block_q8_0& x, const block_q8_0& y, int32_t* lanes) {
            for (int k = 0; k < 8; ++k) {
                int s = 0;
                for (int e = 4 * k; e < 4 * k + 4; ++e) s += x.qs[e] * y.qs[e];
                lanes[k] = s;
            }
            return fp16_to_f32(x.d) * fp16_to_f32(y.d);
        },
        [](const block_q8_0&, const block_q8_0&) { return 0.0f; });
}

// ================================================================================================
// y += s * row (attention over cached V rows), fused as ggml's SIMD vec_mad is on every ISA
// ================================================================================================
void vec_mad_f32(int64_t n, float* y, const void* row, float s) {
    const auto* x = static_cast<const float*>(row);
    for (int64_t i = 0; i < n; ++i) y[i] = std::fma(x[i], s, y[i]);  // fused, as the SIMD paths
}
void vec_mad_f16(int64_t n, float* y, const void* row, float s) {
    const auto* x = static_cast<const fp16_t*>(row);
    for (int64_t i = 0; i < n; ++i) y[i] = std::fma(s, fp16_to_f32(x[i]), y[i]);
}
void vec_mad_q8_0(int64_t n, float* y, const void* row, float s) {
    const auto* x = static_cast<const block_q8_0*>(row);
    for (int64_t b = 0; b < n / QK8_0; ++b) {
        const float ds = s * fp16_to_f32(x[b].d);
        for (int j = 0; j < QK8_0; ++j) y[b * QK8_0 + j] = std::fma(ds, static_cast<float>(x[b].qs[j]), y[b * QK8_0 + j]);
    }
}

}  // namespace

void fill_table_scalar(KernelTable& t) {
    auto i = [](QType q) { return static_cast<int>(q); };
    t.quantize_row[i(QType::F32)] = quantize_row_f32;
    t.quantize_row[i(QType::F16)] = quantize_row_f16;
    t.quantize_row[i(QType::BF16)] = quantize_row_bf16;
    t.quantize_row[i(QType::Q4_0)] = quantize_row_q4_0;
    t.quantize_row[i(QType::Q4_1)] = quantize_row_q4_1;
    t.quantize_row[i(QType::Q5_0)] = quantize_row_q5_0;
    t.quantize_row[i(QType::Q8_0)] = quantize_row_q8_0;
    t.quantize_row[i(QType::Q8_1)] = quantize_row_q8_1;

    t.dequantize_row[i(QType::F32)] = dequantize_row_f32;
    t.dequantize_row[i(QType::F16)] = dequantize_row_f16;
    t.dequantize_row[i(QType::BF16)] = dequantize_row_bf16;
    t.dequantize_row[i(QType::Q4_0)] = dequantize_row_q4_0;
    t.dequantize_row[i(QType::Q4_1)] = dequantize_row_q4_1;
    t.dequantize_row[i(QType::Q5_0)] = dequantize_row_q5_0;
    t.dequantize_row[i(QType::Q8_0)] = dequantize_row_q8_0;
    t.dequantize_row[i(QType::Q8_1)] = dequantize_row_q8_1;

    t.vec_dot[i(QType::F32)] = vec_dot_f32_f32;
    t.vec_dot[i(QType::F16)] = vec_dot_f16_f32;
    t.vec_dot[i(QType::BF16)] = vec_dot_bf16_f32;
    t.vec_dot[i(QType::Q4_0)] = vec_dot_q4_0_q8_0;
    t.vec_dot[i(QType::Q4_1)] = vec_dot_q4_1_q8_1;
    t.vec_dot[i(QType::Q5_0)] = vec_dot_q5_0_q8_0;
    t.vec_dot[i(QType::Q8_0)] = vec_dot_q8_0_q8_0;

    t.vec_mad[i(QType::F32)] = vec_mad_f32;
    t.vec_mad[i(QType::F16)] = vec_mad_f16;
    t.vec_mad[i(QType::Q8_0)] = vec_mad_q8_0;
}

}  // namespace eg
