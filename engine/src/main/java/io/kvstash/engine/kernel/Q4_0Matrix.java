package io.kvstash.engine.kernel;

import io.kvstash.engine.gguf.GgmlType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/**
 * GGML Q4_0: blocks of 32 weights, a half-precision scale {@code d} and 16 bytes of nibbles;
 * byte j holds weight j in its low nibble and weight j+16 in its high nibble; w = d·(q − 8).
 */
public final class Q4_0Matrix extends WeightMatrix {
    private static final int BLOCK = 32;
    private static final int BLOCK_BYTES = 18;
    /**
     * The SIMD paths read a high nibble h as the signed byte {@code (q & 0xF0) ^ 0x80 = 16·(h − 8)}
     * (x86 has no byte shift), so their high-nibble sums carry a factor 16 that this undoes.
     */
    private static final float HIGH_NIBBLE_SCALE = 0.0625f;
    private final int blocks;

    Q4_0Matrix(String name, MemorySegment data, int rows, int cols) {
        super(name, data, rows, cols, GgmlType.Q4_0);
        this.blocks = cols / BLOCK;
    }

    @Override
    public GgmlType type() {
        return GgmlType.Q4_0;
    }

    private int code(long block, int j) {
        int b = data.get(ValueLayout.JAVA_BYTE, block + 2 + (j & 15)) & 0xFF;
        return (j < 16 ? b & 0x0F : b >>> 4) - 8;
    }

    @Override
    public float get(int row, int col) {
        long block = row * rowBytes + (long) (col / BLOCK) * BLOCK_BYTES;
        return half(data, block) * code(block, col % BLOCK);
    }

    @Override
    public void dequantizeRowScalar(int row, float[] out, int off) {
        long base = row * rowBytes;
        for (int b = 0; b < blocks; b++) {
            long block = base + (long) b * BLOCK_BYTES;
            float d = half(data, block);
            for (int j = 0; j < BLOCK; j++) {
                out[off + b * BLOCK + j] = d * code(block, j);
            }
        }
    }

    @Override
    void dequantizeRowSimd(int row, float[] out, int off) {
        long base = row * rowBytes;
        for (int b = 0; b < blocks; b++) {
            long block = base + (long) b * BLOCK_BYTES;
            float scale = half(data, block);
            FloatVector d = FloatVector.broadcast(Simd.F, scale);
            FloatVector dHigh = FloatVector.broadcast(Simd.F, scale * 0.0625f);
            int ob = off + b * BLOCK;
            for (int j = 0; j < BLOCK / 2; j += Simd.BL) {
                ByteVector q = ByteVector.fromMemorySegment(Simd.B, data, block + 2 + j, ByteOrder.LITTLE_ENDIAN);
                ByteVector lo = q.and((byte) 0x0F).sub((byte) 8);
                ByteVector hi = q.and((byte) 0xF0).lanewise(VectorOperators.XOR, (byte) 0x80);
                for (int p = 0; p < Simd.PARTS; p++) {
                    ((FloatVector) lo.convertShape(VectorOperators.B2F, Simd.F, p)).mul(d).intoArray(out, ob + j + p * Simd.FL);
                    ((FloatVector) hi.convertShape(VectorOperators.B2F, Simd.F, p)).mul(dHigh).intoArray(out, ob + 16 + j + p * Simd.FL);
                }
            }
        }
    }

}
