package io.kvstash.engine.gguf;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Tiny llama- or qwen2-architecture GGUF models with seeded random weights and a small
 * SentencePiece vocabulary, named and shaped the way llama.cpp writes them, so the loader,
 * tokenizer and forward pass can be tested without real model files. The same {@link Spec} always
 * gives the same bytes, and the optional parts (biases, rope frequency factors, rope scaling) draw
 * their random values only when enabled, so adding one leaves the other weights as they were.
 */
public final class TinyModels {
    static final int UNK = 0;
    static final int BOS = 1;
    static final int EOS = 2;
    /** Id of the byte token {@code <0x00>}; byte b is {@code FIRST_BYTE_TOKEN + b}. */
    static final int FIRST_BYTE_TOKEN = 3;
    /** Normal pieces after the byte tokens, best (highest score) first. */
    public static final List<String> PIECES = List.of(
            "▁", "▁a", "▁the", "▁cat", "▁sat", "▁on", "▁mat", "▁Once", "▁upon", "▁time",
            "e", "t", "a", "o", "n", "h", "s", "th", "he", "the", "at", "on", ".", ",");

    // llama.cpp's token types.
    private static final int NORMAL = 1;
    private static final int UNKNOWN = 2;
    private static final int CONTROL = 3;
    private static final int BYTE = 6;

    private TinyModels() {}

    /** Shape and encoding of a tiny model; build with {@link #builder()}. */
    public record Spec(int dim, int layers, int heads, int kvHeads, int ffn, int contextLength, float rmsEps,
                Float ropeFreqBase, Integer ropeDimensionCount, GgmlType weightType, boolean tiedOutput, long seed,
                String architecture, boolean qkvBias, boolean attnOutputBias, boolean outputBias, boolean ropeFreqFactors,
                Float ropeScalingFactor) {

        public Spec {
            if (heads <= 0 || kvHeads <= 0 || dim % heads != 0 || heads % kvHeads != 0) {
                throw new IllegalArgumentException("need dim % heads == 0 and heads % kvHeads == 0");
            }
            if (weightType.blockSize > 1 && (dim % weightType.blockSize != 0 || ffn % weightType.blockSize != 0)) {
                throw new IllegalArgumentException(weightType + " needs dim and ffn to be multiples of " + weightType.blockSize);
            }
            GgufWriter.encode(weightType, new float[weightType.blockSize]); // fails early for types it cannot write
        }

        public int headDim() {
            return dim / heads;
        }

        public int kvDim() {
            return kvHeads * headDim();
        }

        public int vocabSize() {
            return vocabulary().size();
        }

        /** Rotated dimensions per head: {@code rope.dimension_count} when written, else the head dimension. */
        public int ropeDims() {
            return ropeDimensionCount != null ? ropeDimensionCount : headDim();
        }

        public static Builder builder() {
            return new Builder();
        }
    }

    /**
     * Defaults: llama, dim 64, 2 layers, 4 heads / 2 KV heads (grouped-query), ffn 96, context 128,
     * eps 1e-5, F32, untied, seed 42, no biases, no rope frequency factors or scaling. A qwen2 model
     * gets Q/K/V biases unless told otherwise.
     */
    public static final class Builder {
        private int dim = 64;
        private int layers = 2;
        private int heads = 4;
        private int kvHeads = 2;
        private int ffn = 96;
        private int contextLength = 128;
        private float rmsEps = 1e-5f;
        private Float ropeFreqBase;
        private Integer ropeDimensionCount;
        private GgmlType weightType = GgmlType.F32;
        private boolean tiedOutput;
        private long seed = 42;
        private String architecture = "llama";
        private Boolean qkvBias;
        private boolean attnOutputBias;
        private boolean outputBias;
        private boolean ropeFreqFactors;
        private Float ropeScalingFactor;

