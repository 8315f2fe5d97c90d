// kernel_parity.cpp — every SIMD kernel table entry against the scalar reference (quant_ref.cpp).
//
// Standalone: linked with native/quant_*.cpp and native/cpu_isa.cpp (scripts/arm_parity.sh builds
// it natively and for aarch64 under qemu). For each ISA the running CPU supports, each entry that
// the ISA overrides is compared with the scalar one on awkward shapes (1, 3, 17, 33, 1023 blocks
// per row; 1, 3, 5 rows; rows padded and 4-byte aligned only):
//   random   realistic data quantized by the scalar table;   |simd - ref| <= kRelTol*sum|w||x| + kAbsTol
//   exact    random bytes with unit scales (integer values): bit-identical, since integer parts
//            must be exact and sums of small integers are exact in any float order
//   extreme  constant bytes (+-127 activations; 0x00/0x80/0xFF/0x88 weights) with unit scales:
//            within 2^-21 relative (a few ulps once sums pass 2^24)
// Quantize / dequantize entries must be bit-identical on random data and on exact rounding ties.
// Prints one line per failure, one line per tested ISA, and a final `N passed, M failed`.
// gemm entries (batched products) must equal the same table's vec_dot per token bit for bit.
//   usage: kernel_parity [--require ISA]...   (fails if a required ISA is missing or overrides nothing)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels.h"

using namespace eg;

