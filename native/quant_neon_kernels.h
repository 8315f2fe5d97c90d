// quant_neon_kernels.h — the aarch64 int8 block dot kernels, written once over an int8 primitive.
//
// Not a normal header: quant_neon.cpp and quant_neon_dotprod.cpp each include it inside their own
// anonymous namespace, after defining
//     int32x4_t dot_i8x16(int32x4_t acc, int8x16_t a, int8x16_t b);  // acc += 4-lane dot of a*b
// (vmull_s8 + vpadalq_s16 on baseline NEON, vdotq_s32 with dotprod). Each file so gets its own
// copy of the kernels compiled for its own target. Integer parts are exact; only the order of the
// float accumulation differs from quant_ref.cpp. Loops take two blocks per iteration (two
// independent accumulators, as ggml's arm quants do) and finish with a one-block tail.
//
// Requires <arm_neon.h> and kernels.h to be included first.

// fp16 -> f32 with the hardware conversion (exact, like eg::fp16_to_f32).
inline float h2f(fp16_t h) {
    __fp16 v;
    std::memcpy(&v, &h, sizeof(v));
    return static_cast<float>(v);
}

// Rows loop shared by every block kernel: one activation row against nr weight rows.
template <typename Block, typename BlockAct, typename RowDot>
inline void neon_rows(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a,
                      int block_size, RowDot row_dot) {
    const auto* y = static_cast<const BlockAct*>(a);
    const int64_t nb = n / block_size;
    for (int64_t r = 0; r < nr; ++r) {
        const auto* x = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + r * stride);
        out[r] = row_dot(x, y, nb);
    }
}

// ---- unpacking: each returns the 32 weights of a block as two int8x16 (elements 0..15, 16..31) ---
struct I8x32 {
    int8x16_t lo, hi;
};

inline I8x32 unpack_q4_0(const block_q4_0& b) {  // (q - 8)
    const uint8x16_t v = vld1q_u8(b.qs);
    const int8x16_t s8 = vdupq_n_s8(8);
    return {vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), s8),
            vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), s8)};
}

inline I8x32 unpack_q4_1(const block_q4_1& b) {  // q in 0..15 (the offset m is applied via y.s)
    const uint8x16_t v = vld1q_u8(b.qs);
    return {vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), vreinterpretq_s8_u8(vshrq_n_u8(v, 4))};
}

// For each byte value v: eight bytes, byte k = 0x10 where bit k of v is clear, else 0 — the
// amount to subtract from a low nibble to get (q5 - 16). One 64-bit load per 8 weights spreads
// the block's high bits; cheaper on out-of-order cores (A76: 16 vs 20 cycles a block in
// bench/neon_mca.py) than spreading them with TBL + CMTST in registers.
struct Q5HighBitTable {
    uint64_t v[256];
    constexpr Q5HighBitTable() : v() {
        for (int b = 0; b < 256; ++b)
            for (int k = 0; k < 8; ++k)
                if (!(b >> k & 1)) v[b] |= uint64_t(0x10) << (8 * k);
    }
};
inline constexpr Q5HighBitTable kQ5HighBits{};

inline I8x32 unpack_q5_0(const block_q5_0& b) {  // (q5 - 16): subtract 16 where the 5th bit is clear
    const uint64_t* t = kQ5HighBits.v;
    const uint8x16_t sub_lo = vreinterpretq_u8_u64(vcombine_u64(vcreate_u64(t[b.qh[0]]), vcreate_u64(t[b.qh[1]])));
    const uint8x16_t sub_hi = vreinterpretq_u8_u64(vcombine_u64(vcreate_u64(t[b.qh[2]]), vcreate_u64(t[b.qh[3]])));
    const uint8x16_t v = vld1q_u8(b.qs);
    return {vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), vreinterpretq_s8_u8(sub_lo)),
            vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), vreinterpretq_s8_u8(sub_hi))};
}

inline I8x32 unpack_q8_0(const block_q8_0& b) { return {vld1q_s8(b.qs), vld1q_s8(b.qs + 16)}; }

// Exact int32 partial sums (4 lanes) of one block's 32 products.
inline int32x4_t block_dot_i32(const I8x32& x, const int8_t* yqs) {
    const int32x4_t p = dot_i8x16(vdupq_n_s32(0), x.lo, vld1q_s8(yqs));
    return dot_i8x16(p, x.hi, vld1q_s8(yqs + 16));
}

