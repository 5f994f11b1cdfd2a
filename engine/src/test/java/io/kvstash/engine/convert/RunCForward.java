package io.kvstash.engine.convert;

/**
 * llama2.c's {@code run.c} forward pass, transcribed over a {@link Llama2cCheckpoint} in its own
 * layout (sums in double). It reads the checkpoint the way llama2.c does and shares nothing with
 * the converter or the engine, so agreeing with it shows that the converter put every llama2.c
 * array where the engine expects that weight.
 */
final class RunCForward {
    private final Llama2cCheckpoint w;
    private final Llama2cHeader h;
    private final float[][] keyCache; // (layer, seq * kvDim)
    private final float[][] valueCache;
    private int pos;

    RunCForward(Llama2cCheckpoint w) {
        this.w = w;
        this.h = w.header();
        keyCache = new float[h.layers()][h.seqLen() * h.kvDim()];
        valueCache = new float[h.layers()][h.seqLen() * h.kvDim()];
    }

    /** Feeds {@code token} at the next position and returns the logits predicting the one after it. */
    float[] next(int token) {
        int dim = h.dim();
        int kvDim = h.kvDim();
        int hidden = h.hiddenDim();
        int headSize = h.headSize();
        int kvMul = h.heads() / h.kvHeads();
        float[] x = new float[dim];
        System.arraycopy(w.tokenEmbedding(), token * dim, x, 0, dim);
        for (int l = 0; l < h.layers(); l++) {
            float[] xb = rmsNorm(x, w.rmsAtt(), l * dim);
            float[] q = matmul(w.wq(), l * dim * dim, xb, dim);
            float[] k = matmul(w.wk(), l * kvDim * dim, xb, kvDim);
            float[] v = matmul(w.wv(), l * kvDim * dim, xb, kvDim);
            for (int i = 0; i < dim; i += 2) {
                int headDim = i % headSize;
                double freq = 1.0 / Math.pow(10000.0, headDim / (double) headSize);
                double angle = pos * freq;
                rotate(q, i, Math.cos(angle), Math.sin(angle));
                if (i < kvDim) {
                    rotate(k, i, Math.cos(angle), Math.sin(angle));
                }
            }
            System.arraycopy(k, 0, keyCache[l], pos * kvDim, kvDim);
            System.arraycopy(v, 0, valueCache[l], pos * kvDim, kvDim);
            float[] attended = new float[dim];
            for (int head = 0; head < h.heads(); head++) {
                int kvOffset = head / kvMul * headSize;
                double[] att = new double[pos + 1];
                double max = Double.NEGATIVE_INFINITY;
                for (int t = 0; t <= pos; t++) {
                    double s = 0;
                    for (int i = 0; i < headSize; i++) {
                        s += (double) q[head * headSize + i] * keyCache[l][t * kvDim + kvOffset + i];
                    }
                    att[t] = s / Math.sqrt(headSize);
                    max = Math.max(max, att[t]);
                }
                double sum = 0;
                for (int t = 0; t <= pos; t++) {
                    att[t] = Math.exp(att[t] - max);
                    sum += att[t];
                }
                for (int i = 0; i < headSize; i++) {
                    double acc = 0;
                    for (int t = 0; t <= pos; t++) {
                        acc += att[t] / sum * valueCache[l][t * kvDim + kvOffset + i];
                    }
                    attended[head * headSize + i] = (float) acc;
                }
            }
            add(x, matmul(w.wo(), l * dim * dim, attended, dim));
            xb = rmsNorm(x, w.rmsFfn(), l * dim);
            float[] gate = matmul(w.w1(), l * hidden * dim, xb, hidden);
            float[] up = matmul(w.w3(), l * hidden * dim, xb, hidden);
            for (int i = 0; i < hidden; i++) {
                double g = gate[i];
                gate[i] = (float) (g / (1 + Math.exp(-g)) * up[i]);
            }
            add(x, matmul(w.w2(), l * dim * hidden, gate, dim));
        }
        pos++;
        return matmul(w.classifier(), 0, rmsNorm(x, w.rmsFinal(), 0), h.vocabSize());
    }

    private static void rotate(float[] v, int i, double cos, double sin) {
        double a = v[i];
        double b = v[i + 1];
        v[i] = (float) (a * cos - b * sin);
        v[i + 1] = (float) (a * sin + b * cos);
    }

    private static float[] rmsNorm(float[] x, float[] weight, int offset) {
        double ss = 0;
        for (float v : x) {
            ss += (double) v * v;
        }
        double scale = 1 / Math.sqrt(ss / x.length + 1e-5);
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = (float) (weight[offset + i] * (scale * x[i]));
        }
        return out;
    }

    /** {@code W (rows × x.length) @ x}, W row-major from {@code offset}. */
    private static float[] matmul(float[] weights, int offset, float[] x, int rows) {
        float[] out = new float[rows];
        for (int r = 0; r < rows; r++) {
            double s = 0;
            int row = offset + r * x.length;
            for (int c = 0; c < x.length; c++) {
                s += (double) weights[row + c] * x[c];
            }
            out[r] = (float) s;
        }
        return out;
    }

    private static void add(float[] x, float[] y) {
        for (int i = 0; i < x.length; i++) {
            x[i] += y[i];
        }
    }
}
