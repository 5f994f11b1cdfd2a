package io.kvstash.engine.kv;

import io.kvstash.engine.kernel.KvKernels;
import io.kvstash.engine.kernel.QuantizedKvKernels;
import java.lang.foreign.MemorySegment;

/**
 * The keys and values of {@link KvGeometry#chunkTokens()} consecutive positions for all layers,
 * in off-heap memory owned by the {@link KvStore} that handed it out, laid out as its
 * {@link ChunkLayout} says. A sequence writes positions into its F32 tail chunk; a full tail is
 * sealed into the store's format and never changes again. Attention reads chunks in place.
 */
public final class KvChunk {
    private final ChunkLayout layout;
    private final KvGeometry geometry;
    private final KvFormat format;
    private final MemorySegment data;

    KvChunk(ChunkLayout layout, MemorySegment data) {
        if (data.byteSize() != layout.chunkBytes()) {
            throw new IllegalArgumentException("chunk segment of " + data.byteSize() + " bytes, layout needs " + layout.chunkBytes());
        }
        this.layout = layout;
        this.geometry = layout.geometry();
        this.format = layout.format();
        this.data = data;
    }

    public KvGeometry geometry() {
        return geometry;
    }

    public ChunkLayout layout() {
        return layout;
    }

    /** How this chunk's bytes are encoded: F32 for an open tail, the store's format once sealed. */
    public KvFormat format() {
        return format;
    }

    /** The raw bytes, in the layout {@link ChunkLayout} documents. */
    public MemorySegment data() {
        return data;
    }

    /** Stores position {@code token} of this F32 chunk for {@code layer}: all KV heads of {@code k} and {@code v} (kvDim floats each). */
    public void write(int layer, int token, float[] k, int kOff, float[] v, int vOff) {
        if (format != KvFormat.F32) {
            throw new IllegalStateException("only open F32 tail chunks are written; this one is sealed as " + format);
        }
        int hd = geometry.headDim();
        long tokenOff = 4L * token * hd;
        for (int h = 0; h < geometry.kvHeads(); h++) {
            KvKernels.storeF32(k, kOff + h * hd, data, layout.blockOffset(layer, false, h) + tokenOff, hd);
            KvKernels.storeF32(v, vOff + h * hd, data, layout.blockOffset(layer, true, h) + tokenOff, hd);
        }
    }

    /** Floats of scratch {@link #keyScores} and {@link #accumulateValues} may need for this geometry. */
    public static int scratchFloats(KvGeometry g) {
        return QuantizedKvKernels.kiviScratchFloats(g.chunkTokens(), g.headDim());
    }

    /**
     * {@code out[outOff + t] = scale · (q · key[t])} for the first {@code count} positions of
     * {@code kvHead} in {@code layer}. A sealed KIVI chunk is always full and scores all positions.
     */
    public void keyScores(int layer, int kvHead, float[] q, int qOff, int count, float scale, float[] out, int outOff, float[] scratch) {
        int hd = geometry.headDim();
        long block = layout.blockOffset(layer, false, kvHead);
        switch (format) {
            case F32 -> {
                for (int t = 0; t < count; t++) {
                    out[outOff + t] = scale * KvKernels.dotF32(data, block + 4L * t * hd, q, qOff, hd);
                }
            }
            case F16 -> {
                for (int t = 0; t < count; t++) {
                    out[outOff + t] = scale * KvKernels.dotF16(data, block + 2L * t * hd, q, qOff, hd);
                }
            }
            case Q8 -> QuantizedKvKernels.q8Scores(data, block, layout.codesOffset(false), geometry.chunkTokens(), hd, q, qOff, count,
                    scale, out, outOff);
            case KIVI4, KIVI2 -> {
                requireFull(count);
                QuantizedKvKernels.kiviScores(format.codeBits, data, block, layout.scalesOffset(false), layout.codesOffset(false),
                        geometry.chunkTokens(), hd, q, qOff, scale, out, outOff, scratch);
            }
        }
    }

    /** {@code out[outOff..+headDim) += Σ_t weights[wOff + t] · value[t]} over the first {@code count} positions. */
    public void accumulateValues(int layer, int kvHead, float[] weights, int wOff, int count, float[] out, int outOff, float[] scratch) {
        int hd = geometry.headDim();
        long block = layout.blockOffset(layer, true, kvHead);
        switch (format) {
            case F32 -> {
                for (int t = 0; t < count; t++) {
                    KvKernels.axpyF32(weights[wOff + t], data, block + 4L * t * hd, out, outOff, hd);
                }
            }
            case F16 -> {
                for (int t = 0; t < count; t++) {
                    KvKernels.axpyF16(weights[wOff + t], data, block + 2L * t * hd, out, outOff, hd);
                }
            }
            case Q8 -> QuantizedKvKernels.q8AccumulateValues(data, block, layout.codesOffset(true), geometry.chunkTokens(), hd, weights,
                    wOff, count, out, outOff);
            case KIVI4, KIVI2 -> {
                requireFull(count);
                QuantizedKvKernels.kiviAccumulateValues(format.codeBits, data, block, layout.scalesOffset(true), layout.codesOffset(true),
                        geometry.chunkTokens(), hd, weights, wOff, out, outOff, scratch);
            }
        }
    }

    private void requireFull(int count) {
        if (count != geometry.chunkTokens()) {
            throw new IllegalStateException(format + " chunks are sealed full; asked for " + count + " of " + geometry.chunkTokens() + " positions");
        }
    }
}
