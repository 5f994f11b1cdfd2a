package io.kvstash.engine.kv;

import io.kvstash.engine.kernel.KvKernels;
import io.kvstash.engine.kernel.QuantizedKvKernels;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * The keys and values of {@link KvGeometry#chunkTokens()} consecutive positions for all layers,
 * in off-heap memory owned by the {@link KvStore} that handed it out, laid out as its
 * {@link ChunkLayout} says. A sequence writes positions into its F32 tail chunk; a full tail is
 * sealed into the store's format and never changes again. Attention reads chunks in place.
 */
public final class KvChunk {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int STATS = 4; // min, max, mean, variance per channel
    private final ChunkLayout layout;
    private final KvGeometry geometry;
    private final KvFormat format;
    // The body; for a parked chunk null, or a transient copy while a step needs it (TransientChunks).
    private MemorySegment data;
    // Set on a parked chunk: its body went back to the store, these read it back.
    private final ChunkFetcher fetcher;
    private final Object fetchKey;
    int transientSlot = -1; // TransientChunks' slot holding this parked chunk's body, or -1
    // (layer, kvHead, sub-block, min|max|mean|variance, headDim) per-channel statistics of the keys as this
    // chunk stores them; allocated on the first summary and reused when the store hands the chunk out again.
    private float[] keyBounds;
    // The key sketch (SKETCH summaries): per layer and KV head a key block of sketchLayout, on the heap;
    // allocated on the first sketch and reused when the store hands the chunk out again.
    private byte[] sketchBytes;
    private MemorySegment keySketch;
    private ChunkLayout sketchLayout;
    private volatile int summaryTokens; // positions per sub-block of the summary; SKETCH for a key sketch; 0 = none

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

    /**
     * A parked copy of summarised full chunk {@code source}: its summary, no body (see {@link KvCache#park}).
     * The summary is copied from a resident source (its store reuses the arrays for other bytes) and
     * shared with a parked one (a parked chunk's summary never changes).
     */
    private KvChunk(KvChunk source, ChunkFetcher fetcher, Object fetchKey) {
        this.layout = source.layout;
        this.geometry = source.geometry;
        this.format = source.format;
        this.data = null;
        this.fetcher = fetcher;
        this.fetchKey = fetchKey;
        // A copy: the source goes back to its store, which reuses its bounds array for other bytes.
        boolean share = source.parked();
        if (source.summaryTokens == SKETCH) {
            this.sketchBytes = share ? source.sketchBytes : source.sketchBytes.clone();
            this.keySketch = share ? source.keySketch : MemorySegment.ofArray(sketchBytes);
            this.sketchLayout = source.sketchLayout;
        } else {
            this.keyBounds = share ? source.keyBounds : source.keyBounds.clone();
        }
        this.summaryTokens = source.summaryTokens;
    }

    KvChunk parkedCopy(ChunkFetcher fetcher, Object fetchKey) {
        if (!summarised()) {
            throw new IllegalStateException("only a summarised chunk can be parked");
        }
        return new KvChunk(this, fetcher, fetchKey);
    }

    /**
     * Another handle on this parked chunk, for another cache ({@link KvCache#appendParked}): the same
     * summary (shared, never copied) and body source, its own transient state.
     */
    public KvChunk parkedHandle() {
        if (!parked()) {
            throw new IllegalStateException("only a parked chunk has parked handles");
        }
        return new KvChunk(this, fetcher, fetchKey);
    }

    /** Heap bytes of this chunk's summary (0 without one). */
    public long summaryBytes() {
        int spec = summaryTokens;
        return spec == 0 ? 0 : summaryBytes(geometry, spec);
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

    /**
     * The summary layout to give {@link #summarise(int, float[])} instead of a sub-block size: a key
     * sketch, every key of the chunk quantized as KIVI quantizes keys (per channel and group of
     * {@link KvFormat#GROUP} positions a min and a scale, then {@link #sketchFormat} codes), from
     * which sparse decode estimates a chunk's attention mass by scoring each sketched key.
     */
    public static final int SKETCH = -1;

    /**
     * The format of a key sketch for chunks of {@code g}: KIVI2 (2-bit codes) when the chunks hold a
     * multiple of 64 positions, else KIVI4 (a multiple of 32); other chunk sizes cannot be sketched.
     */
    public static KvFormat sketchFormat(KvGeometry g) {
        int c = g.chunkTokens();
        if (c % 64 == 0) {
            return KvFormat.KIVI2;
        }
        if (c % KvFormat.GROUP == 0) {
            return KvFormat.KIVI4;
        }
        throw new IllegalArgumentException("a key sketch needs chunks of a multiple of " + KvFormat.GROUP + " positions, got " + c);
    }

    /**
     * Floats of a key summary with sub-blocks of {@code blockTokens} positions: per layer, KV head and
     * sub-block, the per-channel minimum, maximum, mean and variance of the keys.
     */
    private static int summaryFloats(KvGeometry g, int blockTokens) {
        return g.layers() * g.kvHeads() * (g.chunkTokens() / blockTokens) * STATS * g.headDim();
    }

    /**
     * Heap bytes of one chunk's key summary with sub-blocks of {@code blockTokens} positions, or of its
     * key sketch for {@link #SKETCH} (see {@link #summarise}).
     */
    public static long summaryBytes(KvGeometry g, int blockTokens) {
        if (blockTokens == SKETCH) {
            return (long) g.layers() * g.kvHeads() * ChunkLayout.of(g, sketchFormat(g)).blockBytes(false);
        }
        return 4L * summaryFloats(g, blockTokens);
    }

    /** Heap bytes of one chunk's key summary over the whole chunk (one sub-block). */
    public static long summaryBytes(KvGeometry g) {
        return summaryBytes(g, g.chunkTokens());
    }

    /** Floats of the scratch {@link #summarise(int, float[])} needs: one head's decoded keys, then its key block's bytes. */
    public static int summaryScratchFloats(KvGeometry g) {
        long blockBytes = Math.max(ChunkLayout.of(g, KvFormat.F32).blockBytes(false), ChunkLayout.of(g, g.format()).blockBytes(false));
        return Math.toIntExact(g.chunkTokens() * g.headDim() + (blockBytes + 3) / 4);
    }

    /** Whether {@link #summarise} has run since the store last handed this chunk out. */
    public boolean summarised() {
        return summaryTokens != 0;
    }

    /** Positions per sub-block of the current summary; 0 when there is none. */
    public int summaryTokens() {
        return summaryTokens;
    }

    /** Sub-blocks of the current summary ({@link #summaryTokens} each); 0 for none or a key sketch. */
    public int summaryBlocks() {
        int b = summaryTokens;
        return b <= 0 ? 0 : geometry.chunkTokens() / b;
    }

    /**
     * Makes sure this chunk has a key summary: when it has none, computes one over the whole chunk as
     * one sub-block ({@link #summarise(int, float[])}, with scratch of its own); any summary already there stays.
     */
    public void summarise() {
        if (!summarised()) {
            summarise(geometry.chunkTokens(), new float[summaryScratchFloats(geometry)]);
        }
    }

    /**
     * Computes the key summary of this full, sealed chunk for sub-blocks of {@code blockTokens}
     * positions (Quest's per-channel min and max of the keys, plus their mean and variance, per layer, KV
     * head and sub-block), or its key sketch for {@link #SKETCH}, from its body. Keys are decoded as the scoring kernels read them (for a quantized
     * format {@code scale·code} or {@code scale·code + min} in float, what {@link #keyScores} computes for a
     * one-hot query), so the bound holds for the keys attention sees. Reads the chunk's keys once (no
     * scoring passes); no allocation once this chunk has held a summary of the same size. Does nothing
     * when a summary of this granularity is there; otherwise replaces it. Not for concurrent callers
     * on one chunk with different granularities.
     *
     * @param keys scratch of at least {@link #summaryScratchFloats} floats
     */
    public void summarise(int blockTokens, float[] keys) {
        int c = geometry.chunkTokens();
        if (blockTokens == SKETCH) {
            if (summaryTokens != SKETCH) {
                sketch(keys);
            }
            return;
        }
        if (blockTokens < 1 || c % blockTokens != 0) {
            throw new IllegalArgumentException("summary sub-blocks of " + blockTokens + " positions do not divide chunks of " + c);
        }
        if (summaryTokens == blockTokens) {
            return;
        }
        int hd = geometry.headDim();
        int blocks = c / blockTokens;
        int floats = summaryFloats(geometry, blockTokens);
        float[] s = keyBounds != null && keyBounds.length == floats ? keyBounds : new float[floats];
        for (int layer = 0; layer < geometry.layers(); layer++) {
            for (int head = 0; head < geometry.kvHeads(); head++) {
                decodeKeys(layer, head, keys);
                for (int b = 0; b < blocks; b++) {
                    int at = ((layer * geometry.kvHeads() + head) * blocks + b) * STATS * hd;
                    for (int ch = 0; ch < hd; ch++) {
                        float min = Float.POSITIVE_INFINITY;
                        float max = Float.NEGATIVE_INFINITY;
                        float sum = 0f;
                        float squares = 0f;
                        int from = ch * c + b * blockTokens;
                        for (int i = from, end = from + blockTokens; i < end; i++) {
                            float k = keys[i];
                            min = Math.min(min, k);
                            max = Math.max(max, k);
                            sum += k;
                            squares += k * k;
                        }
                        float mean = sum / blockTokens;
                        s[at + ch] = min;
                        s[at + hd + ch] = max;
                        s[at + 2 * hd + ch] = mean;
                        // E[k²] − mean²: an estimate's input, so one pass is enough; rounding may not make it negative.
                        s[at + 3 * hd + ch] = Math.max(0f, squares / blockTokens - mean * mean);
                    }
                }
            }
        }
        keyBounds = s;
        summaryTokens = blockTokens;
    }

    /** The {@link #SKETCH} summary: every layer's and KV head's keys, as scoring reads them, encoded as {@link #sketchFormat} keys. */
    private void sketch(float[] keys) {
        ChunkLayout sl = sketchLayout != null ? sketchLayout : ChunkLayout.of(geometry, sketchFormat(geometry));
        long blockBytes = sl.blockBytes(false);
        int n = Math.toIntExact(blockBytes * geometry.layers() * geometry.kvHeads());
        if (sketchBytes == null || sketchBytes.length != n) {
            sketchBytes = new byte[n];
            keySketch = MemorySegment.ofArray(sketchBytes);
        }
        int bits = sl.format().codeBits;
        for (int layer = 0; layer < geometry.layers(); layer++) {
            for (int head = 0; head < geometry.kvHeads(); head++) {
                decodeKeys(layer, head, keys);
                ChunkEncoder.encodeKiviKeys(keys, geometry.chunkTokens(), geometry.headDim(), bits, keySketch,
                        (layer * geometry.kvHeads() + head) * blockBytes, sl.scalesOffset(false), sl.codesOffset(false));
            }
        }
        sketchLayout = sl;
        summaryTokens = SKETCH;
    }

    /**
     * {@code out[outOff + t] = scale · (q · k̂[t])} for every position of {@code kvHead} in
     * {@code layer}, {@code k̂} the sketched keys: the scores {@link #keyScores} gives, from the key
     * sketch (no body needed). Needs a {@link #SKETCH} summary; {@code scratch} as for {@link #keyScores}.
     */
    public void sketchScores(int layer, int kvHead, float[] q, int qOff, float scale, float[] out, int outOff, float[] scratch) {
        if (summaryTokens != SKETCH) {
            throw new IllegalStateException("chunk has no key sketch");
        }
        ChunkLayout sl = sketchLayout;
        QuantizedKvKernels.kiviScores(sl.format().codeBits, keySketch, (layer * geometry.kvHeads() + kvHead) * sl.blockBytes(false),
                sl.scalesOffset(false), sl.codesOffset(false), geometry.chunkTokens(), geometry.headDim(), q, qOff, scale, out, outOff,
                scratch);
    }

    /**
     * The keys of {@code kvHead} in {@code layer} as the scoring kernels read them, channel-major:
     * {@code out[c·chunkTokens + t]}, all {@code chunkTokens} positions.
     */
    void decodeKeys(int layer, int kvHead, float[] out) {
        int hd = geometry.headDim();
        int c = geometry.chunkTokens();
        // One bulk copy of the block to the heap, then plain reads: per-element reads of the shared
        // off-heap segment pay a bounds and liveness check each.
        // The block's bytes go after the decoded keys in the same scratch array.
        long rawAt = 4L * c * hd;
        MemorySegment heap = MemorySegment.ofArray(out);
        MemorySegment.copy(data, layout.blockOffset(layer, false, kvHead), heap, rawAt, layout.blockBytes(false));
        switch (format) {
            case F32 -> {
                for (int t = 0; t < c; t++) {
                    for (int ch = 0; ch < hd; ch++) {
                        out[ch * c + t] = heap.get(FLOAT, rawAt + 4L * (t * hd + ch));
                    }
                }
            }
            case F16 -> {
                for (int t = 0; t < c; t++) {
                    for (int ch = 0; ch < hd; ch++) {
                        out[ch * c + t] = Float.float16ToFloat(heap.get(SHORT, rawAt + 2L * (t * hd + ch)));
                    }
                }
            }
            case Q8 -> {
                long codes = rawAt + layout.codesOffset(false);
                for (int ch = 0; ch < hd; ch++) {
                    long scales = rawAt + 4L * (ch / KvFormat.GROUP) * c;
                    for (int t = 0; t < c; t++) {
                        out[ch * c + t] = (float) heap.get(ValueLayout.JAVA_BYTE, codes + (long) ch * c + t) * heap.get(FLOAT, scales + 4L * t);
                    }
                }
            }
            case KIVI4, KIVI2 -> {
                // Codes of one channel: byte j holds tokens j + k·S in bits [k·b, k·b + b) (see ChunkLayout).
                int bits = format.codeBits;
                int stride = c * bits / 8;
                int mask = (1 << bits) - 1;
                long codes = rawAt + layout.codesOffset(false);
                long scales = rawAt + layout.scalesOffset(false);
                for (int ch = 0; ch < hd; ch++) {
                    long channel = codes + (long) ch * stride;
                    for (int group = 0; group < c / KvFormat.GROUP; group++) {
                        long at = 2L * ((long) group * hd + ch);
                        float min = Float.float16ToFloat(heap.get(SHORT, rawAt + at));
                        float scale = Float.float16ToFloat(heap.get(SHORT, scales + at));
                        for (int t = group * KvFormat.GROUP, end = t + KvFormat.GROUP; t < end; t++) {
                            int code = (heap.get(ValueLayout.JAVA_BYTE, channel + t % stride) >>> (t / stride * bits)) & mask;
                            out[ch * c + t] = code * scale + min;
                        }
                    }
                }
            }
        }
    }

    /**
     * Quest's upper bound on {@code q · key[t]} over the chunk's positions for {@code kvHead} in
     * {@code layer}: {@code Σ_c max(q_c·max_c, q_c·min_c)}, the largest over the sub-blocks. Needs
     * {@link #summarise} first.
     */
    public float keyScoreBound(int layer, int kvHead, float[] q, int qOff) {
        int blocks = summaryBlocks();
        if (blocks == 0) {
            throw new IllegalStateException("chunk has no key summary");
        }
        float bound = Float.NEGATIVE_INFINITY;
        for (int b = 0; b < blocks; b++) {
            bound = Math.max(bound, keyScoreBound(layer, kvHead, b, q, qOff));
        }
        return bound;
    }

    /**
     * Quest's upper bound on {@code q · key[t]} over the positions of sub-block {@code block} (of
     * {@link #summaryTokens} positions) for {@code kvHead} in {@code layer}.
     */
    public float keyScoreBound(int layer, int kvHead, int block, float[] q, int qOff) {
        int hd = geometry.headDim();
        int at = summaryAt(layer, kvHead, block);
        float[] b = keyBounds;
        float sum = 0f;
        for (int ch = 0; ch < hd; ch++) {
            float x = q[qOff + ch];
            sum += Math.max(x * b[at + ch], x * b[at + hd + ch]);
        }
        return sum;
    }

    /** {@code q · mean key} of sub-block {@code block} for {@code kvHead} in {@code layer} (a landmark score). */
    public float keyMeanScore(int layer, int kvHead, int block, float[] q, int qOff) {
        int hd = geometry.headDim();
        int at = summaryAt(layer, kvHead, block) + 2 * hd;
        float[] b = keyBounds;
        float sum = 0f;
        for (int ch = 0; ch < hd; ch++) {
            sum += q[qOff + ch] * b[at + ch];
        }
        return sum;
    }

    /**
     * A Gaussian estimate of {@code log mean_t exp(scale · q·key[t])} over sub-block {@code block}:
     * {@code scale·q·mean + ½·scale²·Σ_c q_c²·var_c} (channels taken as independent), never above
     * {@code scale} times the Quest bound.
     */
    public float keyLogMeanExp(int layer, int kvHead, int block, float[] q, int qOff, float scale) {
        int hd = geometry.headDim();
        int at = summaryAt(layer, kvHead, block);
        float[] b = keyBounds;
        float bound = 0f;
        float mean = 0f;
        float spread = 0f;
        for (int ch = 0; ch < hd; ch++) {
            float x = q[qOff + ch];
            bound += Math.max(x * b[at + ch], x * b[at + hd + ch]);
            mean += x * b[at + 2 * hd + ch];
            spread += x * x * b[at + 3 * hd + ch];
        }
        return Math.min(scale * bound, scale * mean + 0.5f * scale * scale * spread);
    }

    private int summaryAt(int layer, int kvHead, int block) {
        int blocks = summaryBlocks();
        if (blocks == 0) {
            throw new IllegalStateException(summaryTokens == SKETCH ? "chunk has a key sketch, not per-channel statistics"
                    : "chunk has no key summary");
        }
        if (block < 0 || block >= blocks) {
            throw new IndexOutOfBoundsException("summary sub-block " + block + " of " + blocks);
        }
        return ((layer * geometry.kvHeads() + kvHead) * blocks + block) * STATS * geometry.headDim();
    }

    /** Drops the summary: the store is about to hand this chunk out for other bytes. */
    void forgetSummary() {
        summaryTokens = 0;
    }

    private void requireFull(int count) {
        if (count != geometry.chunkTokens()) {
            throw new IllegalStateException(format + " chunks are sealed full; asked for " + count + " of " + geometry.chunkTokens() + " positions");
        }
    }
}
