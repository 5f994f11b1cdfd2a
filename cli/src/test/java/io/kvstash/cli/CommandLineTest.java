package io.kvstash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvstash.engine.convert.Llama2cCheckpoint;
import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.testing.TestModels;
import io.kvstash.engine.tokenizer.Tokenizer;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The command-line contract: outputs, JSON shapes, exit codes and one-line errors. */
class CommandLineTest {
    record Run(int code, String out, String err) {}

    static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(code, out.toString(), err.toString());
    }

    @Test
    void shouldPrintIdsWithBosWhenTokenizing() {
        Run r = run("tokenize", "--model", TestModels.model("stories15M-q8_0.gguf").toString(), "--text", "Once upon a time");
        assertEquals(0, r.code(), r.err());
        assertEquals("[1,9038,2501,263,931]", r.out().trim());
    }

    @Test
    void shouldPrintReferenceGreedyContinuationWhenTemperatureIsZero() throws Exception {
        JsonNode ref = new ObjectMapper().readTree(TestModels.reference("logits-stories15M-f16.json").toFile());
        Path model = TestModels.model("stories15M-f16.gguf");
        for (JsonNode record : ref.get("records")) {
            int[] greedy = new int[record.get("greedy_ids").size()];
            for (int i = 0; i < greedy.length; i++) {
                greedy[i] = record.get("greedy_ids").get(i).asInt();
            }
            String expected;
            try (GgufFile f = GgufFile.open(model)) {
                Tokenizer t = Tokenizer.fromGguf(f);
                int[] withBos = new int[greedy.length + 1];
                withBos[0] = t.bos();
                System.arraycopy(greedy, 0, withBos, 1, greedy.length);
                expected = t.decode(withBos);
            }
            Run r = run("generate", "--model", model.toString(), "--prompt", record.get("prompt").asText(), "--temperature", "0",
                    "--max-tokens", String.valueOf(greedy.length), "--threads", "2");
            assertEquals(0, r.code(), r.err());
            assertEquals(expected + System.lineSeparator(), r.out(), "continuation of '" + record.get("prompt").asText() + "'");
        }
    }

    @Test
    void shouldGiveSameTextWhenSeedAndSettingsRepeat() {
        String model = TestModels.model("stories15M-q4_0.gguf").toString();
        String[] args = {"generate", "--model", model, "--prompt", "Lily wanted", "--temperature", "0.9", "--seed", "7", "--max-tokens", "24"};
        Run a = run(args);
        Run b = run(args);
        assertEquals(0, a.code(), a.err());
        assertEquals(a.out(), b.out());
        Run c = run("generate", "--model", model, "--prompt", "Lily wanted", "--temperature", "0.9", "--seed", "8", "--max-tokens", "24");
        assertFalse(c.out().equals(a.out()), "a different seed should give different text");
    }

    @Test
    void shouldExitTwoWithOneLineWhenInputIsBad(@TempDir Path dir) throws Exception {
        Path junk = Files.write(dir.resolve("junk.gguf"), "definitely not a model".getBytes());
        List<Run> runs = new ArrayList<>();
        runs.add(run("generate", "--model", dir.resolve("missing.gguf").toString(), "--prompt", "x"));
        runs.add(run("generate", "--model", junk.toString(), "--prompt", "x"));
        runs.add(run("generate", "--prompt", "x"));
        runs.add(run("generate", "--model", junk.toString(), "--prompt", "x", "--max-tokens", "many"));
        runs.add(run("frobnicate"));
        runs.add(run("perplexity", "--model", junk.toString(), "--file", dir.resolve("none.txt").toString()));
        for (Run r : runs) {
            assertEquals(2, r.code(), r.err());
            assertEquals("", r.out());
            String firstLine = r.err().lines().findFirst().orElse("");
            assertTrue(firstLine.startsWith("kvstash"), r.err());
            assertFalse(r.err().contains("\tat "), "no stack trace without --verbose: " + r.err());
        }
        assertTrue(runs.get(1).err().contains("wrong magic"), runs.get(1).err());
        assertTrue(runs.get(0).err().contains("no such file"), runs.get(0).err());
        Run verbose = run("generate", "--model", junk.toString(), "--prompt", "x", "--verbose");
        assertTrue(verbose.err().contains("\tat "), "--verbose shows the stack trace");
    }

    @Test
    void shouldPrintJsonWithRatesWhenBenchmarking() throws Exception {
        Run r = run("bench", "--model", TestModels.model("stories260K-f32.gguf").toString(), "--threads", "2",
                "--prompt-tokens", "16", "--gen-tokens", "8", "--runs", "3", "--warmup", "1");
        assertEquals(0, r.code(), r.err());
        JsonNode json = new ObjectMapper().readTree(r.out());
        assertTrue(json.get("prefill_tokens_per_s").asDouble() > 0);
        assertTrue(json.get("decode_tokens_per_s").asDouble() > 0);
        assertEquals(1, json.get("batch").asInt());
    }

    @Test
    void shouldReportAggregateDecodeRateWhenBenchmarkingABatch() throws Exception {
        Run r = run("bench", "--model", TestModels.model("stories260K-f32.gguf").toString(), "--threads", "2", "--batch", "4",
                "--kv", "KIVI4", "--prompt-tokens", "70", "--gen-tokens", "8", "--runs", "1", "--warmup", "1");
        assertEquals(0, r.code(), r.err());
        JsonNode json = new ObjectMapper().readTree(r.out());
        assertEquals(4, json.get("batch").asInt());
        assertEquals("KIVI4", json.get("kv_format").asText());
        assertTrue(json.get("prefill_tokens_per_s").asDouble() > 0);
        assertTrue(json.get("decode_tokens_per_s").asDouble() > 0);
        assertTrue(json.get("kv_bytes_per_token").asDouble() > 0);
    }

    @Test
    void shouldPrintShiftAndRecomputeTimesWhenBenchmarkingAContextShift() throws Exception {
        Run r = run("bench-shift", "--model", TestModels.model("stories260K-f32.gguf").toString(), "--threads", "2", "--context", "200",
                "--kv", "Q8", "--runs", "1", "--warmup", "0");
        assertEquals(0, r.code(), r.err());
        JsonNode json = new ObjectMapper().readTree(r.out());
        assertEquals(136, json.get("kept_tokens").asInt());
        assertEquals(72, json.get("moved_tokens").asInt());
        assertTrue(json.get("shift_ms").asDouble() > 0);
        assertTrue(json.get("recompute_ms").asDouble() > 0);
        Run bad = run("bench-shift", "--model", TestModels.model("stories260K-f32.gguf").toString(), "--context", "128");
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("--context 128 must hold more than"), bad.err());
    }

    @Test
    void shouldPrintPplAndTokensWhenMeasuringPerplexity() throws Exception {
        Run r = run("perplexity", "--model", TestModels.model("stories260K-f32.gguf").toString(),
                "--file", TestModels.data("stories-public.txt").toString(), "--ctx", "128");
        assertEquals(0, r.code(), r.err());
        JsonNode json = new ObjectMapper().readTree(r.out());
        assertEquals(5.0443, json.get("ppl").asDouble(), 0.005 * 5.0443);
        assertEquals(14 * 63, json.get("tokens").asInt());
    }

    @Test
    void shouldCompareSparseWithDenseWhenMeasuringFidelity() throws Exception {
        String model = TestModels.model("stories260K-f32.gguf").toString();
        String text = TestModels.data("stories-public.txt").toString();
        Run r = run("sparse-fidelity", "--model", model, "--file", text, "--contexts", "256,512", "--budgets", "0.25,1",
                "--positions", "8", "--sparse-dense-layers", "0", "--threads", "2");
        assertEquals(0, r.code(), r.err());
        String[] lines = r.out().trim().split("\n");
        JsonNode json = new ObjectMapper().readTree(lines[lines.length - 1]);
        JsonNode rows = json.get("rows");
        assertEquals(4, rows.size());
        assertEquals("SKETCH", json.get("scoring").asText(), "the default scoring");
        for (JsonNode row : rows) {
            assertEquals(7, row.get("measured_positions").asInt(), "8 positions, one of which would seal a chunk: " + row);
            if (row.get("budget_share").asDouble() == 1.0) {
                // A budget covering the context is dense attention: the same logits.
                assertEquals(1.0, row.get("top1_agreement").asDouble(), row.toString());
                assertEquals(0.0, row.get("mean_kl").asDouble(), row.toString());
                assertFalse(row.has("mass_captured"), row.toString());
            } else {
                double mass = row.get("mass_captured").asDouble();
                assertTrue(mass > 0 && mass < 1, row.toString());
                assertTrue(row.get("mean_kl").asDouble() > 0, row.toString());
                assertTrue(row.get("hot_bytes_sparse_per_layer").asLong() < row.get("hot_bytes_dense").asLong(), row.toString());
            }
        }
        Run bad = run("sparse-fidelity", "--model", model, "--file", text, "--budgets", "0");
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("--budgets"), bad.err());
        Run badBlocks = run("sparse-fidelity", "--model", model, "--file", text, "--sparse-summary-tokens", "24");
        assertEquals(2, badBlocks.code());
        assertTrue(badBlocks.err().contains("--sparse-summary-tokens"), badBlocks.err());
    }

    @Test
    void shouldReportOracleRowsWhenMeasuringFidelityWithAnOracle() throws Exception {
        String model = TestModels.model("stories260K-f32.gguf").toString();
        String text = TestModels.data("stories-public.txt").toString();
        // Only the last of 5 layers sparse: every variant sees the same queries there, so mass orders by granularity and choice.
        Run r = run("sparse-fidelity", "--model", model, "--file", text, "--contexts", "512", "--budgets", "0.25,1",
                "--positions", "8", "--sparse-dense-layers", "4", "--threads", "2", "--oracle", "tokens,blocks16,chunks",
                "--oracle-choice", "head,group", "--tie-gap", "0.05");
        assertEquals(0, r.code(), r.err());
        String[] lines = r.out().trim().split("\n");
        JsonNode json = new ObjectMapper().readTree(lines[lines.length - 1]);
        assertEquals("ORACLE", json.get("scoring").asText());
        JsonNode rows = json.get("rows");
        assertEquals(2 * 3 * 2, rows.size(), "budgets x granularities x choices");
        double[] mass = new double[6];
        for (int i = 0; i < rows.size(); i++) {
            JsonNode row = rows.get(i);
            assertEquals(7, row.get("measured_positions").asInt(), row.toString());
            assertEquals(new int[] {1, 1, 16, 16, 64, 64}[i % 6], row.get("oracle_units").asInt(), row.toString());
            assertEquals(i % 2 == 0 ? "head" : "group", row.get("oracle_choice").asText(), row.toString());
            int misses = row.get("misses").asInt();
            assertEquals(Math.round(7 * (1 - row.get("top1_agreement").asDouble())), misses, row.toString());
            assertTrue(row.get("near_tie_misses").asInt() <= misses, row.toString());
            if (row.get("budget_share").asDouble() == 1.0) {
                assertEquals(1.0, row.get("top1_agreement").asDouble(), row.toString());
                assertEquals(0.0, row.get("mean_kl").asDouble(), "a budget covering the context is dense: " + row);
                assertFalse(row.has("mass_captured"), row.toString());
            } else {
                mass[i] = row.get("mass_captured").asDouble();
                assertTrue(mass[i] > 0 && mass[i] < 1, row.toString());
                assertTrue(row.get("mean_kl").asDouble() > 0, row.toString());
            }
        }
        for (int i = 0; i < 6; i += 2) {
            assertTrue(mass[i] >= mass[i + 1] - 1e-6, "a head's own choice captures at least its group's: " + java.util.Arrays.toString(mass));
        }
        for (int i = 2; i < 6; i++) {
            assertTrue(mass[i - 2] >= mass[i] - 1e-6, "finer units capture at least as much: " + java.util.Arrays.toString(mass));
        }
        assertTrue(mass[0] > mass[4], "single positions capture more than whole chunks: " + java.util.Arrays.toString(mass));
        Run badUnits = run("sparse-fidelity", "--model", model, "--file", text, "--oracle", "blocks24");
        assertEquals(2, badUnits.code());
        assertTrue(badUnits.err().contains("--oracle blocks24: blocks of 24 positions do not divide chunks of 64"), badUnits.err());
        Run badChoice = run("sparse-fidelity", "--model", model, "--file", text, "--oracle", "tokens", "--oracle-choice", "both");
        assertEquals(2, badChoice.code());
        assertTrue(badChoice.err().contains("--oracle-choice"), badChoice.err());
    }

    /** stories260K written out in llama2.c's format, converted both ways (files, emscripten package), then used. */
    @Test
    void shouldConvertLlama2cCheckpointWhenGivenFilesOrAnEmscriptenPackage(@TempDir Path dir) throws Exception {
        byte[] model;
        byte[] tokenizer;
        try (GgufFile f = GgufFile.open(TestModels.model("stories260K-f32.gguf"))) {
            model = Llama2cCheckpoint.fromGguf(f).modelBytes();
            tokenizer = Llama2cCheckpoint.tokenizerBytes(f.getStringArray("tokenizer.ggml.tokens"), f.getFloatArray("tokenizer.ggml.scores"), true);
        }
        Path modelBin = Files.write(dir.resolve("model.bin"), model);
        Path tokenizerBin = Files.write(dir.resolve("tokenizer.bin"), tokenizer);
        Path fromFiles = dir.resolve("stories260K.gguf");
        Run r = run("convert-llama2c", "--checkpoint", modelBin.toString(), "--tokenizer", tokenizerBin.toString(), "--out", fromFiles.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith(fromFiles + ": dim 64, hidden_dim 172, n_layers 5"), r.out());
        try (GgufFile f = GgufFile.open(fromFiles)) {
            assertEquals("stories260K", f.getString("general.name"));
        }

        byte[] packed = new byte[model.length + tokenizer.length];
        System.arraycopy(model, 0, packed, 0, model.length);
        System.arraycopy(tokenizer, 0, packed, model.length, tokenizer.length);
        Path data = Files.write(dir.resolve("llama2.data"), packed);
        Path js = Files.writeString(dir.resolve("llama2.js"), "loadPackage({\"files\":[{\"filename\":\"/model.bin\",\"start\":0,\"end\":"
                + model.length + "},{\"filename\":\"/tokenizer.bin\",\"start\":" + model.length + ",\"end\":" + packed.length
                + "}],\"remote_package_size\":" + packed.length + "})");
        Path fromPackage = dir.resolve("packed.gguf");
        r = run("convert-llama2c", "--emscripten-data", data.toString(), "--emscripten-js", js.toString(), "-o", fromPackage.toString(),
                "--name", "stories260K");
        assertEquals(0, r.code(), r.err());
        assertTrue(java.util.Arrays.equals(Files.readAllBytes(fromFiles), Files.readAllBytes(fromPackage)), "same GGUF either way");

        Run tokens = run("tokenize", "--model", fromPackage.toString(), "--text", "Once upon a time");
        Run original = run("tokenize", "--model", TestModels.model("stories260K-f32.gguf").toString(), "--text", "Once upon a time");
        assertEquals(0, tokens.code(), tokens.err());
        assertEquals(original.out(), tokens.out());
    }

    @Test
    void shouldExitTwoWithOneLineWhenConversionInputIsBad(@TempDir Path dir) throws Exception {
        Path junk = Files.write(dir.resolve("junk.bin"), "not a checkpoint at all, just text".getBytes());
        Path out = dir.resolve("out.gguf");
        Run missing = run("convert-llama2c", "--checkpoint", dir.resolve("none.bin").toString(), "--tokenizer", junk.toString(), "--out", out.toString());
        Run corrupt = run("convert-llama2c", "--checkpoint", junk.toString(), "--tokenizer", junk.toString(), "--out", out.toString());
        Run both = run("convert-llama2c", "--checkpoint", junk.toString(), "--tokenizer", junk.toString(),
                "--emscripten-data", junk.toString(), "--emscripten-js", junk.toString(), "--out", out.toString());
        Run half = run("convert-llama2c", "--checkpoint", junk.toString(), "--out", out.toString());
        Run noTable = run("convert-llama2c", "--emscripten-data", junk.toString(), "--emscripten-js", junk.toString(), "--out", out.toString());
        for (Run r : List.of(missing, corrupt, both, half, noTable)) {
            assertEquals(2, r.code(), r.err());
            assertEquals("", r.out());
            assertTrue(r.err().startsWith("kvstash"), r.err());
            assertFalse(r.err().contains("\tat "), "no stack trace without --verbose: " + r.err());
        }
        assertTrue(missing.err().contains("none.bin: no such file"), missing.err());
        assertTrue(corrupt.err().contains("bad llama2.c header"), corrupt.err());
        assertTrue(both.err().contains("mutually exclusive"), both.err());
        assertTrue(half.err().contains("--tokenizer"), half.err());
        assertTrue(noTable.err().contains("no emscripten file table"), noTable.err());
        assertFalse(Files.exists(out));
    }

    /** Weights are mapped, not copied onto the heap: a 26 MB model generates within a 64 MB heap. */
    @Test
    void shouldGenerateWithSmallHeapWhenWeightsAreMapped() throws Exception {
        Path model = TestModels.model("stories15M-q8_0.gguf");
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process p = new ProcessBuilder(java.toString(), "-Xmx64m", "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), Main.class.getName(),
                "generate", "--model", model.toString(), "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "64")
                .redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "generate did not finish");
        assertEquals(0, p.exitValue(), output);
        assertTrue(output.contains("Lily"), output);
    }
}
