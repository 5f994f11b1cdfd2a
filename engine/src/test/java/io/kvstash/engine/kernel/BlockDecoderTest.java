package io.kvstash.engine.kernel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.kvstash.engine.gguf.GgmlType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@link BlockDecoder} on blocks written here byte by byte, packed the way ggml's
 * {@code quantize_row_*_ref} packs them from known codes and scales: the decoder must give back
 * those codes and the float scales ggml's dequantizer computes, and its values must equal the
 * line-by-line transcription of ggml's dequantizer ({@link GgmlDequantize}) bit for bit.
 */
class BlockDecoderTest {
    /** Blocks per hand-built row: enough for every 6-bit scale value at every scale position. */
    private static final int BLOCKS = 64;
    /** Super-block scales worth covering: signs, zeros, largest, subnormal, smallest normal, ordinary. */
    private static final float[] HALVES = {1f, -0.5f, 0.0123f, 65504f, 0x1p-24f, 0x1p-14f, -3.3e-3f, 0f, -0f, 7.25f, -1234f};

    private final Arena arena = Arena.ofConfined();

    @AfterEach
    void close() {
        arena.close();
    }

    /** A row built from known parts; {@code offsets} are what the decoder must return (zeros when it has none). */
    private record Built(byte[] bytes, byte[] codes, float[] scales, float[] offsets) {
    }

    @Test
    void shouldMatchGgmlBlockGeometryWhenCheckingGgmlType() {
        // sizeof(block_*) from the static_asserts of ggml-common.h; ids from ggml.h.
        int[][] expected = {
            {2, 32, 18}, {3, 32, 20}, {6, 32, 22}, {7, 32, 24}, {8, 32, 34},
            {10, 256, 84}, {11, 256, 110}, {12, 256, 144}, {13, 256, 176}, {14, 256, 210}
        };
        BlockDecoder[] decoders = BlockDecoder.values();
        assertEquals(expected.length, decoders.length);
        for (int i = 0; i < expected.length; i++) {
            GgmlType t = decoders[i].type();
            assertEquals(expected[i][0], t.id, t + " id");
            assertEquals(expected[i][1], t.blockSize, t + " block size");
            assertEquals(expected[i][2], t.blockBytes, t + " block bytes");
            assertSame(t, GgmlType.byId(t.id));
            assertSame(decoders[i], BlockDecoder.of(t));
            assertEquals(0, t.blockSize % decoders[i].group());
        }
    }

    @Test
    void shouldDescribeGroupsAndOffsetsWhenAskedPerFormat() {
        Set<BlockDecoder> withOffset = EnumSet.of(BlockDecoder.Q4_1, BlockDecoder.Q5_1, BlockDecoder.Q2_K, BlockDecoder.Q4_K, BlockDecoder.Q5_K);
        Set<BlockDecoder> sixteen = EnumSet.of(BlockDecoder.Q2_K, BlockDecoder.Q3_K, BlockDecoder.Q6_K);
        for (BlockDecoder d : BlockDecoder.values()) {
            assertEquals(withOffset.contains(d), d.hasOffset(), d + " hasOffset");
            assertEquals(sixteen.contains(d) ? 16 : 32, d.group(), d + " group");
        }
    }

    @ParameterizedTest
    @EnumSource(BlockDecoder.class)
    void shouldReturnKnownCodesAndScalesWhenBlocksArePackedByHand(BlockDecoder decoder) {
        Built built = build(decoder.type(), new Random(decoder.ordinal() * 7919L + 1));
        int cols = built.codes.length;
        int groups = cols / decoder.group();
        byte[] codes = new byte[cols];
        float[] scales = new float[groups];
        float[] offsets = new float[groups];
        Arrays.fill(offsets, Float.NaN);
        decoder.decodeRow(segment(built.bytes, 0), 0, cols, codes, scales, offsets);

        assertArrayEquals(built.codes, codes, decoder + " codes");
        assertBitsEqual(built.scales, scales, decoder + " scales");
        assertBitsEqual(built.offsets, offsets, decoder + " offsets");
        assertBitsEqual(GgmlDequantize.row(decoder.type(), built.bytes, cols), values(decoder, codes, scales, offsets), decoder + " values");
    }

