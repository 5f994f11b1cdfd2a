package io.kvstash.engine.kv;

import io.kvstash.engine.kernel.KvKernels;
import java.lang.foreign.MemorySegment;

/**
 * The keys and values of {@link KvGeometry#chunkTokens()} consecutive positions for all layers,
 * in off-heap memory owned by the {@link KvStore} that handed it out. The forward pass writes each
 * position once; attention reads it in place.
 */
public final class KvChunk {
    private final KvGeometry geometry;
    private final MemorySegment data;

    KvChunk(KvGeometry geometry, MemorySegment data) {
        if (data.byteSize() != geometry.chunkBytes()) {
            throw new IllegalArgumentException("chunk segment of " + data.byteSize() + " bytes, geometry needs " + geometry.chunkBytes());
        }
        this.geometry = geometry;
        this.data = data;
    }

    public KvGeometry geometry() {
        return geometry;
    }

    /** The raw bytes, in the layout {@link KvGeometry} documents. */
    public MemorySegment data() {
        return data;
    }

    /** Stores position {@code token} of this chunk for {@code layer}: all KV heads of {@code k} and {@code v} (kvDim floats each). */
    public void write(int layer, int token, float[] k, int kOff, float[] v, int vOff) {
        int hd = geometry.headDim();
        long tokenOff = (long) token * hd * geometry.format().bytesPerElement;
        for (int h = 0; h < geometry.kvHeads(); h++) {
            long kAt = geometry.headOffset(layer, false, h) + tokenOff;
            long vAt = geometry.headOffset(layer, true, h) + tokenOff;
            switch (geometry.format()) {
                case F32 -> {
                    KvKernels.storeF32(k, kOff + h * hd, data, kAt, hd);
                    KvKernels.storeF32(v, vOff + h * hd, data, vAt, hd);
                }
                case F16 -> {
                    KvKernels.storeF16(k, kOff + h * hd, data, kAt, hd);
                    KvKernels.storeF16(v, vOff + h * hd, data, vAt, hd);
                }
            }
        }
    }

    /**
     * {@code out[outOff + t] = scale · (q · key[t])} for the first {@code count} positions of
     * {@code kvHead} in {@code layer}.
     */
    public void keyScores(int layer, int kvHead, float[] q, int qOff, int count, float scale, float[] out, int outOff) {
        int hd = geometry.headDim();
        long base = geometry.headOffset(layer, false, kvHead);
        long stride = (long) hd * geometry.format().bytesPerElement;
        switch (geometry.format()) {
            case F32 -> {
                for (int t = 0; t < count; t++) {
                    out[outOff + t] = scale * KvKernels.dotF32(data, base + t * stride, q, qOff, hd);
                }
            }
            case F16 -> {
                for (int t = 0; t < count; t++) {
                    out[outOff + t] = scale * KvKernels.dotF16(data, base + t * stride, q, qOff, hd);
                }
            }
        }
    }

    /** {@code out[outOff..+headDim) += Σ_t weights[wOff + t] · value[t]} over the first {@code count} positions. */
    public void accumulateValues(int layer, int kvHead, float[] weights, int wOff, int count, float[] out, int outOff) {
        int hd = geometry.headDim();
        long base = geometry.headOffset(layer, true, kvHead);
        long stride = (long) hd * geometry.format().bytesPerElement;
        switch (geometry.format()) {
            case F32 -> {
                for (int t = 0; t < count; t++) {
                    KvKernels.axpyF32(weights[wOff + t], data, base + t * stride, out, outOff, hd);
                }
            }
            case F16 -> {
                for (int t = 0; t < count; t++) {
                    KvKernels.axpyF16(weights[wOff + t], data, base + t * stride, out, outOff, hd);
                }
            }
        }
    }
}
