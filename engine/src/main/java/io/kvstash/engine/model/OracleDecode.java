package io.kvstash.engine.model;

import io.kvstash.engine.kernel.PanelMatrix;
import io.kvstash.engine.kernel.VectorMath;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvChunk;
import java.util.Arrays;

/**
 * The best any position selector could do under a sparse budget: a fidelity instrument for the
 * {@code sparse-fidelity} command, not a serving path (it scores every key, so it saves nothing).
 * Decodes one token as {@link ForwardPass} decodes it, operation for operation, except that in every
 * layer from {@code denseLayers} on, each query head (or each KV group jointly) attends over the sink
 * chunk, the tail and, of the full chunks between them, the units of {@code granularity} consecutive
 * positions that carry the most exact dense softmax weight (a unit's weight summed over the group's
 * query heads for {@link Choice#GROUP}), as many units as the budget holds. The budget is counted as
 * {@link SparseAttention} counts it: the sink chunk plus the chosen units, at most {@code budgetTokens}
 * positions; the tail (under a chunk) comes on top; a budget with room for every unit is dense
 * attention. The chosen positions' dense weights are renormalised to sum to one, which is the softmax
 * over those positions only.
 *
 * <p>With {@code granularity} = the chunk size and {@link Choice#GROUP} this is the
 * {@link SparseAttention.Scoring#EXACT} choice. Single-threaded; one instance serves one caller.
 */
public final class OracleDecode {
    /** Whose weights choose the units: each query head its own, or a KV group's heads one choice together. */
    public enum Choice {
        HEAD, GROUP
    }

    private final LlamaModel model;
    private final ModelConfig c;
    private final float[] x;     // (dim) residual stream
    private final float[] xb;    // (dim)
    private final float[] xb2;   // (dim)
    private final float[] q;     // (queryDim)
    private final float[] k;     // (kvDim)
    private final float[] v;     // (kvDim)
    private final float[] att;   // (queryDim)
    private final float[] hb;    // (ffnDim)
    private final float[] hb2;   // (ffnDim)
    private final float[] ropeCos; // (ropeDims/2)
    private final float[] ropeSin; // (ropeDims/2)
    private final float[] weightScratch;
    private float[] kvScratch = new float[0];
    private float[][] weights;   // (groupSize, positions) dense softmax of each head of the current group
    private double[] unitMass = new double[0]; // (units) weight of each middle unit
    private double[] sorted = new double[0];   // (units) scratch of the top-k selection
    private boolean[] chosen = new boolean[0]; // (units)
    private double massSum;
    private long sparseHeads;

    public OracleDecode(LlamaModel model) {
        this.model = model;
        this.c = model.config();
        x = new float[c.dim()];
        xb = new float[c.dim()];
        xb2 = new float[c.dim()];
        q = new float[c.queryDim()];
        k = new float[c.kvDim()];
        v = new float[c.kvDim()];
        att = new float[c.queryDim()];
        hb = new float[c.ffnDim()];
        hb2 = new float[c.ffnDim()];
        ropeCos = new float[c.ropeDims() / 2];
        ropeSin = new float[c.ropeDims() / 2];
        weightScratch = new float[PanelMatrix.scratchFloats(model.maxColumns())];
        weights = new float[c.groupSize()][0];
    }

    /** Forgets the mass measured so far. */
    public void resetMass() {
        massSum = 0;
        sparseHeads = 0;
    }

    /**
     * Mean share of the dense softmax mass on the attended positions over every (token, query head,
     * layer) that attended sparsely since {@link #resetMass}; NaN if none did.
     */
    public double meanMassCaptured() {
        return sparseHeads == 0 ? Double.NaN : massSum / sparseHeads;
    }

    /** (token, query head, layer) attentions that went sparse since {@link #resetMass}. */
    public long sparseAttentions() {
        return sparseHeads;
    }

