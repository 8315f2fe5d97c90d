// quant_k_neon_kernels.h — aarch64 Q4_K / Q5_K / Q6_K x Q8_K dots, written once over dot_i8x16.
//
// Included like quant_neon_kernels.h (after it, inside each NEON file's anonymous namespace), so
// quant_neon.cpp and quant_neon_dotprod.cpp each compile their own copy. Modelled on ggml's arm
// quants: one super-block (256) per iteration; the Q4_K mins and the Q6_K -32 offset are folded
// in through Q8_K's bsums, so the nibble products stay unsigned-by-signed int8. All integer parts
// are exact (int32 holds every per-block sum); only float accumulation order differs from
// quant_k_ref.cpp.

// Q4_K: x = d*sc*q - dmin*m per sub-block of 32; 6-bit sc / m packed in 12 bytes.
inline float row_dot_q4_K_q8_K(const block_q4_K* x, const block_q8_K* y, int64_t nb) {
    const uint8x16_t m4b = vdupq_n_u8(0x0F);
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = y[i].d * h2f(x[i].d);
        const float dmin = y[i].d * h2f(x[i].dmin);

        // Unpack: scales to sm[0..7], mins to sm[8..15].
        uint8_t sm[16];
        unpack_q4_K_scales(x[i].scales, sm);

        // Mins: sum over sub-blocks of m * (sum of its 32 activations) = pairs of bsums.
        const int16x8_t q8sums = vpaddq_s16(vld1q_s16(y[i].bsums), vld1q_s16(y[i].bsums + 8));
        const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(sm + 8)));
        const int32x4_t prod = vaddq_s32(vmull_s16(vget_low_s16(q8sums), vget_low_s16(mins)),
                                         vmull_high_s16(q8sums, mins));
        sumf -= dmin * static_cast<float>(vaddvq_s32(prod));

        const uint8_t* q4 = x[i].qs;
        const int8_t* q8 = y[i].qs;
        int32_t sumi = 0;
        for (int j = 0; j < QK_K / 64; ++j) {  // 64 elements: low nibbles, then high nibbles
            const uint8x16_t b0 = vld1q_u8(q4), b1 = vld1q_u8(q4 + 16);
            int32x4_t p = dot_i8x16(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(b0, m4b)), vld1q_s8(q8));
            p = dot_i8x16(p, vreinterpretq_s8_u8(vandq_u8(b1, m4b)), vld1q_s8(q8 + 16));
            sumi += vaddvq_s32(p) * sm[2 * j];
            p = dot_i8x16(vdupq_n_s32(0), vreinterpretq_s8_u8(vshrq_n_u8(b0, 4)), vld1q_s8(q8 + 32));
            p = dot_i8x16(p, vreinterpretq_s8_u8(vshrq_n_u8(b1, 4)), vld1q_s8(q8 + 48));
            sumi += vaddvq_s32(p) * sm[2 * j + 1];
            q4 += 32;
            q8 += 64;
        }
        sumf += d * static_cast<float>(sumi);
    }
    return sumf;
}

// Q5_K: Q4_K with a fifth bit per element (bits 2k, 2k+1 of qh[l] for the k-th 64 elements).
inline float row_dot_q5_K_q8_K(const block_q5_K* x, const block_q8_K* y, int64_t nb) {
    const uint8x16_t m4b = vdupq_n_u8(0x0F), mone = vdupq_n_u8(1), mtwo = vdupq_n_u8(2);
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = y[i].d * h2f(x[i].d);
        const float dmin = y[i].d * h2f(x[i].dmin);

        uint8_t sm[16];
        unpack_q4_K_scales(x[i].scales, sm);

        const int16x8_t q8sums = vpaddq_s16(vld1q_s16(y[i].bsums), vld1q_s16(y[i].bsums + 8));
        const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(sm + 8)));
        const int32x4_t prod = vaddq_s32(vmull_s16(vget_low_s16(q8sums), vget_low_s16(mins)),
                                         vmull_high_s16(q8sums, mins));
        sumf -= dmin * static_cast<float>(vaddvq_s32(prod));

        uint8x16_t qh0 = vld1q_u8(x[i].qh), qh1 = vld1q_u8(x[i].qh + 16);
        const uint8_t* q5 = x[i].qs;
        const int8_t* q8 = y[i].qs;
        int32_t sumi = 0;
        for (int j = 0; j < QK_K / 64; ++j) {  // 64 elements: low nibbles + bit 0, high nibbles + bit 1
            const uint8x16_t b0 = vld1q_u8(q5), b1 = vld1q_u8(q5 + 16);
            const uint8x16_t h0l = vshlq_n_u8(vandq_u8(qh0, mone), 4), h1l = vshlq_n_u8(vandq_u8(qh1, mone), 4);
            const uint8x16_t h0h = vshlq_n_u8(vandq_u8(qh0, mtwo), 3), h1h = vshlq_n_u8(vandq_u8(qh1, mtwo), 3);
            qh0 = vshrq_n_u8(qh0, 2);
            qh1 = vshrq_n_u8(qh1, 2);
            int32x4_t p = dot_i8x16(vdupq_n_s32(0), vreinterpretq_s8_u8(vorrq_u8(vandq_u8(b0, m4b), h0l)), vld1q_s8(q8));
            p = dot_i8x16(p, vreinterpretq_s8_u8(vorrq_u8(vandq_u8(b1, m4b), h1l)), vld1q_s8(q8 + 16));
            sumi += vaddvq_s32(p) * sm[2 * j];
            p = dot_i8x16(vdupq_n_s32(0), vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(b0, 4), h0h)), vld1q_s8(q8 + 32));
            p = dot_i8x16(p, vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(b1, 4), h1h)), vld1q_s8(q8 + 48));
            sumi += vaddvq_s32(p) * sm[2 * j + 1];
            q5 += 32;
            q8 += 64;
        }
        sumf += d * static_cast<float>(sumi);
    }
    return sumf;
}