namespace {

constexpr double kRelTol = 1e-5;  // relative to sum|w_i||x_i|: float accumulation order only
constexpr double kAbsTol = 1e-6;
// Extreme patterns can sum past 2^24 (k-quants: 256 * 15 * 63 * 127 per block), where float
// rounding depends on order: allow a few ulps; overflow or saturation errs by far more.
constexpr int kExtremeUlpBits = 21;
constexpr size_t kOffset = 4;     // rows start 4 bytes into their buffer: no 16-byte alignment
constexpr size_t kPad = 4;        // bytes of 0xFF after each row: reading past n shows as NaN/garbage
const int64_t kBlocksPerRow[] = {1, 3, 17, 33, 1023};
const int64_t kRows[] = {1, 3, 5};
constexpr uint32_t kSeed = 20240611u;

int g_passed = 0, g_failed = 0;

void fail(const std::string& isa, const std::string& what, const std::string& detail) {
    ++g_failed;
    std::printf("FAIL isa=%s %s %s\n", isa.c_str(), what.c_str(), detail.c_str());
}

// ---- deterministic data (mt19937 is fully specified, so every platform sees the same values) ---
struct Rng {
    std::mt19937 g{kSeed};
    float uniform() { return static_cast<float>(g() >> 8) * (1.0f / 16777216.0f) * 2.0f - 1.0f; }  // [-1, 1)
    uint8_t byte() { return static_cast<uint8_t>(g() >> 24); }
    int32_t integer(int32_t lo, int32_t hi) { return lo + static_cast<int32_t>(g() % static_cast<uint32_t>(hi - lo + 1)); }
};

// Floats whose magnitude changes from one 32-element group to the next; some groups all zero.
std::vector<float> realistic_floats(Rng& rng, int64_t n) {
    std::vector<float> x(n);
    for (int64_t g = 0; g < n; g += 32) {
        const int kind = rng.integer(0, 9);
        const float scale = kind == 0 ? 0.0f : std::pow(10.0f, rng.uniform() * 2.5f);
        for (int64_t i = g; i < std::min<int64_t>(n, g + 32); ++i) x[i] = rng.uniform() * scale;
    }
    return x;
}

// Floats that quantize with unit scale and hit exact .5 ties: halves in [-127, 127], amax 127.
std::vector<float> tie_floats(Rng& rng, int64_t n) {
    std::vector<float> x(n);
    for (int64_t i = 0; i < n; ++i) x[i] = rng.integer(-254, 254) * 0.5f;
    for (int64_t i = 0; i < n; i += 32) x[i] = (i / 32) % 2 ? -127.0f : 127.0f;
    return x;
}

struct Row {  // one or more rows of one type, padded, starting at kOffset
    std::vector<uint8_t> buf;
    size_t stride = 0;
    uint8_t* at(int64_t r) { return buf.data() + kOffset + r * stride; }
};

Row make_rows(QType t, int64_t n, int64_t nr) {
    Row rows;
    rows.stride = row_size(t, n) + kPad;
    rows.buf.assign(kOffset + rows.stride * nr, 0xFF);
    return rows;
}

bool is_float_type(QType t) { return t == QType::F32 || t == QType::F16 || t == QType::BF16; }

// Rewrites the scale fields of every block in a row to 1 (offsets to 0 or 1) so that every
// product is an integer; returns false for a type this driver does not know.
bool make_unit_scales(QType t, uint8_t* row, int64_t n) {
    const fp16_t one = 0x3C00, zero = 0;
    const int64_t nb = n / type_traits(t).block_size;
    auto each = [&](auto* blocks, auto fix) { for (int64_t i = 0; i < nb; ++i) fix(blocks[i]); };
    switch (t) {
        case QType::Q4_0: each(reinterpret_cast<block_q4_0*>(row), [&](block_q4_0& b) { b.d = one; }); return true;
        case QType::Q4_1: each(reinterpret_cast<block_q4_1*>(row), [&](block_q4_1& b) { b.d = one; b.m = zero; }); return true;
        case QType::Q5_0: each(reinterpret_cast<block_q5_0*>(row), [&](block_q5_0& b) { b.d = one; }); return true;
        case QType::Q8_0: each(reinterpret_cast<block_q8_0*>(row), [&](block_q8_0& b) { b.d = one; }); return true;
        case QType::Q8_1: each(reinterpret_cast<block_q8_1*>(row), [&](block_q8_1& b) { b.d = one; b.s = zero; }); return true;
        case QType::Q4_K: each(reinterpret_cast<block_q4_K*>(row), [&](block_q4_K& b) { b.d = one; b.dmin = one; }); return true;
        case QType::Q5_K: each(reinterpret_cast<block_q5_K*>(row), [&](block_q5_K& b) { b.d = one; b.dmin = one; }); return true;
        case QType::Q6_K: each(reinterpret_cast<block_q6_K*>(row), [&](block_q6_K& b) { b.d = one; }); return true;
        case QType::Q8_K:
            each(reinterpret_cast<block_q8_K*>(row), [&](block_q8_K& b) {
                b.d = 1.0f;
                for (int g = 0; g < QK_K / 16; ++g) {  // bsums must agree with qs: kernels use them
                    int s = 0;
                    for (int j = 0; j < 16; ++j) s += b.qs[g * 16 + j];
                    b.bsums[g] = static_cast<int16_t>(s);
                }
            });
            return true;
        default: return false;
    }
}

bool knows_unit_scales(QType t) { return make_unit_scales(t, nullptr, 0); }  // n = 0 touches nothing

// ---- vec_dot ------------------------------------------------------------------------------------
enum class Mode { random, exact, extreme };
const char* mode_name(Mode m) { return m == Mode::random ? "random" : m == Mode::exact ? "exact" : "extreme"; }

// Fills nr weight rows and one activation row for a mode; returns sum|w||x| per row (random mode).
std::vector<double> fill_operands(Mode mode, QType wt, QType at, int64_t n, int64_t nr, Row& w, Row& a,
                                  Rng& rng, int pattern) {
    const KernelTable& ref = kernels_for("scalar");
    std::vector<double> scale(nr, 0.0);
    if (mode == Mode::random || is_float_type(wt)) {
        // Float types in exact/extreme modes: small integers, whose sums are exact in float.
        auto floats = [&](int64_t count) {
            if (mode == Mode::random) return realistic_floats(rng, count);
            std::vector<float> v(count);
            for (auto& f : v) f = mode == Mode::exact ? static_cast<float>(rng.integer(-64, 64)) : (pattern % 2 ? -64.0f : 64.0f);
            return v;
        };
        const std::vector<float> x = floats(n);
        ref.quantize_row[static_cast<int>(at)](x.data(), a.at(0), n);
        for (int64_t r = 0; r < nr; ++r) {
            const std::vector<float> wf = floats(n);
            ref.quantize_row[static_cast<int>(wt)](wf.data(), w.at(r), n);
            for (int64_t i = 0; i < n; ++i) scale[r] += std::fabs(static_cast<double>(wf[i]) * x[i]);
        }
        return scale;
    }
    // Weights take any byte. Activation int8 values stay in [-127, 127], the range our quantizers
    // emit: kernels may rely on it (x86's sign trick turns -(-128) into -128).
    static const uint8_t kWeightBytes[] = {0x00, 0x80, 0xFF, 0x88};
    const int8_t act_byte = pattern % 2 ? -127 : 127;
    auto fill = [&](uint8_t* p, size_t bytes, bool is_act) {
        for (size_t i = 0; i < bytes; ++i) {
            uint8_t v = mode == Mode::exact ? rng.byte() : is_act ? static_cast<uint8_t>(act_byte) : kWeightBytes[pattern % 4];
            // k-quant products carry 6-8 bit scales: small activations keep every partial sum of
            // 1023 super-blocks far below 2^24, where float sums of integers are exact in any order.
            if (is_act && at == QType::Q8_K && mode == Mode::exact) v = static_cast<uint8_t>(rng.integer(-4, 4));
            p[i] = is_act && v == 0x80 ? 0x81 : v;
        }
    };
    fill(a.at(0), row_size(at, n), true);
    make_unit_scales(at, a.at(0), n);
    for (int64_t r = 0; r < nr; ++r) {
        fill(w.at(r), row_size(wt, n), false);
        make_unit_scales(wt, w.at(r), n);
    }
    return scale;
}

void check_vec_dot(const std::string& isa, const KernelTable& simd, QType wt, Rng& rng) {
    const KernelTable& ref = kernels_for("scalar");
    const TypeTraits& tr = type_traits(wt);
    const QType at = tr.vec_dot_type;
    const bool int_blocks = !is_float_type(wt);
    if (!ref.quantize_row[static_cast<int>(at)]) return;
    const bool can_fix = !int_blocks || (knows_unit_scales(wt) && knows_unit_scales(at));
    const bool can_quantize_w = ref.quantize_row[static_cast<int>(wt)] != nullptr;
    for (Mode mode : {Mode::random, Mode::exact, Mode::extreme}) {
        if (mode == Mode::random && !can_quantize_w) continue;
        if (mode != Mode::random && !can_fix) continue;
        if (is_float_type(wt) && mode != Mode::random && !can_quantize_w) continue;
        for (int64_t nb : kBlocksPerRow) {
            if (mode == Mode::extreme && nb > 33) continue;
            for (int64_t nr : kRows) {
                const int npatterns = mode == Mode::extreme ? 4 : 1;
                for (int pattern = 0; pattern < npatterns; ++pattern) {
                    const int64_t n = nb * tr.block_size;
                    Row w = make_rows(wt, n, nr), a = make_rows(at, n, 1);
                    const std::vector<double> scale = fill_operands(mode, wt, at, n, nr, w, a, rng, pattern);
                    std::vector<float> got(nr + 1, 12345.0f), want(nr + 1, 12345.0f);  // +1: sentinel
                    simd.vec_dot[static_cast<int>(wt)](n, got.data(), w.at(0), w.stride, nr, a.at(0));
                    ref.vec_dot[static_cast<int>(wt)](n, want.data(), w.at(0), w.stride, nr, a.at(0));
                    char shape[96];
                    std::snprintf(shape, sizeof shape, "shape=%lldx%lld mode=%s pattern=%d", (long long)nb,
                                  (long long)nr, mode_name(mode), pattern);
                    const std::string what = std::string("kernel=vec_dot_") + tr.name;
                    bool ok = got[nr] == 12345.0f;
                    if (!ok) fail(isa, what, std::string(shape) + " wrote past out[nr-1]");
                    for (int64_t r = 0; r < nr && ok; ++r) {
                        const double diff = std::fabs(static_cast<double>(got[r]) - want[r]);
                        const double tol = mode == Mode::random    ? kRelTol * scale[r] + kAbsTol
                                           : mode == Mode::extreme ? std::ldexp(std::fabs(want[r]), -kExtremeUlpBits)
                                                                   : 0.0;
                        const bool bad_bits = mode == Mode::exact && std::memcmp(&got[r], &want[r], 4) != 0;
                        if (!std::isfinite(got[r]) || !(diff <= tol) || bad_bits) {
                            char d[160];
                            std::snprintf(d, sizeof d, " row=%lld got=%.9g want=%.9g tol=%.3g", (long long)r,
                                          got[r], want[r], tol);
                            fail(isa, what, shape + std::string(d));
                            ok = false;
                        }
                    }
                    if (ok) ++g_passed;
                }
            }
        }
    }
}

// ---- quantize / dequantize: bit-identical ---------------------------------------------------------
void check_quantize(const std::string& isa, const KernelTable& simd, QType t, Rng& rng) {
    const KernelTable& ref = kernels_for("scalar");
    const TypeTraits& tr = type_traits(t);
    for (int64_t nb : kBlocksPerRow) {
        const int64_t n = nb * tr.block_size;
        for (int data = 0; data < 2; ++data) {
            const std::vector<float> x = data == 0 ? realistic_floats(rng, n) : tie_floats(rng, n);
            Row got = make_rows(t, n, 1), want = make_rows(t, n, 1);
            simd.quantize_row[static_cast<int>(t)](x.data(), got.at(0), n);
            ref.quantize_row[static_cast<int>(t)](x.data(), want.at(0), n);
            if (got.buf != want.buf) {
                size_t i = 0;
                while (got.buf[i] == want.buf[i]) ++i;
                char d[160];
                std::snprintf(d, sizeof d, "shape=%lld data=%s first differing byte %zu (row offset)", (long long)nb,
                              data ? "ties" : "random", i - kOffset);
                fail(isa, std::string("kernel=quantize_row_") + tr.name, d);
            } else {
                ++g_passed;
            }
        }
    }
}

void check_dequantize(const std::string& isa, const KernelTable& simd, QType t, Rng& rng) {
    const KernelTable& ref = kernels_for("scalar");
    const TypeTraits& tr = type_traits(t);
    for (int64_t nb : kBlocksPerRow) {
        const int64_t n = nb * tr.block_size;
        Row q = make_rows(t, n, 1);
        if (ref.quantize_row[static_cast<int>(t)]) {
            const std::vector<float> x = realistic_floats(rng, n);
            ref.quantize_row[static_cast<int>(t)](x.data(), q.at(0), n);
        } else {  // no quantizer: random bytes with unit scales
            for (size_t i = 0; i < row_size(t, n); ++i) q.at(0)[i] = rng.byte();
            make_unit_scales(t, q.at(0), n);
        }
        std::vector<float> got(n + 1, 12345.0f), want(n + 1, 12345.0f);
        simd.dequantize_row[static_cast<int>(t)](q.at(0), got.data(), n);
        ref.dequantize_row[static_cast<int>(t)](q.at(0), want.data(), n);
        if (std::memcmp(got.data(), want.data(), sizeof(float) * (n + 1)) != 0) {
            fail(isa, std::string("kernel=dequantize_row_") + tr.name, "shape=" + std::to_string(nb) + " not bit-identical");
        } else {
            ++g_passed;
        }
    }
}

}  // namespace