// Sum over blocks of sumi * dx * dy, for every weight type whose activation is Q8_0.
template <typename Block, I8x32 (*Unpack)(const Block&)>
inline float row_dot_x_q8_0(const Block* x, const block_q8_0* y, int64_t nb) {
    float32x4_t sum0 = vdupq_n_f32(0.0f), sum1 = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        const int32x4_t p0 = block_dot_i32(Unpack(x[i]), y[i].qs);
        const int32x4_t p1 = block_dot_i32(Unpack(x[i + 1]), y[i + 1].qs);
        sum0 = vmlaq_n_f32(sum0, vcvtq_f32_s32(p0), h2f(x[i].d) * h2f(y[i].d));
        sum1 = vmlaq_n_f32(sum1, vcvtq_f32_s32(p1), h2f(x[i + 1].d) * h2f(y[i + 1].d));
    }
    if (i < nb) {  // odd block count
        const int32x4_t p0 = block_dot_i32(Unpack(x[i]), y[i].qs);
        sum0 = vmlaq_n_f32(sum0, vcvtq_f32_s32(p0), h2f(x[i].d) * h2f(y[i].d));
    }
    return vaddvq_f32(vaddq_f32(sum0, sum1));
}

inline float row_dot_q4_1_q8_1(const block_q4_1* x, const block_q8_1* y, int64_t nb) {
    float32x4_t sum0 = vdupq_n_f32(0.0f), sum1 = vdupq_n_f32(0.0f);
    float summs = 0.0f;  // sum of m * s: the offset part, one multiply per block
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        const int32x4_t p0 = block_dot_i32(unpack_q4_1(x[i]), y[i].qs);
        const int32x4_t p1 = block_dot_i32(unpack_q4_1(x[i + 1]), y[i + 1].qs);
        summs += h2f(x[i].m) * h2f(y[i].s) + h2f(x[i + 1].m) * h2f(y[i + 1].s);
        sum0 = vmlaq_n_f32(sum0, vcvtq_f32_s32(p0), h2f(x[i].d) * h2f(y[i].d));
        sum1 = vmlaq_n_f32(sum1, vcvtq_f32_s32(p1), h2f(x[i + 1].d) * h2f(y[i + 1].d));
    }
    if (i < nb) {
        const int32x4_t p0 = block_dot_i32(unpack_q4_1(x[i]), y[i].qs);
        summs += h2f(x[i].m) * h2f(y[i].s);
        sum0 = vmlaq_n_f32(sum0, vcvtq_f32_s32(p0), h2f(x[i].d) * h2f(y[i].d));
    }
    return vaddvq_f32(vaddq_f32(sum0, sum1)) + summs;
}

// ---- table signatures ----------------------------------------------------------------------------
inline void vec_dot_q4_0_q8_0(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    neon_rows<block_q4_0, block_q8_0>(n, out, w, stride, nr, a, QK4_0, row_dot_x_q8_0<block_q4_0, unpack_q4_0>);
}
inline void vec_dot_q4_1_q8_1(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    neon_rows<block_q4_1, block_q8_1>(n, out, w, stride, nr, a, QK4_1, row_dot_q4_1_q8_1);
}
inline void vec_dot_q5_0_q8_0(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    neon_rows<block_q5_0, block_q8_0>(n, out, w, stride, nr, a, QK5_0, row_dot_x_q8_0<block_q5_0, unpack_q5_0>);
}
inline void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    neon_rows<block_q8_0, block_q8_0>(n, out, w, stride, nr, a, QK8_0, row_dot_x_q8_0<block_q8_0, unpack_q8_0>);
}

// Installs the int8 block kernels above into a table.
inline void fill_int8_block_kernels(KernelTable& t) {
    auto i = [](QType q) { return static_cast<int>(q); };
    t.vec_dot[i(QType::Q4_0)] = vec_dot_q4_0_q8_0;
    t.vec_dot[i(QType::Q4_1)] = vec_dot_q4_1_q8_1;
    t.vec_dot[i(QType::Q5_0)] = vec_dot_q5_0_q8_0;
    t.vec_dot[i(QType::Q8_0)] = vec_dot_q8_0_q8_0;
}
