package io.kvstash.engine.kernel;

import io.kvstash.engine.gguf.GgmlType;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/** IEEE half precision. */
public final class F16Matrix extends WeightMatrix {
    F16Matrix(String name, MemorySegment data, int rows, int cols) {
        super(name, data, rows, cols, GgmlType.F16);
    }

    @Override
    public GgmlType type() {
        return GgmlType.F16;
    }

    @Override
    public float get(int row, int col) {
        return half(data, row * rowBytes + 2L * col);
    }

    @Override
    public void dequantizeRowScalar(int row, float[] out, int off) {
        long base = row * rowBytes;
        for (int c = 0; c < cols; c++) {
            out[off + c] = half(data, base + 2L * c);
        }
    }

    @Override
    void dequantizeRowSimd(int row, float[] out, int off) {
        long base = row * rowBytes;
        int c = 0;
        int bound = Simd.F.loopBound(cols);
        for (; c < bound; c += Simd.FL) {
            Half.toFloat(ShortVector.fromMemorySegment(Simd.S, data, base + 2L * c, ByteOrder.LITTLE_ENDIAN)).intoArray(out, off + c);
        }
        for (; c < cols; c++) {
            out[off + c] = half(data, base + 2L * c);
        }
    }

}