// Attention's f16 dot products (keys of a cache block; V^T rows): both follow ggml's order, so
// every ISA must agree with the scalar reference bit for bit.
void check_attention_dots(const std::string& isa, const KernelTable& simd, const KernelTable& ref, Rng& rng) {
    for (int64_t n_chunks : {1, 2, 3, 8}) {
        for (int64_t n : {1, 2, 5, 32}) {
            const size_t stride = static_cast<size_t>(n_chunks) * 64 + 8;  // rows padded, 8 extra bytes
            std::vector<fp16_t> x(stride / 2 * 40), y(32 * n_chunks);
            for (fp16_t& v : x) v = f32_to_fp16(rng.uniform() * 4.0f);
            for (fp16_t& v : y) v = f32_to_fp16(rng.uniform());
            const auto* base = reinterpret_cast<const uint8_t*>(x.data());
            std::vector<float> got(n), want(n);
            simd.dot_f16_rows(n_chunks, n, base, stride, y.data(), got.data());
            ref.dot_f16_rows(n_chunks, n, base, stride, y.data(), want.data());
            const std::string shape = "chunks=" + std::to_string(n_chunks) + " n=" + std::to_string(n);
            if (std::memcmp(got.data(), want.data(), sizeof(float) * n) != 0) fail(isa, "dot_f16_rows", shape); else ++g_passed;
            // cols: chunk c of output k at bases[c] + k * 64 bytes (32 tokens of one V^T row)
            std::vector<const uint8_t*> bases(n_chunks);
            for (int64_t c = 0; c < n_chunks; ++c) bases[c] = base + (n_chunks - 1 - c) * 8;  // overlapping, out of order
            std::vector<float> yf(32 * n_chunks);
            for (size_t i = 0; i < yf.size(); ++i) yf[i] = fp16_to_f32(y[i]);
            simd.dot_f16_cols(n_chunks, bases.data(), 0, 64, n, yf.data(), got.data());
            ref.dot_f16_cols(n_chunks, bases.data(), 0, 64, n, yf.data(), want.data());
            if (std::memcmp(got.data(), want.data(), sizeof(float) * n) != 0) fail(isa, "dot_f16_cols", shape); else ++g_passed;
        }
    }
}