    @ParameterizedTest
    @EnumSource(BlockDecoder.class)
    void shouldEqualGgmlDequantizerBitForBitWhenBlocksAreRandomBytes(BlockDecoder decoder) {
        GgmlType type = decoder.type();
        Random random = new Random(42 + decoder.ordinal());
        int cols = 16 * type.blockSize;
        byte[] bytes = new byte[(int) type.bytesFor(cols)];
        for (int round = 0; round < 50; round++) {
            random.nextBytes(bytes);
            finiteHalves(type, bytes);
            float[] expected = GgmlDequantize.row(type, bytes, cols);
            for (float v : expected) {
                assertTrue(Float.isFinite(v), "fixture must not produce inf/NaN");
            }
            byte[] codes = new byte[cols];
            float[] scales = new float[cols / decoder.group()];
            float[] offsets = new float[cols / decoder.group()];
            decoder.decodeRow(segment(bytes, 0), 0, cols, codes, scales, offsets);
            assertBitsEqual(expected, values(decoder, codes, scales, offsets), decoder + " round " + round);
        }
    }

    @ParameterizedTest
    @EnumSource(BlockDecoder.class)
    void shouldDecodeOnlyItsRowWhenRowSitsAtAnOddOffsetAmongOthers(BlockDecoder decoder) {
        GgmlType type = decoder.type();
        Random random = new Random(7 + decoder.ordinal());
        int cols = 3 * type.blockSize;
        int rowBytes = (int) type.bytesFor(cols);
        byte[] bytes = new byte[1 + 3 * rowBytes];
        random.nextBytes(bytes);
        byte[] row = new byte[rowBytes];
        for (int r = 0; r < 3; r++) {
            System.arraycopy(bytes, 1 + r * rowBytes, row, 0, rowBytes);
            finiteHalves(type, row);
            System.arraycopy(row, 0, bytes, 1 + r * rowBytes, rowBytes);
        }
        MemorySegment seg = segment(bytes, 0);
        for (int r = 0; r < 3; r++) {
            System.arraycopy(bytes, 1 + r * rowBytes, row, 0, rowBytes);
            byte[] codes = new byte[cols];
            float[] scales = new float[cols / decoder.group()];
            float[] offsets = new float[cols / decoder.group()];
            decoder.decodeRow(seg, 1 + (long) r * rowBytes, cols, codes, scales, offsets);
            assertBitsEqual(GgmlDequantize.row(type, row, cols), values(decoder, codes, scales, offsets), decoder + " row " + r);
        }
    }

    @Test
    void shouldAcceptNullOffsetsWhenFormatHasNone() {
        for (BlockDecoder decoder : BlockDecoder.values()) {
            if (decoder.hasOffset()) {
                continue;
            }
            int cols = decoder.type().blockSize;
            byte[] bytes = new byte[decoder.type().blockBytes];
            new Random(3).nextBytes(bytes);
            finiteHalves(decoder.type(), bytes);
            byte[] codes = new byte[cols];
            float[] scales = new float[cols / decoder.group()];
            decoder.decodeRow(segment(bytes, 0), 0, cols, codes, scales, null);
            assertBitsEqual(GgmlDequantize.row(decoder.type(), bytes, cols),
                    values(decoder, codes, scales, new float[scales.length]), decoder.toString());
        }
    }

    @ParameterizedTest
    @EnumSource(BlockDecoder.class)
    void shouldRejectNamingTheGeometryWhenColsAreNotWholeBlocks(BlockDecoder decoder) {
        GgmlType type = decoder.type();
        int cols = type.blockSize + 16;
        MemorySegment seg = segment(new byte[4 * type.blockBytes], 0);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> decoder.decodeRow(seg, 0, cols, new byte[cols], new float[cols], new float[cols]));
        assertTrue(e.getMessage().contains(type.toString()) && e.getMessage().contains(cols + " columns")
                && e.getMessage().contains(type.blockSize + "-column blocks"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> decoder.decodeRow(seg, 0, -type.blockSize, new byte[0], new float[0], new float[0]));
    }

