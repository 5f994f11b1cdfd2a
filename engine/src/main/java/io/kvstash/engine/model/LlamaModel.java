package io.kvstash.engine.model;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.gguf.GgufTensor;
import io.kvstash.engine.kernel.PanelMatrix;
import io.kvstash.engine.kernel.WeightMatrix;
import java.lang.foreign.Arena;
import java.util.Arrays;

/**
 * The weights of a Llama-family model (any {@link Architecture}). The matrices the forward pass
 * multiplies by are repacked once into {@link PanelMatrix panels} in off-heap memory the model owns
 * (same values, a layout for the kernels); the token embedding is read in place in the mapped GGUF
 * file, a row per token; the small normalisation and bias vectors are copied. The model does not
 * own the file: whoever opened it closes it after the model is closed.
 */
public final class LlamaModel implements AutoCloseable {
    /**
     * The weights of one transformer block. A bias is {@code null} when the file has none; each is
     * added to its projection's output (Q, K and V before rotation).
     */
    public record Layer(float[] attnNorm, PanelMatrix wq, float[] qBias, PanelMatrix wk, float[] kBias, PanelMatrix wv,
                        float[] vBias, PanelMatrix wo, float[] oBias, float[] ffnNorm, PanelMatrix wGate, PanelMatrix wUp,
                        PanelMatrix wDown) {}

    private final ModelConfig config;
    private final WeightMatrix tokenEmbedding;
    private final Layer[] layers;
    private final float[] outputNorm;
    private final PanelMatrix output;
    private final float[] outputBias;
    private final float[] ropeInverseFrequencies;
    private final Arena arena;

    private LlamaModel(ModelConfig config, WeightMatrix tokenEmbedding, Layer[] layers, float[] outputNorm, PanelMatrix output,
                       float[] outputBias, float[] ropeInverseFrequencies, Arena arena) {
        this.arena = arena;
        this.config = config;
        this.tokenEmbedding = tokenEmbedding;
        this.layers = layers;
        this.outputNorm = outputNorm;
        this.output = output;
        this.outputBias = outputBias;
        this.ropeInverseFrequencies = ropeInverseFrequencies;
    }

