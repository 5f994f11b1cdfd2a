package io.kvstash.engine.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.gguf.GgmlType;
import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.gguf.TinyModels;
import io.kvstash.engine.kernel.ComputePool;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.kv.SlabKvStore;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every position's logits of {@link ForwardPass#forward} against {@link NaiveLlamaReference} on
 * tiny seeded models covering each weight type, multi-head and grouped-query attention, tied and
 * untied output, custom rotary settings, both architectures (llama, qwen2 with its Q/K/V biases and
 * NeoX rope) and llama's optional parts (biases, Llama 3.1 rope frequency factors, linear rope
 * scaling), over sequences long enough to cross the 64-token KV chunk boundary three times.
 */
class ForwardPassReferenceTest {
    /** 200 positions: KV chunks of 64 break at 64, 128 and 192. */
    static final int POSITIONS = 200;
    /** Prefill batches of 48 straddle the chunk boundaries instead of lining up with them. */
    static final int MAX_BATCH = 48;
    /**
     * |Δlogit| / max(1, |logit|). float32 arithmetic against fp64 measures at most 1.7e-6 across
     * these models (float rounding of the rotary frequencies, of the projections and of the long
     * attention sums); 2e-5 leaves a tenfold margin, while real mistakes (a wrong KV head for a
     * query head, rotating the wrong dimensions) move logits by 1e-2 or more.
     */
    static final double TOLERANCE = 2e-5;
    /**
     * With an F16 KV cache, |Δlogit| / max(1, |logit|) against a reference that rounds keys and
     * values to half precision where the cache stores them. Rounding is a step function, so the rare
     * element whose float32 and fp64 values straddle a rounding boundary is stored one half-ulp
     * apart: measured worst 7.6e-5 over these models, against 5.6e-4 to 8.6e-4 for the same
     * engine output compared with the unrounded reference. 2e-4 separates the two.
     */
    static final double F16_KV_TOLERANCE = 2e-4;

    private static ComputePool pool;

    @BeforeAll
    static void startPool() {
        pool = new ComputePool(2);
    }

    @AfterAll
    static void stopPool() {
        pool.close();
    }