// Scores against keys stored transposed (f16 cache blocks): keys in lanes, groups of eight.
void check_transposed_keys(const std::string& isa, const KernelTable& simd, const KernelTable& ref, Rng& rng) {
    for (int64_t hd : {32, 64, 128}) {
        const size_t dim_stride = 2 * 32 + 16;  // 32 key slots per dimension, padded
        std::vector<uint8_t> k(dim_stride * hd);
        for (size_t i = 0; i + 1 < k.size(); i += 2) {
            const fp16_t v = f32_to_fp16(rng.uniform() * 4.0f);
            std::memcpy(&k[i], &v, 2);
        }
        std::vector<float> q(3 * hd);
        for (float& v : q) v = fp16_to_f32(f32_to_fp16(rng.uniform()));
        for (int64_t n_keys : {1, 5, 8, 13, 32}) {
            for (int64_t n_q : {1, 2, 3}) {
                std::vector<float> got(3 * 40, 0.0f), want(3 * 40, 0.0f);
                simd.dot_f16t(hd, n_keys, k.data(), dim_stride, n_q, q.data(), hd, got.data(), 40);
                ref.dot_f16t(hd, n_keys, k.data(), dim_stride, n_q, q.data(), hd, want.data(), 40);
                const std::string shape = "hd=" + std::to_string(hd) + " keys=" + std::to_string(n_keys) +
                                          " queries=" + std::to_string(n_q);
                if (std::memcmp(got.data(), want.data(), sizeof(float) * got.size()) != 0)
                    fail(isa, "dot_f16t", shape);
                else
                    ++g_passed;
            }
        }
    }
}

