package io.kvstash.engine.model;

import io.kvstash.engine.kernel.ComputePool;
import io.kvstash.engine.kernel.VectorMath;
import io.kvstash.engine.kernel.PanelMatrix;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvChunk;
import io.kvstash.engine.kv.KvGeometry;
import java.util.Arrays;

/**
 * Runs tokens through a {@link LlamaModel} of any {@link Architecture} (they differ only in which
 * biases the weights carry and how rope pairs dimensions): batched prefill (a block of tokens
 * through each layer as matrix-matrix work) and single-token decode (matrix-vector), writing keys
 * and values into a {@link KvCache} and attending over its chunks.
 *
 * <p>Holds the scratch buffers for up to {@code maxBatch} tokens, so a pass allocates nothing per
 * token. One instance serves one caller at a time; the compute pool may be shared.
 */
public final class ForwardPass {
    private final LlamaModel model;
    private final ModelConfig c;
    private final ComputePool pool;
    private final int maxBatch;

    // Activations, one row per token of the current batch.
    private final float[] x;      // (batch, dim) residual stream
    private final float[] xb;     // (batch, dim) normalised input of a sub-layer
    private final float[] xb2;    // (batch, dim) sub-layer output before the residual add
    private final float[] q;      // (batch, queryDim)
    private final float[] k;      // (batch, kvDim)
    private final float[] v;      // (batch, kvDim)
    private final float[] att;    // (batch, queryDim) attention output
    private final float[] hb;     // (batch, ffnDim) gate, then SwiGLU
    private final float[] hb2;    // (batch, ffnDim) up
    private final float[] ropeCos; // (batch, ropeDims/2)
    private final float[] ropeSin; // (batch, ropeDims/2)
    private final float[][] weightScratch; // (worker, PanelMatrix.scratchFloats(maxColumns)) a tile of decoded weights
    private float[][] scores;           // (worker, positions) grows with the context
    private float[][] kvScratch;        // (worker, KvChunk.scratchFloats) for attention on quantized chunks
    private float[][] chunkBound;       // (worker, (summaryBlocks + 1) · chunks) rank scores of the chunks for the current (token, kv head)
    private boolean[][] chunkPick;      // (worker, chunks) chunks the current (token, kv head) attends over
    private float[] summaryScratch = new float[0]; // (headDim, chunkTokens) one head's keys, then its block's bytes, while a summary is computed
    private volatile SparseAttention sparse = SparseAttention.OFF;
    private volatile SparseProbe probe;
    private SparseAttention stepSparse = SparseAttention.OFF; // the settings the current step started with
    private boolean stepParked;         // some token of the current step belongs to a cache with parked chunks
    private boolean[] parkedNeed = new boolean[0]; // (chunks) chunks some (token, head) of one cache attends over in a layer
    // Attention in rounds, for a cache whose layer needs more parked chunks than its transient slots hold.
    private final boolean[] tokenRounds; // (batch) the token's cache attends in rounds in the current layer
    private boolean roundsPending;       // some cache attends in rounds in the current layer
    private final int[] roundTokens;     // (batch) the step's tokens of the cache attending in rounds now
    private final float[] roundMax;      // (batch, heads) running maximum of a (token, head)'s scores over the rounds so far
    private final float[] roundSum;      // (batch, heads) Σ exp(score − running maximum) over the rounds so far
    private int[] roundOf = new int[0];  // (chunks) the round in which a chunk is attended over, −1: in none
    private boolean[] roundBind = new boolean[0]; // (chunks) the parked chunks one round binds
    // A layer's sparse choice per (token, KV head), made once by SelectTask before anything reads it:
    private byte[] stepChoice = new byte[0]; // (batch, kvHeads) NOT_CHOSEN, CHOSE_SPARSE or CHOSE_DENSE
    private boolean[] stepPicks = new boolean[0]; // (batch, kvHeads, pickStride) the chosen chunks
    private int pickStride;
    private static final byte NOT_CHOSEN = 0;
    private static final byte CHOSE_SPARSE = 1;
    private static final byte CHOSE_DENSE = 2;
    private int roundSparseToken = -1;   // the token of the cache in rounds that attends sparsely (at most one: its only token; its picks in stepPicks), or −1
    private final RoundTask roundTask = new RoundTask();
    // Per-token bookkeeping of the current step: which sequence a token belongs to and its position.
    private final KvCache[] tokenCache; // (batch)
    private final int[] tokenPos;       // (batch)
    private final int[] sealTokens;     // (batch) tokens whose sequence seals its tail this step
    private final int[] choosingTokens; // (batch) tokens that choose chunks for sparse attention in the current layer
    private final SealTask sealTask = new SealTask();
    private final boolean[] tokenDecode; // (batch) the token is its sequence's only one in the step
    private final KvCache[] oneCache;   // (batch) filled with the one cache of a single-sequence forward
    private final int[] allRows;        // (batch) 0, 1, 2, ... logit rows of a single-sequence step

    private final MatTask matTask = new MatTask();
    private final AttentionTask attentionTask = new AttentionTask();
    private final SelectTask selectTask = new SelectTask();

