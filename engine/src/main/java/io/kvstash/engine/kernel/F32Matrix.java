package io.kvstash.engine.kernel;

import io.kvstash.engine.gguf.GgmlType;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/** Plain little-endian floats. */
public final class F32Matrix extends WeightMatrix {
    F32Matrix(String name, MemorySegment data, int rows, int cols) {
        super(name, data, rows, cols, GgmlType.F32);
    }

    @Override
    public GgmlType type() {
        return GgmlType.F32;
    }

    @Override
    public float get(int row, int col) {
        return data.get(FLOAT, row * rowBytes + 4L * col);
    }

    @Override
    public void dequantizeRowScalar(int row, float[] out, int off) {
        MemorySegment.copy(data, FLOAT, row * rowBytes, out, off, cols);
    }

    @Override
    void dequantizeRowSimd(int row, float[] out, int off) {
        dequantizeRowScalar(row, out, off);
    }

}
