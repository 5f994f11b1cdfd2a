package io.kvstash.engine.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvstash.engine.gguf.GgmlType;
import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.gguf.GgufTensor;
import io.kvstash.engine.testing.TestModels;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.EnumSet;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link BlockDecoder} on real llama.cpp-quantized models against numbers ggml produced
 * ({@code reference/dequant-stories15M-*.json}) and against the engine's own Q8_0/Q4_0 kernels.
 */
class BlockDecoderModelTest {

    @ParameterizedTest(name = "{0}")
    @CsvSource({
        "stories15M-q4_k_m, Q8_0 Q5_0 Q4_K Q6_K",
        "stories15M-kmix, Q8_0 Q5_0 Q4_1 Q5_1 Q4_0 Q2_K Q3_K Q4_K Q5_K Q6_K"
    })
    void shouldMatchGgmlDequantizedRowsAndSumsWhenDecodingQuantizedModel(String model, String expectedTypes) throws IOException {
        JsonNode ref = new ObjectMapper().readTree(TestModels.reference("dequant-" + model + ".json").toFile());
        Set<GgmlType> checked = EnumSet.noneOf(GgmlType.class);
        try (GgufFile gguf = GgufFile.open(TestModels.model(model + ".gguf"))) {
            for (JsonNode entry : ref.get("entries")) {
                GgmlType type = GgmlType.valueOf(entry.get("type").asText());
                if (type == GgmlType.F16 || type == GgmlType.F32) {
                    continue;
                }
                String name = entry.get("tensor").asText();
                GgufTensor t = gguf.requireTensor(name);
                assertEquals(type, t.type(), name);
                assertEquals(entry.get("data_offset").asLong(), gguf.dataOffset() + t.offset(), name + " data offset");
                assertEquals(entry.get("n_bytes").asLong(), t.data().byteSize(), name + " bytes");
                assertEquals(entry.get("ne").get(0).asLong(), t.rowLength(), name + " row length");
                checkTensor(BlockDecoder.of(type), t, entry);
                checked.add(type);
            }
        }
        Set<GgmlType> expected = EnumSet.noneOf(GgmlType.class);
        for (String s : expectedTypes.split(" ")) {
            expected.add(GgmlType.valueOf(s));
        }
        assertEquals(expected, checked, "types checked against " + model);
    }

    private static void checkTensor(BlockDecoder decoder, GgufTensor t, JsonNode entry) {
        String name = t.name() + " (" + t.type() + ")";
        int cols = (int) t.rowLength();
        int rows = (int) t.rowCount();
        long rowBytes = t.type().bytesFor(cols);
        int groups = cols / decoder.group();
        byte[] codes = new byte[cols];
        float[] scales = new float[groups];
        float[] offsets = new float[groups];
        float[] row = new float[cols];

        JsonNode refRows = entry.get("rows");
        for (int r = 0; r < refRows.size(); r++) {
            decoder.decodeRow(t.data(), r * rowBytes, cols, codes, scales, offsets);
            values(decoder, codes, scales, offsets, row);
            JsonNode refRow = refRows.get(r);
            assertEquals(cols, refRow.size(), name + " reference row length");
            for (int c = 0; c < cols; c++) {
                double expected = refRow.get(c).asDouble();
                // The reference printed float32 values rounded to 6 decimals: ours, rounded the
                // same way, must print the same number.
                double ours = BigDecimal.valueOf((double) row[c]).setScale(6, RoundingMode.HALF_EVEN).doubleValue();
                if (ours != expected) {
                    fail(name + " row " + r + " col " + c + ": ggml " + expected + ", decoded " + row[c]);
                }
            }
        }

        // Every block of the tensor: sums of all values. Ours is compensated (Neumaier), so it is
        // the exact sum to ~1 ulp; the reference is some float64 summation of the same float32
        // values, whose error is at most (n - 1) u Σ|x| even summed naively (u = 2^-53). Any decoding
        // mistake moves the sum by at least the smallest step of one weight, far more than that.
        Sum sum = new Sum();
        Sum abs = new Sum();
        for (int r = 0; r < rows; r++) {
            decoder.decodeRow(t.data(), r * rowBytes, cols, codes, scales, offsets);
            values(decoder, codes, scales, offsets, row);
            for (float v : row) {
                sum.add(v);
                abs.add(Math.abs(v));
            }
        }
        double n = (double) rows * cols;
        double bound = n * 0x1p-53 * abs.value();
        double refSum = entry.get("full_tensor_sum").asDouble();
        double refAbs = entry.get("full_tensor_abs_sum").asDouble();
        System.out.printf("%-28s %-5s sum %.17g vs %.17g (diff %.2e)  abs %.17g vs %.17g (diff %.2e)  bound %.2e%n",
                t.name(), t.type(), sum.value(), refSum, sum.value() - refSum, abs.value(), refAbs, abs.value() - refAbs, bound);
        assertEquals(refSum, sum.value(), bound, name + " full tensor sum");
        assertEquals(refAbs, abs.value(), bound, name + " full tensor abs sum");
    }

    @Test
    void shouldEqualQ8_0MatrixBitForBitWhenDecodingQ8_0Model() {
        assertSameAsWeightMatrix("stories15M-q8_0.gguf", GgmlType.Q8_0);
    }

    @Test
    void shouldEqualQ4_0MatrixBitForBitWhenDecodingQ4_0Model() {
        assertSameAsWeightMatrix("stories15M-q4_0.gguf", GgmlType.Q4_0);
    }

    private static void assertSameAsWeightMatrix(String file, GgmlType type) {
        BlockDecoder decoder = BlockDecoder.of(type);
        int tensors = 0;
        try (GgufFile gguf = GgufFile.open(TestModels.model(file))) {
            for (GgufTensor t : gguf.tensors().values()) {
                if (t.type() != type) {
                    continue;
                }
                tensors++;
                WeightMatrix m = WeightMatrix.of(t);
                long rowBytes = type.bytesFor(m.cols);
                byte[] codes = new byte[m.cols];
                float[] scales = new float[m.cols / decoder.group()];
                float[] decoded = new float[m.cols];
                float[] expected = new float[m.cols];
                for (int r = 0; r < m.rows; r++) {
                    decoder.decodeRow(t.data(), r * rowBytes, m.cols, codes, scales, null);
                    values(decoder, codes, scales, null, decoded);
                    m.dequantizeRowScalar(r, expected, 0);
                    for (int c = 0; c < m.cols; c++) {
                        if (Float.floatToRawIntBits(expected[c]) != Float.floatToRawIntBits(decoded[c])) {
                            fail(t.name() + " row " + r + " col " + c + ": " + type + "Matrix " + expected[c] + ", decoded " + decoded[c]);
                        }
                    }
                }
            }
        }
        assertTrue(tensors > 0, file + " has no " + type + " tensors");
    }

    /** {@code code * scale - offset} as the repacked kernels compute it. */
    private static void values(BlockDecoder decoder, byte[] codes, float[] scales, float[] offsets, float[] out) {
        for (int c = 0; c < codes.length; c++) {
            int g = c / decoder.group();
            float product = (float) codes[c] * scales[g];
            out[c] = offsets == null ? product : product - offsets[g];
        }
    }

    /** Neumaier's compensated sum. */
    private static final class Sum {
        private double s;
        private double comp;

        void add(double x) {
            double t = s + x;
            comp += Math.abs(s) >= Math.abs(x) ? (s - t) + x : (x - t) + s;
            s = t;
        }

        double value() {
            return s + comp;
        }
    }
}
