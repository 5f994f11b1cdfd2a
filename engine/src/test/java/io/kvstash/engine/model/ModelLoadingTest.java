package io.kvstash.engine.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.gguf.GgmlType;
import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.gguf.GgufFormatException;
import io.kvstash.engine.gguf.GgufWriter;
import io.kvstash.engine.gguf.TinyModels;
import io.kvstash.engine.kernel.ComputePool;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.kv.SlabKvStore;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link LlamaModel#load} on tiny GGUF files that parse but do not describe a runnable model, and
 * {@link ForwardPass#forward} on token ids outside the vocabulary: each must fail with a
 * {@link ModelFormatException}, {@link GgufFormatException} or {@link IllegalArgumentException}
 * whose message names what is wrong, never with an index or null-pointer error from deeper down.
 */
class ModelLoadingTest {
    /** dim 64, 2 layers, 4 heads / 2 KV heads (head dim 16, KV dim 32), ffn 96, vocabulary 283. */
    static final TinyModels.Spec SPEC = TinyModels.Spec.builder().build();

    @TempDir
    Path dir;
    private int files;

    private Path write(GgufWriter w) {
        return w.write(dir.resolve("broken-" + files++ + ".gguf"));
    }

    /** Loads {@code file}, expecting {@code type} with a message holding every fragment. */
    private static <T extends RuntimeException> T assertLoadFails(Class<T> type, Path file, String... fragments) {
        RuntimeException e = assertThrows(RuntimeException.class, () -> {
            try (GgufFile f = GgufFile.open(file); LlamaModel m = LlamaModel.load(f)) {
                m.config();
            }
        });
        assertInstanceOf(type, e, () -> "expected " + type.getSimpleName() + ", got " + e);
        for (String fragment : fragments) {
            assertTrue(e.getMessage().contains(fragment), "message lacks '" + fragment + "': " + e.getMessage());
        }
        return type.cast(e);
    }

    private static GgufWriter withMetadata(GgufWriter w, String key, long value) {
        return w.removeMetadata(key).addUint32(key, value);
    }

    @Test
    void shouldLoadWhenNothingIsBroken() {
        try (GgufFile f = GgufFile.open(write(TinyModels.writer(SPEC))); LlamaModel m = LlamaModel.load(f)) {
            ModelConfig c = m.config();
            assertEquals(64, c.dim());
            assertEquals(16, c.headDim());
            assertEquals(2, c.groupSize());
            assertEquals(SPEC.vocabSize(), c.vocabularySize());
            assertEquals(Architecture.LLAMA, c.architecture());
            assertEquals(RopeStyle.NORMAL, c.ropeStyle());
            assertNull(m.layer(0).qBias(), "a llama file without biases has none");
            assertNull(m.outputBias());
        }
    }

    @Test
    void shouldLoadQwen2WithBiasesNeoxRopeAndTiedOutputWhenFileIsQwen2() {
        TinyModels.Spec qwen2 = TinyModels.Spec.builder().architecture("qwen2").tiedOutput(true).build();
        try (GgufFile f = GgufFile.open(write(TinyModels.writer(qwen2))); LlamaModel m = LlamaModel.load(f)) {
            ModelConfig c = m.config();
            assertEquals(Architecture.QWEN2, c.architecture());
            assertEquals(RopeStyle.NEOX, c.ropeStyle());
            assertEquals(64, c.dim());
            assertEquals(2, c.groupSize());
            assertEquals(64, m.layer(1).qBias().length);
            assertEquals(32, m.layer(1).kBias().length);
            assertEquals(32, m.layer(1).vBias().length);
            assertNull(m.layer(1).oBias());
            assertEquals(SPEC.vocabSize(), m.output().rows, "tied output: the embedding is the classifier");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"blk.0.attn_q.bias", "blk.1.attn_k.bias", "blk.1.attn_v.bias"})
    void shouldNameBiasWhenQwen2BiasIsMissing(String tensor) {
        GgufWriter w = TinyModels.writer(TinyModels.Spec.builder().architecture("qwen2").build()).removeTensor(tensor);
        assertLoadFails(GgufFormatException.class, write(w), "missing tensor '" + tensor + "'");
    }

    @Test
    void shouldNameBiasAndBothShapesWhenBiasHasWrongLength() {
        GgufWriter w = TinyModels.writer(TinyModels.Spec.builder().architecture("qwen2").build()).removeTensor("blk.0.attn_k.bias")
                .addTensor("blk.0.attn_k.bias", GgmlType.F32, new float[64], 64);
        assertLoadFails(ModelFormatException.class, write(w), "'blk.0.attn_k.bias'", "[64]", "expected [32]");
    }

    @Test
    void shouldNameQwen2KeyWhenQwen2HyperParameterIsMissing() {
        GgufWriter w = TinyModels.writer(TinyModels.Spec.builder().architecture("qwen2").build()).removeMetadata("qwen2.block_count");
        assertLoadFails(GgufFormatException.class, write(w), "qwen2.block_count");
    }

    @ParameterizedTest
    @ValueSource(strings = {"token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight", "blk.0.attn_norm.weight",
            "blk.1.ffn_up.weight", "blk.1.attn_output.weight"})
    void shouldNameTensorWhenTensorIsMissing(String tensor) {
        assertLoadFails(GgufFormatException.class, write(TinyModels.writer(SPEC).removeTensor(tensor)), "missing tensor '" + tensor + "'");
    }

    @Test
    void shouldNameEmbeddingWhenItIsMissingAndNoVocabSizeIsGiven() {
        // Most converted files carry no llama.vocab_size: the vocabulary comes from the embedding alone.
        GgufWriter w = TinyModels.writer(SPEC).removeTensor("token_embd.weight").removeMetadata("llama.vocab_size");
        assertLoadFails(GgufFormatException.class, write(w), "missing tensor 'token_embd.weight'");
    }

    @Test
    void shouldNameTensorAndBothShapesWhenMatrixIsTransposed() {
        GgufWriter w = TinyModels.writer(SPEC).removeTensor("blk.0.attn_k.weight")
                .addTensor("blk.0.attn_k.weight", GgmlType.F32, new float[64 * 32], 32, 64);
        assertLoadFails(ModelFormatException.class, write(w), "'blk.0.attn_k.weight'", "[32, 64]", "expected [64, 32]");
    }

    @Test
    void shouldNameTensorAndBothShapesWhenOutputHasTooFewRows() {
        GgufWriter w = TinyModels.writer(SPEC).removeTensor("output.weight")
                .addTensor("output.weight", GgmlType.F32, new float[64 * 280], 64, 280);
        assertLoadFails(ModelFormatException.class, write(w), "'output.weight'", "[64, 280]", "expected [64, 283]");
    }

    @Test
    void shouldNameTensorAndBothShapesWhenMatrixHasThreeDimensions() {
        GgufWriter w = TinyModels.writer(SPEC).removeTensor("blk.1.ffn_down.weight")
                .addTensor("blk.1.ffn_down.weight", GgmlType.F32, new float[96 * 64], 96, 32, 2);
        assertLoadFails(ModelFormatException.class, write(w), "'blk.1.ffn_down.weight'", "[96, 32, 2]", "expected [96, 64]");
    }

    @Test
    void shouldNameTensorAndBothShapesWhenNormHasWrongLength() {
        GgufWriter w = TinyModels.writer(SPEC).removeTensor("blk.1.ffn_norm.weight")
                .addTensor("blk.1.ffn_norm.weight", GgmlType.F32, new float[32], 32);
        assertLoadFails(ModelFormatException.class, write(w), "'blk.1.ffn_norm.weight'", "[32]", "expected [64]");
    }

    @Test
    void shouldListSupportedArchitecturesWhenArchitectureIsUnsupported() {
        GgufWriter w = TinyModels.writer(SPEC).removeMetadata("general.architecture").addString("general.architecture", "mamba");
        assertLoadFails(ModelFormatException.class, write(w), "'mamba'", "not supported", "llama, qwen2");
    }

    @ParameterizedTest
    @ValueSource(strings = {"yarn", "longrope", "llama3"})
    void shouldNameKeyAndTypeWhenRopeScalingIsNotLinear(String type) {
        GgufWriter w = TinyModels.writer(SPEC).addString("llama.rope.scaling.type", type).addFloat32("llama.rope.scaling.factor", 4f);
        assertLoadFails(ModelFormatException.class, write(w), "llama.rope.scaling.type", "'" + type + "'", "not supported");
    }

    @Test
    void shouldNameFactorWhenLinearRopeScalingFactorIsNegative() {
        GgufWriter w = TinyModels.writer(SPEC).addString("llama.rope.scaling.type", "linear").addFloat32("llama.rope.scaling.factor", -2f);
        assertLoadFails(ModelFormatException.class, write(w), "llama.rope.scaling.factor", "-2");
    }

    @Test
    void shouldScalePositionsOnlyWhenRopeScalingTypeIsNotNone() {
        GgufWriter none = TinyModels.writer(SPEC).addString("llama.rope.scaling.type", "none").addFloat32("llama.rope.scaling.factor", 4f);
        try (GgufFile f = GgufFile.open(write(none))) {
            assertEquals(1f, ModelConfig.from(f).ropePositionScale());
        }
        // Without a type llama.cpp takes the factor as linear scaling; so does the older key.
        GgufWriter legacy = TinyModels.writer(SPEC).addFloat32("llama.rope.scale_linear", 4f);
        try (GgufFile f = GgufFile.open(write(legacy))) {
            assertEquals(0.25f, ModelConfig.from(f).ropePositionScale());
        }
    }

    @Test
    void shouldNameTensorAndBothShapesWhenRopeFrequencyFactorsHaveWrongLength() {
        GgufWriter w = TinyModels.writer(SPEC).addTensor("rope_freqs.weight", GgmlType.F32, new float[16], 16);
        assertLoadFails(ModelFormatException.class, write(w), "'rope_freqs.weight'", "[16]", "expected [8]");
    }

    @Test
    void shouldNameTensorWhenRopeFrequencyFactorIsZero() {
        float[] factors = {1, 1, 2, 0, 4, 4, 8, 8};
        GgufWriter w = TinyModels.writer(SPEC).addTensor("rope_freqs.weight", GgmlType.F32, factors, 8);
        assertLoadFails(ModelFormatException.class, write(w), "'rope_freqs.weight'", "must be positive");
    }

    @Test
    void shouldSayWhatIsMissingWhenArchitectureIsAbsent() {
        assertLoadFails(ModelFormatException.class, write(TinyModels.writer(SPEC).removeMetadata("general.architecture")),
                "general.architecture");
    }

    @Test
    void shouldNameKeyWhenHyperParameterIsMissing() {
        assertLoadFails(GgufFormatException.class, write(TinyModels.writer(SPEC).removeMetadata("llama.block_count")),
                "llama.block_count");
    }

    @Test
    void shouldNameTensorAndTypeWhenMatrixIsIQ4XS() {
        // IQ4_XS blocks hold 256 values, so the model needs rows of 256.
        TinyModels.Spec wide = TinyModels.Spec.builder().dim(256).layers(1).ffn(256).build();
        byte[] iq = new byte[256 / GgmlType.IQ4_XS.blockSize * GgmlType.IQ4_XS.blockBytes * 256];
        GgufWriter w = TinyModels.writer(wide).removeTensor("blk.0.ffn_gate.weight")
                .addTensor("blk.0.ffn_gate.weight", GgmlType.IQ4_XS, iq, 256, 256);
        assertLoadFails(ModelFormatException.class, write(w), "'blk.0.ffn_gate.weight'", "IQ4_XS");
    }

    @Test
    void shouldNameTensorAndTypeWhenEmbeddingIsIQ4NL() {
        byte[] iq = new byte[64 / 32 * GgmlType.IQ4_NL.blockBytes * SPEC.vocabSize()];
        GgufWriter w = TinyModels.writer(SPEC).removeTensor("token_embd.weight")
                .addTensor("token_embd.weight", GgmlType.IQ4_NL, iq, 64, SPEC.vocabSize());
        assertLoadFails(ModelFormatException.class, write(w), "'token_embd.weight'", "IQ4_NL");
    }

    @Test
    void shouldLoadWhenMatrixIsQ5KAndEmbeddingIsQ4_1() {
        TinyModels.Spec wide = TinyModels.Spec.builder().dim(256).layers(1).ffn(256).build();
        byte[] q5k = new byte[256 / GgmlType.Q5_K.blockSize * GgmlType.Q5_K.blockBytes * 256];
        byte[] q41 = new byte[256 / 32 * GgmlType.Q4_1.blockBytes * wide.vocabSize()];
        GgufWriter w = TinyModels.writer(wide).removeTensor("blk.0.ffn_gate.weight")
                .addTensor("blk.0.ffn_gate.weight", GgmlType.Q5_K, q5k, 256, 256)
                .removeTensor("token_embd.weight")
                .addTensor("token_embd.weight", GgmlType.Q4_1, q41, 256, wide.vocabSize());
        try (GgufFile f = GgufFile.open(write(w)); LlamaModel m = LlamaModel.load(f)) {
            assertEquals(GgmlType.Q5_K, f.tensor("blk.0.ffn_gate.weight").type());
            assertEquals(256, m.layer(0).wGate().rows);
        }
    }

    @Test
    void shouldNameTensorAndTypeWhenNormIsI32() {
        GgufWriter w = TinyModels.writer(SPEC).removeTensor("output_norm.weight")
                .addTensor("output_norm.weight", GgmlType.I32, new byte[4 * 64], 64);
        assertLoadFails(ModelFormatException.class, write(w), "'output_norm.weight'", "I32");
    }

    @ParameterizedTest
    @ValueSource(ints = {5, 3, 7, 128})
    void shouldSayHeadCountDoesNotDivideDimWhenItDoesNot(int heads) {
        GgufWriter w = withMetadata(TinyModels.writer(SPEC), "llama.attention.head_count", heads);
        w = withMetadata(w, "llama.attention.head_count_kv", 1);
        assertLoadFails(ModelFormatException.class, write(w), "embedding_length 64", "head_count " + heads);
    }

    @Test
    void shouldRefuseZeroHeadsWithoutDividingByZero() {
        assertLoadFails(ModelFormatException.class, write(withMetadata(TinyModels.writer(SPEC), "llama.attention.head_count", 0)),
                "head_count 0");
    }

    @ParameterizedTest
    @ValueSource(ints = {3, 8})
    void shouldSayKvHeadsDoNotDivideHeadsWhenTheyDoNot(int kvHeads) {
        GgufWriter w = withMetadata(TinyModels.writer(SPEC), "llama.attention.head_count_kv", kvHeads);
        assertLoadFails(ModelFormatException.class, write(w), "head_count 4", "head_count_kv " + kvHeads);
    }

    @Test
    void shouldNameKvHeadsWhenTheyAreZero() {
        GgufWriter w = withMetadata(TinyModels.writer(SPEC), "llama.attention.head_count_kv", 0);
        assertLoadFails(ModelFormatException.class, write(w), "head_count_kv");
    }

    @ParameterizedTest
    @ValueSource(ints = {7, 18, 0})
    void shouldRefuseRopeDimensionsThatAreOddOrWiderThanTheHead(int ropeDims) {
        GgufWriter w = TinyModels.writer(SPEC).addUint32("llama.rope.dimension_count", ropeDims);
        assertLoadFails(ModelFormatException.class, write(w), "rope.dimension_count " + ropeDims);
    }

    @ParameterizedTest
    @ValueSource(strings = {"NaN", "Infinity", "-Infinity"})
    void shouldNameNormWhenItHoldsNonFiniteValues(String value) {
        for (String tensor : new String[] {"blk.1.attn_norm.weight", "output_norm.weight"}) {
            float[] gains = new float[64];
            Arrays.fill(gains, 1f);
            gains[37] = Float.parseFloat(value);
            GgufWriter w = TinyModels.writer(SPEC).removeTensor(tensor).addTensor(tensor, GgmlType.F32, gains, 64);
            assertLoadFails(ModelFormatException.class, write(w), "'" + tensor + "'", "non-finite");
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {283, 284, -1, Integer.MAX_VALUE, Integer.MIN_VALUE})
    void shouldNameTokenIdWhenItIsOutsideTheVocabulary(int id) {
        try (GgufFile f = GgufFile.open(write(TinyModels.writer(SPEC)));
             LlamaModel model = LlamaModel.load(f);
             ComputePool pool = new ComputePool(1)) {
            ModelConfig c = model.config();
            ForwardPass pass = new ForwardPass(model, pool, 8);
            try (SlabKvStore store = new SlabKvStore(new KvGeometry(c.layers(), c.kvHeads(), c.headDim(), 64, KvFormat.F32), Long.MAX_VALUE);
                 KvCache cache = new KvCache(store)) {
                int[] tokens = {1, 17, id, 5};
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> pass.forward(cache, tokens, 0, tokens.length, 3, new float[c.vocabularySize()]));
                assertTrue(e.getMessage().contains("token id " + id + " "), e.getMessage());
                assertTrue(e.getMessage().contains("283"), e.getMessage());
                assertEquals(0, cache.length(), "a refused call must not advance the cache");
                assertEquals(0, cache.chunkCount(), "a refused call must not reserve chunks");
                // The pass is still usable afterwards.
                pass.forward(cache, new int[] {1, 17}, 0, 2, 1, new float[c.vocabularySize()]);
                assertEquals(2, cache.length());
            }
        }
    }
}
