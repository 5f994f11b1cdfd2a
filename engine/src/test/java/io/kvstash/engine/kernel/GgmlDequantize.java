package io.kvstash.engine.kernel;

import io.kvstash.engine.gguf.GgmlType;

/**
 * ggml's {@code dequantize_row_*} (ggml/src/ggml-quants.c) transcribed line by line over raw
 * bytes, as the oracle for {@link BlockDecoder}: struct fields are located by their C offsets, the
 * loops walk the same pointers, Q3_K unpacks its scales through the same 32-bit words, and each
 * float expression keeps C's order of evaluation. Deliberately written without reusing anything
 * from the decoder, so a layout mistake in one cannot hide in both.
 */
final class GgmlDequantize {
    private static final int QK_K = 256;

    private GgmlDequantize() {
    }

    static float[] row(GgmlType type, byte[] x, int k) {
        float[] y = new float[k];
        switch (type) {
            case Q4_0 -> q4_0(x, y, k);
            case Q4_1 -> q4_1(x, y, k);
            case Q5_0 -> q5_0(x, y, k);
            case Q5_1 -> q5_1(x, y, k);
            case Q8_0 -> q8_0(x, y, k);
            case Q2_K -> q2_K(x, y, k);
            case Q3_K -> q3_K(x, y, k);
            case Q4_K -> q4_K(x, y, k);
            case Q5_K -> q5_K(x, y, k);
            case Q6_K -> q6_K(x, y, k);
            default -> throw new IllegalArgumentException(type.toString());
        }
        return y;
    }

    /** {@code uint8_t} at byte {@code i}. */
    private static int u8(byte[] x, int i) {
        return x[i] & 0xFF;
    }

    /** {@code GGML_FP16_TO_FP32} of the little-endian half at byte {@code i}. */
    private static float fp16(byte[] x, int i) {
        return Float.float16ToFloat((short) (u8(x, i) | u8(x, i + 1) << 8));
    }

    private static int u32(byte[] x, int i) {
        return u8(x, i) | u8(x, i + 1) << 8 | u8(x, i + 2) << 16 | u8(x, i + 3) << 24;
    }

    static void q4_0(byte[] x, float[] y, int k) {
        int qk = 32;
        int nb = k / qk;
        for (int i = 0; i < nb; i++) {
            int blk = i * 18;
            float d = fp16(x, blk);
            for (int j = 0; j < qk / 2; ++j) {
                int x0 = (u8(x, blk + 2 + j) & 0x0F) - 8;
                int x1 = (u8(x, blk + 2 + j) >> 4) - 8;
                y[i * qk + j] = x0 * d;
                y[i * qk + j + qk / 2] = x1 * d;
            }
        }
    }

    static void q4_1(byte[] x, float[] y, int k) {
        int qk = 32;
        int nb = k / qk;
        for (int i = 0; i < nb; i++) {
            int blk = i * 20;
            float d = fp16(x, blk);
            float m = fp16(x, blk + 2);
            for (int j = 0; j < qk / 2; ++j) {
                int x0 = u8(x, blk + 4 + j) & 0x0F;
                int x1 = u8(x, blk + 4 + j) >> 4;
                y[i * qk + j] = x0 * d + m;
                y[i * qk + j + qk / 2] = x1 * d + m;
            }
        }
    }

    static void q5_0(byte[] x, float[] y, int k) {
        int qk = 32;
        int nb = k / qk;
        for (int i = 0; i < nb; i++) {
            int blk = i * 22;
            float d = fp16(x, blk);
            int qh = u32(x, blk + 2);
            for (int j = 0; j < qk / 2; ++j) {
                int xh0 = ((qh >>> j) << 4) & 0x10;
                int xh1 = (qh >>> (j + 12)) & 0x10;
                int x0 = ((u8(x, blk + 6 + j) & 0x0F) | xh0) - 16;
                int x1 = ((u8(x, blk + 6 + j) >> 4) | xh1) - 16;
                y[i * qk + j] = x0 * d;
                y[i * qk + j + qk / 2] = x1 * d;
            }
        }
    }

