package io.kvstash.engine.kernel;

import io.kvstash.engine.gguf.GgmlType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * Decodes rows of one GGML block format into signed 8-bit codes with per-group affine parameters,
 * for repacking weights once at load time. Column {@code c} of a decoded row is
 *
 * <pre>{@code  w[c] = (float) codes[c] * scales[g] - offsets[g]     g = c / group()}</pre>
 *
 * evaluated as a float multiply and then a float subtract (never one fused multiply-add), and that
 * is bit-identical to ggml's {@code dequantize_row_*} for the format (x86 builds, where
 * {@code libggml-base} is compiled without FMA contraction). It is exact because every one of these
 * dequantizers computes one float scale and one float min per group and then a single
 * {@code scale * q} (and {@code - min}) per element: the decoder returns that very scale and min,
 * and {@code a - (-m)} is IEEE-identical to {@code a + m}, {@code a - 0f} to {@code a}.
 *
 * <p>Each constant's comment quotes the C expression it reproduces. The block layouts are those of
 * {@code ggml-common.h}; halves are little-endian IEEE binary16.
 *
 * <p>Stateless and thread-safe: rows of one tensor may be decoded in parallel.
 */
public enum BlockDecoder {
    /** {@code y = (q - 8) * d}: block {d, qs[16]}; byte j holds column j (low nibble) and j + 16 (high). */
    Q4_0(GgmlType.Q4_0, 32, false) {
        @Override
        void decodeBlock(MemorySegment s, long at, byte[] codes, int c, float[] scales, float[] offsets, int g) {
            scales[g] = half(s, at);
            for (int j = 0; j < 16; j++) {
                int b = u8(s, at + 2 + j);
                codes[c + j] = (byte) ((b & 0xF) - 8);
                codes[c + j + 16] = (byte) ((b >>> 4) - 8);
            }
        }
    },
    /** {@code y = q * d + m}: block {d, m, qs[16]}; offset {@code -m}. */
    Q4_1(GgmlType.Q4_1, 32, true) {
        @Override
        void decodeBlock(MemorySegment s, long at, byte[] codes, int c, float[] scales, float[] offsets, int g) {
            scales[g] = half(s, at);
            offsets[g] = -half(s, at + 2);
            for (int j = 0; j < 16; j++) {
                int b = u8(s, at + 4 + j);
                codes[c + j] = (byte) (b & 0xF);
                codes[c + j + 16] = (byte) (b >>> 4);
            }
        }
    },
    /** {@code y = (q - 16) * d}: block {d, qh (uint32), qs[16]}; bit j of qh is the fifth bit of column j. */
    Q5_0(GgmlType.Q5_0, 32, false) {
        @Override
        void decodeBlock(MemorySegment s, long at, byte[] codes, int c, float[] scales, float[] offsets, int g) {
            scales[g] = half(s, at);
            int qh = s.get(INT, at + 2);
            for (int j = 0; j < 16; j++) {
                int b = u8(s, at + 6 + j);
                codes[c + j] = (byte) (((b & 0xF) | ((qh >>> j) & 1) << 4) - 16);
                codes[c + j + 16] = (byte) (((b >>> 4) | ((qh >>> (j + 16)) & 1) << 4) - 16);
            }
        }
    },
    /** {@code y = q * d + m}: block {d, m, qh (uint32), qs[16]}; offset {@code -m}. */
    Q5_1(GgmlType.Q5_1, 32, true) {
        @Override
        void decodeBlock(MemorySegment s, long at, byte[] codes, int c, float[] scales, float[] offsets, int g) {
            scales[g] = half(s, at);
            offsets[g] = -half(s, at + 2);
            int qh = s.get(INT, at + 4);
            for (int j = 0; j < 16; j++) {
                int b = u8(s, at + 8 + j);
                codes[c + j] = (byte) ((b & 0xF) | ((qh >>> j) & 1) << 4);
                codes[c + j + 16] = (byte) ((b >>> 4) | ((qh >>> (j + 16)) & 1) << 4);
            }
        }
    },
    /** {@code y = q * d}: block {d, qs[32] (int8)}. */
    Q8_0(GgmlType.Q8_0, 32, false) {
        @Override
        void decodeBlock(MemorySegment s, long at, byte[] codes, int c, float[] scales, float[] offsets, int g) {
            scales[g] = half(s, at);
            MemorySegment.copy(s, ValueLayout.JAVA_BYTE, at + 2, codes, c, 32);
        }
    },
    /**
     * {@code dl = d * (sc & 0xF); ml = dmin * (sc >> 4); y = dl * q - ml} per 16 columns: block
     * {scales[16], qs[64], d, dmin}. Byte {@code 32n + l} of qs holds, two bits each from the
     * bottom, columns {@code 128n + l + 32j} for j = 0..3.
     */
    Q2_K(GgmlType.Q2_K, 16, true) {
        @Override
        void decodeBlock(MemorySegment s, long at, byte[] codes, int c, float[] scales, float[] offsets, int g) {
            float d = half(s, at + 80);
            float dmin = half(s, at + 82);
            for (int k = 0; k < 16; k++) {
                int sc = u8(s, at + k);
                scales[g + k] = d * (sc & 0xF);
                offsets[g + k] = dmin * (sc >>> 4);
            }
            for (int n = 0; n < 2; n++) {
                for (int l = 0; l < 32; l++) {
                    int b = u8(s, at + 16 + 32 * n + l);
                    int col = c + 128 * n + l;
                    codes[col] = (byte) (b & 3);
                    codes[col + 32] = (byte) ((b >>> 2) & 3);
                    codes[col + 64] = (byte) ((b >>> 4) & 3);
                    codes[col + 96] = (byte) (b >>> 6);
                }
            }
        }
    },
    /**
     * {@code dl = d * (sc - 32); y = dl * (q - (hmask bit ? 0 : 4))} per 16 columns: block
     * {hmask[32], qs[64], scales[12], d}. Column {@code 128n + 32j + l} takes its low two bits from
     * qs byte {@code 32n + l} at bit 2j and its high bit from hmask byte l at bit {@code 4n + j}. The
     * 6-bit scale k has its low four bits in nibble {@code k / 8} of byte {@code k % 8} and its high
     * two bits at bit {@code 2 (k / 4)} of byte {@code 8 + k % 4}.
     */
    Q3_K(GgmlType.Q3_K, 16, false) {
        @Override
        void decodeBlock(MemorySegment s, long at, byte[] codes, int c, float[] scales, float[] offsets, int g) {
            float d = half(s, at + 108);
            long sc = at + 96;
            for (int k = 0; k < 16; k++) {
                int low = k < 8 ? u8(s, sc + k) & 0xF : u8(s, sc + k - 8) >>> 4;
                int high = (u8(s, sc + 8 + (k & 3)) >>> (2 * (k >>> 2))) & 3;
                scales[g + k] = d * ((low | high << 4) - 32);
            }
            for (int n = 0; n < 2; n++) {
                for (int l = 0; l < 32; l++) {
                    int q = u8(s, at + 32 + 32 * n + l);
                    int h = u8(s, at + l) >>> (4 * n);
                    int col = c + 128 * n + l;
                    for (int j = 0; j < 4; j++) {
                        codes[col + 32 * j] = (byte) (((q >>> (2 * j)) & 3) - (((h >>> j) & 1) != 0 ? 0 : 4));
                    }
                }
            }
        }
    },
    /**
     * {@code d1 = d * sc; m1 = dmin * m; y = d1 * q - m1} per 32 columns: block
     * {d, dmin, scales[12], qs[128]}; qs byte {@code 32i + l} holds column {@code 64i + l} (low
     * nibble) and {@code 64i + 32 + l} (high); sc and m as ggml's {@code get_scale_min_k4}.
     */
    Q4_K(GgmlType.Q4_K, 32, true) {
        @Override
        void decodeBlock(MemorySegment s, long at, byte[] codes, int c, float[] scales, float[] offsets, int g) {
            kScalesAndMins(s, at, scales, offsets, g);
            for (int i = 0; i < 4; i++) {
                for (int l = 0; l < 32; l++) {
                    int b = u8(s, at + 16 + 32 * i + l);
                    codes[c + 64 * i + l] = (byte) (b & 0xF);
                    codes[c + 64 * i + 32 + l] = (byte) (b >>> 4);
                }
            }
        }
    },
    /**
     * As Q4_K with a fifth bit: block {d, dmin, scales[12], qh[32], qs[128]}; qh byte l holds the
     * fifth bit of column {@code 64i + l} at bit 2i and of {@code 64i + 32 + l} at bit 2i + 1.
     */
    Q5_K(GgmlType.Q5_K, 32, true) {
        @Override
        void decodeBlock(MemorySegment s, long at, byte[] codes, int c, float[] scales, float[] offsets, int g) {
            kScalesAndMins(s, at, scales, offsets, g);
            for (int l = 0; l < 32; l++) {
                int h = u8(s, at + 16 + l);
                for (int i = 0; i < 4; i++) {
                    int b = u8(s, at + 48 + 32 * i + l);
                    codes[c + 64 * i + l] = (byte) ((b & 0xF) | ((h >>> (2 * i)) & 1) << 4);
                    codes[c + 64 * i + 32 + l] = (byte) ((b >>> 4) | ((h >>> (2 * i + 1)) & 1) << 4);
                }
            }
        }
    },
    /**
     * {@code y = d * sc * (q - 32)} per 16 columns, which C evaluates as {@code (d * sc) * q}: block
     * {ql[128], qh[64], scales[16] (int8), d}. For n = 0, 1 and l &lt; 32, ql bytes {@code 64n + l}
     * and {@code 64n + 32 + l} hold the low nibbles of columns {@code 128n + l + 32j} (j = 0, 1 in
     * their low nibbles, j = 2, 3 in their high ones) and qh byte {@code 32n + l} their high two bits
     * at bit 2j.
     */
    Q6_K(GgmlType.Q6_K, 16, false) {
        @Override
        void decodeBlock(MemorySegment s, long at, byte[] codes, int c, float[] scales, float[] offsets, int g) {
            float d = half(s, at + 208);
            for (int k = 0; k < 16; k++) {
                scales[g + k] = d * s.get(ValueLayout.JAVA_BYTE, at + 192 + k);
            }
            for (int n = 0; n < 2; n++) {
                for (int l = 0; l < 32; l++) {
                    int a = u8(s, at + 64 * n + l);
                    int b = u8(s, at + 64 * n + 32 + l);
                    int h = u8(s, at + 128 + 32 * n + l);
                    int col = c + 128 * n + l;
                    codes[col] = (byte) (((a & 0xF) | (h & 3) << 4) - 32);
                    codes[col + 32] = (byte) (((b & 0xF) | ((h >>> 2) & 3) << 4) - 32);
                    codes[col + 64] = (byte) (((a >>> 4) | ((h >>> 4) & 3) << 4) - 32);
                    codes[col + 96] = (byte) (((b >>> 4) | (h >>> 6) << 4) - 32);
                }
            }
        }
    };

    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final GgmlType type;
    private final int group;
    private final boolean hasOffset;

