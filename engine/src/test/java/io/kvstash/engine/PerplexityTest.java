package io.kvstash.engine;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.testing.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Perplexity against every llama.cpp figure in shared/reference/README.md (F16 KV there; F32 and F16 here). */
class PerplexityTest {
    @ParameterizedTest(name = "{0} ctx {1}: llama.cpp {2}")
    @CsvSource({
            "stories15M-f16.gguf, 128, 5.3869",
            "stories15M-f16.gguf, 256, 6.5566",
            "stories15M-q8_0.gguf, 128, 5.4113",
            "stories15M-q8_0.gguf, 256, 6.5533",
            "stories15M-q4_0.gguf, 128, 6.1998",
            "stories15M-q4_0.gguf, 256, 7.5258",
            "stories260K-f32.gguf, 128, 5.0443",
            "stories260K-f32.gguf, 256, 5.3715",
            "stories15M-q4_k_m.gguf, 128, 5.5986",
            "stories15M-q4_k_m.gguf, 256, 6.7673",
            "stories15M-kmix.gguf, 128, 5.7377",
            "stories15M-kmix.gguf, 256, 7.0866"})
    void shouldMatchLlamaCppWithinHalfAPercentWhenMeasuringPerplexity(String model, int ctx, double expected) throws IOException {
        String text = Files.readString(TestModels.data("stories-public.txt"));
        EngineOptions options = EngineOptions.defaults().withThreads(2).withContextLength(ctx);
        try (InferenceEngine engine = InferenceEngine.open(TestModels.model(model), options)) {
            double ppl = Perplexity.measure(engine, text, ctx).perplexity();
            double relative = (ppl - expected) / expected;
            System.out.printf("perplexity %s ctx %d: %.4f (llama.cpp %.4f, %+.2f%%)%n", model, ctx, ppl, expected, 100 * relative);
            assertTrue(Math.abs(relative) <= 0.005, model + " ctx " + ctx + ": " + ppl + " vs llama.cpp " + expected);
        }
    }
}
