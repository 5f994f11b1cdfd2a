package io.kvstash.engine.model;

import io.kvstash.engine.kv.KeyRotation;

/**
 * The model's rotary position embedding as a {@link KeyRotation}: rotates stored keys by a
 * position delta with the forward pass's angles (the same inverse frequencies, so linear scaling
 * and Llama 3.1's {@code rope_freqs} factors apply), pairing dimensions as the model's
 * {@link RopeStyle} does and leaving dimensions past {@code ropeDims} (partial rope) alone. The
 * angles for the last delta are kept, since a context shift moves every key by the same delta.
 * One instance per thread.
 */
public final class RopeRotation implements KeyRotation {
    private final float[] inverseFrequencies;
    private final int headDim;
    private final int half;
    private final boolean adjacent;
    private final double[] cos;
    private final double[] sin;
    private int delta;

    public RopeRotation(LlamaModel model) {
        ModelConfig c = model.config();
        this.inverseFrequencies = model.ropeInverseFrequencies();
        this.headDim = c.headDim();
        this.half = c.ropeDims() / 2;
        this.adjacent = c.ropeStyle() == RopeStyle.NORMAL;
        this.cos = new double[half];
        this.sin = new double[half];
        setDelta(0);
    }

    private void setDelta(int delta) {
        this.delta = delta;
        for (int i = 0; i < half; i++) {
            double angle = (double) delta * inverseFrequencies[i];
            cos[i] = Math.cos(angle);
            sin[i] = Math.sin(angle);
        }
    }

    @Override
    public void rotate(float[] keys, int tokens, int delta) {
        if (delta != this.delta) {
            setDelta(delta);
        }
        for (int t = 0; t < tokens; t++) {
            int base = t * headDim;
            for (int i = 0; i < half; i++) {
                int a = adjacent ? base + 2 * i : base + i;
                int b = adjacent ? a + 1 : a + half;
                double x0 = keys[a];
                double x1 = keys[b];
                keys[a] = (float) (x0 * cos[i] - x1 * sin[i]);
                keys[b] = (float) (x0 * sin[i] + x1 * cos[i]);
            }
        }
    }
}