    public static LlamaModel load(GgufFile f) {
        ModelConfig c = ModelConfig.from(f);
        Shapes s = new Shapes(f);
        WeightMatrix embedding = s.matrix("token_embd.weight", c.dim(), c.vocabularySize());
        boolean qkvBias = c.architecture().qkvBiasRequired();
        Arena arena = Arena.ofShared();
        try {
            Layer[] layers = new Layer[c.layers()];
            for (int i = 0; i < c.layers(); i++) {
                String b = "blk." + i + ".";
                layers[i] = new Layer(
                        s.vector(b + "attn_norm.weight", c.dim()),
                        s.packed(b + "attn_q.weight", c.dim(), c.queryDim(), arena),
                        s.vector(b + "attn_q.bias", c.queryDim(), qkvBias),
                        s.packed(b + "attn_k.weight", c.dim(), c.kvDim(), arena),
                        s.vector(b + "attn_k.bias", c.kvDim(), qkvBias),
                        s.packed(b + "attn_v.weight", c.dim(), c.kvDim(), arena),
                        s.vector(b + "attn_v.bias", c.kvDim(), qkvBias),
                        s.packed(b + "attn_output.weight", c.queryDim(), c.dim(), arena),
                        s.vector(b + "attn_output.bias", c.dim(), false),
                        s.vector(b + "ffn_norm.weight", c.dim()),
                        s.packed(b + "ffn_gate.weight", c.dim(), c.ffnDim(), arena),
                        s.packed(b + "ffn_up.weight", c.dim(), c.ffnDim(), arena),
                        s.packed(b + "ffn_down.weight", c.ffnDim(), c.dim(), arena));
            }
            float[] outputNorm = s.vector("output_norm.weight", c.dim());
            // Tied embeddings: files without output.weight reuse the embedding matrix as the classifier.
            PanelMatrix output = f.tensor("output.weight") != null
                    ? s.packed("output.weight", c.dim(), c.vocabularySize(), arena)
                    : PanelMatrix.pack(embedding, arena);
            float[] outputBias = s.vector("output.bias", c.vocabularySize(), false);
            // Llama 3.1's rope scaling: a divisor per rotated pair, one tensor shared by all layers.
            float[] freqFactors = s.vector("rope_freqs.weight", c.ropeDims() / 2, false);
            if (freqFactors != null) {
                for (float factor : freqFactors) {
                    if (!(factor > 0)) {
                        throw new ModelFormatException(f.path() + ": tensor 'rope_freqs.weight' holds " + factor
                                + "; rope frequency factors divide the angles and must be positive");
                    }
                }
            }
            return new LlamaModel(c, embedding, layers, outputNorm, output, outputBias, inverseFrequencies(c, freqFactors), arena);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /** Frees the packed weights; the forward passes over this model must be done. */
    @Override
    public void close() {
        arena.close();
    }

    /**
     * The angle of pair i per position: scale · base^(−2i/d) / factor_i (scale from linear rope
     * scaling, factor from {@code rope_freqs.weight}, as ggml's rope applies them), in double so
     * that the one rounding to float is the last step.
     */
    private static float[] inverseFrequencies(ModelConfig c, float[] factors) {
        int half = c.ropeDims() / 2;
        float[] inv = new float[half];
        for (int i = 0; i < half; i++) {
            double theta = c.ropePositionScale() * Math.pow(c.ropeBase(), -2.0 * i / c.ropeDims());
            inv[i] = (float) (factors == null ? theta : theta / factors[i]);
        }
        return inv;
    }

    public ModelConfig config() {
        return config;
    }

    public WeightMatrix tokenEmbedding() {
        return tokenEmbedding;
    }

    public Layer layer(int i) {
        return layers[i];
    }

    public float[] outputNorm() {
        return outputNorm;
    }

    public PanelMatrix output() {
        return output;
    }

    /** Added to the logits ({@code output.bias}); {@code null} when the file has none. */
    public float[] outputBias() {
        return outputBias;
    }

    float[] ropeInverseFrequencies() {
        return ropeInverseFrequencies;
    }

    /** Widest row of any matrix: the size of a row-decoding scratch buffer. */
    public int maxColumns() {
        return Math.max(config.dim(), Math.max(config.ffnDim(), config.queryDim()));
    }

    /** Checks each tensor's presence and shape against the hyper-parameters, with messages naming the tensor. */
    private record Shapes(GgufFile f) {
        WeightMatrix matrix(String name, int cols, int rows) {
            GgufTensor t = f.requireTensor(name);
            if (t.dims().length != 2 || t.dims()[0] != cols || t.dims()[1] != rows) {
                throw new ModelFormatException(f.path() + ": tensor '" + name + "' has shape " + t.shape() + ", expected [" + cols + ", " + rows + "]");
            }
            try {
                return WeightMatrix.of(t);
            } catch (IllegalArgumentException e) {
                throw new ModelFormatException(f.path() + ": " + e.getMessage());
            }
        }

        PanelMatrix packed(String name, int cols, int rows, Arena arena) {
            WeightMatrix m = matrix(name, cols, rows);
            try {
                return PanelMatrix.pack(m, arena);
            } catch (IllegalArgumentException e) {
                throw new ModelFormatException(f.path() + ": " + e.getMessage());
            }
        }

        /** As {@link #vector(String, int)}, but {@code null} when the tensor is absent and not {@code required}. */
        float[] vector(String name, int n, boolean required) {
            return required || f.tensor(name) != null ? vector(name, n) : null;
        }

        float[] vector(String name, int n) {
            GgufTensor t = f.requireTensor(name);
            if (t.elementCount() != n || t.dims()[0] != n) {
                throw new ModelFormatException(f.path() + ": tensor '" + name + "' has shape " + t.shape() + ", expected [" + n + "]");
            }
            WeightMatrix m;
            try {
                m = WeightMatrix.of(t);
            } catch (IllegalArgumentException e) {
                throw new ModelFormatException(f.path() + ": " + e.getMessage());
            }
            float[] out = new float[n];
            m.dequantizeRowScalar(0, out, 0);
            for (float v : out) {
                if (!Float.isFinite(v)) {
                    throw new ModelFormatException(f.path() + ": tensor '" + name + "' holds non-finite values");
                }
            }
            return out;
        }
    }

    @Override
    public String toString() {
        return config + " layers=" + Arrays.toString(new int[] {layers.length});
    }
}