    BlockDecoder(GgmlType type, int group, boolean hasOffset) {
        this.type = type;
        this.group = group;
        this.hasOffset = hasOffset;
    }

    /** The decoder for {@code type}. */
    public static BlockDecoder of(GgmlType type) {
        return switch (type) {
            case Q4_0 -> Q4_0;
            case Q4_1 -> Q4_1;
            case Q5_0 -> Q5_0;
            case Q5_1 -> Q5_1;
            case Q8_0 -> Q8_0;
            case Q2_K -> Q2_K;
            case Q3_K -> Q3_K;
            case Q4_K -> Q4_K;
            case Q5_K -> Q5_K;
            case Q6_K -> Q6_K;
            default -> throw new UnsupportedTensorTypeException("GGML type " + type
                    + " has no block decoder (decodable: " + Arrays.toString(values()) + ")");
        };
    }

    public GgmlType type() {
        return type;
    }

    /** Columns per (scale, offset): 16 or 32. */
    public int group() {
        return group;
    }

    /** False when every offset is 0 (symmetric formats). */
    public boolean hasOffset() {
        return hasOffset;
    }

    /**
     * Decodes the row of {@code cols} columns (a multiple of the type's block size) starting at
     * byte {@code rowOffset} of {@code data} into {@code codes[0 .. cols)},
     * {@code scales[0 .. cols / group())} and {@code offsets[0 .. cols / group())}. When
     * {@link #hasOffset()} is false, {@code offsets} may be null; if it is not, its first
     * {@code cols / group()} entries are set to {@code +0f}, so {@code code * scale - offset} is
     * still exact. When it is true, {@code offsets} must not be null.
     *
     * @throws IllegalArgumentException if {@code cols} is not a whole number of blocks, the row
     *     does not lie inside {@code data}, or an output array is too short; nothing is written then
     */
    public final void decodeRow(MemorySegment data, long rowOffset, int cols, byte[] codes, float[] scales, float[] offsets) {
        int groups = checkRow(data, rowOffset, cols, codes, scales, offsets);
        if (!hasOffset && offsets != null) {
            Arrays.fill(offsets, 0, groups, 0f);
        }
        int blocks = cols / type.blockSize;
        int groupsPerBlock = type.blockSize / group;
        for (int b = 0; b < blocks; b++) {
            decodeBlock(data, rowOffset + (long) b * type.blockBytes, codes, b * type.blockSize, scales, offsets, b * groupsPerBlock);
        }
    }