    public ForwardPass(LlamaModel model, ComputePool pool, int maxBatch) {
        if (maxBatch < 1) {
            throw new IllegalArgumentException("maxBatch must be at least 1");
        }
        this.model = model;
        this.c = model.config();
        this.pool = pool;
        this.maxBatch = maxBatch;
        x = new float[maxBatch * c.dim()];
        xb = new float[maxBatch * c.dim()];
        xb2 = new float[maxBatch * c.dim()];
        q = new float[maxBatch * c.queryDim()];
        k = new float[maxBatch * c.kvDim()];
        v = new float[maxBatch * c.kvDim()];
        att = new float[maxBatch * c.queryDim()];
        hb = new float[maxBatch * c.ffnDim()];
        hb2 = new float[maxBatch * c.ffnDim()];
        ropeCos = new float[maxBatch * c.ropeDims() / 2];
        ropeSin = new float[maxBatch * c.ropeDims() / 2];
        weightScratch = new float[pool.threads()][PanelMatrix.scratchFloats(model.maxColumns())];
        scores = new float[pool.threads()][KvGeometry.DEFAULT_CHUNK_TOKENS];
        kvScratch = new float[pool.threads()][0];
        chunkBound = new float[pool.threads()][0];
        chunkPick = new boolean[pool.threads()][0];
        tokenCache = new KvCache[maxBatch];
        tokenPos = new int[maxBatch];
        sealTokens = new int[maxBatch];
        choosingTokens = new int[maxBatch];
        tokenDecode = new boolean[maxBatch];
        oneCache = new KvCache[maxBatch];
        allRows = new int[maxBatch];
        tokenRounds = new boolean[maxBatch];
        roundTokens = new int[maxBatch];
        roundMax = new float[maxBatch * c.heads()];
        roundSum = new float[maxBatch * c.heads()];
        for (int i = 0; i < maxBatch; i++) {
            allRows[i] = i;
        }
    }

    public LlamaModel model() {
        return model;
    }

    public int maxBatch() {
        return maxBatch;
    }

    /** How decoding tokens attend from the next step on (see {@link SparseAttention}). */
    public void setSparse(SparseAttention sparse) {
        this.sparse = java.util.Objects.requireNonNull(sparse, "sparse");
    }

    public SparseAttention sparse() {
        return sparse;
    }

    /**
     * Measures sparse attention against dense in the following steps (null: stop): every sparse
     * (token, head) also computes the dense softmax and reports the share of its mass on the chosen
     * positions. Costs a dense attention on top of each sparse one; for fidelity tools, not serving.
     */
    public void setProbe(SparseProbe probe) {
        if (probe != null) {
            probe.ensureWorkers(pool.threads());
        }
        this.probe = probe;
    }

    /**
     * Appends {@code tokens[off .. off+n)} to the sequence in {@code cache} (at positions
     * {@code cache.length()} on) and computes logits for tokens {@code [logitsFrom, n)} into
     * {@code logits[(t − logitsFrom)·vocab ..]}. Pass {@code logitsFrom = n − 1} for the next-token
     * logits only, {@code n} for none.
     */
    public void forward(KvCache cache, int[] tokens, int off, int n, int logitsFrom, float[] logits) {
        if (n <= 0) {
            throw new IllegalArgumentException("no tokens to run");
        }
        if (logitsFrom < 0 || logitsFrom > n) {
            throw new IllegalArgumentException("logitsFrom " + logitsFrom + " outside [0, " + n + "]");
        }
        if (logits != null && (long) (n - logitsFrom) * c.vocabularySize() > logits.length) {
            throw new IllegalArgumentException("logits buffer too small for " + (n - logitsFrom) + " rows");
        }
        requireTokenIds(tokens, off, n);
        int chunkTokens = cache.geometry().chunkTokens();
        try {
            for (int done = 0, b; done < n; done += b) {
                // A step never crosses a chunk boundary: a chunk is sealed before any later position
                // attends to it, so what a query sees does not depend on how the tokens were batched.
                int pos = cache.length();
                b = Math.min(Math.min(maxBatch, n - done), chunkTokens - pos % chunkTokens);
                int firstLogit = Math.max(0, logitsFrom - done);
                int logitsOffset = Math.max(0, done - logitsFrom) * c.vocabularySize();
                Arrays.fill(oneCache, 0, b, cache);
                int m = logits == null ? 0 : Math.max(0, b - firstLogit);
                runStep(oneCache, tokens, off + done, b, allRows, firstLogit, m, logits, logitsOffset);
            }
        } finally {
            Arrays.fill(oneCache, null);
        }
    }