    /**
     * Next-token logits ({@code vocabularySize} floats into {@code logits}) of {@code token} decoded at
     * position {@code cache.length()}. Writes that position's keys and values into the cache's tail but
     * leaves the cache's length as it was: decode the position again (or truncate) afterwards.
     *
     * @param budgetTokens positions of the sink chunk and the chosen units
     * @param granularity  positions per unit; must divide the chunk size (1 = single positions)
     * @param denseLayers  leading layers that attend densely
     */
    public void decode(KvCache cache, int token, int budgetTokens, int granularity, Choice choice, int denseLayers, float[] logits) {
        int chunkTokens = cache.geometry().chunkTokens();
        if (granularity < 1 || chunkTokens % granularity != 0) {
            throw new IllegalArgumentException("oracle units of " + granularity + " positions do not divide chunks of " + chunkTokens
                    + " positions");
        }
        if (budgetTokens < 1) {
            throw new IllegalArgumentException("oracle budget must be at least 1 token, got " + budgetTokens);
        }
        if (token < 0 || token >= c.vocabularySize()) {
            throw new IllegalArgumentException("token id " + token + " outside the vocabulary [0, " + c.vocabularySize() + ")");
        }
        if (logits.length < c.vocabularySize()) {
            throw new IllegalArgumentException("logits buffer too small for one row");
        }
        if (cache.geometry().kvHeads() != c.kvHeads() || cache.geometry().headDim() != c.headDim()
                || cache.geometry().layers() != c.layers()) {
            throw new IllegalArgumentException("cache of " + cache.geometry() + " does not fit the model");
        }
        int pos = cache.length();
        int positions = pos + 1;
        cache.reserve(positions);
        if (kvScratch.length < KvChunk.scratchFloats(cache.geometry())) {
            kvScratch = new float[KvChunk.scratchFloats(cache.geometry())];
        }
        if (weights[0].length < positions) {
            for (int g = 0; g < weights.length; g++) {
                weights[g] = new float[Math.max(positions, weights[g].length * 2)];
            }
        }
        int tail = pos / chunkTokens;
        int units = Math.max(0, tail - 1) * (chunkTokens / granularity);
        int take = Math.max(0, (budgetTokens - chunkTokens) / granularity);
        if (unitMass.length < units) {
            unitMass = new double[units];
            sorted = new double[units];
            chosen = new boolean[units];
        }
        int dim = c.dim();
        model.tokenEmbedding().dequantizeRow(token, x, 0);
        ForwardPass.ropeAngles(model.ropeInverseFrequencies(), pos, ropeCos, ropeSin, 0);
        for (int l = 0; l < c.layers(); l++) {
            LlamaModel.Layer layer = model.layer(l);
            VectorMath.rmsNorm(x, 0, layer.attnNorm(), c.rmsEps(), xb, 0, dim);
            multiply(layer.wq(), xb, q);
            multiply(layer.wk(), xb, k);
            multiply(layer.wv(), xb, v);
            ForwardPass.addBias(layer.qBias(), q, 1);
            ForwardPass.addBias(layer.kBias(), k, 1);
            ForwardPass.addBias(layer.vBias(), v, 1);
            ForwardPass.rope(c, q, 0, c.heads(), ropeCos, ropeSin, 0);
            ForwardPass.rope(c, k, 0, c.kvHeads(), ropeCos, ropeSin, 0);
            cache.chunk(tail).write(l, pos % chunkTokens, k, 0, v, 0);
            boolean sparse = l >= denseLayers && tail >= 2 && take < units;
            for (int kvHead = 0; kvHead < c.kvHeads(); kvHead++) {
                attendGroup(cache, l, kvHead, positions, sparse, granularity, units, take, choice);
            }
            multiply(layer.wo(), att, xb2);
            ForwardPass.addBias(layer.oBias(), xb2, 1);
            VectorMath.add(xb2, 0, x, 0, dim);
            VectorMath.rmsNorm(x, 0, layer.ffnNorm(), c.rmsEps(), xb, 0, dim);
            multiply(layer.wGate(), xb, hb);
            multiply(layer.wUp(), xb, hb2);
            VectorMath.swiglu(hb, 0, hb2, 0, c.ffnDim());
            multiply(layer.wDown(), hb, xb2);
            VectorMath.add(xb2, 0, x, 0, dim);
        }
        VectorMath.rmsNorm(x, 0, model.outputNorm(), c.rmsEps(), xb, 0, dim);
        multiply(model.output(), xb, logits);
        float[] outputBias = model.outputBias();
        if (outputBias != null) {
            VectorMath.add(outputBias, 0, logits, 0, c.vocabularySize());
        }
    }

