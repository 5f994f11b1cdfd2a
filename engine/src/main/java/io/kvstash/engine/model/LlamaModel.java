package io.kvstash.engine.model;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.gguf.GgufTensor;
import io.kvstash.engine.kernel.WeightMatrix;
import java.util.Arrays;

/**
 * The weights of a Llama-family model, viewed in place in the mapped GGUF file. Only the small
 * normalisation vectors are copied (they are read as floats on every token).
 * The model does not own the file: whoever opened it closes it after the model is done.
 */
public final class LlamaModel {
    /** The weights of one transformer block. */
    public record Layer(float[] attnNorm, WeightMatrix wq, WeightMatrix wk, WeightMatrix wv, WeightMatrix wo,
                        float[] ffnNorm, WeightMatrix wGate, WeightMatrix wUp, WeightMatrix wDown) {}

    private final ModelConfig config;
    private final WeightMatrix tokenEmbedding;
    private final Layer[] layers;
    private final float[] outputNorm;
    private final WeightMatrix output;
    private final float[] ropeInverseFrequencies;

    private LlamaModel(ModelConfig config, WeightMatrix tokenEmbedding, Layer[] layers, float[] outputNorm, WeightMatrix output,
                       float[] ropeInverseFrequencies) {
        this.config = config;
        this.tokenEmbedding = tokenEmbedding;
        this.layers = layers;
        this.outputNorm = outputNorm;
        this.output = output;
        this.ropeInverseFrequencies = ropeInverseFrequencies;
    }

    public static LlamaModel load(GgufFile f) {
        return load(f, ModelConfig.from(f));
    }

    /** Loads the weights of {@code f} under hyper-parameters the caller has read (or adjusted) from it. */
    static LlamaModel load(GgufFile f, ModelConfig c) {
        Shapes s = new Shapes(f);
        WeightMatrix embedding = s.matrix("token_embd.weight", c.dim(), c.vocabularySize());
        Layer[] layers = new Layer[c.layers()];
        for (int i = 0; i < c.layers(); i++) {
            String b = "blk." + i + ".";
            layers[i] = new Layer(
                    s.vector(b + "attn_norm.weight", c.dim()),
                    s.matrix(b + "attn_q.weight", c.dim(), c.queryDim()),
                    s.matrix(b + "attn_k.weight", c.dim(), c.kvDim()),
                    s.matrix(b + "attn_v.weight", c.dim(), c.kvDim()),
                    s.matrix(b + "attn_output.weight", c.queryDim(), c.dim()),
                    s.vector(b + "ffn_norm.weight", c.dim()),
                    s.matrix(b + "ffn_gate.weight", c.dim(), c.ffnDim()),
                    s.matrix(b + "ffn_up.weight", c.dim(), c.ffnDim()),
                    s.matrix(b + "ffn_down.weight", c.ffnDim(), c.dim()));
        }
        float[] outputNorm = s.vector("output_norm.weight", c.dim());
        // Tied embeddings: files without output.weight reuse the embedding matrix as the classifier.
        WeightMatrix output = f.tensor("output.weight") != null ? s.matrix("output.weight", c.dim(), c.vocabularySize()) : embedding;
        float[] freqFactors = f.tensor("rope_freqs.weight") != null ? s.vector("rope_freqs.weight", c.ropeDims() / 2) : null;
        return new LlamaModel(c, embedding, layers, outputNorm, output, inverseFrequencies(c, freqFactors));
    }

    /** θ_i = base^(−2i/d) / factor_i, in double so that large positions keep their precision. */
    private static float[] inverseFrequencies(ModelConfig c, float[] factors) {
        int half = c.ropeDims() / 2;
        float[] inv = new float[half];
        for (int i = 0; i < half; i++) {
            double theta = Math.pow(c.ropeBase(), -2.0 * i / c.ropeDims());
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

    public WeightMatrix output() {
        return output;
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