    /**
     * One step over tokens of possibly different sequences: token {@code i} is
     * {@code tokens[off + i]} and belongs to the sequence {@code caches[i]}, at position
     * {@code caches[i].length()} plus the number of earlier tokens of the same sequence in this step
     * (a sequence may contribute several consecutive tokens, e.g. a slice of its prompt). The weight
     * matrices are applied once to the whole batch; rope, KV writes and attention use each token's
     * own cache and position. Logits for tokens {@code logitTokens[0 .. logitCount)} (ascending
     * indices into the step) go to rows {@code 0 .. logitCount) of {@code logits}. Afterwards every
     * touched cache has its new length (full tails are sealed).
     *
     * <p>A sequence's tokens in one step must not cross a KV chunk boundary, and {@code n} must not
     * exceed {@link #maxBatch()}. Checks everything before touching any cache.
     */
    public void step(KvCache[] caches, int[] tokens, int off, int n, int[] logitTokens, int logitCount, float[] logits) {
        if (n <= 0 || n > maxBatch) {
            throw new IllegalArgumentException("step of " + n + " tokens outside [1, " + maxBatch + "]");
        }
        if (logitCount < 0 || logitCount > n || (logitCount > 0 && logits == null)) {
            throw new IllegalArgumentException("bad logit count " + logitCount + " for a step of " + n + " tokens");
        }
        if (logits != null && (long) logitCount * c.vocabularySize() > logits.length) {
            throw new IllegalArgumentException("logits buffer too small for " + logitCount + " rows");
        }
        for (int r = 0; r < logitCount; r++) {
            if (logitTokens[r] < 0 || logitTokens[r] >= n || (r > 0 && logitTokens[r] <= logitTokens[r - 1])) {
                throw new IllegalArgumentException("logit token indices must ascend within [0, " + n + ")");
            }
        }
        requireTokenIds(tokens, off, n);
        runStep(caches, tokens, off, n, logitTokens, 0, logitCount, logits, 0);
    }

    /**
     * Assigns positions, checks the chunk rule, reserves chunks and runs the layers. Logit rows
     * are {@code logitTokens[logitFrom .. logitFrom + logitCount)} into {@code logits} from
     * {@code logitsOffset}.
     */
    private void runStep(KvCache[] caches, int[] tokens, int off, int n, int[] logitTokens, int logitFrom, int logitCount,
                         float[] logits, int logitsOffset) {
        int maxPositions = 0;
        int maxChunks = 1;
        for (int i = 0; i < n; i++) {
            KvCache cache = caches[i];
            int pos = cache.length();
            int first = i;
            for (int j = 0; j < i; j++) {
                if (caches[j] == cache) {
                    pos++;
                    first = Math.min(first, j);
                }
            }
            int chunkTokens = cache.geometry().chunkTokens();
            if (first < i && pos / chunkTokens != tokenPos[first] / chunkTokens) {
                throw new IllegalArgumentException("a sequence's tokens in one step cross the KV chunk boundary at "
                        + pos / chunkTokens * chunkTokens);
            }
            tokenPos[i] = pos;
            maxPositions = Math.max(maxPositions, pos + 1);
            maxChunks = Math.max(maxChunks, pos / chunkTokens + 1);
            ensureKvScratch(cache.geometry());
        }
        ensureScoreCapacity(maxPositions);
        SparseAttention sp = sparse;
        stepSparse = sp;
        stepParked = false;
        for (int i = 0; i < n; i++) {
            if (caches[i].parkedChunks() > 0) {
                stepParked = true;
                int chunkTokens = caches[i].geometry().chunkTokens();
                int chunks = tokenPos[i] / chunkTokens + 1;
                int blocks = sp.enabled() ? sp.summaryBlocks(chunkTokens) : 1;
                ensureSparseScratch(ChunkSelection.estimateFloats(chunks, blocks), chunks);
            }
        }
        for (int i = 0; i < n; i++) {
            boolean alone = true;
            for (int j = 0; j < n && alone; j++) {
                alone = j == i || caches[j] != caches[i];
            }
            tokenDecode[i] = alone;
            if (alone && sp.enabled() && tokenPos[i] + 1 >= sp.minContext()) {
                // Summaries are lazy: a chunk gets its summary here, on this thread before the workers
                // read it, the first time a sparse step needs it (or again when the granularity changed).
                KvCache cache = caches[i];
                KvGeometry g = cache.geometry();
                int blockTokens = sp.summaryTokens(g.chunkTokens());
                ensureSummaryScratch(g);
                for (int ch = 0, full = cache.fullChunks(); ch < full; ch++) {
                    KvChunk chunk = cache.chunk(ch);
                    if (chunk.summaryTokens() != blockTokens) {
                        if (chunk.parked()) {
                            throw new IllegalStateException("chunk " + ch + " was parked with " + SparseAttention.describeSummary(chunk.summaryTokens())
                                    + ", sparse decode uses " + SparseAttention.describeSummary(blockTokens)
                                    + ": park chunks with the summary of the sparse settings");
                        }
                        chunk.summarise(blockTokens, summaryScratch);
                    }
                }
                int chunks = tokenPos[i] / g.chunkTokens() + 1;
                ensureSparseScratch(ChunkSelection.estimateFloats(chunks, sp.summaryBlocks(g.chunkTokens())), chunks);
            }
        }
        if (sp.enabled()) {
            ensureChoiceScratch(n, maxChunks);
        }
        try {
            for (int i = 0; i < n; i++) {
                tokenCache[i] = caches[i];
                caches[i].reserve(tokenPos[i] + 1);
            }
            runBatch(tokens, off, n, logitTokens, logitFrom, logitCount, logits, logitsOffset);
        } finally {
            Arrays.fill(tokenCache, 0, n, null);
        }
    }

    private void requireTokenIds(int[] tokens, int off, int n) {
        for (int i = 0; i < n; i++) {
            int id = tokens[off + i];
            if (id < 0 || id >= c.vocabularySize()) {
                throw new IllegalArgumentException("token id " + id + " outside the vocabulary [0, " + c.vocabularySize() + ")");
            }
        }
    }

