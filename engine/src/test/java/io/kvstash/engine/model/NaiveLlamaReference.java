package io.kvstash.engine.model;

import io.kvstash.engine.gguf.GgmlType;
import io.kvstash.engine.gguf.GgufWriter;
import io.kvstash.engine.gguf.TinyModels;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Map;

/**
 * A deliberately plain, double-precision Llama forward pass over the weights of a
 * {@link TinyModels.Spec}, sharing no code with the engine: no kernels, no KV cache, no batching,
 * every position recomputed from whole-sequence arrays. Quantized matrices are first encoded with
 * the test writer and decoded again here, so the reference sees exactly the values stored in the
 * file the engine reads.
 *
 * <p>Per layer: RMSNorm, q/k/v projections plus their biases when the file has them, rotary
 * embedding of the first {@code ropeDims} dimensions of each head by {@code pos / scale ·
 * base^(−2i/ropeDims) / factor_i} (scale the linear rope scaling factor, factor_i from
 * {@code rope_freqs.weight}, both 1 when absent) on pairs {@code (x[2i], x[2i+1])} for llama (GGML's
 * "normal" style) or {@code (x[i], x[i + ropeDims/2])} for qwen2 (NeoX style), causal grouped-query
 * attention (query head {@code h} reads KV head {@code h / (heads/kvHeads)}) scaled by
 * {@code 1/sqrt(headDim)}, output projection (plus bias) and residual, RMSNorm, SwiGLU feed-forward
 * and residual; then the final RMSNorm and the output matrix (the embedding when the model has no
 * {@code output.weight}) plus {@code output.bias} if any.
 */
final class NaiveLlamaReference {
    private final int dim;
    private final int layers;
    private final int heads;
    private final int kvHeads;
    private final int headDim;
    private final int ffn;
    private final int vocab;
    private final double eps;
    private final double ropeBase;
    private final int ropeDims;
    private final double ropeScale;
    private final RopeStyle ropeStyle;
    private final Map<String, double[]> w = new HashMap<>();

    NaiveLlamaReference(TinyModels.Spec spec) {
        ropeStyle = switch (spec.architecture()) {
            case "llama" -> RopeStyle.NORMAL;
            case "qwen2" -> RopeStyle.NEOX;
            default -> throw new IllegalArgumentException("no reference for architecture " + spec.architecture());
        };
        ropeScale = spec.ropeScalingFactor() != null ? spec.ropeScalingFactor() : 1.0;
        dim = spec.dim();
        layers = spec.layers();
        heads = spec.heads();
        kvHeads = spec.kvHeads();
        headDim = spec.headDim();
        ffn = spec.ffn();
        vocab = spec.vocabSize();
        eps = spec.rmsEps();
        ropeBase = spec.ropeFreqBase() != null ? spec.ropeFreqBase() : 10000.0;
        ropeDims = spec.ropeDimensionCount() != null ? spec.ropeDimensionCount() : headDim;
        for (TinyModels.Weight t : TinyModels.weights(spec)) {
            w.put(t.name(), stored(t.type(), t.values()));
        }
    }

    /** The values a reader of the file sees: {@code values} encoded as {@code type}, then decoded. */
    static double[] stored(GgmlType type, float[] values) {
        ByteBuffer b = ByteBuffer.wrap(GgufWriter.encode(type, values)).order(ByteOrder.LITTLE_ENDIAN);
        double[] out = new double[values.length];
        switch (type) {
            case F32 -> {
                for (int i = 0; i < out.length; i++) out[i] = b.getFloat();
            }
            case F16 -> {
                for (int i = 0; i < out.length; i++) out[i] = Float.float16ToFloat(b.getShort());
            }
            case Q8_0 -> {
                // Blocks of 32: fp16 scale, then 32 signed bytes.
                for (int blk = 0; blk < out.length; blk += 32) {
                    double d = Float.float16ToFloat(b.getShort());
                    for (int j = 0; j < 32; j++) out[blk + j] = d * b.get();
                }
            }
            case Q4_0 -> {
                // Blocks of 32: fp16 scale, then 16 bytes; byte j holds element j (low nibble) and j + 16 (high), offset by 8.
                for (int blk = 0; blk < out.length; blk += 32) {
                    double d = Float.float16ToFloat(b.getShort());
                    for (int j = 0; j < 16; j++) {
                        int q = b.get() & 0xFF;
                        out[blk + j] = d * ((q & 0x0F) - 8);
                        out[blk + 16 + j] = d * ((q >>> 4) - 8);
                    }
                }
            }
            default -> throw new IllegalArgumentException("no reference decoder for " + type);
        }
        return out;
    }

    int vocabularySize() {
        return vocab;
    }

    /** Teacher-forced logits: row {@code p} predicts the token after {@code tokens[p]}. */
    double[][] logits(int[] tokens) {
        return logits(tokens, false);
    }

    /**
     * As {@link #logits(int[])}; with {@code halfKv} a query at position p sees the keys (after
     * rotation) and values of earlier chunks of {@code chunkTokens} positions rounded to float32 and
     * then to IEEE half precision, as a sealed F16 chunk stores them, and those of its own chunk
     * (the open F32 tail) rounded to float32 only.
     */
    double[][] logits(int[] tokens, boolean halfKv) {
        return logits(tokens, halfKv, io.kvstash.engine.kv.KvGeometry.DEFAULT_CHUNK_TOKENS);
    }