// Batched products (gemm) must equal the same table's vec_dot called once per token, bit for
// bit, on shapes around the register tiles' edges (rows and tokens 1..9, 16, 17).
void check_gemm(const std::string& isa, const KernelTable& simd, QType wt, Rng& rng) {
    const KernelTable& ref = kernels_for("scalar");
    const TypeTraits& tr = type_traits(wt);
    const QType at = tr.vec_dot_type;
    const int64_t shapes[][3] = {{1, 1, 2}, {3, 2, 5}, {4, 3, 4}, {5, 1, 7}, {16, 2, 13}, {17, 1, 9}, {7, 5, 3}, {9, 3, 17}};
    for (const auto& s : shapes) {
        const int64_t nr = s[0], n = s[1] * (tr.block_size == QK_K ? QK_K : 8 * tr.block_size), nt = s[2];
        Row w = make_rows(wt, n, nr), a = make_rows(at, n, nt);
        for (int64_t r = 0; r < nr; ++r) ref.quantize_row[static_cast<int>(wt)](realistic_floats(rng, n).data(), w.at(r), n);
        for (int64_t t = 0; t < nt; ++t) simd.quantize_act[static_cast<int>(at)](realistic_floats(rng, n).data(), a.at(t), n);
        const int64_t ys = nr + 3;
        std::vector<float> got(nt * ys, 12345.0f), want(nt * ys, 12345.0f);
        simd.gemm[static_cast<int>(wt)](n, got.data(), ys, w.at(0), w.stride, nr, a.at(0), a.stride, nt);
        for (int64_t t = 0; t < nt; ++t) simd.vec_dot[static_cast<int>(wt)](n, want.data() + t * ys, w.at(0), w.stride, nr, a.at(t));
        if (std::memcmp(got.data(), want.data(), sizeof(float) * got.size()) != 0) {
            char d[128];
            std::snprintf(d, sizeof d, "rows=%lld n=%lld tokens=%lld not bit-identical to vec_dot per token", (long long)nr,
                          (long long)n, (long long)nt);
            fail(isa, std::string("kernel=gemm_") + tr.name, d);
        } else {
            ++g_passed;
        }
    }
}