    private void ensureKvScratch(KvGeometry g) {
        int need = KvChunk.scratchFloats(g);
        if (kvScratch[0].length < need) {
            for (int i = 0; i < kvScratch.length; i++) {
                kvScratch[i] = new float[need];
            }
        }
    }

    private void ensureSparseScratch(int estimates, int chunks) {
        if (chunkBound[0].length < estimates) {
            int size = Math.max(estimates, chunkBound[0].length * 2);
            for (int i = 0; i < chunkBound.length; i++) {
                chunkBound[i] = new float[size];
            }
        }
        if (chunkPick[0].length < chunks) {
            int size = Math.max(chunks, chunkPick[0].length * 2);
            for (int i = 0; i < chunkPick.length; i++) {
                chunkPick[i] = new boolean[size];
            }
        }
        if (parkedNeed.length < chunks) {
            int size = Math.max(chunks, parkedNeed.length * 2);
            parkedNeed = new boolean[size];
            roundOf = new int[size];
            roundBind = new boolean[size];
        }
    }

    private void ensureChoiceScratch(int n, int stride) {
        pickStride = stride;
        if (stepChoice.length < n * c.kvHeads()) {
            stepChoice = new byte[Math.max(n, 16) * c.kvHeads()];
        }
        if (stepPicks.length < n * c.kvHeads() * stride) {
            stepPicks = new boolean[Math.max(n * c.kvHeads() * stride, stepPicks.length * 2)];
        }
    }

    private void ensureSummaryScratch(KvGeometry g) {
        if (summaryScratch.length < KvChunk.summaryScratchFloats(g)) {
            summaryScratch = new float[KvChunk.summaryScratchFloats(g)];
        }
    }

    private void ensureScoreCapacity(int positions) {
        if (scores[0].length < positions) {
            int size = Math.max(positions, scores[0].length * 2);
            for (int i = 0; i < scores.length; i++) {
                scores[i] = new float[size];
            }
        }
    }

    private void runBatch(int[] tokens, int off, int n, int[] logitTokens, int logitFrom, int logitCount, float[] logits,
                          int logitsOffset) {
        int dim = c.dim();
        Arrays.fill(tokenRounds, 0, n, false);
        roundsPending = false;
        for (int t = 0; t < n; t++) {
            model.tokenEmbedding().dequantizeRow(tokens[off + t], x, t * dim);
        }
        computeRopeAngles(n);
        for (int l = 0; l < c.layers(); l++) {
            LlamaModel.Layer layer = model.layer(l);
            for (int t = 0; t < n; t++) {
                VectorMath.rmsNorm(x, t * dim, layer.attnNorm(), c.rmsEps(), xb, t * dim, dim);
            }
            matTask.run3(xb, n, layer.wq(), q, layer.wk(), k, layer.wv(), v);
            addBias(layer.qBias(), q, n);
            addBias(layer.kBias(), k, n);
            addBias(layer.vBias(), v, n);
            for (int t = 0; t < n; t++) {
                rope(q, t * c.queryDim(), c.heads(), t);
                rope(k, t * c.kvDim(), c.kvHeads(), t);
                KvCache cache = tokenCache[t];
                int pos = tokenPos[t];
                int chunkTokens = cache.geometry().chunkTokens();
                KvChunk chunk = cache.chunk(pos / chunkTokens);
                chunk.write(l, pos % chunkTokens, k, t * c.kvDim(), v, t * c.kvDim());
            }
            if (stepSparse.enabled()) {
                selectTask.run(l, n);
            }
            if (stepParked) {
                bindParked(l, n);
            }
            attentionTask.run(l, n);
            if (roundsPending) {
                attendInRounds(l, n);
            }
            matTask.run1(att, n, layer.wo(), xb2);
            addBias(layer.oBias(), xb2, n);
            VectorMath.add(xb2, 0, x, 0, n * dim);
            for (int t = 0; t < n; t++) {
                VectorMath.rmsNorm(x, t * dim, layer.ffnNorm(), c.rmsEps(), xb, t * dim, dim);
            }
            matTask.run2(xb, n, layer.wGate(), hb, layer.wUp(), hb2);
            VectorMath.swiglu(hb, 0, hb2, 0, n * c.ffnDim());
            matTask.run1(hb, n, layer.wDown(), xb2);
            VectorMath.add(xb2, 0, x, 0, n * dim);
        }
        // Tokens of one sequence have ascending positions that never cross a chunk boundary, so only a
        // sequence's last token in the step can fill its tail. Those sequences seal in parallel:
        // sealing is per sequence and the stores are thread-safe.
        int sealing = 0;
        for (int t = 0; t < n; t++) {
            if (tokenCache[t].sealsAt(tokenPos[t] + 1)) {
                sealTokens[sealing++] = t;
            } else {
                tokenCache[t].setLength(tokenPos[t] + 1);
            }
        }
        if (sealing > 0) {
            pool.run(sealTask, sealing);
        }
        if (logitCount > 0 && logits != null) {
            for (int r = 0; r < logitCount; r++) {
                VectorMath.rmsNorm(x, logitTokens[logitFrom + r] * dim, model.outputNorm(), c.rmsEps(), xb, r * dim, dim);
            }
            matTask.logits(xb, logitCount, model.output(), logits, logitsOffset);
            float[] outputBias = model.outputBias();
            if (outputBias != null) {
                for (int r = 0; r < logitCount; r++) {
                    VectorMath.add(outputBias, 0, logits, logitsOffset + r * c.vocabularySize(), c.vocabularySize());
                }
            }
        }
    }