    static void q5_1(byte[] x, float[] y, int k) {
        int qk = 32;
        int nb = k / qk;
        for (int i = 0; i < nb; i++) {
            int blk = i * 24;
            float d = fp16(x, blk);
            float m = fp16(x, blk + 2);
            int qh = u32(x, blk + 4);
            for (int j = 0; j < qk / 2; ++j) {
                int xh0 = ((qh >>> j) << 4) & 0x10;
                int xh1 = (qh >>> (j + 12)) & 0x10;
                int x0 = (u8(x, blk + 8 + j) & 0x0F) | xh0;
                int x1 = (u8(x, blk + 8 + j) >> 4) | xh1;
                y[i * qk + j] = x0 * d + m;
                y[i * qk + j + qk / 2] = x1 * d + m;
            }
        }
    }

    static void q8_0(byte[] x, float[] y, int k) {
        int qk = 32;
        int nb = k / qk;
        for (int i = 0; i < nb; i++) {
            int blk = i * 34;
            float d = fp16(x, blk);
            for (int j = 0; j < qk; ++j) {
                y[i * qk + j] = x[blk + 2 + j] * d;
            }
        }
    }

    /** block_q2_K: scales[16] @0, qs[64] @16, d @80, dmin @82. */
    static void q2_K(byte[] x, float[] y, int k) {
        int nb = k / QK_K;
        int yi = 0;
        for (int i = 0; i < nb; i++) {
            int blk = i * 84;
            float d = fp16(x, blk + 80);
            float min = fp16(x, blk + 82);
            int q = blk + 16;
            int is = 0;
            for (int n = 0; n < QK_K; n += 128) {
                int shift = 0;
                for (int j = 0; j < 4; ++j) {
                    int sc = u8(x, blk + is++);
                    float dl = d * (sc & 0xF);
                    float ml = min * (sc >> 4);
                    for (int l = 0; l < 16; ++l) {
                        y[yi++] = dl * (byte) ((u8(x, q + l) >> shift) & 3) - ml;
                    }
                    sc = u8(x, blk + is++);
                    dl = d * (sc & 0xF);
                    ml = min * (sc >> 4);
                    for (int l = 0; l < 16; ++l) {
                        y[yi++] = dl * (byte) ((u8(x, q + l + 16) >> shift) & 3) - ml;
                    }
                    shift += 2;
                }
                q += 32;
            }
        }
    }

    /** block_q3_K: hmask[32] @0, qs[64] @32, scales[12] @96, d @108. */
    static void q3_K(byte[] x, float[] y, int k) {
        int nb = k / QK_K;
        int kmask1 = 0x03030303;
        int kmask2 = 0x0f0f0f0f;
        int[] aux = new int[4];
        int yi = 0;
        for (int i = 0; i < nb; i++) {
            int blk = i * 110;
            float dAll = fp16(x, blk + 108);
            int q = blk + 32;
            int hm = blk;
            int m = 1;

            aux[0] = u32(x, blk + 96);
            aux[1] = u32(x, blk + 100);
            aux[2] = u32(x, blk + 104);
            int tmp = aux[2];
            aux[2] = ((aux[0] >>> 4) & kmask2) | (((tmp >>> 4) & kmask1) << 4);
            aux[3] = ((aux[1] >>> 4) & kmask2) | (((tmp >>> 6) & kmask1) << 4);
            aux[0] = (aux[0] & kmask2) | (((tmp >>> 0) & kmask1) << 4);
            aux[1] = (aux[1] & kmask2) | (((tmp >>> 2) & kmask1) << 4);

            int is = 0;
            float dl;
            for (int n = 0; n < QK_K; n += 128) {
                int shift = 0;
                for (int j = 0; j < 4; ++j) {
                    dl = dAll * (scale(aux, is++) - 32);
                    for (int l = 0; l < 16; ++l) {
                        y[yi++] = dl * ((byte) ((u8(x, q + l) >> shift) & 3) - ((u8(x, hm + l) & m) != 0 ? 0 : 4));
                    }
                    dl = dAll * (scale(aux, is++) - 32);
                    for (int l = 0; l < 16; ++l) {
                        y[yi++] = dl * ((byte) ((u8(x, q + l + 16) >> shift) & 3) - ((u8(x, hm + l + 16) & m) != 0 ? 0 : 4));
                    }
                    shift += 2;
                    m <<= 1;
                }
                q += 32;
            }
        }
    }

    /** {@code ((const int8_t *) aux)[is]} on a little-endian machine. */
    private static int scale(int[] aux, int is) {
        return (byte) (aux[is / 4] >>> (8 * (is % 4)));
    }