// GeGLU: every ISA reads the same f16 table, so results must be bit-identical, on awkward
// lengths (SIMD bodies plus scalar tails) and on the cut-offs (+-10 exactly, just inside them),
// f16 ties, subnormals, zeros of both signs, infinities and NaN (compared as "both NaN").
void check_gelu_mul(const std::string& isa, const KernelTable& simd, const KernelTable& ref, Rng& rng) {
    const float specials[] = {-10.0f, 10.0f, std::nextafter(-10.0f, 0.0f), std::nextafter(10.0f, 0.0f), 0.0f, -0.0f,
                              1e-6f, -3e-8f, 1.0009765625f + 0.00048828125f, 65504.0f, -INFINITY, INFINITY, NAN, 3.5f};
    for (int64_t n : {1, 3, 7, 8, 9, 17, 33, 1023, 4096}) {
        std::vector<float> gate(n), up(n);
        for (int64_t i = 0; i < n; ++i) {
            gate[i] = rng.uniform() * (i % 5 == 0 ? 14.0f : 4.0f);
            up[i] = rng.uniform() * 3.0f;
            if (i % 11 == 3) gate[i] = specials[(i / 11) % (sizeof(specials) / sizeof(float))];
        }
        std::vector<float> got = gate, want = gate;
        simd.gelu_mul(n, got.data(), up.data());
        ref.gelu_mul(n, want.data(), up.data());
        bool ok = true;
        for (int64_t i = 0; i < n && ok; ++i) {
            const bool both_nan = std::isnan(got[i]) && std::isnan(want[i]);
            if (!both_nan && std::memcmp(&got[i], &want[i], 4) != 0) {
                char d[160];
                std::snprintf(d, sizeof d, "n=%lld i=%lld x=%.9g got=%.9g want=%.9g", (long long)n, (long long)i,
                              gate[i], got[i], want[i]);
                fail(isa, "gelu_mul", d);
                ok = false;
            }
        }
        if (ok) ++g_passed;
    }
}

// Bit equality of two float arrays, NaN equal to NaN; reports the first difference.
bool same_floats(const std::string& isa, const char* kernel, int64_t n, const float* got, const float* want) {
    for (int64_t i = 0; i < n; ++i) {
        if (std::isnan(got[i]) && std::isnan(want[i])) continue;
        if (std::memcmp(&got[i], &want[i], 4) != 0) {
            char d[160];
            std::snprintf(d, sizeof d, "n=%lld i=%lld got=%.9g want=%.9g", (long long)n, (long long)i, got[i], want[i]);
            fail(isa, kernel, d);
            return false;
        }
    }
    ++g_passed;
    return true;
}

