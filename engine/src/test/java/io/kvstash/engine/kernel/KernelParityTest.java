package io.kvstash.engine.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kvstash.engine.gguf.GgmlType;
import io.kvstash.engine.gguf.GgufWriter;
import io.kvstash.engine.kv.ChunkLayout;
import io.kvstash.engine.kv.KvChunk;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.kv.SlabKvStore;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Every kernel's SIMD path against its scalar twin on seeded random data. The build runs this
 * class once per vector width ({@code -Dkvstash.vector.bits=0,128,256,512}, see the engine POM);
 * at width 0 the dispatching entry points must equal the scalar reference exactly.
 */
class KernelParityTest {
    private final Arena arena = Arena.ofConfined();

    @BeforeAll
    static void requireWidth() {
        String forced = System.getProperty(Simd.PROPERTY);
        if (forced != null && !forced.isBlank()) {
            assumeTrue(Integer.parseInt(forced.trim()) <= FloatVector.SPECIES_PREFERRED.vectorBitSize(),
                    "this machine has no " + forced + "-bit vectors: skipping that width");
        }
        System.out.println("kernel parity at " + Simd.describe());
    }

    @AfterEach
    void close() {
        arena.close();
    }

    private WeightMatrix matrix(GgmlType type, float[] values, int rows, int cols) {
        byte[] bytes = switch (type) {
            case BF16 -> bf16(values);
            default -> GgufWriter.encode(type, values);
        };
        MemorySegment seg = arena.allocate(bytes.length, 64);
        MemorySegment.copy(bytes, 0, seg, ValueLayout.JAVA_BYTE, 0, bytes.length);
        return switch (type) {
            case F32 -> new F32Matrix("w", seg, rows, cols);
            case F16 -> new F16Matrix("w", seg, rows, cols);
            case BF16 -> new BF16Matrix("w", seg, rows, cols);
            case Q8_0 -> new Q8_0Matrix("w", seg, rows, cols);
            case Q4_0 -> new Q4_0Matrix("w", seg, rows, cols);
            default -> throw new IllegalArgumentException(type.toString());
        };
    }

    private static byte[] bf16(float[] v) {
        byte[] out = new byte[v.length * 2];
        for (int i = 0; i < v.length; i++) {
            int bits = Float.floatToRawIntBits(v[i]) >>> 16;
            out[2 * i] = (byte) bits;
            out[2 * i + 1] = (byte) (bits >>> 8);
        }
        return out;
    }

