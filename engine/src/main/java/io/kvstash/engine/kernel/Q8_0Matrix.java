package io.kvstash.engine.kernel;

import io.kvstash.engine.gguf.GgmlType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/** GGML Q8_0: blocks of 32 weights, each a half-precision scale {@code d} and 32 signed bytes; w = d·q. */
public final class Q8_0Matrix extends WeightMatrix {
    private static final int BLOCK = 32;
    private static final int BLOCK_BYTES = 34;
    private final int blocks;

    Q8_0Matrix(String name, MemorySegment data, int rows, int cols) {
        super(name, data, rows, cols, GgmlType.Q8_0);
        this.blocks = cols / BLOCK;
    }

    @Override
    public GgmlType type() {
        return GgmlType.Q8_0;
    }

    @Override
    public float get(int row, int col) {
        long block = row * rowBytes + (long) (col / BLOCK) * BLOCK_BYTES;
        return half(data, block) * data.get(ValueLayout.JAVA_BYTE, block + 2 + col % BLOCK);
    }

    @Override
    public void dequantizeRowScalar(int row, float[] out, int off) {
        long base = row * rowBytes;
        for (int b = 0; b < blocks; b++) {
            long block = base + (long) b * BLOCK_BYTES;
            float d = half(data, block);
            for (int j = 0; j < BLOCK; j++) {
                out[off + b * BLOCK + j] = d * data.get(ValueLayout.JAVA_BYTE, block + 2 + j);
            }
        }
    }

    @Override
    void dequantizeRowSimd(int row, float[] out, int off) {
        long base = row * rowBytes;
        for (int b = 0; b < blocks; b++) {
            long block = base + (long) b * BLOCK_BYTES;
            FloatVector d = FloatVector.broadcast(Simd.F, half(data, block));
            for (int j = 0; j < BLOCK; j += Simd.BL) {
                ByteVector q = ByteVector.fromMemorySegment(Simd.B, data, block + 2 + j, ByteOrder.LITTLE_ENDIAN);
                for (int p = 0; p < Simd.PARTS; p++) {
                    FloatVector w = (FloatVector) q.convertShape(VectorOperators.B2F, Simd.F, p);
                    w.mul(d).intoArray(out, off + b * BLOCK + j + p * Simd.FL);
                }
            }
        }
    }

}
