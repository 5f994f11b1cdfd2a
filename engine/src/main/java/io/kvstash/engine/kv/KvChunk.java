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
    // The body; for a parked chunk null, or a transient copy while a step needs it (TransientChunks).
    private MemorySegment data;
    // Set on a parked chunk: its body went back to the store, these read it back.
    private final ChunkFetcher fetcher;
    private final Object fetchKey;
    int transientSlot = -1; // TransientChunks' slot holding this parked chunk's body, or -1
    // (layer, kvHead, min|max, headDim) per-channel bounds of the keys as this chunk stores them;
    // allocated on the first summary and reused when the store hands the chunk out again.
    private float[] keyBounds;
    private volatile boolean summarised;

    KvChunk(ChunkLayout layout, MemorySegment data) {
        if (data.byteSize() != layout.chunkBytes()) {
            throw new IllegalArgumentException("chunk segment of " + data.byteSize() + " bytes, layout needs " + layout.chunkBytes());
        }
        this.layout = layout;
        this.geometry = layout.geometry();
        this.format = layout.format();
        this.data = data;
        this.fetcher = null;
        this.fetchKey = null;
    }

    /** A parked copy of summarised full chunk {@code source}: its summary, no body (see {@link KvCache#park}). */
    private KvChunk(KvChunk source, ChunkFetcher fetcher, Object fetchKey) {
        this.layout = source.layout;
        this.geometry = source.geometry;
        this.format = source.format;
        this.data = null;
        this.fetcher = fetcher;
        this.fetchKey = fetchKey;
        // A copy: the source goes back to its store, which reuses its bounds array for other bytes.
        this.keyBounds = source.keyBounds.clone();
        this.summarised = true;
    }

    KvChunk parkedCopy(ChunkFetcher fetcher, Object fetchKey) {
        if (!summarised) {
            throw new IllegalStateException("only a summarised chunk can be parked");
        }
        return new KvChunk(this, fetcher, fetchKey);
    }

    /** Whether this chunk is parked: its summary is here, its body only in a tier (and transiently while a step needs it). */
    public boolean parked() {
        return fetcher != null;
    }

    /** Whether the body can be read now: always for a resident chunk, while attached for a parked one. */
    public boolean hasBody() {
        return data != null;
    }

    ChunkFetcher fetcher() {
        return fetcher;
    }

    Object fetchKey() {
        return fetchKey;
    }

    /** Gives a parked chunk a transient body (a copy of its bytes) or takes it away (null). */
    void attachBody(MemorySegment body) {
        if (fetcher == null) {
            throw new IllegalStateException("only a parked chunk takes a transient body");
        }
        this.data = body;
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
        if (data == null) {
            throw new IllegalStateException("parked chunk has no body attached");
        }
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
            case F32 -> KvKernels.scoresF32(data, block, hd, q, qOff, count, scale, out, outOff);
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
            case F32 -> KvKernels.valuesF32(data, block, hd, weights, wOff, count, out, outOff);
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

    /** Floats of a key summary: per layer and KV head, the per-channel minimum and maximum of the keys. */
    public static int summaryFloats(KvGeometry g) {
        return g.layers() * g.kvHeads() * 2 * g.headDim();
    }

    /** Heap bytes of one chunk's key summary (see {@link #summarise}). */
    public static long summaryBytes(KvGeometry g) {
        return 4L * summaryFloats(g);
    }

    /** Whether {@link #summarise} has run since the store last handed this chunk out. */
    public boolean summarised() {
        return summarised;
    }

    /**
     * Computes the key summary of this full, sealed chunk (Quest's per-channel min and max of the
     * keys, per layer and KV head) from its body, so it holds for the keys exactly as attention reads
     * them: for a quantized format the bounds are those of the dequantized keys. Each channel is
     * read back through {@link #keyScores} with a one-hot query, the same kernel that scores keys.
     * Idempotent; a chunk read back from storage gets its summary the same way. Costs
     * layers·kvHeads·headDim scoring passes over the chunk (about 0.5% of the chunk's prefill for
     * stories15M); allocates small scratch arrays, once per chunk.
     */
    public void summarise() {
        if (summarised) {
            return;
        }
        int c = geometry.chunkTokens();
        int hd = geometry.headDim();
        float[] bounds = keyBounds != null ? keyBounds : new float[summaryFloats(geometry)];
        float[] oneHot = new float[hd];
        float[] column = new float[c];
        float[] scratch = new float[scratchFloats(geometry)];
        for (int layer = 0; layer < geometry.layers(); layer++) {
            for (int head = 0; head < geometry.kvHeads(); head++) {
                int at = (layer * geometry.kvHeads() + head) * 2 * hd;
                for (int ch = 0; ch < hd; ch++) {
                    oneHot[ch] = 1f;
                    keyScores(layer, head, oneHot, 0, c, 1f, column, 0, scratch);
                    oneHot[ch] = 0f;
                    float min = Float.POSITIVE_INFINITY;
                    float max = Float.NEGATIVE_INFINITY;
                    for (int t = 0; t < c; t++) {
                        min = Math.min(min, column[t]);
                        max = Math.max(max, column[t]);
                    }
                    bounds[at + ch] = min;
                    bounds[at + hd + ch] = max;
                }
            }
        }
        keyBounds = bounds;
        summarised = true;
    }

    /**
     * Quest's upper bound on {@code q · key[t]} over the chunk's positions for {@code kvHead} in
     * {@code layer}: {@code Σ_c max(q_c·max_c, q_c·min_c)}. Needs {@link #summarise} first.
     */
    public float keyScoreBound(int layer, int kvHead, float[] q, int qOff) {
        if (!summarised) {
            throw new IllegalStateException("chunk has no key summary");
        }
        int hd = geometry.headDim();
        int at = (layer * geometry.kvHeads() + kvHead) * 2 * hd;
        float[] b = keyBounds;
        float sum = 0f;
        for (int ch = 0; ch < hd; ch++) {
            float x = q[qOff + ch];
            sum += Math.max(x * b[at + ch], x * b[at + hd + ch]);
        }
        return sum;
    }

    /** Drops the summary: the store is about to hand this chunk out for other bytes. */
    void forgetSummary() {
        summarised = false;
    }

    private void requireFull(int count) {
        if (count != geometry.chunkTokens()) {
            throw new IllegalStateException(format + " chunks are sealed full; asked for " + count + " of " + geometry.chunkTokens() + " positions");
        }
    }
}
