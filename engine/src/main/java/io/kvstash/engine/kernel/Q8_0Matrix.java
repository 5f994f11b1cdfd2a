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

    @Override
    public float dotScalar(int row, float[] x, int xOff) {
        long base = row * rowBytes;
        float sum = 0f;
        for (int b = 0; b < blocks; b++) {
            long block = base + (long) b * BLOCK_BYTES;
            float blockSum = 0f;
            for (int j = 0; j < BLOCK; j++) {
                blockSum += data.get(ValueLayout.JAVA_BYTE, block + 2 + j) * x[xOff + b * BLOCK + j];
            }
            sum += blockSum * half(data, block);
        }
        return sum;
    }

    /** Four consecutive rows at once: each activation load and loop step serves four rows. */
    @Override
    void dot4RowsSimd(int row, float[] x, int xOff, float[] out, int outOff) {
        long base0 = row * rowBytes;
        long base1 = base0 + rowBytes;
        long base2 = base1 + rowBytes;
        long base3 = base2 + rowBytes;
        FloatVector acc0 = FloatVector.zero(Simd.F);
        FloatVector acc1 = acc0;
        FloatVector acc2 = acc0;
        FloatVector acc3 = acc0;
        for (int b = 0; b < blocks; b++) {
            long bo = (long) b * BLOCK_BYTES;
            int xb = xOff + b * BLOCK;
            FloatVector s0 = FloatVector.zero(Simd.F);
            FloatVector s1 = s0;
            FloatVector s2 = s0;
            FloatVector s3 = s0;
            for (int j = 0; j < BLOCK; j += Simd.BL) {
                ByteVector q0 = ByteVector.fromMemorySegment(Simd.B, data, base0 + bo + 2 + j, ByteOrder.LITTLE_ENDIAN);
                ByteVector q1 = ByteVector.fromMemorySegment(Simd.B, data, base1 + bo + 2 + j, ByteOrder.LITTLE_ENDIAN);
                ByteVector q2 = ByteVector.fromMemorySegment(Simd.B, data, base2 + bo + 2 + j, ByteOrder.LITTLE_ENDIAN);
                ByteVector q3 = ByteVector.fromMemorySegment(Simd.B, data, base3 + bo + 2 + j, ByteOrder.LITTLE_ENDIAN);
                for (int p = 0; p < Simd.PARTS; p++) {
                    FloatVector xv = FloatVector.fromArray(Simd.F, x, xb + j + p * Simd.FL);
                    s0 = ((FloatVector) q0.convertShape(VectorOperators.B2F, Simd.F, p)).fma(xv, s0);
                    s1 = ((FloatVector) q1.convertShape(VectorOperators.B2F, Simd.F, p)).fma(xv, s1);
                    s2 = ((FloatVector) q2.convertShape(VectorOperators.B2F, Simd.F, p)).fma(xv, s2);
                    s3 = ((FloatVector) q3.convertShape(VectorOperators.B2F, Simd.F, p)).fma(xv, s3);
                }
            }
            acc0 = s0.fma(FloatVector.broadcast(Simd.F, half(data, base0 + bo)), acc0);
            acc1 = s1.fma(FloatVector.broadcast(Simd.F, half(data, base1 + bo)), acc1);
            acc2 = s2.fma(FloatVector.broadcast(Simd.F, half(data, base2 + bo)), acc2);
            acc3 = s3.fma(FloatVector.broadcast(Simd.F, half(data, base3 + bo)), acc3);
        }
        out[outOff] = acc0.reduceLanes(VectorOperators.ADD);
        out[outOff + 1] = acc1.reduceLanes(VectorOperators.ADD);
        out[outOff + 2] = acc2.reduceLanes(VectorOperators.ADD);
        out[outOff + 3] = acc3.reduceLanes(VectorOperators.ADD);
    }

    @Override
    float dotSimd(int row, float[] x, int xOff) {
        long base = row * rowBytes;
        FloatVector acc = FloatVector.zero(Simd.F);
        for (int b = 0; b < blocks; b++) {
            long block = base + (long) b * BLOCK_BYTES;
            int xb = xOff + b * BLOCK;
            FloatVector blockSum = FloatVector.zero(Simd.F);
            for (int j = 0; j < BLOCK; j += Simd.BL) {
                ByteVector q = ByteVector.fromMemorySegment(Simd.B, data, block + 2 + j, ByteOrder.LITTLE_ENDIAN);
                for (int p = 0; p < Simd.PARTS; p++) {
                    FloatVector w = (FloatVector) q.convertShape(VectorOperators.B2F, Simd.F, p);
                    blockSum = w.fma(FloatVector.fromArray(Simd.F, x, xb + j + p * Simd.FL), blockSum);
                }
            }
            acc = blockSum.fma(FloatVector.broadcast(Simd.F, half(data, block)), acc);
        }
        return acc.reduceLanes(VectorOperators.ADD);
    }

    /** Codes and scales as {@link PanelMatrix} packs them: w = q·d − 0. */
    PanelMatrix.RowDecoder rowDecoder() {
        return new PanelMatrix.RowDecoder() {
            @Override
            public int group() {
                return BLOCK;
            }

            @Override
            public void decodeRow(int row, byte[] codes, float[] scales, float[] offsets) {
                long base = row * rowBytes;
                for (int b = 0; b < blocks; b++) {
                    long block = base + (long) b * BLOCK_BYTES;
                    scales[b] = half(data, block);
                    MemorySegment.copy(data, ValueLayout.JAVA_BYTE, block + 2, codes, b * BLOCK, BLOCK);
                }
            }
        };
    }
}