    /** Attention of the query heads of {@code kvHead}'s group, dense or over the oracle's choice. */
    private void attendGroup(KvCache cache, int layer, int kvHead, int positions, boolean sparse, int granularity, int units, int take,
                             Choice choice) {
        int chunkTokens = cache.geometry().chunkTokens();
        int hd = c.headDim();
        int group = c.groupSize();
        float scale = (float) (1.0 / Math.sqrt(hd));
        for (int g = 0; g < group; g++) {
            int qOff = (kvHead * group + g) * hd;
            float[] w = weights[g];
            for (int ch = 0, p = 0; p < positions; ch++, p += chunkTokens) {
                cache.chunk(ch).keyScores(layer, kvHead, q, qOff, Math.min(chunkTokens, positions - p), scale, w, p, kvScratch);
            }
            VectorMath.softmax(w, 0, positions);
        }
        if (sparse && choice == Choice.GROUP) {
            unitWeights(0, group, chunkTokens, granularity, units);
            chooseTop(unitMass, units, take, chosen, sorted);
        }
        for (int g = 0; g < group; g++) {
            if (sparse) {
                if (choice == Choice.HEAD) {
                    unitWeights(g, g + 1, chunkTokens, granularity, units);
                    chooseTop(unitMass, units, take, chosen, sorted);
                }
                keepChosen(weights[g], positions, chunkTokens, granularity, units);
            }
            accumulate(cache, layer, kvHead, (kvHead * group + g) * hd, positions, weights[g]);
        }
    }

    /** {@code unitMass[u]}: the dense weight of middle unit {@code u} summed over heads {@code [from, to)} of the group. */
    private void unitWeights(int from, int to, int chunkTokens, int granularity, int units) {
        for (int u = 0; u < units; u++) {
            int start = chunkTokens + u * granularity;
            double m = 0;
            for (int g = from; g < to; g++) {
                float[] w = weights[g];
                for (int p = start; p < start + granularity; p++) {
                    m += w[p];
                }
            }
            unitMass[u] = m;
        }
    }

    /**
     * Zeroes the weights of the middle positions outside the chosen units and rescales the rest to sum
     * to one (the softmax over the attended positions); records the dense mass they held.
     */
    private void keepChosen(float[] w, int positions, int chunkTokens, int granularity, int units) {
        for (int u = 0; u < units; u++) {
            if (!chosen[u]) {
                int start = chunkTokens + u * granularity;
                Arrays.fill(w, start, start + granularity, 0f);
            }
        }
        float sum = 0f;
        for (int p = 0; p < positions; p++) {
            sum += w[p];
        }
        VectorMath.scale(w, 0, positions, 1f / sum);
        massSum += sum;
        sparseHeads++;
    }

    /** {@code att} of one query head: the values weighted by {@code w}, chunk by chunk, skipping chunks of zero weight. */
    private void accumulate(KvCache cache, int layer, int kvHead, int qOff, int positions, float[] w) {
        int chunkTokens = cache.geometry().chunkTokens();
        Arrays.fill(att, qOff, qOff + c.headDim(), 0f);
        for (int ch = 0, p = 0; p < positions; ch++, p += chunkTokens) {
            int count = Math.min(chunkTokens, positions - p);
            boolean any = false;
            for (int i = p; i < p + count && !any; i++) {
                any = w[i] != 0f;
            }
            if (any) {
                cache.chunk(ch).accumulateValues(layer, kvHead, w, p, count, att, qOff, kvScratch);
            }
        }
    }

    /**
     * Marks in {@code chosen[0 .. n)} the {@code take} entries of {@code mass} that are largest, ties to
     * the earlier entry (as {@link ChunkSelection} breaks them); {@code sorted} is scratch of {@code n}.
     */
    static void chooseTop(double[] mass, int n, int take, boolean[] chosen, double[] sorted) {
        Arrays.fill(chosen, 0, n, false);
        if (take <= 0) {
            return;
        }
        if (take >= n) {
            Arrays.fill(chosen, 0, n, true);
            return;
        }
        System.arraycopy(mass, 0, sorted, 0, n);
        Arrays.sort(sorted, 0, n);
        double threshold = sorted[n - take];
        int above = 0;
        for (int i = 0; i < n; i++) {
            if (mass[i] > threshold) {
                chosen[i] = true;
                above++;
            }
        }
        for (int i = 0; i < n && above < take; i++) {
            if (mass[i] == threshold) {
                chosen[i] = true;
                above++;
            }
        }
    }

    /** {@code out = w · in} for one token, all rows (a row's result does not depend on how rows are split, so this equals the pool's split). */
    private void multiply(PanelMatrix w, float[] in, float[] out) {
        w.multiply(in, 1, out, 0, w.rows, 0, w.rows, weightScratch);
    }
}