    @ParameterizedTest
    @EnumSource(BlockDecoder.class)
    void shouldRejectNamingTheGeometryWhenRowRunsPastTheSegment(BlockDecoder decoder) {
        GgmlType type = decoder.type();
        int cols = 2 * type.blockSize;
        long size = 2L * type.blockBytes + 5;
        MemorySegment seg = arena.allocate(size);
        byte[] codes = new byte[cols];
        float[] scales = new float[cols];
        float[] offsets = new float[cols];
        decoder.decodeRow(seg, 5, cols, codes, scales, offsets); // exactly fits
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> decoder.decodeRow(seg, 6, cols, codes, scales, offsets));
        String m = e.getMessage();
        assertTrue(m.contains(type.toString()) && m.contains(cols + " columns") && m.contains(2 * type.blockBytes + " bytes")
                && m.contains("offset 6") && m.contains(size + " bytes"), m);
        assertThrows(IllegalArgumentException.class, () -> decoder.decodeRow(seg, -1, cols, codes, scales, offsets));
        assertThrows(IllegalArgumentException.class, () -> decoder.decodeRow(seg, Long.MAX_VALUE, cols, codes, scales, offsets));
    }

    @ParameterizedTest
    @EnumSource(BlockDecoder.class)
    void shouldRejectWithoutWritingWhenOutputArraysAreTooShort(BlockDecoder decoder) {
        GgmlType type = decoder.type();
        int cols = type.blockSize;
        int groups = cols / decoder.group();
        MemorySegment seg = segment(new byte[type.blockBytes], 0);
        byte[] shortCodes = new byte[cols - 1];
        assertThrows(IllegalArgumentException.class, () -> decoder.decodeRow(seg, 0, cols, shortCodes, new float[groups], new float[groups]));
        assertArrayEquals(new byte[cols - 1], shortCodes);
        assertThrows(IllegalArgumentException.class, () -> decoder.decodeRow(seg, 0, cols, new byte[cols], new float[groups - 1], new float[groups]));
        if (decoder.hasOffset()) {
            assertThrows(IllegalArgumentException.class, () -> decoder.decodeRow(seg, 0, cols, new byte[cols], new float[groups], new float[groups - 1]));
            assertThrows(NullPointerException.class, () -> decoder.decodeRow(seg, 0, cols, new byte[cols], new float[groups], null));
        }
    }

    @Test
    void shouldThrowUnsupportedTensorTypeWhenTypeHasNoDecoder() {
        for (GgmlType t : GgmlType.values()) {
            boolean decodable = Arrays.stream(BlockDecoder.values()).anyMatch(d -> d.type() == t);
            if (decodable) {
                assertSame(t, BlockDecoder.of(t).type());
            } else {
                UnsupportedTensorTypeException e = assertThrows(UnsupportedTensorTypeException.class, () -> BlockDecoder.of(t));
                assertTrue(e.getMessage().contains(t.toString()) && e.getMessage().contains("Q4_K"), e.getMessage());
            }
        }
    }

    // ---- helpers

    private MemorySegment segment(byte[] bytes, int pad) {
        MemorySegment seg = arena.allocate(bytes.length + pad);
        MemorySegment.copy(bytes, 0, seg, ValueLayout.JAVA_BYTE, pad, bytes.length);
        return seg;
    }

    /** What the repacked kernels will compute: a float multiply, then a float subtract. */
    private static float[] values(BlockDecoder decoder, byte[] codes, float[] scales, float[] offsets) {
        float[] v = new float[codes.length];
        for (int c = 0; c < codes.length; c++) {
            int g = c / decoder.group();
            float product = (float) codes[c] * scales[g];
            v[c] = product - offsets[g];
        }
        return v;
    }

    private static void assertBitsEqual(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + " length");
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                fail(what + " differ at " + i + ": expected " + expected[i] + " (0x" + Integer.toHexString(Float.floatToRawIntBits(expected[i]))
                        + ") but was " + actual[i] + " (0x" + Integer.toHexString(Float.floatToRawIntBits(actual[i])) + ")");
            }
        }
    }

    /** Offsets of the ggml_half fields in each block, from ggml-common.h. */
    private static int[] halfFields(GgmlType type) {
        return switch (type) {
            case Q4_0, Q5_0, Q8_0 -> new int[] {0};
            case Q4_1, Q5_1, Q4_K, Q5_K -> new int[] {0, 2};
            case Q2_K -> new int[] {80, 82};
            case Q3_K -> new int[] {108};
            case Q6_K -> new int[] {208};
            default -> throw new IllegalArgumentException(type.toString());
        };
    }

    /** Random bytes may spell inf/NaN halves; clear one exponent bit of those so every value stays finite. */
    private static void finiteHalves(GgmlType type, byte[] bytes) {
        for (int b = 0; b + type.blockBytes <= bytes.length; b += type.blockBytes) {
            for (int f : halfFields(type)) {
                if ((bytes[b + f + 1] & 0x7C) == 0x7C) {
                    bytes[b + f + 1] &= (byte) ~0x40;
                }
            }
        }
    }

    private static short half(float f) {
        return Float.floatToFloat16(f);
    }

    private static void putHalf(byte[] out, int at, short h) {
        out[at] = (byte) h;
        out[at + 1] = (byte) (h >>> 8);
    }

    /** A row of {@link #BLOCKS} blocks of {@code type} from chosen codes and scales, packed as ggml packs them. */
    private static Built build(GgmlType type, Random r) {
        int cols = BLOCKS * type.blockSize;
        byte[] bytes = new byte[(int) type.bytesFor(cols)];
        byte[] codes = new byte[cols];
        int group = BlockDecoder.of(type).group();
        float[] scales = new float[cols / group];
        float[] offsets = new float[cols / group];
        for (int i = 0; i < BLOCKS; i++) {
            int at = i * type.blockBytes;
            int c0 = i * type.blockSize;
            int g0 = c0 / group;
            short d = half(HALVES[i % HALVES.length]);
            short dmin = half(HALVES[(i + 3) % HALVES.length]);
            float df = Float.float16ToFloat(d);
            float dminf = Float.float16ToFloat(dmin);
            switch (type) {
                case Q4_0 -> {
                    int[] q = codes(r, 32, -8, 7, i);
                    putHalf(bytes, at, d);
                    for (int j = 0; j < 16; j++) {
                        bytes[at + 2 + j] = (byte) ((q[j] + 8) | (q[j + 16] + 8) << 4);
                    }
                    copy(q, codes, c0);
                    scales[g0] = df;
                }
                case Q4_1, Q5_1 -> {
                    boolean five = type == GgmlType.Q5_1;
                    int[] q = codes(r, 32, 0, five ? 31 : 15, i);
                    putHalf(bytes, at, d);
                    putHalf(bytes, at + 2, dmin);
                    int qs = at + (five ? 8 : 4);
                    int qh = 0;
                    for (int j = 0; j < 16; j++) {
                        bytes[qs + j] = (byte) ((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
                        qh |= (q[j] >> 4) << j | (q[j + 16] >> 4) << (j + 16);
                    }
                    if (five) {
                        putInt(bytes, at + 4, qh);
                    }
                    copy(q, codes, c0);
                    scales[g0] = df;
                    offsets[g0] = -dminf;
                }
                case Q5_0 -> {
                    int[] q = codes(r, 32, -16, 15, i);
                    putHalf(bytes, at, d);
                    int qh = 0;
                    for (int j = 0; j < 16; j++) {
                        int x0 = q[j] + 16;
                        int x1 = q[j + 16] + 16;
                        bytes[at + 6 + j] = (byte) ((x0 & 0xF) | (x1 & 0xF) << 4);
                        qh |= (x0 >> 4) << j | (x1 >> 4) << (j + 16);
                    }
                    putInt(bytes, at + 2, qh);
                    copy(q, codes, c0);
                    scales[g0] = df;
                }
                case Q8_0 -> {
                    int[] q = codes(r, 32, -128, 127, i);
                    putHalf(bytes, at, d);
                    for (int j = 0; j < 32; j++) {
                        bytes[at + 2 + j] = (byte) q[j];
                    }
                    copy(q, codes, c0);
                    scales[g0] = df;
                }
                case Q2_K -> {
                    int[] q = codes(r, 256, 0, 3, i);
                    for (int k = 0; k < 16; k++) {
                        int sc = (16 * i + k) & 0xFF; // every (scale, min) nibble pair over 16 blocks
                        bytes[at + k] = (byte) sc;
                        scales[g0 + k] = df * (sc & 0xF);
                        offsets[g0 + k] = dminf * (sc >> 4);
                    }
                    pack2Bit(q, bytes, at + 16);
                    putHalf(bytes, at + 80, d);
                    putHalf(bytes, at + 82, dmin);
                    copy(q, codes, c0);
                }
                case Q3_K -> {
                    // hmask byte l carries pattern (32 i + l) mod 256: every pattern, four times over the row.
                    int[] q = new int[256];
                    for (int e = 0; e < 256; e++) {
                        int pattern = (32 * i + e % 32) & 0xFF;
                        int high = (pattern >> (e / 32)) & 1;
                        q[e] = r.nextInt(4) + 4 * high - 4;
                    }
                    int[] low = new int[256];
                    for (int e = 0; e < 256; e++) {
                        int l = q[e] + 4;
                        if (l > 3) {
                            bytes[at + e % 32] |= (byte) (1 << (e / 32));
                            l -= 4;
                        }
                        low[e] = l;
                    }
                    pack2Bit(low, bytes, at + 32);
                    for (int k = 0; k < 16; k++) {
                        int l = (i + 3 * k) & 63; // stored 6-bit value; the scale is l - 32
                        if (k < 8) {
                            bytes[at + 96 + k] = (byte) (l & 0xF);
                        } else {
                            bytes[at + 96 + k - 8] |= (byte) ((l & 0xF) << 4);
                        }
                        bytes[at + 96 + 8 + k % 4] |= (byte) ((l >> 4) << (2 * (k / 4)));
                        scales[g0 + k] = df * (l - 32);
                    }
                    putHalf(bytes, at + 108, d);
                    copy(q, codes, c0);
                }
                case Q4_K, Q5_K -> {
                    boolean five = type == GgmlType.Q5_K;
                    int[] q = codes(r, 256, 0, five ? 31 : 15, i);
                    putHalf(bytes, at, d);
                    putHalf(bytes, at + 2, dmin);
                    for (int k = 0; k < 8; k++) {
                        int ls = (i + 7 * k) & 63;
                        int lm = (63 - i + 5 * k) & 63;
                        if (k < 4) {
                            bytes[at + 4 + k] = (byte) ls;
                            bytes[at + 4 + k + 4] = (byte) lm;
                        } else {
                            bytes[at + 4 + k + 4] = (byte) ((ls & 0xF) | ((lm & 0xF) << 4));
                            bytes[at + 4 + k - 4] |= (byte) ((ls >> 4) << 6);
                            bytes[at + 4 + k] |= (byte) ((lm >> 4) << 6);
                        }
                        scales[g0 + k] = df * ls;
                        offsets[g0 + k] = dminf * lm;
                    }
                    int ql = at + (five ? 48 : 16);
                    int m1 = 1;
                    int m2 = 2;
                    for (int n = 0; n < 256; n += 64) {
                        for (int j = 0; j < 32; j++) {
                            int l1 = q[n + j];
                            int l2 = q[n + j + 32];
                            if (l1 > 15) {
                                l1 -= 16;
                                bytes[at + 16 + j] |= (byte) m1;
                            }
                            if (l2 > 15) {
                                l2 -= 16;
                                bytes[at + 16 + j] |= (byte) m2;
                            }
                            bytes[ql + j] = (byte) (l1 | l2 << 4);
                        }
                        m1 <<= 2;
                        m2 <<= 2;
                        ql += 32;
                    }
                    copy(q, codes, c0);
                }
                case Q6_K -> {
                    int[] q = codes(r, 256, -32, 31, i);
                    for (int k = 0; k < 16; k++) {
                        byte sc = (byte) (16 * i + k); // every int8 scale over 16 blocks
                        bytes[at + 192 + k] = sc;
                        scales[g0 + k] = df * sc;
                    }
                    putHalf(bytes, at + 208, d);
                    int ql = at;
                    int qh = at + 128;
                    for (int j = 0; j < 256; j += 128) {
                        for (int l = 0; l < 32; l++) {
                            int l1 = q[j + l] + 32;
                            int l2 = q[j + l + 32] + 32;
                            int l3 = q[j + l + 64] + 32;
                            int l4 = q[j + l + 96] + 32;
                            bytes[ql + l] = (byte) ((l1 & 0xF) | (l3 & 0xF) << 4);
                            bytes[ql + l + 32] = (byte) ((l2 & 0xF) | (l4 & 0xF) << 4);
                            bytes[qh + l] = (byte) ((l1 >> 4) | (l2 >> 4) << 2 | (l3 >> 4) << 4 | (l4 >> 4) << 6);
                        }
                        ql += 64;
                        qh += 32;
                    }
                    copy(q, codes, c0);
                }
                default -> throw new IllegalArgumentException(type.toString());
            }
        }
        return new Built(bytes, codes, scales, offsets);
    }

    /** {@code n} codes in {@code [lo, hi]}; the first block of a row runs through the extremes, the rest are random. */
    private static int[] codes(Random r, int n, int lo, int hi, int block) {
        int[] q = new int[n];
        for (int j = 0; j < n; j++) {
            q[j] = block == 0 ? lo + j % (hi - lo + 1) : lo + r.nextInt(hi - lo + 1);
        }
        if (block == 1) {
            q[0] = lo;
            q[n - 1] = hi;
        }
        return q;
    }

    /** ggml's 2-bit packing (Q2_K, low bits of Q3_K): byte 32n + l holds columns 128n + l + 32j at bit 2j. */
    private static void pack2Bit(int[] l, byte[] out, int at) {
        for (int j = 0; j < 256; j += 128) {
            for (int i = 0; i < 32; i++) {
                out[at + j / 4 + i] = (byte) (l[j + i] | l[j + i + 32] << 2 | l[j + i + 64] << 4 | l[j + i + 96] << 6);
            }
        }
    }

    private static void putInt(byte[] out, int at, int v) {
        for (int b = 0; b < 4; b++) {
            out[at + b] = (byte) (v >>> (8 * b));
        }
    }

    private static void copy(int[] q, byte[] codes, int at) {
        for (int j = 0; j < q.length; j++) {
            codes[at + j] = (byte) q[j];
        }
    }

    @Test
    void shouldCoverNegativeCodesAndAllSixBitScalesWhenBuildingFixtures() {
        // Guards the fixture itself: a builder that silently stopped covering the extremes would
        // make the hand-built test weaker without failing.
        Built q3 = build(GgmlType.Q3_K, new Random(1));
        Built q6 = build(GgmlType.Q6_K, new Random(1));
        assertTrue(min(q3.codes) == -4 && max(q3.codes) == 3);
        assertTrue(min(q6.codes) == -32 && max(q6.codes) == 31);
        boolean[] hm = new boolean[256];
        for (int i = 0; i < BLOCKS; i++) {
            for (int l = 0; l < 32; l++) {
                hm[q3.bytes[i * 110 + l] & 0xFF] = true;
            }
        }
        for (boolean seen : hm) {
            assertTrue(seen, "every hmask byte pattern");
        }
        Built q4k = build(GgmlType.Q4_K, new Random(1));
        assertTrue(min(q4k.codes) == 0 && max(q4k.codes) == 15);
    }

    private static int min(byte[] a) {
        int m = Integer.MAX_VALUE;
        for (byte b : a) {
            m = Math.min(m, b);
        }
        return m;
    }

    private static int max(byte[] a) {
        int m = Integer.MIN_VALUE;
        for (byte b : a) {
            m = Math.max(m, b);
        }
        return m;
    }
}
