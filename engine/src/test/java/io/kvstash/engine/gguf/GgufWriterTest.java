package io.kvstash.engine.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The test writer's quantizers must match ggml bit for bit, or every quantized-kernel test built on them is suspect. */
final class GgufWriterTest {

    @Test
    void shouldQuantizeQ8_0LikeGgmlWhenValuesAreKnown() {
        float[] x = new float[64];
        // amax 127 makes d = 1 and 1/d = 1, so each quant is roundf(x): halves round away from zero.
        x[0] = 127;
        x[1] = -127;
        x[2] = 2.5f;
        x[3] = -2.5f; // Math.round would give -2
        x[4] = 0.49f;
        x[5] = -0.5f;
        x[6] = 1.5f;
        // The second block stays all zero: d = 0 and every quant 0 (no division by zero).
        byte[] q = GgufWriter.quantizeQ8_0(x);

        assertEquals(2 * 34, q.length);
        ByteBuffer b = ByteBuffer.wrap(q).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals((short) 0x3C00, b.getShort(0), "fp16 1.0");
        byte[] expected = new byte[32];
        expected[0] = 127;
        expected[1] = -127;
        expected[2] = 3;
        expected[3] = -3;
        expected[4] = 0;
        expected[5] = -1;
        expected[6] = 2;
        assertArrayEquals(expected, Arrays.copyOfRange(q, 2, 34));
        assertArrayEquals(new byte[34], Arrays.copyOfRange(q, 34, 68));
    }

    @Test
    void shouldQuantizeQ4_0LikeGgmlWhenValuesAreKnown() {
        float[] x = new float[32];
        // The largest magnitude is -8, so d = -8 / -8 = 1; quant = min(15, (int) (x + 8.5)).
        x[0] = -8;   // 0
        x[1] = 7;    // 15
        x[2] = 7.4f; // (int) 15.9 = 15
        x[3] = 6.6f; // (int) 15.1 = 15
        x[4] = 6.4f; // (int) 14.9 = 14
        x[16] = 0;   // 8
        x[17] = -0.6f; // (int) 7.9 = 7
        x[18] = 0.5f;  // (int) 9.0 = 9
        x[31] = 3;     // 11
        byte[] q = GgufWriter.quantizeQ4_0(x);

        assertEquals(18, q.length);
        assertEquals((short) 0x3C00, ByteBuffer.wrap(q).order(ByteOrder.LITTLE_ENDIAN).getShort(0), "fp16 1.0");
        // Byte j: element j in the low nibble, element j + 16 in the high nibble; zeros quantize to 8.
        byte[] expected = new byte[16];
        Arrays.fill(expected, (byte) 0x88);
        expected[0] = (byte) 0x80;
        expected[1] = (byte) 0x7F;
        expected[2] = (byte) 0x9F;
        expected[3] = (byte) 0x8F;
        expected[4] = (byte) 0x8E;
        expected[15] = (byte) 0xB8;
        assertArrayEquals(expected, Arrays.copyOfRange(q, 2, 18));
    }

    @Test
    void shouldTakeSignedMaximumForQ4_0ScaleWhenLargestValueIsPositive() {
        float[] x = new float[32];
        x[0] = 4;  // first of the two largest magnitudes wins: max = 4, d = -0.5
        x[1] = -4; // -4 * (1 / -0.5) + 8.5 = 16.5, clamped to 15
        x[2] = 1;  // 1 * -2 + 8.5 = 6.5 -> 6
        byte[] q = GgufWriter.quantizeQ4_0(x);
        assertEquals((short) 0xB800, ByteBuffer.wrap(q).order(ByteOrder.LITTLE_ENDIAN).getShort(0), "fp16 -0.5");
        assertEquals((byte) 0x80, q[2], "element 0: 4 / -0.5 + 8.5 = 0.5 -> 0");
        assertEquals((byte) 0x8F, q[3], "element 1 clamped to 15");
        assertEquals((byte) 0x86, q[4]);
    }

