package io.kvstash.engine.model;

import io.kvstash.engine.gguf.GgufFile;
import java.util.List;

/**
 * Hyper-parameters of a decoder-only transformer, read from GGUF metadata under the
 * architecture's prefix ({@code llama.embedding_length}, {@code qwen2.embedding_length}, …).
 *
 * @param contextLength    positions the model was trained for; the engine computes past it when asked
 * @param ropeDims         leading dimensions of each head that are rotated (≤ headDim, even)
 * @param ropePositionScale factor on the position in every rotary angle: 1, or 1/factor under
 *                         linear rope scaling ({@code rope.scaling.type = linear})
 */
public record ModelConfig(Architecture architecture, int dim, int layers, int heads, int kvHeads, int headDim, int ffnDim,
                          int vocabularySize, int contextLength, float rmsEps, float ropeBase, int ropeDims,
                          float ropePositionScale) {
    public static final List<String> SUPPORTED_ARCHITECTURES = Architecture.supportedNames();

    public ModelConfig {
        require(dim > 0 && layers > 0 && heads > 0 && kvHeads > 0 && headDim > 0 && ffnDim > 0 && vocabularySize > 0,
                "dimensions must be positive, got embedding_length " + dim + ", block_count " + layers + ", head_count " + heads
                        + ", head_count_kv " + kvHeads + ", head dimension " + headDim + ", feed_forward_length " + ffnDim
                        + ", vocabulary " + vocabularySize);
        require(heads % kvHeads == 0, "head_count " + heads + " is not a multiple of head_count_kv " + kvHeads);
        require(ropeDims > 0 && ropeDims <= headDim && ropeDims % 2 == 0,
                "rope.dimension_count " + ropeDims + " must be even and at most the head dimension " + headDim);
        require(rmsEps > 0 && Float.isFinite(rmsEps), "layer_norm_rms_epsilon must be positive, got " + rmsEps);
        require(ropeBase > 0 && Float.isFinite(ropeBase), "rope.freq_base must be positive, got " + ropeBase);
        require(ropePositionScale > 0 && Float.isFinite(ropePositionScale),
                "rope scaling must leave a positive position scale, got " + ropePositionScale);
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new ModelFormatException("invalid model hyper-parameters: " + message);
        }
    }

    public RopeStyle ropeStyle() {
        return architecture.ropeStyle();
    }

    public int queryDim() {
        return heads * headDim;
    }

    public int kvDim() {
        return kvHeads * headDim;
    }

    /** Query heads that share one KV head. */
    public int groupSize() {
        return heads / kvHeads;
    }

    public static ModelConfig from(GgufFile f) {
        if (!f.has("general.architecture")) {
            throw new ModelFormatException(f.path() + ": no general.architecture (is this a vocabulary-only or non-LLM GGUF?)");
        }
        String name = f.getString("general.architecture");
        Architecture arch = Architecture.fromGguf(name).orElseThrow(() -> new ModelFormatException(f.path()
                + ": architecture '" + name + "' is not supported (supported: " + String.join(", ", SUPPORTED_ARCHITECTURES) + ")"));
        String p = arch.ggufName() + ".";
        int dim = f.getInt(p + "embedding_length");
        int heads = f.getInt(p + "attention.head_count");
        int kvHeads = f.getInt(p + "attention.head_count_kv", heads);
        if (heads <= 0 || dim % heads != 0 && !f.has(p + "attention.key_length")) {
            throw new ModelFormatException(f.path() + ": embedding_length " + dim + " is not divisible by head_count " + heads);
        }
        int headDim = f.getInt(p + "attention.key_length", heads > 0 ? dim / heads : 0);
        // The embedding's rows are the vocabulary; without it, only an explicit vocab_size can say (and
        // loading then stops at the missing tensor, by name).
        int vocab = f.tensor("token_embd.weight") != null || !f.has(p + "vocab_size")
                ? (int) Math.min(Integer.MAX_VALUE, f.requireTensor("token_embd.weight").rowCount())
                : f.getInt(p + "vocab_size");
        return new ModelConfig(arch, dim, f.getInt(p + "block_count"), heads, kvHeads, headDim,
                f.getInt(p + "feed_forward_length"), vocab, f.getInt(p + "context_length", 2048),
                f.getFloat(p + "attention.layer_norm_rms_epsilon", 1e-5f), f.getFloat(p + "rope.freq_base", 10000f),
                f.getInt(p + "rope.dimension_count", headDim), ropePositionScale(f, p));
    }

    /**
     * Rope scaling as llama.cpp reads it: the type defaults to linear, and then a factor from
     * {@code rope.scaling.factor} (or the older {@code rope.scale_linear}), 0 or absent meaning
     * none, divides every position; type {@code none} never scales. YaRN and LongRoPE also reshape
     * the frequencies, which the engine does not do, so such files are refused rather than run with
     * quietly wrong angles.
     */
    private static float ropePositionScale(GgufFile f, String p) {
        String typeKey = p + "rope.scaling.type";
        String type = f.getString(typeKey, "linear");
        if (type.equals("none")) {
            return 1f;
        }
        if (!type.equals("linear")) {
            throw new ModelFormatException(f.path() + ": " + typeKey + " '" + type
                    + "' is not supported (supported: none, linear; Llama 3.1 scaling comes as rope_freqs.weight)");
        }
        String factorKey = f.has(p + "rope.scaling.factor") ? p + "rope.scaling.factor" : p + "rope.scale_linear";
        float factor = f.getFloat(factorKey, 0f);
        if (factor == 0f) {
            return 1f;
        }
        if (!(factor > 0) || !Float.isFinite(factor)) {
            throw new ModelFormatException(f.path() + ": " + factorKey + " must be positive, got " + factor);
        }
        return 1f / factor;
    }
}