    static Stream<Arguments> models() {
        return Stream.of(
                Arguments.of("F32, 4 heads / 2 KV heads, untied, default rope",
                        TinyModels.Spec.builder().heads(4).kvHeads(2).build()),
                Arguments.of("F32, 4 heads / 4 KV heads (multi-head), tied",
                        TinyModels.Spec.builder().heads(4).kvHeads(4).tiedOutput(true).seed(1).build()),
                Arguments.of("F32, 4 heads / 1 KV head, freq_base 500000, rope over 8 of 16 dims",
                        TinyModels.Spec.builder().heads(4).kvHeads(1).ropeFreqBase(500000f).ropeDimensionCount(8).seed(2).build()),
                Arguments.of("F16, 4 heads / 1 KV head, untied",
                        TinyModels.Spec.builder().weightType(GgmlType.F16).heads(4).kvHeads(1).seed(3).build()),
                Arguments.of("F16, 8 heads / 2 KV heads, dim 128, tied, rope over 6 of 16 dims",
                        TinyModels.Spec.builder().weightType(GgmlType.F16).dim(128).heads(8).kvHeads(2).ffn(160)
                                .tiedOutput(true).ropeDimensionCount(6).seed(4).build()),
                Arguments.of("Q8_0, 4 heads / 2 KV heads, tied, freq_base 1e6",
                        TinyModels.Spec.builder().weightType(GgmlType.Q8_0).heads(4).kvHeads(2).tiedOutput(true)
                                .ropeFreqBase(1e6f).seed(5).build()),
                Arguments.of("Q8_0, 2 heads / 2 KV heads, 3 layers, untied, rope over 20 of 32 dims",
                        TinyModels.Spec.builder().weightType(GgmlType.Q8_0).heads(2).kvHeads(2).layers(3)
                                .ropeDimensionCount(20).seed(6).build()),
                Arguments.of("Q4_0, 4 heads / 1 KV head, untied, freq_base 1000, rope over 10 of 16 dims",
                        TinyModels.Spec.builder().weightType(GgmlType.Q4_0).heads(4).kvHeads(1).ropeFreqBase(1000f)
                                .ropeDimensionCount(10).seed(7).build()),
                Arguments.of("Q4_0, 4 heads / 2 KV heads, tied",
                        TinyModels.Spec.builder().weightType(GgmlType.Q4_0).heads(4).kvHeads(2).tiedOutput(true).seed(8).build()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void shouldMatchNaiveReferenceWhenTeacherForcedPastSeveralChunks(String name, TinyModels.Spec spec, @TempDir Path dir) {
        compare(name, spec, KvFormat.F32, TOLERANCE, dir);
    }

    /** qwen2 as converted Qwen2 files come: eps 1e-6, freq_base 1e6 (Q/K/V biases come with the architecture). */
    static TinyModels.Builder qwen2() {
        return TinyModels.Spec.builder().architecture("qwen2").rmsEps(1e-6f).ropeFreqBase(1e6f);
    }

    /** qwen2: NeoX rope and Q/K/V biases; the models differ in weight type, grouping, tying and rotated width. */
    static Stream<Arguments> qwen2Models() {
        return Stream.of(
                Arguments.of("qwen2, F32, 4 heads / 2 KV heads, tied", qwen2().heads(4).kvHeads(2).tiedOutput(true).seed(11).build()),
                Arguments.of("qwen2, F16, 8 heads / 2 KV heads, dim 128, untied",
                        qwen2().weightType(GgmlType.F16).dim(128).heads(8).kvHeads(2).ffn(160).seed(12).build()),
                Arguments.of("qwen2, Q8_0, 4 heads / 1 KV head, tied, rope over 10 of 16 dims",
                        qwen2().weightType(GgmlType.Q8_0).heads(4).kvHeads(1).tiedOutput(true).ropeDimensionCount(10).seed(13).build()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("qwen2Models")
    void shouldMatchNaiveReferenceWhenArchitectureIsQwen2(String name, TinyModels.Spec spec, @TempDir Path dir) {
        compare(name, spec, KvFormat.F32, TOLERANCE, dir);
    }

    /** The parts a llama file may carry: Llama 3.1 rope frequency factors, linear rope scaling, biases. */
    static Stream<Arguments> llamaOptionalParts() {
        return Stream.of(
                Arguments.of("llama, F16, 4 heads / 1 KV head, rope_freqs, freq_base 500000",
                        TinyModels.Spec.builder().weightType(GgmlType.F16).heads(4).kvHeads(1).ropeFreqBase(500000f)
                                .ropeFreqFactors(true).seed(21).build()),
                Arguments.of("llama, F32, 4 heads / 2 KV heads, rope_freqs over 10 of 16 dims, linear rope scaling 2.5",
                        TinyModels.Spec.builder().heads(4).kvHeads(2).ropeDimensionCount(10).ropeFreqFactors(true)
                                .ropeScalingFactor(2.5f).seed(22).build()),
                Arguments.of("llama, Q8_0, 4 heads / 2 KV heads, tied, Q/K/V, attention-output and output biases",
                        TinyModels.Spec.builder().weightType(GgmlType.Q8_0).heads(4).kvHeads(2).tiedOutput(true).qkvBias(true)
                                .attnOutputBias(true).outputBias(true).seed(23).build()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("llamaOptionalParts")
    void shouldMatchNaiveReferenceWhenLlamaHasOptionalParts(String name, TinyModels.Spec spec, @TempDir Path dir) {
        compare(name, spec, KvFormat.F32, TOLERANCE, dir);
    }

    /**
     * F32 with grouped-query attention, F16 weights with one KV head, Q8_0 with three layers and
     * partial rope, and qwen2 (its biased keys and values are what the cache rounds).
     */
    static Stream<Arguments> f16KvModels() {
        List<Arguments> all = models().toList();
        return Stream.of(all.get(0), all.get(3), all.get(6), qwen2Models().toList().get(1));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("f16KvModels")
    void shouldMatchHalfRoundedReferenceWhenKvCacheIsF16(String name, TinyModels.Spec spec, @TempDir Path dir) {
        compare(name + ", F16 KV", spec, KvFormat.F16, F16_KV_TOLERANCE, dir);
    }

    private static void compare(String name, TinyModels.Spec spec, KvFormat kvFormat, double tolerance, Path dir) {
        int[] tokens = randomTokens(spec.vocabSize(), POSITIONS, spec.seed() + 100);
        double[][] expected = new NaiveLlamaReference(spec).logits(tokens, kvFormat == KvFormat.F16);
        try (GgufFile f = GgufFile.open(TinyModels.write(dir.resolve("tiny.gguf"), spec));
             LlamaModel model = LlamaModel.load(f)) {
            int vocab = model.config().vocabularySize();
            assertEquals(spec.vocabSize(), vocab);
            float[] logits = new float[POSITIONS * vocab];
            ModelConfig c = model.config();
            KvGeometry geometry = new KvGeometry(c.layers(), c.kvHeads(), c.headDim(), KvGeometry.DEFAULT_CHUNK_TOKENS, kvFormat);
            try (SlabKvStore store = new SlabKvStore(geometry, Long.MAX_VALUE); KvCache cache = new KvCache(store)) {
                new ForwardPass(model, pool, MAX_BATCH).forward(cache, tokens, 0, POSITIONS, 0, logits);
                assertEquals(POSITIONS, cache.length());
                assertEquals(4, cache.chunkCount());
            }
            double worst = 0;
            int worstPos = -1;
            for (int p = 0; p < POSITIONS; p++) {
                for (int i = 0; i < vocab; i++) {
                    double e = expected[p][i];
                    double err = Math.abs(logits[p * vocab + i] - e) / Math.max(1, Math.abs(e));
                    if (err > worst) {
                        worst = err;
                        worstPos = p;
                    }
                    assertTrue(err <= tolerance, name + ": position " + p + " token " + i + ": logit " + logits[p * vocab + i]
                            + " vs reference " + e);
                }
            }
            System.out.printf("forward vs naive reference, %s: worst relative logit error %.2e (position %d)%n", name, worst, worstPos);
        }
    }

    static int[] randomTokens(int vocab, int n, long seed) {
        Random r = new Random(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = r.nextInt(vocab);
        }
        return t;
    }
}
