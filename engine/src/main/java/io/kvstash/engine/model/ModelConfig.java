package io.kvstash.engine.model;

import io.kvstash.engine.gguf.GgufFile;
import java.util.List;

/**
 * Hyper-parameters of a decoder-only transformer, read from GGUF metadata under the
 * architecture's prefix ({@code llama.embedding_length}, …).
 *
 * @param contextLength positions the model was trained for; the engine computes past it when asked
 * @param ropeDims      leading dimensions of each head that are rotated (≤ headDim, even)
 */
public record ModelConfig(String architecture, int dim, int layers, int heads, int kvHeads, int headDim, int ffnDim,
                          int vocabularySize, int contextLength, float rmsEps, float ropeBase, int ropeDims, RopeStyle ropeStyle) {
    public static final List<String> SUPPORTED_ARCHITECTURES = List.of("llama");

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
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new ModelFormatException("invalid model hyper-parameters: " + message);
        }
    }

    public ModelConfig withRopeStyle(RopeStyle style) {
        return new ModelConfig(architecture, dim, layers, heads, kvHeads, headDim, ffnDim, vocabularySize, contextLength, rmsEps,
                ropeBase, ropeDims, style);
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
        String arch = f.getString("general.architecture");
        if (!SUPPORTED_ARCHITECTURES.contains(arch)) {
            throw new ModelFormatException(f.path() + ": architecture '" + arch + "' is not supported (supported: "
                    + String.join(", ", SUPPORTED_ARCHITECTURES) + ")");
        }
        String p = arch + ".";
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
                f.getInt(p + "rope.dimension_count", headDim), RopeStyle.NORMAL);
    }
}