// The float kernels of the forward pass and the activation quantizers: bit-identical to the
// scalar reference (which follows ggml's AVX2 arithmetic) on every ISA.
void check_activation_kernels(const std::string& isa, const KernelTable& simd, const KernelTable& ref, Rng& rng) {
    const int64_t lengths[] = {1, 3, 7, 8, 9, 17, 33, 256, 1023, 4096};
    for (int64_t n : lengths) {
        std::vector<float> gate(n), up(n), scores(n), v(n);
        for (int64_t i = 0; i < n; ++i) {
            gate[i] = rng.uniform() * (i % 7 == 0 ? 120.0f : 6.0f);  // exp's far range too
            up[i] = rng.uniform() * 3.0f;
            scores[i] = i % 5 == 2 ? -INFINITY : rng.uniform() * 40.0f;  // masked positions
            v[i] = rng.uniform() * 70000.0f;  // past f16's range: rounds to inf
        }
        if (simd.silu_mul != ref.silu_mul) {
            std::vector<float> got = gate, want = gate;
            simd.silu_mul(n, got.data(), up.data());
            ref.silu_mul(n, want.data(), up.data());
            same_floats(isa, "silu_mul", n, got.data(), want.data());
        }
        if (simd.softmax != ref.softmax) {
            std::vector<float> got = scores, want = scores;
            simd.softmax(n, got.data());
            ref.softmax(n, want.data());
            same_floats(isa, "softmax", n, got.data(), want.data());
        }
        if (simd.round_f16 != ref.round_f16) {
            std::vector<float> got = v, want = v;
            simd.round_f16(n, got.data());
            ref.round_f16(n, want.data());
            same_floats(isa, "round_f16", n, got.data(), want.data());
        }
    }
    // vec_mad over F32 / F16 / Q8_0 rows (V rows of the cache), accumulating into a running sum.
    for (QType t : {QType::F32, QType::F16, QType::Q8_0}) {
        const int id = static_cast<int>(t);
        if (!simd.vec_mad[id] || simd.vec_mad[id] == ref.vec_mad[id]) continue;
        for (int64_t n : {32, 64, 96, 256}) {
            Row row = make_rows(t, n, 1);
            ref.quantize_row[id](realistic_floats(rng, n).data(), row.at(0), n);
            std::vector<float> got = realistic_floats(rng, n), want = got;
            for (float s : {0.37f, -1.5f, 0.0f}) {
                simd.vec_mad[id](n, got.data(), row.at(0), s);
                ref.vec_mad[id](n, want.data(), row.at(0), s);
            }
            same_floats(isa, (std::string("vec_mad_") + type_traits(t).name).c_str(), n, got.data(), want.data());
        }
    }
    // Activation quantizers: random data and exact rounding ties.
    for (QType t : {QType::Q8_0, QType::Q8_1, QType::Q8_K}) {
        const int id = static_cast<int>(t);
        if (!simd.quantize_act[id] || simd.quantize_act[id] == ref.quantize_act[id]) continue;
        const int64_t bs = type_traits(t).block_size;
        for (int64_t nb : {1, 3, 17}) {
            const int64_t n = nb * bs;
            for (int data = 0; data < 2; ++data) {
                const std::vector<float> x = data == 0 ? realistic_floats(rng, n) : tie_floats(rng, n);
                Row got = make_rows(t, n, 1), want = make_rows(t, n, 1);
                simd.quantize_act[id](x.data(), got.at(0), n);
                ref.quantize_act[id](x.data(), want.at(0), n);
                if (got.buf != want.buf) {
                    fail(isa, std::string("quantize_act_") + type_traits(t).name,
                         "blocks=" + std::to_string(nb) + (data ? " ties" : " random"));
                } else {
                    ++g_passed;
                }
            }
        }
    }
    if (simd.dot_f16_chunks != ref.dot_f16_chunks) {
        for (int64_t n_chunks : {1, 2, 4, 8}) {
            std::vector<fp16_t> x(32 * n_chunks + 16), y(32 * n_chunks);
            for (fp16_t& e : x) e = f32_to_fp16(rng.uniform() * 4.0f);
            for (fp16_t& e : y) e = f32_to_fp16(rng.uniform());
            std::vector<const uint8_t*> bases(n_chunks);
            for (int64_t c = 0; c < n_chunks; ++c)  // chunks scattered, out of order (cache blocks)
                bases[c] = reinterpret_cast<const uint8_t*>(x.data()) + (n_chunks - 1 - c) * 64;
            const float got = simd.dot_f16_chunks(n_chunks, bases.data(), 6, y.data());
            const float want = ref.dot_f16_chunks(n_chunks, bases.data(), 6, y.data());
            same_floats(isa, "dot_f16_chunks", 1, &got, &want);
        }
    }
}

