package io.kvstash.engine.kernel;

import io.kvstash.engine.gguf.GgmlType;
import java.lang.foreign.MemorySegment;

/**
 * A matrix in a block format read through its {@link BlockDecoder} (Q4_1, Q5_0, Q5_1 and the
 * K-quants). The forward pass multiplies by its {@link PanelMatrix} repacking; this view serves
 * row lookups (token embeddings) and tests, so it decodes a row at a time, scalar.
 */
public final class BlockMatrix extends WeightMatrix {
    private final GgmlType type;
    private final BlockDecoder decoder;
    /** Decoding scratch per thread: rows are looked up from the scheduler thread and from tests. */
    private final ThreadLocal<Scratch> scratch;

    private record Scratch(byte[] codes, float[] scales, float[] offsets) {}

    BlockMatrix(String name, MemorySegment data, int rows, int cols, GgmlType type) {
        super(name, data, rows, cols, type);
        this.type = type;
        this.decoder = BlockDecoder.of(type);
        if (cols % type.blockSize != 0) {
            throw new IllegalArgumentException(name + ": " + cols + " columns are not a whole number of " + type + " blocks of " + type.blockSize);
        }
        int groups = cols / decoder.group();
        this.scratch = ThreadLocal.withInitial(() -> new Scratch(new byte[cols], new float[groups], new float[groups]));
    }

    @Override
    public GgmlType type() {
        return type;
    }

    private void decodeRow(int row, byte[] codes, float[] scales, float[] offsets) {
        decoder.decodeRow(data, row * rowBytes, cols, codes, scales, offsets);
    }

    @Override
    public float get(int row, int col) {
        Scratch s = scratch.get();
        decodeRow(row, s.codes, s.scales, s.offsets);
        int g = col / decoder.group();
        return s.codes[col] * s.scales[g] - s.offsets[g];
    }

    @Override
    public void dequantizeRowScalar(int row, float[] out, int off) {
        Scratch s = scratch.get();
        decodeRow(row, s.codes, s.scales, s.offsets);
        int group = decoder.group();
        for (int c = 0; c < cols; c++) {
            int g = c / group;
            out[off + c] = s.codes[c] * s.scales[g] - s.offsets[g];
        }
    }

    @Override
    void dequantizeRowSimd(int row, float[] out, int off) {
        dequantizeRowScalar(row, out, off);
    }

}