    double[][] logits(int[] tokens, boolean halfKv, int chunkTokens) {
        int n = tokens.length;
        int qDim = heads * headDim;
        int kvDim = kvHeads * headDim;
        double[][] x = new double[n][];
        double[] embd = w.get("token_embd.weight");
        for (int p = 0; p < n; p++) {
            x[p] = new double[dim];
            System.arraycopy(embd, tokens[p] * dim, x[p], 0, dim);
        }
        for (int l = 0; l < layers; l++) {
            String b = "blk." + l + ".";
            double[][] q = new double[n][];
            double[][] k = new double[n][];
            double[][] v = new double[n][];
            double[][] kHalf = new double[n][];
            double[][] vHalf = new double[n][];
            for (int p = 0; p < n; p++) {
                double[] xn = rmsNorm(x[p], w.get(b + "attn_norm.weight"));
                q[p] = addBias(matVec(w.get(b + "attn_q.weight"), qDim, dim, xn), b + "attn_q.bias");
                k[p] = addBias(matVec(w.get(b + "attn_k.weight"), kvDim, dim, xn), b + "attn_k.bias");
                v[p] = addBias(matVec(w.get(b + "attn_v.weight"), kvDim, dim, xn), b + "attn_v.bias");
                rope(q[p], heads, p);
                rope(k[p], kvHeads, p);
                if (halfKv) {
                    toFloat(k[p]);
                    toFloat(v[p]);
                    kHalf[p] = k[p].clone();
                    vHalf[p] = v[p].clone();
                    toHalf(kHalf[p]);
                    toHalf(vHalf[p]);
                }
            }
            int group = heads / kvHeads;
            for (int p = 0; p < n; p++) {
                double[] att = new double[qDim];
                for (int h = 0; h < heads; h++) {
                    int kvh = h / group;
                    double[] s = new double[p + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    int sealedBefore = halfKv ? p / chunkTokens * chunkTokens : 0;
                    for (int j = 0; j <= p; j++) {
                        double[] kj = j < sealedBefore ? kHalf[j] : k[j];
                        double dot = 0;
                        for (int i = 0; i < headDim; i++) {
                            dot += q[p][h * headDim + i] * kj[kvh * headDim + i];
                        }
                        s[j] = dot / Math.sqrt(headDim);
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= p; j++) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    for (int j = 0; j <= p; j++) {
                        double[] vj = j < sealedBefore ? vHalf[j] : v[j];
                        for (int i = 0; i < headDim; i++) {
                            att[h * headDim + i] += s[j] / sum * vj[kvh * headDim + i];
                        }
                    }
                }
                addTo(x[p], addBias(matVec(w.get(b + "attn_output.weight"), dim, qDim, att), b + "attn_output.bias"));
                double[] xn = rmsNorm(x[p], w.get(b + "ffn_norm.weight"));
                double[] gate = matVec(w.get(b + "ffn_gate.weight"), ffn, dim, xn);
                double[] up = matVec(w.get(b + "ffn_up.weight"), ffn, dim, xn);
                for (int i = 0; i < ffn; i++) {
                    gate[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
                }
                addTo(x[p], matVec(w.get(b + "ffn_down.weight"), dim, ffn, gate));
            }
        }
        double[] out = w.containsKey("output.weight") ? w.get("output.weight") : embd;
        double[][] logits = new double[n][];
        for (int p = 0; p < n; p++) {
            logits[p] = addBias(matVec(out, vocab, dim, rmsNorm(x[p], w.get("output_norm.weight"))), "output.bias");
        }
        return logits;
    }

    /**
     * Rotates pairs of the first ropeDims dimensions of each head by pos/scale·base^(−2i/ropeDims)/factor_i,
     * i < ropeDims/2: (x[2i], x[2i+1]) in GGML's normal style, (x[i], x[i + ropeDims/2]) in NeoX style.
     */
    private void rope(double[] vec, int headCount, int pos) {
        double[] factors = w.get("rope_freqs.weight");
        for (int h = 0; h < headCount; h++) {
            for (int i = 0; i < ropeDims / 2; i++) {
                double angle = pos / ropeScale * Math.pow(ropeBase, -2.0 * i / ropeDims) / (factors != null ? factors[i] : 1);
                int a = ropeStyle == RopeStyle.NORMAL ? h * headDim + 2 * i : h * headDim + i;
                int b = ropeStyle == RopeStyle.NORMAL ? a + 1 : a + ropeDims / 2;
                double x0 = vec[a];
                double x1 = vec[b];
                vec[a] = x0 * Math.cos(angle) - x1 * Math.sin(angle);
                vec[b] = x0 * Math.sin(angle) + x1 * Math.cos(angle);
            }
        }
    }

    private static void toFloat(double[] x) {
        for (int i = 0; i < x.length; i++) x[i] = (float) x[i];
    }

    private static void toHalf(double[] x) {
        for (int i = 0; i < x.length; i++) x[i] = Float.float16ToFloat(Float.floatToFloat16((float) x[i]));
    }

    private double[] rmsNorm(double[] x, double[] gain) {
        double ss = 0;
        for (double e : x) ss += e * e;
        double inv = 1 / Math.sqrt(ss / x.length + eps);
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) out[i] = x[i] * inv * gain[i];
        return out;
    }

    /** GGML layout: {@code m} holds {@code rows} rows of {@code cols} contiguous values. */
    private static double[] matVec(double[] m, int rows, int cols, double[] x) {
        double[] out = new double[rows];
        for (int r = 0; r < rows; r++) {
            double s = 0;
            for (int c = 0; c < cols; c++) s += m[r * cols + c] * x[c];
            out[r] = s;
        }
        return out;
    }

    /** {@code x} plus the named bias vector, or {@code x} unchanged when the model has none. */
    private double[] addBias(double[] x, String name) {
        double[] bias = w.get(name);
        if (bias != null) {
            addTo(x, bias);
        }
        return x;
    }

    private static void addTo(double[] acc, double[] d) {
        for (int i = 0; i < acc.length; i++) acc[i] += d[i];
    }
}