int main(int argc, char** argv) {
    std::vector<std::string> required;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--require" && i + 1 < argc) {
            required.push_back(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: %s [--require ISA]...\n", argv[0]);
            return 2;
        }
    }
    std::string available;
    for (const char* const* p = all_isas(); *p; ++p)
        if (isa_available(*p)) available += std::string(" ") + *p;
    std::printf("available ISAs:%s\n", available.c_str());

    const KernelTable& ref = kernels_for("scalar");
    std::vector<std::string> tested;
    for (const char* const* p = all_isas(); *p; ++p) {
        const std::string isa = *p;
        if (isa == "scalar" || !isa_available(isa)) continue;
        const KernelTable& simd = kernels_for(isa);
        Rng rng;  // same data for every ISA
        const int before = g_passed + g_failed;
        std::string vd, qz, dq, gm;
        for (int id = 0; id < kTypeCount; ++id) {
            if (!type_supported(id)) continue;
            const QType t = static_cast<QType>(id);
            const std::string name = std::string(" ") + type_traits(t).name;
            if (simd.vec_dot[id] && simd.vec_dot[id] != ref.vec_dot[id]) {
                vd += name;
                check_vec_dot(isa, simd, t, rng);
            }
            if (simd.gemm[id]) {
                gm += name;
                check_gemm(isa, simd, t, rng);
            }
            if (simd.quantize_row[id] && simd.quantize_row[id] != ref.quantize_row[id]) {
                qz += name;
                check_quantize(isa, simd, t, rng);
            }
            if (simd.dequantize_row[id] && simd.dequantize_row[id] != ref.dequantize_row[id]) {
                dq += name;
                check_dequantize(isa, simd, t, rng);
            }
        }
        if (simd.dot_f16t != ref.dot_f16t) check_transposed_keys(isa, simd, ref, rng);
        if (simd.gelu_mul != ref.gelu_mul) check_gelu_mul(isa, simd, ref, rng);
        check_activation_kernels(isa, simd, ref, rng);
        if (simd.dot_f16_rows != ref.dot_f16_rows || simd.dot_f16_cols != ref.dot_f16_cols)
            check_attention_dots(isa, simd, ref, rng);
        const int checks = g_passed + g_failed - before;
        std::printf("tested isa=%s checks=%d vec_dot:%s gemm:%s quantize:%s dequantize:%s gelu_mul: %s\n", isa.c_str(),
                    checks, vd.empty() ? " -" : vd.c_str(), gm.empty() ? " -" : gm.c_str(), qz.empty() ? " -" : qz.c_str(),
                    dq.empty() ? " -" : dq.c_str(), simd.gelu_mul != ref.gelu_mul ? "yes" : "-");
        if (checks > 0) tested.push_back(isa);
    }
    for (const std::string& isa : required) {
        bool found = false;
        for (const std::string& t : tested) found = found || t == isa;
        if (!found) fail(isa, "required", "ISA not available on this CPU or it overrides no kernel");
    }
    std::printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
