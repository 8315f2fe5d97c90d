// common.h — block formats bit-compatible with GGUF/ggml, type traits, checks, fp16/bf16 helpers.
//
// Every struct here has the exact byte layout ggml writes to GGUF files, so weights are used in
// place from the mmapped file. Element i of a block maps to the bit fields exactly as in ggml
// (e.g. Q4_0: low nibbles hold elements 0..15, high nibbles 16..31).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace eg {

// ---------------------------------------------------------------------------------------------
// Checks. EG_CHECK guards untrusted input and API preconditions: it throws, never aborts.
// ---------------------------------------------------------------------------------------------
struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

#define EG_STR2(x) #x
#define EG_STR(x) EG_STR2(x)
#define EG_CHECK(cond, msg)                                                              \
    do {                                                                                 \
        if (!(cond)) throw ::eg::Error(std::string(msg) + " [" __FILE__ ":" EG_STR(__LINE__) "]"); \
    } while (0)

constexpr size_t kAlign = 64;  // buffer alignment: one cache line, enough for AVX-512/NEON loads

// ---------------------------------------------------------------------------------------------
// Tensor types: the numeric ids are ggml's (and GGUF's), so a GGUF tensor type maps directly.
// ---------------------------------------------------------------------------------------------
enum class QType : int32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q8_0 = 8,
    Q8_1 = 9,  // activation format for Q4_1
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,  // activation format for the k-quants
    BF16 = 30,
};
constexpr int kTypeCount = 40;  // table size: covers every id above

constexpr int QK4_0 = 32;
constexpr int QK4_1 = 32;
constexpr int QK5_0 = 32;
constexpr int QK8_0 = 32;
constexpr int QK8_1 = 32;
constexpr int QK_K = 256;       // super-block size of the k-quants
constexpr int K_SCALE_SIZE = 12;

using fp16_t = uint16_t;  // IEEE half, stored as bits
using bf16_t = uint16_t;  // bfloat16, stored as bits

// ---------------------------------------------------------------------------------------------
// Block structs (sizes checked against ggml's below).
// ---------------------------------------------------------------------------------------------
struct block_q4_0 {  // x = (q - 8) * d
    fp16_t d;
    uint8_t qs[QK4_0 / 2];
};
struct block_q4_1 {  // x = q * d + m
    fp16_t d;
    fp16_t m;
    uint8_t qs[QK4_1 / 2];
};
struct block_q5_0 {  // x = (q5 - 16) * d; bit 4 of element j is bit j of qh
    fp16_t d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
};
struct block_q8_0 {  // x = q * d
    fp16_t d;
    int8_t qs[QK8_0];
};
struct block_q8_1 {  // x = q * d; s = d * sum(qs) (lets Q4_1's offset fold into one multiply)
    fp16_t d;
    fp16_t s;
    int8_t qs[QK8_1];
};
struct block_q4_K {  // 8 sub-blocks of 32: x = d*sc*q - dmin*m, 6-bit sc/m packed in scales
    fp16_t d;
    fp16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
};
struct block_q5_K {  // Q4_K's layout plus a fifth bit: element 64k + 32h + l has its bit 4 in
                     // bit 2k + h of qh[l]; x = d*sc*q - dmin*m, q in [0, 31]
    fp16_t d;
    fp16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
// Q4_K / Q5_K: the 12 packed scale bytes -> 8 six-bit scales (out[0..7]) and 8 mins (out[8..15]),
// ggml's get_scale_min_k4 for all eight sub-blocks at once. Every Q4_K/Q5_K kernel unpacks here.
inline void unpack_q4_K_scales(const uint8_t* packed, uint8_t out[16]) {
    constexpr uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
    uint32_t utmp[4];
    std::memcpy(utmp, packed, 12);
    utmp[3] = ((utmp[2] >> 4) & kmask2) | (((utmp[1] >> 6) & kmask3) << 4);
    const uint32_t uaux = utmp[1] & kmask1;
    utmp[1] = (utmp[2] & kmask2) | (((utmp[0] >> 6) & kmask3) << 4);
    utmp[2] = uaux;
    utmp[0] &= kmask1;
    std::memcpy(out, utmp, 16);
}
struct block_q6_K {  // 16 sub-blocks of 16: x = d * sc * (q6 - 32)
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    fp16_t d;
};
struct block_q8_K {  // activations for k-quants; bsums = sums of 16-element groups
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};

static_assert(sizeof(block_q4_0) == 18, "q4_0 layout");
static_assert(sizeof(block_q4_1) == 20, "q4_1 layout");
static_assert(sizeof(block_q5_0) == 22, "q5_0 layout");
static_assert(sizeof(block_q8_0) == 34, "q8_0 layout");
static_assert(sizeof(block_q8_1) == 36, "q8_1 layout");
static_assert(sizeof(block_q4_K) == 144, "q4_K layout");
static_assert(sizeof(block_q5_K) == 176, "q5_K layout");
static_assert(sizeof(block_q6_K) == 210, "q6_K layout");
static_assert(sizeof(block_q8_K) == 292, "q8_K layout");

// ---------------------------------------------------------------------------------------------
// Type traits.
// ---------------------------------------------------------------------------------------------
struct TypeTraits {
    const char* name;     // ggml's name, lower case ("q4_0")
    int32_t block_size;   // elements per block (1 for float rows)
    int32_t type_size;    // bytes per block
    QType vec_dot_type;   // format the activations are converted to for a product
    bool supported;       // false for ids we do not implement
};

const TypeTraits& type_traits(QType t);  // throws eg::Error for unknown ids
bool type_supported(int32_t id);
QType type_from_name(const std::string& name);  // throws for unknown names

// Bytes of one row of n elements; throws when n is not a multiple of the block size.
size_t row_size(QType t, int64_t n);

// ---------------------------------------------------------------------------------------------
// fp16 / bf16 conversion. Round-to-nearest-even, bit-identical to numpy's astype(float16) and to
// ggml's F16C path, so quantized bytes match gguf's reference quantizers.
// ---------------------------------------------------------------------------------------------
inline uint32_t f32_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float f32_from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline float fp16_to_f32(fp16_t h) {
    // Branch-free method (Maratea / FP16 library): exact for all finite, inf, nan and subnormals.
    const uint32_t w = static_cast<uint32_t>(h) << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const uint32_t exp_offset = 0xE0u << 23;
    const float exp_scale = f32_from_bits(0x7800000u);  // 0x1.0p-112
    const float normalized = f32_from_bits((two_w >> 4) + exp_offset) * exp_scale;
    const uint32_t magic_mask = 126u << 23;
    const float magic_bias = 0.5f;
    const float denormalized = f32_from_bits((two_w >> 17) | magic_mask) - magic_bias;
    const uint32_t denormalized_cutoff = 1u << 27;
    const uint32_t result =
        sign | (two_w < denormalized_cutoff ? f32_bits(denormalized) : f32_bits(normalized));
    return f32_from_bits(result);
}

inline fp16_t f32_to_fp16(float f) {
    const float scale_to_inf = f32_from_bits(0x77800000u);   // 0x1.0p+112
    const float scale_to_zero = f32_from_bits(0x08800000u);  // 0x1.0p-110
    float base = (f < 0 ? -f : f) * scale_to_inf;
    base *= scale_to_zero;
    const uint32_t w = f32_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = f32_from_bits((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = f32_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return static_cast<fp16_t>((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

inline float bf16_to_f32(bf16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }

inline bf16_t f32_to_bf16(float f) {
    const uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16_t>((u >> 16) | 64);  // quiet NaN
    return static_cast<bf16_t>((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

}  // namespace eg
