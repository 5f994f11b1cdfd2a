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
            FloatVector d = FloatVector.broadcast(Simd.F, half(data, block));
            int ob = off + b * BLOCK;
            for (int j = 0; j < BLOCK / 2; j += Simd.BL) {
                ByteVector q = ByteVector.fromMemorySegment(Simd.B, data, block + 2 + j, ByteOrder.LITTLE_ENDIAN);
                ByteVector lo = q.and((byte) 0x0F).sub((byte) 8);
                ByteVector hi = q.lanewise(VectorOperators.LSHR, 4).sub((byte) 8);
                for (int p = 0; p < Simd.PARTS; p++) {
                    ((FloatVector) lo.convertShape(VectorOperators.B2F, Simd.F, p)).mul(d).intoArray(out, ob + j + p * Simd.FL);
                    ((FloatVector) hi.convertShape(VectorOperators.B2F, Simd.F, p)).mul(d).intoArray(out, ob + 16 + j + p * Simd.FL);
                }
            }
        }
    }

    @Override
    public float dotScalar(int row, float[] x, int xOff) {
        long base = row * rowBytes;
        float sum = 0f;
        for (int b = 0; b < blocks; b++) {
            long block = base + (long) b * BLOCK_BYTES;
            float blockSum = 0f;
            for (int j = 0; j < BLOCK; j++) {
                blockSum += code(block, j) * x[xOff + b * BLOCK + j];
            }
            sum += blockSum * half(data, block);
        }
        return sum;
    }

    @Override
    float dotSimd(int row, float[] x, int xOff) {
        long base = row * rowBytes;
        FloatVector acc = FloatVector.zero(Simd.F);
        for (int b = 0; b < blocks; b++) {
            long block = base + (long) b * BLOCK_BYTES;
            int xb = xOff + b * BLOCK;
            FloatVector blockSum = FloatVector.zero(Simd.F);
            for (int j = 0; j < BLOCK / 2; j += Simd.BL) {
                ByteVector q = ByteVector.fromMemorySegment(Simd.B, data, block + 2 + j, ByteOrder.LITTLE_ENDIAN);
                ByteVector lo = q.and((byte) 0x0F).sub((byte) 8);
                ByteVector hi = q.lanewise(VectorOperators.LSHR, 4).sub((byte) 8);
                for (int p = 0; p < Simd.PARTS; p++) {
                    blockSum = ((FloatVector) lo.convertShape(VectorOperators.B2F, Simd.F, p))
                            .fma(FloatVector.fromArray(Simd.F, x, xb + j + p * Simd.FL), blockSum);
                    blockSum = ((FloatVector) hi.convertShape(VectorOperators.B2F, Simd.F, p))
                            .fma(FloatVector.fromArray(Simd.F, x, xb + 16 + j + p * Simd.FL), blockSum);
                }
            }
            acc = blockSum.fma(FloatVector.broadcast(Simd.F, half(data, block)), acc);
        }
        return acc.reduceLanes(VectorOperators.ADD);
    }
}
