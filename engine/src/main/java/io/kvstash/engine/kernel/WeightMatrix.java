package io.kvstash.engine.kernel;

import io.kvstash.engine.gguf.GgmlType;
import io.kvstash.engine.gguf.GgufTensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * A weight matrix of {@code rows × cols} in one GGML format, read in place from a mapped GGUF
 * slice. Rows are GGML's rows: a tensor of dims {@code [cols, rows]} multiplies an activation
 * vector of {@code cols} floats into {@code rows} outputs.
 *
 * <p>Each format implements a scalar reference ({@code *Scalar}) and a SIMD path; {@link Simd}
 * chooses once per JVM which one {@link #dot}, {@link #matVec} and {@link #matMul} use.
 */
public abstract sealed class WeightMatrix permits F32Matrix, F16Matrix, BF16Matrix, Q8_0Matrix, Q4_0Matrix {
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

    /** Dot product of row {@code row} with {@code x[xOff .. xOff+cols)}. */
    public final float dot(int row, float[] x, int xOff) {
        return Simd.ENABLED ? dotSimd(row, x, xOff) : dotScalar(row, x, xOff);
    }

    public abstract float dotScalar(int row, float[] x, int xOff);

    abstract float dotSimd(int row, float[] x, int xOff);

    /** Rows {@code row .. row+3} dotted with {@code x} into {@code out[outOff ..+4)}; formats override it to share loads. */
    void dot4RowsSimd(int row, float[] x, int xOff, float[] out, int outOff) {
        for (int i = 0; i < 4; i++) {
            out[outOff + i] = dotSimd(row + i, x, xOff);
        }
    }

    /** {@code out[outOff + r] = row r · x} for rows {@code [r0, r1)}. */
    public final void matVec(float[] x, int xOff, float[] out, int outOff, int r0, int r1) {
        if (Simd.ENABLED) {
            int r = r0;
            for (; r + 4 <= r1; r += 4) {
                dot4RowsSimd(r, x, xOff, out, outOff + r);
            }
            for (; r < r1; r++) {
                out[outOff + r] = dotSimd(r, x, xOff);
            }
        } else {
            for (int r = r0; r < r1; r++) {
                out[outOff + r] = dotScalar(r, x, xOff);
            }
        }
    }

    /** Rows decoded together in {@link #matMul}. */
    public static final int ROW_TILE = 4;

    /** Floats of row scratch {@link #matMul} needs for rows of {@code cols}. */
    public static int scratchSize(int cols) {
        return ROW_TILE * cols + 8 * Simd.FL;
    }

    /** Tokens per column of the transposed activations: a multiple of two vectors. */
    public static int paddedTokens(int n) {
        int tile = 2 * Simd.FL;
        return (n + tile - 1) / tile * tile;
    }

    /**
     * Batched product for prefill. {@code xT} holds the activations transposed,
     * {@code (cols, paddedTokens(n))} (see {@link VectorMath#transpose}); {@code out} receives
     * {@code n} vectors of {@code outStride} floats from {@code outOff} on, of which rows
     * {@code [r0, r1)} are written. {@code rowScratch} needs {@link #scratchSize} floats.
     *
     * <p>Four weight rows are decoded once into {@code rowScratch} and reused for every token;
     * the inner loop broadcasts one weight per row against vectors of tokens, so it needs no
     * horizontal reductions and does two loads per eight FMAs.
     */
    public final void matMul(float[] xT, int n, float[] out, int outOff, int outStride, int r0, int r1, float[] rowScratch) {
        int nPad = paddedTokens(n);
        int r = r0;
        for (; r + ROW_TILE <= r1; r += ROW_TILE) {
            for (int i = 0; i < ROW_TILE; i++) {
                dequantizeRow(r + i, rowScratch, i * cols);
            }
            VectorMath.tile4(rowScratch, cols, xT, n, nPad, out, outOff + r, outStride, rowScratch, ROW_TILE * cols);
        }
        for (; r < r1; r++) {
            dequantizeRow(r, rowScratch, 0);
            for (int t = 0; t < n; t++) {
                float sum = 0f;
                for (int c = 0; c < cols; c++) {
                    sum += rowScratch[c] * xT[c * nPad + t];
                }
                out[outOff + t * outStride + r] = sum;
            }
        }
    }

    static float half(MemorySegment seg, long offset) {
        return Float.float16ToFloat(seg.get(SHORT, offset));
    }
}