    /**
     * Gives the parked chunks that layer {@code l}'s attention will read a transient body: per cache
     * with parked chunks, the union over its tokens and KV heads of the chunks sparse decode picks
     * (the layer's choice, made by {@link SelectTask}), or every chunk up to the token's position
     * where it attends densely. A cache that needs more parked chunks
     * than its slots hold binds nothing here: its tokens attend in rounds ({@link #attendInRounds})
     * after the others.
     */
    private void bindParked(int l, int n) {
        Arrays.fill(tokenRounds, 0, n, false);
        roundsPending = false;
        for (int t = 0; t < n; t++) {
            KvCache cache = tokenCache[t];
            if (cache.parkedChunks() == 0 || !firstOfCache(t)) {
                continue; // bound with this cache's first token of the step
            }
            int count = markNeeded(l, n, t);
            int needed = 0;
            for (int ch = 0; ch < count; ch++) {
                if (parkedNeed[ch] && cache.chunk(ch).parked()) {
                    needed++;
                }
            }
            if (needed <= cache.transientCapacity()) {
                cache.bindParked(parkedNeed, count, l);
                continue;
            }
            for (int u = t; u < n; u++) {
                if (tokenCache[u] != cache) {
                    continue;
                }
                if (tokenDecode[u] && stepSparse.engages(l, tokenPos[u] + 1)
                        && readsEveryChunk()) {
                    throw new IllegalStateException("layer " + l + " needs " + needed + " parked chunks at once, but there are "
                            + cache.transientCapacity() + " transient slots, and "
                            + (probe != null ? "a sparse probe" : "exact chunk scoring")
                            + " reads every chunk at once: give the cache a slot for every parked chunk");
                }
                tokenRounds[u] = true;
            }
            roundsPending = true;
        }
    }

    /**
     * Whether a sparse decoding token reads every chunk's keys while it attends, so that every parked
     * chunk needs a body at once: the probe compares with dense attention, exact scoring scores every key.
     */
    private boolean readsEveryChunk() {
        return probe != null || stepSparse.scoring() == SparseAttention.Scoring.EXACT;
    }

    private boolean firstOfCache(int t) {
        for (int j = 0; j < t; j++) {
            if (tokenCache[j] == tokenCache[t]) {
                return false;
            }
        }
        return true;
    }

    /**
     * Marks in {@code parkedNeed} the chunks layer {@code l}'s attention reads for the tokens of
     * {@code tokenCache[t]} (its first token in the step) and returns how many chunks that covers;
     * the cache's token that attends sparsely (by the choice in {@code stepPicks}) goes to
     * {@code roundSparseToken} (−1: every token attends densely).
     */
    private int markNeeded(int l, int n, int t) {
        KvCache cache = tokenCache[t];
        int chunkTokens = cache.geometry().chunkTokens();
        int count = 0;
        roundSparseToken = -1;
        for (int u = t; u < n; u++) {
            if (tokenCache[u] != cache) {
                continue;
            }
            int positions = tokenPos[u] + 1;
            int upTo = (positions - 1) / chunkTokens + 1;
            if (upTo > count) {
                Arrays.fill(parkedNeed, count, upTo, false);
                count = upTo;
            }
            boolean dense = true;
            if (tokenDecode[u] && stepSparse.engages(l, positions) && !readsEveryChunk()) {
                dense = false;
                for (int kvHead = 0; kvHead < c.kvHeads() && !dense; kvHead++) {
                    int choice = u * c.kvHeads() + kvHead;
                    if (stepChoice[choice] == CHOSE_SPARSE) {
                        int at = choice * pickStride;
                        for (int ch = 0; ch < upTo; ch++) {
                            parkedNeed[ch] |= stepPicks[at + ch];
                        }
                    } else {
                        dense = true; // the budget covers the context: the same for every KV head
                    }
                }
                if (!dense) {
                    roundSparseToken = u;
                }
            }
            if (dense) {
                Arrays.fill(parkedNeed, 0, upTo, true);
            }
        }
        return count;
    }

