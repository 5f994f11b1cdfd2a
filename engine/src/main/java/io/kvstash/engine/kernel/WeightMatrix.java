package io.kvstash.engine.kernel;

import io.kvstash.engine.gguf.GgmlType;
import io.kvstash.engine.gguf.GgufTensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * A weight matrix of {@code rows × cols} in one GGML format, read in place from a mapped GGUF
 * slice. Rows are GGML's rows: a tensor of dims {@code [cols, rows]} multiplies an activation
 * vector of {@code cols} floats into {@code rows} outputs. This view decodes rows (token
 * embeddings, tests, repacking); products run on the {@link PanelMatrix} repacking.
 *
 * <p>Formats with a fast row decoder implement a scalar reference ({@code *Scalar}) and a SIMD
 * path; {@link Simd} chooses once per JVM which one {@link #dequantizeRow} uses.
 */
public abstract sealed class WeightMatrix permits F32Matrix, F16Matrix, BF16Matrix, Q8_0Matrix, Q4_0Matrix, BlockMatrix {
    static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    protected final String name;
    protected final MemorySegment data;
    public final int rows;
    public final int cols;
    protected final long rowBytes;

    WeightMatrix(String name, MemorySegment data, int rows, int cols, GgmlType type) {
        this.name = name;
        this.data = data;
        this.rows = rows;
        this.cols = cols;
        this.rowBytes = type.bytesFor(cols);
        if (data.byteSize() != rowBytes * rows) {
            throw new IllegalArgumentException(name + ": " + data.byteSize() + " bytes for " + rows + "×" + cols + " " + type);
        }
    }

    /** The matrix view of a 1- or 2-dimensional tensor, dispatching on its type once. */
    public static WeightMatrix of(GgufTensor t) {
        if (t.dims().length > 2 && t.rowCount() * t.rowLength() != t.elementCount()) {
            throw new IllegalArgumentException("tensor '" + t.name() + "' is not a matrix: " + t.shape());
        }
        if (t.rowLength() > Integer.MAX_VALUE || t.rowCount() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("tensor '" + t.name() + "' is too large: " + t.shape());
        }
        int cols = (int) t.rowLength();
        int rows = (int) t.rowCount();
        return switch (t.type()) {
            case F32 -> new F32Matrix(t.name(), t.data(), rows, cols);
            case F16 -> new F16Matrix(t.name(), t.data(), rows, cols);
            case BF16 -> new BF16Matrix(t.name(), t.data(), rows, cols);
            case Q8_0 -> new Q8_0Matrix(t.name(), t.data(), rows, cols);
            case Q4_0 -> new Q4_0Matrix(t.name(), t.data(), rows, cols);
            case Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K -> new BlockMatrix(t.name(), t.data(), rows, cols, t.type());
            default -> throw new UnsupportedTensorTypeException(t.name(), t.type());
        };
    }

    public String name() {
        return name;
    }

    public abstract GgmlType type();

    /** One element, the slow reference. */
    public abstract float get(int row, int col);

    /** Row {@code row} as floats into {@code out[off .. off+cols)}. */
    public final void dequantizeRow(int row, float[] out, int off) {
        if (Simd.ENABLED) {
            dequantizeRowSimd(row, out, off);
        } else {
            dequantizeRowScalar(row, out, off);
        }
    }

    public abstract void dequantizeRowScalar(int row, float[] out, int off);

    abstract void dequantizeRowSimd(int row, float[] out, int off);


    static float half(MemorySegment seg, long offset) {
        return Float.float16ToFloat(seg.get(SHORT, offset));
    }
}
