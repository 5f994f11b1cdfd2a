package io.kvstash.engine;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.testing.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * What each KV format costs in quality: perplexity against F32 KV (targets: Q8 within +0.5%, KIVI4
 * within +2%, KIVI2 within +10%), and how many tokens of the six reference prompts' 32-token greedy
 * continuations match the F32-KV continuation.
 */
class KvFormatQualityTest {
    private static final Map<KvFormat, Double> MAX_INCREASE = Map.of(
            KvFormat.F16, 0.005, KvFormat.Q8, 0.005, KvFormat.KIVI4, 0.02, KvFormat.KIVI2, 0.10);

    @ParameterizedTest(name = "{0} ctx {1}")
    @CsvSource({"stories15M-f16.gguf, 128", "stories15M-f16.gguf, 256", "stories15M-q8_0.gguf, 128", "stories15M-q8_0.gguf, 256"})
    void shouldStayWithinPerplexityTargetsWhenKvIsQuantized(String model, int ctx) throws IOException {
        String text = Files.readString(TestModels.data("stories-public.txt"));
        Map<KvFormat, Double> ppl = new EnumMap<>(KvFormat.class);
        for (KvFormat format : KvFormat.values()) {
            EngineOptions options = EngineOptions.defaults().withThreads(2).withContextLength(ctx).withKvFormat(format);
            try (InferenceEngine engine = InferenceEngine.open(TestModels.model(model), options)) {
                ppl.put(format, Perplexity.measure(engine, text, ctx).perplexity());
            }
        }
        double base = ppl.get(KvFormat.F32);
        StringBuilder row = new StringBuilder(String.format("perplexity %s ctx %d:", model, ctx));
        for (KvFormat f : KvFormat.values()) {
            row.append(String.format(" %s %.4f (%+.2f%%)", f, ppl.get(f), 100 * (ppl.get(f) / base - 1)));
        }
        System.out.println(row);
        for (Map.Entry<KvFormat, Double> limit : MAX_INCREASE.entrySet()) {
            double increase = ppl.get(limit.getKey()) / base - 1;
            assertTrue(increase <= limit.getValue(), model + " ctx " + ctx + ": " + limit.getKey() + " KV perplexity "
                    + ppl.get(limit.getKey()) + " is " + 100 * increase + "% above F32 KV " + base + " (limit " + 100 * limit.getValue() + "%)");
        }
    }

    /**
     * The reference prompts alone (prefix 0) fit with their continuations in the first chunk, i.e. in
     * the full-precision residual window, so every format must agree exactly; after a 128-token story
     * prefix (two sealed chunks) the formats are really exercised.
     */
    @ParameterizedTest(name = "{0} after {2} prefix tokens")
    @CsvSource({"stories15M-f16.gguf, logits-stories15M-f16.json, 0", "stories15M-q8_0.gguf, logits-stories15M-q8_0.json, 0",
            "stories15M-f16.gguf, logits-stories15M-f16.json, 128", "stories15M-q8_0.gguf, logits-stories15M-q8_0.json, 128"})
    void shouldKeepGreedyContinuationsCloseToF32Kv(String model, String reference, int prefixTokens) throws IOException {
        JsonNode records = new ObjectMapper().readTree(TestModels.reference(reference).toFile()).get("records");
        String story = Files.readString(TestModels.data("stories-public.txt"));
        Map<KvFormat, List<int[]>> continuations = new EnumMap<>(KvFormat.class);
        for (KvFormat format : KvFormat.values()) {
            EngineOptions options = EngineOptions.defaults().withThreads(2).withKvFormat(format);
            try (InferenceEngine engine = InferenceEngine.open(TestModels.model(model), options)) {
                List<int[]> out = new ArrayList<>();
                int[] prefix = java.util.Arrays.copyOf(engine.tokenizer().encode(story, true, false), prefixTokens);
                for (JsonNode record : records) {
                    int[] prompt = ints(record.get("prompt_ids"));
                    // The reference prompt, BOS dropped, after the story prefix (which has the BOS).
                    int[] ids = prefixTokens == 0 ? prompt : concat(prefix, java.util.Arrays.copyOfRange(prompt, 1, prompt.length));
                    out.add(greedy(engine, ids, 32));
                }
                continuations.put(format, out);
            }
        }
        StringBuilder row = new StringBuilder("greedy tokens matching F32 KV, " + model + " after " + prefixTokens + " prefix tokens:");
        int total = 32 * records.size();
        for (KvFormat f : KvFormat.values()) {
            int same = 0;
            for (int r = 0; r < records.size(); r++) {
                int[] a = continuations.get(KvFormat.F32).get(r);
                int[] b = continuations.get(f).get(r);
                for (int i = 0; i < a.length; i++) {
                    same += a[i] == b[i] ? 1 : 0;
                }
            }
            row.append(String.format(" %s %d/%d", f, same, total));
            if (prefixTokens == 0) {
                assertTrue(same == total, f + " KV changed greedy tokens although everything stayed in the F32 residual window");
            }
        }
        System.out.println(row);
    }

    private static int[] greedy(InferenceEngine engine, int[] prompt, int n) {
        int vocab = engine.config().vocabularySize();
        float[] logits = new float[vocab];
        int[] out = new int[n];
        try (KvCache cache = engine.newSequence()) {
            engine.forward(cache, prompt, 0, prompt.length, prompt.length - 1, logits);
            for (int i = 0; i < n; i++) {
                int best = 0;
                for (int j = 1; j < vocab; j++) {
                    if (logits[j] > logits[best]) {
                        best = j;
                    }
                }
                out[i] = best;
                engine.forward(cache, out, i, 1, 0, logits);
            }
        }
        return out;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    private static int[] ints(JsonNode node) {
        int[] out = new int[node.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = node.get(i).asInt();
        }
        return out;
    }
}