    /** get_scale_min_k4 over the 12 bytes at {@code q}; returns {sc, m}. */
    private static int[] scaleMinK4(int j, byte[] x, int q) {
        if (j < 4) {
            return new int[] {u8(x, q + j) & 63, u8(x, q + j + 4) & 63};
        }
        return new int[] {
            (u8(x, q + j + 4) & 0xF) | ((u8(x, q + j - 4) >> 6) << 4),
            (u8(x, q + j + 4) >> 4) | ((u8(x, q + j) >> 6) << 4)
        };
    }

    /** block_q4_K: d @0, dmin @2, scales[12] @4, qs[128] @16. */
    static void q4_K(byte[] x, float[] y, int k) {
        int nb = k / QK_K;
        int yi = 0;
        for (int i = 0; i < nb; i++) {
            int blk = i * 144;
            int q = blk + 16;
            float d = fp16(x, blk);
            float min = fp16(x, blk + 2);
            int is = 0;
            for (int j = 0; j < QK_K; j += 64) {
                int[] sm = scaleMinK4(is, x, blk + 4);
                float d1 = d * sm[0];
                float m1 = min * sm[1];
                sm = scaleMinK4(is + 1, x, blk + 4);
                float d2 = d * sm[0];
                float m2 = min * sm[1];
                for (int l = 0; l < 32; ++l) {
                    y[yi++] = d1 * (u8(x, q + l) & 0xF) - m1;
                }
                for (int l = 0; l < 32; ++l) {
                    y[yi++] = d2 * (u8(x, q + l) >> 4) - m2;
                }
                q += 32;
                is += 2;
            }
        }
    }

    /** block_q5_K: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48. */
    static void q5_K(byte[] x, float[] y, int k) {
        int nb = k / QK_K;
        int yi = 0;
        for (int i = 0; i < nb; i++) {
            int blk = i * 176;
            int ql = blk + 48;
            int qh = blk + 16;
            float d = fp16(x, blk);
            float min = fp16(x, blk + 2);
            int is = 0;
            int u1 = 1;
            int u2 = 2;
            for (int j = 0; j < QK_K; j += 64) {
                int[] sm = scaleMinK4(is, x, blk + 4);
                float d1 = d * sm[0];
                float m1 = min * sm[1];
                sm = scaleMinK4(is + 1, x, blk + 4);
                float d2 = d * sm[0];
                float m2 = min * sm[1];
                for (int l = 0; l < 32; ++l) {
                    y[yi++] = d1 * ((u8(x, ql + l) & 0xF) + ((u8(x, qh + l) & u1) != 0 ? 16 : 0)) - m1;
                }
                for (int l = 0; l < 32; ++l) {
                    y[yi++] = d2 * ((u8(x, ql + l) >> 4) + ((u8(x, qh + l) & u2) != 0 ? 16 : 0)) - m2;
                }
                ql += 32;
                is += 2;
                u1 <<= 2;
                u2 <<= 2;
            }
        }
    }

    /** block_q6_K: ql[128] @0, qh[64] @128, scales[16] (int8) @192, d @208. */
    static void q6_K(byte[] x, float[] y, int k) {
        int nb = k / QK_K;
        int yi = 0;
        for (int i = 0; i < nb; i++) {
            int blk = i * 210;
            float d = fp16(x, blk + 208);
            int ql = blk;
            int qh = blk + 128;
            int sc = blk + 192;
            for (int n = 0; n < QK_K; n += 128) {
                for (int l = 0; l < 32; ++l) {
                    int is = l / 16;
                    byte q1 = (byte) ((byte) ((u8(x, ql + l) & 0xF) | (((u8(x, qh + l) >> 0) & 3) << 4)) - 32);
                    byte q2 = (byte) ((byte) ((u8(x, ql + l + 32) & 0xF) | (((u8(x, qh + l) >> 2) & 3) << 4)) - 32);
                    byte q3 = (byte) ((byte) ((u8(x, ql + l) >> 4) | (((u8(x, qh + l) >> 4) & 3) << 4)) - 32);
                    byte q4 = (byte) ((byte) ((u8(x, ql + l + 32) >> 4) | (((u8(x, qh + l) >> 6) & 3) << 4)) - 32);
                    y[yi + l] = d * x[sc + is] * q1;
                    y[yi + l + 32] = d * x[sc + is + 2] * q2;
                    y[yi + l + 64] = d * x[sc + is + 4] * q3;
                    y[yi + l + 96] = d * x[sc + is + 6] * q4;
                }
                yi += 128;
                ql += 64;
                qh += 32;
                sc += 8;
            }
        }
    }
}