    @Test
    void shouldStayWithinHalfAStepWhenRandomValuesAreQuantized() {
        Random random = new Random(5);
        float[] x = new float[32 * 64];
        for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian() * (1 + i / 32);
        float[] q8 = dequantizeQ8_0(GgufWriter.quantizeQ8_0(x), x.length);
        float[] q4 = dequantizeQ4_0(GgufWriter.quantizeQ4_0(x), x.length);
        for (int block = 0; block < x.length; block += 32) {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[block + j]));
            for (int j = block; j < block + 32; j++) {
                // fp16 rounding of d adds a relative 2^-11 on top of the rounding of each quant.
                assertEquals(x[j], q8[j], amax / 127 * 0.5f + amax * 1e-3f, "Q8_0 element " + j);
                // Q4_0 has 16 levels over [-amax, amax]; the clamp at 15 costs at most one full step.
                assertEquals(x[j], q4[j], amax / 8 + amax * 1e-3f, "Q4_0 element " + j);
            }
        }
    }

    @Test
    void shouldRefuseValuesWhenNotAWholeNumberOfBlocks() {
        assertThrows(IllegalArgumentException.class, () -> GgufWriter.quantizeQ8_0(new float[33]));
        assertThrows(IllegalArgumentException.class, () -> GgufWriter.quantizeQ4_0(new float[16]));
    }

    /**
     * ggml quantized these real tensors. Quantizing their dequantized values again is a fixed point
     * of ggml's reference quantizers (the scale comes back exactly, every quant lands on itself), so
     * ours must reproduce ggml's bytes exactly.
     */
    @Test
    void shouldReproduceGgmlBytesWhenRequantizingRealTensors() {
        var models = GgufFileTest.testModels();
        try (GgufFile q8 = GgufFile.open(models.resolve("stories15M-q8_0.gguf"));
             GgufFile q4 = GgufFile.open(models.resolve("stories15M-q4_0.gguf"))) {
            for (String name : new String[] {"token_embd.weight", "blk.0.attn_q.weight", "blk.5.ffn_down.weight"}) {
                byte[] ggml = q8.requireTensor(name).data().toArray(ValueLayout.JAVA_BYTE);
                int n = (int) q8.requireTensor(name).elementCount();
                assertArrayEquals(ggml, GgufWriter.quantizeQ8_0(dequantizeQ8_0(ggml, n)), "Q8_0 " + name);
            }
            for (String name : new String[] {"token_embd.weight", "blk.0.attn_q.weight", "blk.5.ffn_down.weight"}) {
                GgufTensor t = q4.requireTensor(name);
                assertEquals(GgmlType.Q4_0, t.type(), name);
                byte[] ggml = t.data().toArray(ValueLayout.JAVA_BYTE);
                assertArrayEquals(ggml, GgufWriter.quantizeQ4_0(dequantizeQ4_0(ggml, (int) t.elementCount())), "Q4_0 " + name);
            }
        }
    }

    static float[] dequantizeQ8_0(byte[] q, int n) {
        ByteBuffer b = ByteBuffer.wrap(q).order(ByteOrder.LITTLE_ENDIAN);
        float[] x = new float[n];
        for (int block = 0; block < n / 32; block++) {
            float d = Float.float16ToFloat(b.getShort(block * 34));
            for (int j = 0; j < 32; j++) x[block * 32 + j] = d * q[block * 34 + 2 + j];
        }
        return x;
    }

    static float[] dequantizeQ4_0(byte[] q, int n) {
        ByteBuffer b = ByteBuffer.wrap(q).order(ByteOrder.LITTLE_ENDIAN);
        float[] x = new float[n];
        for (int block = 0; block < n / 32; block++) {
            float d = Float.float16ToFloat(b.getShort(block * 18));
            for (int j = 0; j < 16; j++) {
                int packed = q[block * 18 + 2 + j] & 0xFF;
                x[block * 32 + j] = d * ((packed & 0xF) - 8);
                x[block * 32 + 16 + j] = d * ((packed >> 4) - 8);
            }
        }
        return x;
    }
}
