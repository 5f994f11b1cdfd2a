package io.kvstash.engine.kernel;

import io.kvstash.engine.gguf.GgmlType;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/** bfloat16: the upper half of a float. */
public final class BF16Matrix extends WeightMatrix {
    BF16Matrix(String name, MemorySegment data, int rows, int cols) {
        super(name, data, rows, cols, GgmlType.BF16);
    }

    @Override
    public GgmlType type() {
        return GgmlType.BF16;
    }

    @Override
    public float get(int row, int col) {
        return Half.bf16ToFloat(data.get(SHORT, row * rowBytes + 2L * col));
    }

    @Override
    public void dequantizeRowScalar(int row, float[] out, int off) {
        long base = row * rowBytes;
        for (int c = 0; c < cols; c++) {
            out[off + c] = Half.bf16ToFloat(data.get(SHORT, base + 2L * c));
        }
    }

    @Override
    void dequantizeRowSimd(int row, float[] out, int off) {
        long base = row * rowBytes;
        int c = 0;
        int bound = Simd.F.loopBound(cols);
        for (; c < bound; c += Simd.FL) {
            Half.bf16ToFloat(ShortVector.fromMemorySegment(Simd.S, data, base + 2L * c, ByteOrder.LITTLE_ENDIAN)).intoArray(out, off + c);
        }
        for (; c < cols; c++) {
            out[off + c] = Half.bf16ToFloat(data.get(SHORT, base + 2L * c));
        }
    }

}