    private int checkRow(MemorySegment data, long rowOffset, int cols, byte[] codes, float[] scales, float[] offsets) {
        if (cols < 0 || cols % type.blockSize != 0) {
            throw new IllegalArgumentException(type + " row of " + cols + " columns: not a whole number of "
                    + type.blockSize + "-column blocks");
        }
        long rowBytes = type.bytesFor(cols);
        if (rowOffset < 0 || rowOffset > data.byteSize() - rowBytes) {
            throw new IllegalArgumentException(type + " row of " + cols + " columns (" + cols / type.blockSize + " blocks × "
                    + type.blockBytes + " = " + rowBytes + " bytes) at byte offset " + rowOffset
                    + " does not fit in a segment of " + data.byteSize() + " bytes");
        }
        int groups = cols / group;
        if (codes.length < cols || scales.length < groups || (hasOffset && offsets.length < groups)) {
            throw new IllegalArgumentException(type + " row of " + cols + " columns needs " + cols + " codes and " + groups
                    + (hasOffset ? " scales and offsets" : " scales") + ", got arrays of " + codes.length + " codes, "
                    + scales.length + " scales" + (offsets == null ? "" : ", " + offsets.length + " offsets"));
        }
        return groups;
    }

    /** One block at byte {@code at}: columns from {@code c}, groups from {@code g}. */
    abstract void decodeBlock(MemorySegment s, long at, byte[] codes, int c, float[] scales, float[] offsets, int g);