        public Builder dim(int v) { dim = v; return this; }
        public Builder layers(int v) { layers = v; return this; }
        public Builder heads(int v) { heads = v; return this; }
        public Builder kvHeads(int v) { kvHeads = v; return this; }
        public Builder ffn(int v) { ffn = v; return this; }
        public Builder contextLength(int v) { contextLength = v; return this; }
        public Builder rmsEps(float v) { rmsEps = v; return this; }
        /** Written as {@code llama.rope.freq_base}; absent (null) by default, like the stories models. */
        public Builder ropeFreqBase(Float v) { ropeFreqBase = v; return this; }
        /** Written as {@code llama.rope.dimension_count}; absent (null) by default. */
        public Builder ropeDimensionCount(Integer v) { ropeDimensionCount = v; return this; }
        /** Type of the matrices (embedding, output, attention, FFN): F32, F16, Q8_0 or Q4_0. Norms stay F32. */
        public Builder weightType(GgmlType v) { weightType = v; return this; }
        /** When true there is no {@code output.weight}: the output projection reuses {@code token_embd.weight}. */
        public Builder tiedOutput(boolean v) { tiedOutput = v; return this; }
        public Builder seed(long v) { seed = v; return this; }
        /** {@code general.architecture}, also the prefix of the hyper-parameter keys: "llama" or "qwen2". */
        public Builder architecture(String v) { architecture = v; return this; }
        /** F32 {@code blk.N.attn_{q,k,v}.bias}; on by default for qwen2, off for llama. */
        public Builder qkvBias(boolean v) { qkvBias = v; return this; }
        /** F32 {@code blk.N.attn_output.bias}. */
        public Builder attnOutputBias(boolean v) { attnOutputBias = v; return this; }
        /** F32 {@code output.bias} over the vocabulary. */
        public Builder outputBias(boolean v) { outputBias = v; return this; }
        /** F32 {@code rope_freqs.weight}: Llama 3.1-style divisors of the rotary angles, between 1 and 8. */
        public Builder ropeFreqFactors(boolean v) { ropeFreqFactors = v; return this; }
        /** Written as {@code rope.scaling.type = linear} and {@code rope.scaling.factor}; absent (null) by default. */
        public Builder ropeScalingFactor(Float v) { ropeScalingFactor = v; return this; }

        public Spec build() {
            return new Spec(dim, layers, heads, kvHeads, ffn, contextLength, rmsEps, ropeFreqBase, ropeDimensionCount,
                    weightType, tiedOutput, seed, architecture, qkvBias != null ? qkvBias : architecture.equals("qwen2"),
                    attnOutputBias, outputBias, ropeFreqFactors, ropeScalingFactor);
        }
    }

    /** One tensor before encoding: {@code dims} in GGML order, {@code values} row-major over them. */
    public record Weight(String name, GgmlType type, long[] dims, float[] values) {}

    /** All tokens, by id: {@code <unk>}, {@code <s>}, {@code </s>}, the 256 byte tokens, then {@link #PIECES}. */
    public static List<String> vocabulary() {
        List<String> tokens = new ArrayList<>(List.of("<unk>", "<s>", "</s>"));
        for (int b = 0; b < 256; b++) tokens.add(String.format("<0x%02X>", b));
        tokens.addAll(PIECES);
        return tokens;
    }

    /** The model's tensors with their exact float values (before F16/Q8_0/Q4_0 rounding), in file order. */
    public static List<Weight> weights(Spec spec) {
        Random random = new Random(spec.seed());
        int vocab = spec.vocabSize();
        GgmlType wt = spec.weightType();
        List<Weight> weights = new ArrayList<>();
        weights.add(matrix(random, "token_embd.weight", wt, spec.dim(), vocab));
        weights.add(norm(random, "output_norm.weight", spec.dim()));
        if (!spec.tiedOutput()) {
            weights.add(matrix(random, "output.weight", wt, spec.dim(), vocab));
        }
        if (spec.outputBias()) {
            weights.add(bias(random, "output.bias", vocab));
        }
        if (spec.ropeFreqFactors()) {
            // As Llama 3.1's: 1 for the fast pairs, growing to 8 for the slow ones, here with random steps.
            float[] factors = new float[spec.ropeDims() / 2];
            for (int i = 0; i < factors.length; i++) {
                factors[i] = 1 + 7 * (float) i / Math.max(1, factors.length - 1) * random.nextFloat();
            }
            weights.add(new Weight("rope_freqs.weight", GgmlType.F32, new long[] {factors.length}, factors));
        }
        for (int l = 0; l < spec.layers(); l++) {
            String p = "blk." + l + ".";
            weights.add(norm(random, p + "attn_norm.weight", spec.dim()));
            weights.add(matrix(random, p + "attn_q.weight", wt, spec.dim(), spec.dim()));
            weights.add(matrix(random, p + "attn_k.weight", wt, spec.dim(), spec.kvDim()));
            weights.add(matrix(random, p + "attn_v.weight", wt, spec.dim(), spec.kvDim()));
            if (spec.qkvBias()) {
                weights.add(bias(random, p + "attn_q.bias", spec.dim()));
                weights.add(bias(random, p + "attn_k.bias", spec.kvDim()));
                weights.add(bias(random, p + "attn_v.bias", spec.kvDim()));
            }
            weights.add(matrix(random, p + "attn_output.weight", wt, spec.dim(), spec.dim()));
            if (spec.attnOutputBias()) {
                weights.add(bias(random, p + "attn_output.bias", spec.dim()));
            }
            weights.add(norm(random, p + "ffn_norm.weight", spec.dim()));
            weights.add(matrix(random, p + "ffn_gate.weight", wt, spec.dim(), spec.ffn()));
            weights.add(matrix(random, p + "ffn_down.weight", wt, spec.ffn(), spec.dim()));
            weights.add(matrix(random, p + "ffn_up.weight", wt, spec.dim(), spec.ffn()));
        }
        return weights;
    }

