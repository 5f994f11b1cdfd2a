package io.kvstash.engine.model;

import io.kvstash.engine.kernel.VectorMath;
import io.kvstash.engine.kv.KvCache;

/**
 * What sparse decode leaves out, measured while it runs ({@link ForwardPass#setProbe}): for every
 * (token, query head, layer) that attended sparsely, the share of the dense softmax mass (over all
 * positions, same query, same cache) that falls on the positions it attended over; and which chunks
 * any head of any layer chose since {@link #clearChunks}, i.e. the chunks a step needs resident.
 * A fidelity instrument: it recomputes dense attention, so it is as slow as dense and slower.
 */
public final class SparseProbe {
    private double[] massSum = new double[0];   // (worker)
    private long[] heads = new long[0];         // (worker)
    private float[][] dense = new float[0][];   // (worker, positions)
    private boolean[] chosen = new boolean[0];  // (layer, chunk) union over heads since clearChunks
    private int chunks;

    synchronized void ensureWorkers(int workers) {
        if (massSum.length < workers) {
            massSum = java.util.Arrays.copyOf(massSum, workers);
            heads = java.util.Arrays.copyOf(heads, workers);
            float[][] d = java.util.Arrays.copyOf(dense, workers);
            for (int i = dense.length; i < workers; i++) {
                d[i] = new float[0];
            }
            dense = d;
        }
    }

    /** Forgets which chunks were chosen; call before a step whose residency you want to know. */
    public void clearChunks(int layers, int chunks) {
        this.chunks = chunks;
        if (chosen.length < layers * chunks) {
            chosen = new boolean[layers * chunks];
        } else {
            java.util.Arrays.fill(chosen, false);
        }
    }

    /** Chunks that some head of {@code layer} attended over sparsely (sink and tail included) since {@link #clearChunks}. */
    public int chosenChunks(int layer) {
        int n = 0;
        for (int ch = 0; ch < chunks; ch++) {
            n += chosen[layer * chunks + ch] ? 1 : 0;
        }
        return n;
    }

    /**
     * Chunks that some head of some layer attended over sparsely since {@link #clearChunks}: what a
     * step needs resident if the layers it ran densely are left out.
     */
    public int chosenChunksAnyLayer(int layers) {
        int n = 0;
        for (int ch = 0; ch < chunks; ch++) {
            boolean any = false;
            for (int l = 0; l < layers && !any; l++) {
                any = chosen[l * chunks + ch];
            }
            n += any ? 1 : 0;
        }
        return n;
    }

    /** Sparse (token, head, layer) attentions measured so far. */
    public long measured() {
        long n = 0;
        for (long h : heads) {
            n += h;
        }
        return n;
    }

    /** Mean share of the dense attention mass on the attended positions, over everything measured. */
    public double meanMassCaptured() {
        double sum = 0;
        for (double m : massSum) {
            sum += m;
        }
        long n = measured();
        return n == 0 ? Double.NaN : sum / n;
    }

    /** Called by an attention worker; writes only this worker's slots (and sets chosen flags, idempotently). */
    void record(int worker, KvCache cache, int layer, int kvHead, float[] q, int qOff, int positions, float scale, boolean[] pick,
                int tail, float[] scratch) {
        int chunkTokens = cache.geometry().chunkTokens();
        if (dense[worker].length < positions) {
            dense[worker] = new float[Math.max(positions, dense[worker].length * 2)];
        }
        float[] sc = dense[worker];
        for (int ch = 0, p = 0; p < positions; ch++, p += chunkTokens) {
            cache.chunk(ch).keyScores(layer, kvHead, q, qOff, Math.min(chunkTokens, positions - p), scale, sc, p, scratch);
        }
        VectorMath.softmax(sc, 0, positions);
        double mass = 0;
        for (int ch = 0; ch <= tail; ch++) {
            if (pick[ch]) {
                if (ch < chunks && (layer + 1) * chunks <= chosen.length) {
                    chosen[layer * chunks + ch] = true;
                }
                for (int p = ch * chunkTokens, end = Math.min(positions, p + chunkTokens); p < end; p++) {
                    mass += sc[p];
                }
            }
        }
        massSum[worker] += mass;
        heads[worker]++;
    }
}