    /**
     * Q4_K/Q5_K: {@code d * sc} and {@code dmin * m} for the eight 6-bit pairs packed in the 12
     * bytes after d and dmin, unpacked as ggml's {@code get_scale_min_k4}: for k &lt; 4, sc and m are
     * the low six bits of bytes k and k + 4; for k ≥ 4, their low four bits are the nibbles of byte
     * k + 4 and their high two bits the top bits of bytes k − 4 and k.
     */
    private static void kScalesAndMins(MemorySegment s, long at, float[] scales, float[] offsets, int g) {
        float d = half(s, at);
        float dmin = half(s, at + 2);
        long q = at + 4;
        for (int k = 0; k < 8; k++) {
            int sc;
            int m;
            if (k < 4) {
                sc = u8(s, q + k) & 63;
                m = u8(s, q + k + 4) & 63;
            } else {
                sc = (u8(s, q + k + 4) & 0xF) | (u8(s, q + k - 4) >>> 6) << 4;
                m = (u8(s, q + k + 4) >>> 4) | (u8(s, q + k) >>> 6) << 4;
            }
            scales[g + k] = d * sc;
            offsets[g + k] = dmin * m;
        }
    }

    private static int u8(MemorySegment s, long at) {
        return s.get(ValueLayout.JAVA_BYTE, at) & 0xFF;
    }

    private static float half(MemorySegment s, long at) {
        return Float.float16ToFloat(s.get(SHORT, at));
    }
}