    /**
     * Attention of the tokens marked in {@code tokenRounds} in rounds, cache by cache: each round
     * binds as many of the parked chunks the layer needs as the cache's slots hold (those bound
     * already first, so they are not read again; resident chunks join the first round), and every
     * (token, query head) attends over the chunks of the round it would attend over in one pass
     * (the same causal limit and sparse choice). A round's scores leave a running maximum {@code m},
     * the sum of {@code exp(score − m)} and the values weighted by {@code exp(score − m)}, added
     * to the earlier rounds' after rescaling both by {@code exp(m_old − m_new)} (log-sum-exp);
     * the last round divides by the sum. Equal to one pass up to the order of float sums.
     */
    private void attendInRounds(int l, int n) {
        for (int t = 0; t < n; t++) {
            if (!tokenRounds[t] || !firstOfCache(t)) {
                continue;
            }
            KvCache cache = tokenCache[t];
            int count = markNeeded(l, n, t);
            int capacity = cache.transientCapacity();
            // Parked chunks already bound go first, then the others in chunk order, a slot-full per round.
            int inRound = 0;
            for (int ch = 0; ch < count; ch++) {
                KvChunk chunk = cache.chunk(ch);
                roundOf[ch] = !parkedNeed[ch] ? -1 : !chunk.parked() ? 0 : chunk.hasBody() && inRound < capacity ? 0 : -2;
                if (roundOf[ch] == 0 && chunk.parked()) {
                    inRound++;
                }
            }
            int round = inRound == capacity ? 1 : 0;
            inRound = round == 0 ? inRound : 0;
            for (int ch = 0; ch < count; ch++) {
                if (roundOf[ch] == -2) {
                    roundOf[ch] = round;
                    if (++inRound == capacity) {
                        round++;
                        inRound = 0;
                    }
                }
            }
            int rounds = inRound == 0 ? round : round + 1;
            int tokens = 0;
            for (int u = t; u < n; u++) {
                if (tokenCache[u] == cache) {
                    roundTokens[tokens++] = u;
                    for (int h = 0; h < c.heads(); h++) {
                        roundMax[u * c.heads() + h] = Float.NEGATIVE_INFINITY;
                        roundSum[u * c.heads() + h] = 0f;
                    }
                    Arrays.fill(att, u * c.queryDim(), (u + 1) * c.queryDim(), 0f);
                }
            }
            for (int r = 0; r < rounds; r++) {
                for (int ch = 0; ch < count; ch++) {
                    roundBind[ch] = roundOf[ch] == r && cache.chunk(ch).parked();
                }
                cache.bindParked(roundBind, count, l, r == rounds - 1);
                roundTask.run(l, cache, r, r == rounds - 1, tokens);
            }
        }
    }

    /**
     * Adds {@code bias} (absent: {@code null}) to each of the first {@code n} rows of {@code rows}, rows as
     * long as the bias (also for {@link OracleDecode}).
     */
    static void addBias(float[] bias, float[] rows, int n) {
        if (bias != null) {
            for (int t = 0; t < n; t++) {
                VectorMath.add(bias, 0, rows, t * bias.length, bias.length);
            }
        }
    }

    private void computeRopeAngles(int n) {
        float[] inv = model.ropeInverseFrequencies();
        for (int t = 0; t < n; t++) {
            ropeAngles(inv, tokenPos[t], ropeCos, ropeSin, t * inv.length);
        }
    }

    /** The RoPE angles of position {@code pos} into {@code cos, sin[at ..]}: computed in double, stored as float. */
    static void ropeAngles(float[] inverseFrequencies, int pos, float[] cos, float[] sin, int at) {
        for (int i = 0; i < inverseFrequencies.length; i++) {
            double angle = (double) pos * inverseFrequencies[i];
            cos[at + i] = (float) Math.cos(angle);
            sin[at + i] = (float) Math.sin(angle);
        }
    }

    /** Rotates the first ropeDims dimensions of each of {@code heads} heads starting at {@code vec[off]}. */
    private void rope(float[] vec, int off, int heads, int t) {
        rope(c, vec, off, heads, ropeCos, ropeSin, t * (c.ropeDims() / 2));
    }

    /** {@link #rope(float[], int, int, int)} with the angles at {@code cos, sin[angles ..]} (also for {@link OracleDecode}). */
    static void rope(ModelConfig c, float[] vec, int off, int heads, float[] ropeCos, float[] ropeSin, int angles) {
        int hd = c.headDim();
        int half = c.ropeDims() / 2;
        boolean adjacent = c.ropeStyle() == RopeStyle.NORMAL;
        for (int h = 0; h < heads; h++) {
            int base = off + h * hd;
            for (int i = 0; i < half; i++) {
                int a = adjacent ? base + 2 * i : base + i;
                int b = adjacent ? a + 1 : a + half;
                float cos = ropeCos[angles + i];
                float sin = ropeSin[angles + i];
                float x0 = vec[a];
                float x1 = vec[b];
                vec[a] = x0 * cos - x1 * sin;
                vec[b] = x0 * sin + x1 * cos;
            }
        }
    }

    /** Up to three matrices over the same input, their rows split across the pool as one range. */
    private final class MatTask implements ComputePool.RangeTask {
        private final PanelMatrix[] w = new PanelMatrix[3];
        private final float[][] out = new float[3][];
        private int count;
        private float[] in;
        private int n;
        private int outOff;
        private int outStride;
        private int grain;

        void run1(float[] in, int n, PanelMatrix w0, float[] o0) {
            set(in, n, 1, w0, o0, null, null, null, null);
        }

        void run2(float[] in, int n, PanelMatrix w0, float[] o0, PanelMatrix w1, float[] o1) {
            set(in, n, 2, w0, o0, w1, o1, null, null);
        }

        void run3(float[] in, int n, PanelMatrix w0, float[] o0, PanelMatrix w1, float[] o1, PanelMatrix w2, float[] o2) {
            set(in, n, 3, w0, o0, w1, o1, w2, o2);
        }

        void logits(float[] in, int n, PanelMatrix output, float[] logits, int offset) {
            this.outOff = offset;
            this.outStride = output.rows;
            dispatch(in, n, 1, output, logits, null, null, null, null);
        }