// Q6_K: x = d * sc * (q6 - 32) per sub-block of 16; low 4 bits in ql, top 2 in qh.
inline float row_dot_q6_K_q8_K(const block_q6_K* x, const block_q8_K* y, int64_t nb) {
    const uint8x16_t m4b = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(0x03);
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(x[i].d) * y[i].d;

        // The -32 offset: 32 * sum over sub-blocks of sc * (sum of its 16 activations).
        const int8x16_t sc = vld1q_s8(x[i].scales);
        const int16x8_t sc_lo = vmovl_s8(vget_low_s8(sc)), sc_hi = vmovl_high_s8(sc);
        const int16x8_t bs_lo = vld1q_s16(y[i].bsums), bs_hi = vld1q_s16(y[i].bsums + 8);
        int32x4_t prod = vmull_s16(vget_low_s16(bs_lo), vget_low_s16(sc_lo));
        prod = vmlal_high_s16(prod, bs_lo, sc_lo);
        prod = vmlal_s16(prod, vget_low_s16(bs_hi), vget_low_s16(sc_hi));
        prod = vmlal_high_s16(prod, bs_hi, sc_hi);
        const int32_t isum_offset = vaddvq_s32(prod);

        const uint8_t* ql = x[i].ql;
        const uint8_t* qh = x[i].qh;
        const int8_t* q8 = y[i].qs;
        const int8_t* scale = x[i].scales;
        int32_t isum = 0;
        for (int half = 0; half < QK_K / 128; ++half) {
            const uint8x16_t h0 = vld1q_u8(qh), h1 = vld1q_u8(qh + 16);
            const uint8x16_t l0 = vld1q_u8(ql), l1 = vld1q_u8(ql + 16), l2 = vld1q_u8(ql + 32), l3 = vld1q_u8(ql + 48);
            // Elements 0..63 of this half: low nibbles of ql, qh bits 0-1 (0..31) and 2-3 (32..63).
            const int8x16_t q0 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(l0, m4b), vshlq_n_u8(vandq_u8(h0, m3), 4)));
            const int8x16_t q1 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(l1, m4b), vshlq_n_u8(vandq_u8(h1, m3), 4)));
            const int8x16_t q2 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(l2, m4b), vshlq_n_u8(vandq_u8(vshrq_n_u8(h0, 2), m3), 4)));
            const int8x16_t q3 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(l3, m4b), vshlq_n_u8(vandq_u8(vshrq_n_u8(h1, 2), m3), 4)));
            // Elements 64..127: high nibbles of ql, qh bits 4-5 and 6-7.
            const int8x16_t q4 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h0, 4), m3), 4)));
            const int8x16_t q5 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h1, 4), m3), 4)));
            const int8x16_t q6 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(l2, 4), vshlq_n_u8(vshrq_n_u8(h0, 6), 4)));
            const int8x16_t q7 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(l3, 4), vshlq_n_u8(vshrq_n_u8(h1, 6), 4)));
            const int8x16_t qv[8] = {q0, q1, q2, q3, q4, q5, q6, q7};
            for (int k = 0; k < 8; ++k) {  // one sub-block of 16 per scale
                isum += vaddvq_s32(dot_i8x16(vdupq_n_s32(0), qv[k], vld1q_s8(q8 + 16 * k))) * scale[k];
            }
            ql += 64;
            qh += 32;
            q8 += 128;
            scale += 8;
        }
        sumf += d * static_cast<float>(isum - 32 * isum_offset);
    }
    return sumf;
}

inline void vec_dot_q4_K_q8_K(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    neon_rows<block_q4_K, block_q8_K>(n, out, w, stride, nr, a, QK_K, row_dot_q4_K_q8_K);
}
inline void vec_dot_q5_K_q8_K(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    neon_rows<block_q5_K, block_q8_K>(n, out, w, stride, nr, a, QK_K, row_dot_q5_K_q8_K);
}
inline void vec_dot_q6_K_q8_K(int64_t n, float* out, const void* w, size_t stride, int64_t nr, const void* a) {
    neon_rows<block_q6_K, block_q8_K>(n, out, w, stride, nr, a, QK_K, row_dot_q6_K_q8_K);
}

inline void fill_k_kernels(KernelTable& t) {
    t.vec_dot[static_cast<int>(QType::Q4_K)] = vec_dot_q4_K_q8_K;
    t.vec_dot[static_cast<int>(QType::Q5_K)] = vec_dot_q5_K_q8_K;
    t.vec_dot[static_cast<int>(QType::Q6_K)] = vec_dot_q6_K_q8_K;
}
