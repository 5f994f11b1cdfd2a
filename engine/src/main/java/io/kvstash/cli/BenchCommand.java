package io.kvstash.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvstash.engine.EngineOptions;
import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.kernel.Simd;
import io.kvstash.engine.kv.KvCache;
import java.util.Arrays;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Measure prefill and decode speed: after warm-up runs, the median of several runs. Prints one JSON object.")
final class BenchCommand implements Callable<Integer> {
    @Mixin
    EngineOptionsMixin engine;

    @Option(names = "--prompt-tokens", paramLabel = "P", description = "Prompt length for the prefill measurement (default 128).")
    int promptTokens = 128;

    @Option(names = "--gen-tokens", paramLabel = "G", description = "Tokens decoded one at a time after the prompt (default 128).")
    int genTokens = 128;

    @Option(names = "--runs", paramLabel = "N", description = "Measured runs (default 5).")
    int runs = 5;

    @Option(names = "--warmup", paramLabel = "N", description = "Warm-up runs, not measured (default 12: on 2 cores the JIT finishes the kernels around the 8th run).")
    int warmup = 12;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        if (promptTokens < 1 || genTokens < 1 || runs < 1 || warmup < 0) {
            throw new IllegalArgumentException("--prompt-tokens, --gen-tokens and --runs must be positive, --warmup not negative");
        }
        EngineOptions options = engine.options();
        options = options.withContextLength(Math.max(options.contextLength(), promptTokens + genTokens));
        try (InferenceEngine e = InferenceEngine.open(engine.model, options)) {
            int vocab = e.config().vocabularySize();
            int[] prompt = benchPrompt(e, promptTokens);
            float[] logits = new float[vocab];
            double[] prefill = new double[runs];
            double[] decode = new double[runs];
            double[] rates = new double[2];
            // Initialised before warm-up: its first use loads and compiles the management classes.
            com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
            threads.getTotalThreadAllocatedBytes();
            for (int r = 0; r < warmup; r++) {
                runOnce(e, prompt, logits, rates);
            }
            // Measured runs take exactly the warm-up's code path, so the JIT has nothing new to compile.
            long allocatedBefore = threads.getTotalThreadAllocatedBytes();
            double kvBytesPerToken = 0;
            for (int r = 0; r < runs; r++) {
                kvBytesPerToken = runOnce(e, prompt, logits, rates);
                prefill[r] = rates[0];
                decode[r] = rates[1];
            }
            long allocated = threads.getTotalThreadAllocatedBytes() - allocatedBefore;
            ObjectNode json = new ObjectMapper().createObjectNode();
            json.put("model", engine.model.getFileName().toString());
            json.put("threads", options.threads());
            json.put("simd", Simd.describe());
            json.put("kv_format", options.kvFormat().name());
            json.put("kv_bytes_per_token", Math.round(kvBytesPerToken * 10) / 10.0);
            json.put("prompt_tokens", promptTokens);
            json.put("gen_tokens", genTokens);
            json.put("runs", runs);
            json.put("prefill_tokens_per_s", round(median(prefill)));
            json.put("decode_tokens_per_s", round(median(decode)));
            json.put("heap_bytes_per_token", Math.round((double) allocated / ((long) runs * (promptTokens + genTokens))));
            json.put("prefill_runs", Arrays.toString(Arrays.stream(prefill).map(BenchCommand::round).toArray()));
            json.put("decode_runs", Arrays.toString(Arrays.stream(decode).map(BenchCommand::round).toArray()));
            spec.commandLine().getOut().println(json);
        }
        return 0;
    }

    /**
     * One prefill of the prompt and {@code genTokens} greedy decode steps; rates into
     * {@code rates[0..1]}; returns the sequence's KV bytes per token at the end (sealed chunks and
     * the F32 tail, everything counted).
     */
    private double runOnce(InferenceEngine e, int[] prompt, float[] logits, double[] rates) {
        int[] next = new int[1];
        try (KvCache cache = e.newSequence()) {
            long t0 = System.nanoTime();
            e.forward(cache, prompt, 0, prompt.length, prompt.length - 1, logits);
            long t1 = System.nanoTime();
            for (int g = 0; g < genTokens; g++) {
                next[0] = argmax(logits);
                e.forward(cache, next, 0, 1, 0, logits);
            }
            long t2 = System.nanoTime();
            rates[0] = prompt.length / ((t1 - t0) / 1e9);
            rates[1] = genTokens / ((t2 - t1) / 1e9);
            return (double) cache.bytes() / cache.length();
        }
    }

    /** A deterministic prompt of real text, repeated to the requested length. */
    private static int[] benchPrompt(InferenceEngine e, int n) {
        int[] text = e.tokenizer().encode("Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. ", false, false);
        int[] prompt = new int[n];
        prompt[0] = e.tokenizer().bos();
        for (int i = 1; i < n; i++) {
            prompt[i] = text[(i - 1) % text.length];
        }
        return prompt;
    }

    private static int argmax(float[] a) {
        int best = 0;
        for (int i = 1; i < a.length; i++) {
            if (a[i] > a[best]) {
                best = i;
            }
        }
        return best;
    }

    private static double median(double[] a) {
        double[] s = a.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    private static double round(double v) {
        return Math.round(v * 10) / 10.0;
    }
}