    /** A writer holding the whole model, so a test can add or break something before writing it. */
    public static GgufWriter writer(Spec spec) {
        String a = spec.architecture() + ".";
        GgufWriter w = new GgufWriter()
                .addString("general.architecture", spec.architecture())
                .addString("general.name", "tiny-" + spec.architecture())
                .addUint32("general.file_type", fileType(spec.weightType()))
                .addUint32(a + "context_length", spec.contextLength())
                .addUint32(a + "embedding_length", spec.dim())
                .addUint32(a + "block_count", spec.layers())
                .addUint32(a + "feed_forward_length", spec.ffn())
                .addUint32(a + "attention.head_count", spec.heads())
                .addUint32(a + "attention.head_count_kv", spec.kvHeads())
                .addFloat32(a + "attention.layer_norm_rms_epsilon", spec.rmsEps())
                .addUint32(a + "vocab_size", spec.vocabSize());
        if (spec.ropeFreqBase() != null) {
            w.addFloat32(a + "rope.freq_base", spec.ropeFreqBase());
        }
        if (spec.ropeDimensionCount() != null) {
            w.addUint32(a + "rope.dimension_count", spec.ropeDimensionCount());
        }
        if (spec.ropeScalingFactor() != null) {
            w.addString(a + "rope.scaling.type", "linear").addFloat32(a + "rope.scaling.factor", spec.ropeScalingFactor());
        }
        addVocabulary(w);
        for (Weight t : weights(spec)) {
            w.addTensor(t.name(), t.type(), t.values(), t.dims());
        }
        return w;
    }

    public static Path write(Path file, Spec spec) {
        return writer(spec).write(file);
    }

    private static void addVocabulary(GgufWriter w) {
        List<String> tokens = vocabulary();
        float[] scores = new float[tokens.size()];
        int[] types = new int[tokens.size()];
        for (int id = 0; id < tokens.size(); id++) {
            if (id == UNK) {
                types[id] = UNKNOWN;
            } else if (id < FIRST_BYTE_TOKEN) {
                types[id] = CONTROL;
            } else if (id < FIRST_BYTE_TOKEN + 256) {
                types[id] = BYTE;
            } else {
                // SentencePiece scores: higher is merged first; the real Llama vocabulary counts down from 0 the same way.
                types[id] = NORMAL;
                scores[id] = -(id - FIRST_BYTE_TOKEN - 256);
            }
        }
        w.addString("tokenizer.ggml.model", "llama")
                .addStringArray("tokenizer.ggml.tokens", tokens.toArray(String[]::new))
                .addFloat32Array("tokenizer.ggml.scores", scores)
                .addInt32Array("tokenizer.ggml.token_type", types)
                .addUint32("tokenizer.ggml.bos_token_id", BOS)
                .addUint32("tokenizer.ggml.eos_token_id", EOS)
                .addUint32("tokenizer.ggml.unknown_token_id", UNK);
    }

    /** llama.cpp's {@code llama_ftype} for a model whose matrices are all {@code type}. */
    private static int fileType(GgmlType type) {
        return switch (type) {
            case F32 -> 0;
            case F16 -> 1;
            case Q4_0 -> 2;
            case Q8_0 -> 7;
            default -> throw new IllegalArgumentException("no file type for " + type);
        };
    }

    /** Uniform in ±1/sqrt(row length), so activations stay around unit scale through the layers. */
    private static Weight matrix(Random random, String name, GgmlType type, int rowLength, int rows) {
        float[] v = new float[rowLength * rows];
        float scale = (float) (1 / Math.sqrt(rowLength));
        for (int i = 0; i < v.length; i++) v[i] = (random.nextFloat() * 2 - 1) * scale;
        return new Weight(name, type, new long[] {rowLength, rows}, v);
    }

    /** Uniform in ±1: large enough to move attention and logits visibly; always F32, as llama.cpp keeps biases. */
    private static Weight bias(Random random, String name, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = random.nextFloat() * 2 - 1;
        return new Weight(name, GgmlType.F32, new long[] {n}, v);
    }

    /** Near 1, like trained RMSNorm gains; always F32, as llama.cpp's quantizer leaves 1-D tensors. */
    private static Weight norm(Random random, String name, int dim) {
        float[] v = new float[dim];
        for (int i = 0; i < dim; i++) v[i] = 1 + (random.nextFloat() - 0.5f) * 0.2f;
        return new Weight(name, GgmlType.F32, new long[] {dim}, v);
    }
}