        private void set(float[] in, int n, int count, PanelMatrix w0, float[] o0, PanelMatrix w1, float[] o1, PanelMatrix w2, float[] o2) {
            this.outOff = 0;
            this.outStride = -1;
            dispatch(in, n, count, w0, o0, w1, o1, w2, o2);
        }

        private void dispatch(float[] in, int n, int count, PanelMatrix w0, float[] o0, PanelMatrix w1, float[] o1, PanelMatrix w2, float[] o2) {
            this.in = in;
            this.n = n;
            this.count = count;
            w[0] = w0;
            out[0] = o0;
            w[1] = w1;
            out[1] = o1;
            w[2] = w2;
            out[2] = o2;
            grain = PanelMatrix.rowGrain(n);
            int rows = 0;
            for (int i = 0; i < count; i++) {
                rows += paddedRows(w[i]);
            }
            try {
                pool.run(this, rows, grain);
            } finally {
                this.in = null;
                for (int i = 0; i < 3; i++) {
                    w[i] = null;
                    out[i] = null;
                }
            }
        }

        @Override
        public void run(int start, int end, int worker) {
            int base = 0;
            for (int i = 0; i < count; i++) {
                PanelMatrix m = w[i];
                int lo = Math.max(start, base) - base;
                int hi = Math.min(end, base + m.rows) - base;
                if (lo < hi) {
                    int stride = outStride > 0 ? outStride : m.rows;
                    m.multiply(in, n, out[i], outOff, stride, lo, hi, weightScratch[worker]);
                }
                base += paddedRows(m);
            }
        }

        /**
         * Rows a matrix takes in the shared range: rounded up to the grain, so that every piece
         * starts on a panel boundary of each matrix.
         */
        private int paddedRows(PanelMatrix m) {
            return (m.rows + grain - 1) / grain * grain;
        }
    }

    /** Sets the new length of the sequences of the given entries of {@code sealTokens}, sealing their full tails. */
    private final class SealTask implements ComputePool.RangeTask {
        @Override
        public void run(int from, int to, int worker) {
            for (int i = from; i < to; i++) {
                int t = sealTokens[i];
                tokenCache[t].setLength(tokenPos[t] + 1);
            }
        }
    }

    /**
     * A layer's sparse choice ({@link ChunkSelection#select}) for every (decoding token, KV head)
     * that goes sparse, once and in parallel, before parked chunks are bound and attention runs:
     * both read it, and so does every query head of a grouped-query group. Exact scoring reads
     * chunk bodies, which parked chunks get only when bound, so it still chooses inside attention.
     */
    private final class SelectTask implements ComputePool.RangeTask {
        private int layer;
        private int count;

        void run(int layer, int n) {
            this.layer = layer;
            int heads = c.kvHeads();
            Arrays.fill(stepChoice, 0, n * heads, NOT_CHOSEN);
            if (stepSparse.scoring() == SparseAttention.Scoring.EXACT) {
                return;
            }
            count = 0;
            for (int t = 0; t < n; t++) {
                if (tokenDecode[t] && stepSparse.engages(layer, tokenPos[t] + 1)) {
                    choosingTokens[count++] = t;
                }
            }
            pool.run(this, count * heads);
        }

        @Override
        public void run(int from, int to, int worker) {
            int hd = c.headDim();
            float scale = (float) (1.0 / Math.sqrt(hd));
            for (int i = from; i < to; i++) {
                int t = choosingTokens[i / c.kvHeads()];
                int kvHead = i % c.kvHeads();
                KvCache cache = tokenCache[t];
                int positions = tokenPos[t] + 1;
                int choice = t * c.kvHeads() + kvHead;
                if (ChunkSelection.select(cache, layer, kvHead, q, t * c.queryDim() + kvHead * c.groupSize() * hd, c.groupSize(), hd,
                        positions, stepSparse, scale, chunkBound[worker], chunkPick[worker], scores[worker], kvScratch[worker])) {
                    System.arraycopy(chunkPick[worker], 0, stepPicks, choice * pickStride, (positions - 1) / cache.geometry().chunkTokens() + 1);
                    stepChoice[choice] = CHOSE_SPARSE;
                } else {
                    stepChoice[choice] = CHOSE_DENSE;
                }
            }
        }
    }

    /** Causal attention of every (token, head) of the batch over the cache's chunks. */
    private final class AttentionTask implements ComputePool.RangeTask {
        private int layer;
        private SparseAttention sp;
        private SparseProbe pr;

        void run(int layer, int n) {
            this.layer = layer;
            this.sp = stepSparse;
            this.pr = probe;
            pool.run(this, n * c.heads());
        }

        @Override
        public void run(int from, int to, int worker) {
            int hd = c.headDim();
            float scale = (float) (1.0 / Math.sqrt(hd));
            float[] sc = scores[worker];
            float[] scratch = kvScratch[worker];
            for (int i = from; i < to; i++) {
                int t = i / c.heads();
                if (tokenRounds[t]) {
                    continue; // its cache attends in rounds after this task
                }
                int h = i % c.heads();
                int kvHead = h / c.groupSize();
                KvCache cache = tokenCache[t];
                int chunkTokens = cache.geometry().chunkTokens();
                int positions = tokenPos[t] + 1;
                int qOff = t * c.queryDim() + h * hd;
                if (tokenDecode[t] && sp.engages(layer, positions)
                        && attendSparse(cache, t, h, kvHead, positions, qOff, scale, worker)) {
                    continue;
                }
                for (int ch = 0, p = 0; p < positions; ch++, p += chunkTokens) {
                    cache.chunk(ch).keyScores(layer, kvHead, q, qOff, Math.min(chunkTokens, positions - p), scale, sc, p, scratch);
                }
                VectorMath.softmax(sc, 0, positions);
                Arrays.fill(att, qOff, qOff + hd, 0f);
                for (int ch = 0, p = 0; p < positions; ch++, p += chunkTokens) {
                    cache.chunk(ch).accumulateValues(layer, kvHead, sc, p, Math.min(chunkTokens, positions - p), att, qOff, scratch);
                }
            }
        }