    private static float[] random(Random r, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextGaussian() * scale;
        }
        return a;
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"F32", "F16", "BF16", "Q8_0", "Q4_0"})
    void shouldMatchScalarTwinWhenDequantizingRandomMatrices(GgmlType type) {
        Random r = new Random(1234 + type.ordinal());
        int[] colChoices = type.blockSize == 1 ? new int[] {7, 48, 100, 288} : new int[] {32, 96, 288};
        for (int cols : colChoices) {
            int rows = 13;
            WeightMatrix w = matrix(type, random(r, rows * cols, 0.5f), rows, cols);
            float[] rowRef = new float[cols];
            float[] rowGot = new float[cols];
            for (int row = 0; row < rows; row++) {
                w.dequantizeRowScalar(row, rowRef, 0);
                w.dequantizeRow(row, rowGot, 0);
                assertArrayEqualsExactly(rowRef, rowGot, type + " dequantize row " + row + " cols " + cols);
                for (int c = 0; c < cols; c++) {
                    assertEquals(rowRef[c], w.get(row, c), 0f, type + " get(" + row + "," + c + ")");
                }
            }
        }
    }

    /**
     * The packed product is bit-identical to its scalar twin at every width, for every token count
     * and every split of the rows, and a token's outputs do not depend on the other tokens of the
     * batch: what makes a batched decode produce exactly what a solo one does.
     */
    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"F32", "F16", "BF16", "Q8_0", "Q4_0"})
    void shouldMatchScalarTwinBitForBitWhenMultiplyingPackedMatrices(GgmlType type) {
        Random r = new Random(4321 + type.ordinal());
        int[] colChoices = type.blockSize == 1 ? new int[] {7, 48, 100} : new int[] {32, 96, 288};
        for (int cols : colChoices) {
            for (int rows : new int[] {13, 48, 100}) {
                WeightMatrix w = matrix(type, random(r, rows * cols, 0.5f), rows, cols);
                assertPackedProductExact(w, r, type + " " + rows + "x" + cols);
            }
        }
    }

    /**
     * The legacy block formats no test model carries, with and without offsets (Q4_1 and Q5_1 have a
     * min, Q5_0 is symmetric and is packed without offsets): random codes under sane half-precision
     * scales and mins, packed and multiplied bit for bit as the scalar twin and the file's dequantizer.
     */
    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"Q4_1", "Q5_0", "Q5_1"})
    void shouldMatchScalarTwinBitForBitWhenMultiplyingLegacyBlockFormats(GgmlType type) {
        Random r = new Random(777 + type.ordinal());
        boolean withMin = type != GgmlType.Q5_0;
        for (int cols : new int[] {32, 96, 288}) {
            for (int rows : new int[] {13, 48}) {
                int blocks = rows * cols / type.blockSize;
                byte[] bytes = new byte[blocks * type.blockBytes];
                r.nextBytes(bytes);
                for (int b = 0; b < blocks; b++) {
                    int at = b * type.blockBytes;
                    short d = Float.floatToFloat16(0.002f + 0.05f * r.nextFloat());
                    bytes[at] = (byte) d;
                    bytes[at + 1] = (byte) (d >> 8);
                    if (withMin) {
                        short m = Float.floatToFloat16(r.nextFloat() - 0.5f);
                        bytes[at + 2] = (byte) m;
                        bytes[at + 3] = (byte) (m >> 8);
                    }
                }
                MemorySegment seg = arena.allocate(bytes.length, 64);
                MemorySegment.copy(bytes, 0, seg, ValueLayout.JAVA_BYTE, 0, bytes.length);
                assertPackedProductExact(new BlockMatrix("w", seg, rows, cols, type), r, type + " " + rows + "x" + cols);
            }
        }
    }

    @Test
    void shouldMatchScalarTwinBitForBitWhenMultiplyingKQuantTensors() throws Exception {
        Random r = new Random(99);
        java.util.Set<GgmlType> seen = java.util.EnumSet.noneOf(GgmlType.class);
        for (String model : new String[] {"stories15M-q4_k_m.gguf", "stories15M-kmix.gguf"}) {
            try (io.kvstash.engine.gguf.GgufFile f = io.kvstash.engine.gguf.GgufFile.open(io.kvstash.engine.testing.TestModels.model(model))) {
                for (io.kvstash.engine.gguf.GgufTensor t : f.tensors().values()) {
                    if (t.dims().length != 2 || t.type().blockSize == 1 || !seen.add(t.type())) {
                        continue;
                    }
                    WeightMatrix w = WeightMatrix.of(t);
                    assertPackedProductExact(w, r, model + " " + t.name() + " " + t.type());
                }
            }
        }
        System.out.println("packed K-quant products checked for " + seen);
        assertTrue(seen.containsAll(java.util.EnumSet.of(GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K)),
                "the test models cover every K-quant, got " + seen);
    }

    private void assertPackedProductExact(WeightMatrix w, Random r, String what) {
        PanelMatrix p = PanelMatrix.pack(w, arena);
        int rows = w.rows;
        int cols = w.cols;
        float[] row = new float[cols];
        for (int i = 0; i < rows; i += Math.max(1, rows / 7)) {
            w.dequantizeRowScalar(i, row, 0);
            for (int c = 0; c < cols; c++) {
                assertEquals(Float.floatToRawIntBits(row[c]), Float.floatToRawIntBits(p.weight(i, c)), what + " packed weight (" + i + "," + c + ")");
            }
        }
        float[] scratch = new float[PanelMatrix.scratchFloats(cols)];
        // 9 and 17: one and two eight-token passes of the half-tile kernel, then a four-token pass;
        // 66: a second round of partial sums (64 tokens per round), whose first pass decodes again.
        for (int n : new int[] {1, 2, 3, 4, 5, 9, 17, 66}) {
            float[] x = random(r, n * cols, 1f);
            int stride = rows + 3;
            float[] ref = new float[n * stride];
            float[] got = new float[n * stride];
            java.util.Arrays.fill(got, Float.NaN);
            java.util.Arrays.fill(ref, Float.NaN);
            p.multiplyScalar(x, n, ref, 0, stride, 0, rows);
            // Two calls over a split at a panel boundary inside the matrix, as the pool hands them out.
            int split = Math.min(rows, PanelMatrix.PANEL * Math.max(1, rows / (2 * PanelMatrix.PANEL)));
            p.multiply(x, n, got, 0, stride, split, rows, scratch);
            p.multiply(x, n, got, 0, stride, 0, split, scratch);
            assertArrayEqualsExactly(ref, got, what + " product of " + n + " tokens");
            // Pieces of the pool's grain for this many tokens (half tiles when batched).
            java.util.Arrays.fill(got, Float.NaN);
            int grain = PanelMatrix.rowGrain(n);
            for (int r0 = 0; r0 < rows; r0 += grain) {
                p.multiply(x, n, got, 0, stride, r0, Math.min(rows, r0 + grain), scratch);
            }
            assertArrayEqualsExactly(ref, got, what + " product of " + n + " tokens in pieces of " + grain + " rows");
            for (int t = 0; t < n; t++) {
                float[] solo = new float[rows];
                p.multiply(java.util.Arrays.copyOfRange(x, t * cols, (t + 1) * cols), 1, solo, 0, rows, 0, rows, scratch);
                assertArrayEqualsExactly(java.util.Arrays.copyOfRange(ref, t * stride, t * stride + rows), solo,
                        what + " token " + t + " of " + n + " alone");
                for (int i = 0; i < rows; i += Math.max(1, rows / 40)) {
                    double sum = 0;
                    double mag = 0;
                    for (int c = 0; c < cols; c++) {
                        sum += (double) p.weight(i, c) * x[t * cols + c];
                        mag += Math.abs((double) p.weight(i, c) * x[t * cols + c]);
                    }
                    assertEquals(sum, ref[t * stride + i], 1e-5 * mag + 1e-6, what + " row " + i + " token " + t + " against float64");
                }
                for (int i = rows; i < stride; i++) {
                    assertTrue(Float.isNaN(got[t * stride + i]), what + ": wrote past the matrix's rows at " + i);
                }
            }
        }
    }

    @Test
    void shouldRoundFloatsToHalvesAsIeeeDoes() {
        // Every half is its own image; midpoints between neighbouring halves go to the even one.
        for (int h = 0; h < 0x7c00; h++) {
            float v = Float.float16ToFloat((short) h);
            assertEquals(h, Half.fromFloat(v) & 0xffff, "half " + h);
            assertEquals(h | 0x8000, Half.fromFloat(-v) & 0xffff, "half -" + h);
            float next = Float.float16ToFloat((short) (h + 1));
            double mid = ((double) v + next) / 2;
            if (h < 0x7bff && (float) mid == mid) {
                assertEquals((h & 1) == 0 ? h : h + 1, Half.fromFloat((float) mid) & 0xffff, "midpoint above half " + h);
                assertEquals(h, Half.fromFloat(Math.nextDown((float) mid)) & 0xffff, "just below the midpoint above half " + h);
                assertEquals(h + 1, Half.fromFloat(Math.nextUp((float) mid)) & 0xffff, "just above the midpoint above half " + h);
            }
        }
        assertEquals(0x7c00, Half.fromFloat(65520f) & 0xffff, "65520 rounds to infinity");
        assertEquals(0x7bff, Half.fromFloat(65519.99f) & 0xffff);
        assertEquals(0x7c00, Half.fromFloat(Float.POSITIVE_INFINITY) & 0xffff);
        assertEquals(0xfc00, Half.fromFloat(Float.NEGATIVE_INFINITY) & 0xffff);
        assertTrue(Float.isNaN(Float.float16ToFloat(Half.fromFloat(Float.NaN))));
        assertEquals(0, Half.fromFloat(0x1p-26f) & 0xffff, "a quarter of the smallest subnormal rounds to zero");
        assertEquals(1, Half.fromFloat(0x1.8p-25f) & 0xffff, "three quarters rounds up");
    }

    @Test
    void shouldConvertEveryHalfFloatExactly() {
        int n = 1 << 16;
        float[] values = new float[n];
        byte[] bytes = new byte[2 * n];
        for (int i = 0; i < n; i++) {
            bytes[2 * i] = (byte) i;
            bytes[2 * i + 1] = (byte) (i >>> 8);
            values[i] = Float.float16ToFloat((short) i);
        }
        MemorySegment seg = arena.allocate(bytes.length, 64);
        MemorySegment.copy(bytes, 0, seg, ValueLayout.JAVA_BYTE, 0, bytes.length);
        WeightMatrix w = new F16Matrix("all-halves", seg, n / 256, 256);
        float[] row = new float[256];
        for (int r = 0; r < n / 256; r++) {
            w.dequantizeRow(r, row, 0);
            for (int c = 0; c < 256; c++) {
                float expected = values[r * 256 + c];
                if (Float.isNaN(expected)) {
                    // NaN payloads may differ (the JDK quiets signalling NaNs); NaN must stay NaN.
                    assertTrue(Float.isNaN(row[c]), "half 0x" + Integer.toHexString(r * 256 + c) + " is NaN but became " + row[c]);
                    continue;
                }
                assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(row[c]),
                        "half 0x" + Integer.toHexString(r * 256 + c) + " → " + expected + " but got " + row[c]);
            }
        }
    }

    @Test
    void shouldMatchScalarWhenComputingVectorMath() {
        Random r = new Random(99);
        for (int n : new int[] {1, 5, 16, 48, 100, 288, 1000}) {
            float[] a = random(r, n + 3, 1f);
            float[] b = random(r, n + 3, 1f);
            assertClose(VectorMath.dotScalar(a, 3, b, 1, n), VectorMath.dot(a, 3, b, 1, n), magnitude(a, 3, b, 1, n), "dot n=" + n);

            float[] y = random(r, n, 1f);
            float[] yRef = y.clone();
            VectorMath.axpy(0.7f, a, 0, y, 0, n);
            for (int i = 0; i < n; i++) {
                yRef[i] += 0.7f * a[i];
                assertEquals(yRef[i], y[i], 1e-5f * (1 + Math.abs(yRef[i])), "axpy");
            }

            float[] weight = random(r, n, 1f);
            float[] norm = new float[n];
            VectorMath.rmsNorm(a, 0, weight, 1e-5f, norm, 0, n);
            double ss = 0;
            for (int i = 0; i < n; i++) {
                ss += (double) a[i] * a[i];
            }
            double inv = 1 / Math.sqrt(ss / n + 1e-5);
            for (int i = 0; i < n; i++) {
                assertEquals(a[i] * inv * weight[i], norm[i], 1e-5 * (1 + Math.abs(norm[i])), "rmsNorm");
            }

            float[] gate = random(r, n, 2f);
            float[] up = random(r, n, 2f);
            float[] g = gate.clone();
            VectorMath.swiglu(g, 0, up, 0, n);
            float[] gTwin = gate.clone();
            VectorMath.swigluScalar(gTwin, 0, up, 0, n);
            assertArrayEqualsExactly(gTwin, g, "swiglu against its scalar twin");
            for (int i = 0; i < n; i++) {
                double expected = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
                assertEquals(expected, g[i], 1e-5 * (1 + Math.abs(expected)), "swiglu");
            }

            float[] s = random(r, n, 3f);
            float[] sm = s.clone();
            VectorMath.softmax(sm, 0, n);
            double max = Double.NEGATIVE_INFINITY;
            for (float v : s) {
                max = Math.max(max, v);
            }
            double sum = 0;
            for (float v : s) {
                sum += Math.exp(v - max);
            }
            float[] twin = s.clone();
            VectorMath.softmaxScalar(twin, 0, n);
            for (int i = 0; i < n; i++) {
                assertEquals(Math.exp(s[i] - max) / sum, sm[i], 1e-6, "softmax");
            }
            assertArrayEqualsExactly(twin, sm, "softmax against its scalar twin");

            // expShift: softmax's numerators without the division, shifted by any value, and their sum.
            float shift = (float) max - 0.5f;
            float[] ex = s.clone();
            float exSum = VectorMath.expShift(ex, 0, n, shift);
            float[] exTwin = s.clone();
            float exTwinSum = VectorMath.expShiftScalar(exTwin, 0, n, shift);
            assertArrayEqualsExactly(exTwin, ex, "expShift against its scalar twin");
            assertEquals(exTwinSum, exSum, 0f, "expShift's sum against its scalar twin");
            for (int i = 0; i < n; i++) {
                assertEquals(Math.exp(s[i] - shift), ex[i], 1e-6 * Math.exp(s[i] - shift), "expShift");
            }
            assertEquals(sum * Math.exp(max - shift), exSum, 1e-5 * exSum, "expShift's sum");

            // argmax: lowest index among equal maxima; −1 for NaN or +∞ anywhere, or when all are −∞.
            float[] a2 = random(r, n, 1f);
            int expected = 0;
            for (int i = 1; i < n; i++) {
                if (a2[i] > a2[expected]) {
                    expected = i;
                }
            }
            assertEquals(expected, VectorMath.argmax(a2, n), "argmax of " + n);
            a2[n - 1] = a2[expected];
            assertEquals(expected, VectorMath.argmax(a2, n), "argmax keeps the lowest index on a tie");
            a2[n / 2] = Float.NaN;
            assertEquals(-1, VectorMath.argmax(a2, n), "argmax with NaN");
            a2[n / 2] = Float.POSITIVE_INFINITY;
            assertEquals(-1, VectorMath.argmax(a2, n), "argmax with +inf");
            java.util.Arrays.fill(a2, Float.NEGATIVE_INFINITY);
            assertEquals(-1, VectorMath.argmax(a2, n), "argmax when every entry is -inf");
            a2[n - 1] = -1e30f;
            assertEquals(n - 1, VectorMath.argmax(a2, n), "argmax with one finite entry among -inf");
        }
    }

    @Test
    void shouldComputeExpWithinTwoUlpsEverywhere() {
        // Every float from -87 to 88 in steps of about 2^-12 (and the values around the limits).
        for (float x = -87f; x <= 88f; x = Math.nextUp(x + 0x1p-12f)) {
            float e = VectorMath.exp(x);
            double exact = Math.exp(x);
            if (Math.abs(e - exact) > 2 * Math.ulp((float) exact)) {
                throw new AssertionError("exp(" + x + ") = " + e + ", exactly " + exact);
            }
        }
        assertEquals(0f, VectorMath.exp(-87.5f));
        assertEquals(0f, VectorMath.exp(Float.NEGATIVE_INFINITY));
        assertEquals(Float.POSITIVE_INFINITY, VectorMath.exp(89f));
        assertEquals(Float.POSITIVE_INFINITY, VectorMath.exp(Float.POSITIVE_INFINITY));
        assertTrue(Float.isNaN(VectorMath.exp(Float.NaN)));
        assertEquals(1f, VectorMath.exp(0f));
        assertEquals(1f, VectorMath.exp(-0f));
    }

    @Test
    void shouldMatchScalarWhenAttendingOverKvMemory() {
        Random r = new Random(7);
        for (int n : new int[] {8, 48, 64, 100}) {
            float[] values = random(r, n, 1f);
            float[] q = random(r, n, 1f);
            MemorySegment f32 = arena.allocate(4L * n, 64);
            MemorySegment f16 = arena.allocate(2L * n, 64);
            KvKernels.storeF32(values, 0, f32, 0, n);
            KvKernels.storeF16(values, 0, f16, 0, n);
            assertClose(KvKernels.dotF32Scalar(f32, 0, q, 0, n), KvKernels.dotF32(f32, 0, q, 0, n), magnitude(values, 0, q, 0, n), "kv dot f32");
            assertClose(KvKernels.dotF16Scalar(f16, 0, q, 0, n), KvKernels.dotF16(f16, 0, q, 0, n), magnitude(values, 0, q, 0, n), "kv dot f16");
            float[] a = random(r, n, 1f);
            float[] b = a.clone();
            KvKernels.axpyF32(0.3f, f32, 0, a, 0, n);
            KvKernels.axpyF32Scalar(0.3f, f32, 0, b, 0, n);
            assertArrayClose(b, a, "kv axpy f32");
            a = random(r, n, 1f);
            b = a.clone();
            KvKernels.axpyF16(0.3f, f16, 0, a, 0, n);
            KvKernels.axpyF16Scalar(0.3f, f16, 0, b, 0, n);
            assertArrayClose(b, a, "kv axpy f16");
        }
    }

    /**
     * The F32 block kernels (the tail of every sequence): scores of several tokens per pass have
     * exactly the bits of one token's dot product, whatever the token count; the weighted sum of
     * values matches its scalar twin. Head dims with and without a vector remainder.
     */
    @Test
    void shouldScoreF32BlocksAsOneDotProductPerToken() {
        Random r = new Random(11);
        for (int d : new int[] {8, 40, 48, 64, 100}) {
            for (int count : new int[] {1, 3, 4, 7, 33, 64}) {
                float[] keys = random(r, count * d, 1f);
                MemorySegment block = arena.allocate(4L * count * d, 64);
                KvKernels.storeF32(keys, 0, block, 0, count * d);
                float[] q = random(r, d + 5, 1f);
                float[] scores = new float[count + 2];
                float[] scalar = new float[count + 2];
                KvKernels.scoresF32(block, 0, d, q, 5, count, 0.25f, scores, 2);
                KvKernels.scoresF32Scalar(block, 0, d, q, 5, count, 0.25f, scalar, 2);
                for (int t = 0; t < count; t++) {
                    float one = 0.25f * KvKernels.dotF32(block, 4L * t * d, q, 5, d);
                    assertEquals(Float.floatToRawIntBits(one), Float.floatToRawIntBits(scores[2 + t]), "d=" + d + " count=" + count + " t=" + t);
                    assertClose(scalar[2 + t], scores[2 + t], 0.25 * magnitude(keys, t * d, q, 5, d), "f32 scores d=" + d);
                }
                float[] w = random(r, count + 1, 0.2f);
                float[] a = random(r, d + 3, 1f);
                float[] b = a.clone();
                KvKernels.valuesF32(block, 0, d, w, 1, count, a, 3);
                KvKernels.valuesF32Scalar(block, 0, d, w, 1, count, b, 3);
                assertEquals(a[0], b[0]);
                for (int c = 0; c < d; c++) {
                    double m = Math.abs(b[3 + c]);
                    for (int t = 0; t < count; t++) {
                        m += Math.abs(w[1 + t] * keys[t * d + c]);
                    }
                    assertClose(b[3 + c], a[3 + c], m, "f32 values d=" + d + " count=" + count + " c=" + c);
                }
            }
        }
    }

    /**
     * Q8 and KIVI attention kernels against their scalar twins on sealed chunks of random KV, every
     * head dim shape, and for KIVI chunk sizes whose code rows take one, two or three vectors (the
     * code loops pair vectors of bytes).
     */
    @ParameterizedTest
    @EnumSource(value = KvFormat.class, names = {"Q8", "KIVI4", "KIVI2"})
    void shouldMatchScalarTwinWhenAttendingOverQuantizedChunks(KvFormat format) {
        Random r = new Random(77 + format.ordinal());
        int[] chunkSizes = format == KvFormat.KIVI4 ? new int[] {32, 64, 96, 128} : format == KvFormat.KIVI2 ? new int[] {64, 128, 192} : new int[] {64};
        for (int n : chunkSizes) {
            for (int d : new int[] {8, 20, 48, 64, 128}) {
                KvGeometry g = new KvGeometry(2, 2, d, n, format);
                ChunkLayout layout = g.layout();
                try (SlabKvStore store = new SlabKvStore(g, Long.MAX_VALUE)) {
                    KvChunk tail = store.allocate();
                    for (int l = 0; l < 2; l++) {
                        for (int t = 0; t < n; t++) {
                            tail.write(l, t, random(r, g.kvDim(), 3f), 0, random(r, g.kvDim(), 1f), 0);
                        }
                    }
                    KvChunk chunk = store.seal(tail);
                    float[] scratchA = new float[KvChunk.scratchFloats(g)];
                    float[] scratchB = new float[KvChunk.scratchFloats(g)];
                    for (int l = 0; l < 2; l++) {
                        for (int h = 0; h < 2; h++) {
                            float[] q = random(r, d + 3, 1f);
                            float[] w = random(r, n + 2, 0.1f);
                            float[] simd = new float[n];
                            float[] scalar = new float[n];
                            float[] accSimd = random(r, d, 1f);
                            float[] accScalar = accSimd.clone();
                            long kb = layout.blockOffset(l, false, h);
                            long vb = layout.blockOffset(l, true, h);
                            if (format == KvFormat.Q8) {
                                QuantizedKvKernels.q8Scores(chunk.data(), kb, layout.codesOffset(false), n, d, q, 3, n, 0.5f, simd, 0);
                                QuantizedKvKernels.q8ScoresScalar(chunk.data(), kb, layout.codesOffset(false), n, d, q, 3, n, 0.5f, scalar, 0);
                                QuantizedKvKernels.q8AccumulateValues(chunk.data(), vb, layout.codesOffset(true), n, d, w, 2, n, accSimd, 0);
                                QuantizedKvKernels.q8AccumulateValuesScalar(chunk.data(), vb, layout.codesOffset(true), n, d, w, 2, n, accScalar, 0);
                            } else {
                                int bits = format.codeBits;
                                QuantizedKvKernels.kiviScores(bits, chunk.data(), kb, layout.scalesOffset(false), layout.codesOffset(false), n, d,
                                        q, 3, 0.5f, simd, 0, scratchA);
                                QuantizedKvKernels.kiviScoresScalar(bits, chunk.data(), kb, layout.scalesOffset(false), layout.codesOffset(false), n,
                                        d, q, 3, 0.5f, scalar, 0, scratchB);
                                QuantizedKvKernels.kiviAccumulateValues(bits, chunk.data(), vb, layout.scalesOffset(true), layout.codesOffset(true),
                                        n, d, w, 2, accSimd, 0, scratchA);
                                QuantizedKvKernels.kiviAccumulateValuesScalar(bits, chunk.data(), vb, layout.scalesOffset(true),
                                        layout.codesOffset(true), n, d, w, 2, accScalar, 0, scratchB);
                            }
                            for (int t = 0; t < n; t++) {
                                if (format == KvFormat.Q8) {
                                    assertEquals(Float.floatToRawIntBits(scalar[t]), Float.floatToRawIntBits(simd[t]),
                                            format + " n=" + n + " d=" + d + " score " + t + ": bit for bit");
                                }
                                assertEquals(scalar[t], simd[t], 1e-4f * (1 + Math.abs(scalar[t])), format + " n=" + n + " d=" + d + " score " + t);
                            }
                            for (int c = 0; c < d; c++) {
                                if (format == KvFormat.Q8) {
                                    assertEquals(Float.floatToRawIntBits(accScalar[c]), Float.floatToRawIntBits(accSimd[c]),
                                            format + " n=" + n + " d=" + d + " value " + c + ": bit for bit");
                                }
                                assertEquals(accScalar[c], accSimd[c], 1e-4f * (1 + Math.abs(accScalar[c])), format + " n=" + n + " d=" + d + " value " + c);
                            }
                        }
                    }
                }
            }
        }
    }

    private static double magnitude(float[] row, float[] x, int xOff) {
        return magnitude(row, 0, x, xOff, row.length);
    }

    private static double magnitude(float[] a, int aOff, float[] b, int bOff, int n) {
        double m = 0;
        for (int i = 0; i < n; i++) {
            m += Math.abs((double) a[aOff + i] * b[bOff + i]);
        }
        return m;
    }

    /** Summation order differs between paths; the error bound scales with Σ|aᵢbᵢ|. */
    private static void assertClose(double expected, double actual, double magnitude, String what) {
        double tol = 1e-5 * Math.max(1, magnitude);
        assertTrue(Math.abs(expected - actual) <= tol, what + ": expected " + expected + " got " + actual + " (tolerance " + tol + ")");
    }

    private static void assertArrayClose(float[] expected, float[] actual, String what) {
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], 1e-5f * (1 + Math.abs(expected[i])), what + " [" + i + "]");
        }
    }

    private static void assertArrayEqualsExactly(float[] expected, float[] actual, String what) {
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(actual[i]),
                    what + " [" + i + "]: " + expected[i] + " vs " + actual[i]);
        }
    }
}