        /**
         * Attention of query head {@code h} of token {@code t} over the sink chunk, the tail chunk and
         * the full chunks between them that rank highest ({@link ChunkSelection}; the group of
         * {@code kvHead} shares one choice), as many as the budget holds.
         * Returns false, having done nothing, when the budget covers every chunk: dense attention
         * then gives the same result.
         */
        private boolean attendSparse(KvCache cache, int t, int h, int kvHead, int positions, int qOff, float scale, int worker) {
            int chunkTokens = cache.geometry().chunkTokens();
            int hd = c.headDim();
            boolean[] pick = chunkPick[worker];
            float[] scratch = kvScratch[worker];
            int choice = t * c.kvHeads() + kvHead;
            if (stepChoice[choice] != NOT_CHOSEN) {
                if (stepChoice[choice] == CHOSE_DENSE) {
                    return false;
                }
                System.arraycopy(stepPicks, choice * pickStride, pick, 0, (positions - 1) / chunkTokens + 1);
            } else if (!ChunkSelection.select(cache, layer, kvHead, q, t * c.queryDim() + kvHead * c.groupSize() * hd, c.groupSize(), hd,
                    positions, sp, scale, chunkBound[worker], pick, scores[worker], scratch)) {
                return false;
            }
            int tail = (positions - 1) / chunkTokens;
            ChunkSelection.attendChosen(cache, layer, kvHead, q, qOff, positions, scale, pick, scores[worker], att, qOff, scratch);
            if (pr != null) {
                pr.record(worker, cache, layer, kvHead, q, qOff, positions, scale, pick, tail, scratch);
            }
            return true;
        }
    }

    /**
     * One round of attention in rounds: every (token, query head) of {@code roundTokens} over the
     * chunks of the round that it attends over, merged into its running state by log-sum-exp
     * (see {@link #attendInRounds}); the last round normalises.
     */
    private final class RoundTask implements ComputePool.RangeTask {
        private int layer;
        private KvCache cache;
        private int round;
        private boolean last;

        void run(int layer, KvCache cache, int round, boolean last, int tokens) {
            this.layer = layer;
            this.cache = cache;
            this.round = round;
            this.last = last;
            try {
                pool.run(this, tokens * c.heads());
            } finally {
                this.cache = null;
            }
        }

        @Override
        public void run(int from, int to, int worker) {
            int hd = c.headDim();
            int heads = c.heads();
            float scale = (float) (1.0 / Math.sqrt(hd));
            float[] sc = scores[worker];
            float[] scratch = kvScratch[worker];
            int chunkTokens = cache.geometry().chunkTokens();
            for (int i = from; i < to; i++) {
                int t = roundTokens[i / heads];
                int h = i % heads;
                int kvHead = h / c.groupSize();
                int positions = tokenPos[t] + 1;
                int tail = (positions - 1) / chunkTokens;
                int qOff = t * c.queryDim() + h * hd;
                int pickOff = t == roundSparseToken ? (t * c.kvHeads() + kvHead) * pickStride : -1;
                int state = t * heads + h;
                int m = 0;
                for (int ch = 0; ch <= tail; ch++) {
                    if (roundOf[ch] == round && (pickOff < 0 || stepPicks[pickOff + ch])) {
                        int count = Math.min(chunkTokens, positions - ch * chunkTokens);
                        cache.chunk(ch).keyScores(layer, kvHead, q, qOff, count, scale, sc, m, scratch);
                        m += count;
                    }
                }
                if (m > 0) {
                    float max = roundMax[state];
                    for (int p = 0; p < m; p++) {
                        max = Math.max(max, sc[p]);
                    }
                    float old = roundMax[state];
                    if (old != max && old != Float.NEGATIVE_INFINITY) {
                        float rescale = VectorMath.exp(old - max);
                        VectorMath.scale(att, qOff, hd, rescale);
                        roundSum[state] *= rescale;
                    }
                    roundMax[state] = max;
                    roundSum[state] += VectorMath.expShift(sc, 0, m, max);
                    m = 0;
                    for (int ch = 0; ch <= tail; ch++) {
                        if (roundOf[ch] == round && (pickOff < 0 || stepPicks[pickOff + ch])) {
                            int count = Math.min(chunkTokens, positions - ch * chunkTokens);
                            cache.chunk(ch).accumulateValues(layer, kvHead, sc, m, count, att, qOff, scratch);
                            m += count;
                        }
                    }
                }
                if (last) {
                    VectorMath.scale(att, qOff, hd, 1f / roundSum[state]);
                }
            }
        }
    }
}
