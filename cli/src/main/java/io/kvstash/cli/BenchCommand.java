package io.kvstash.cli;

import static io.kvstash.cli.BenchStats.median;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvstash.engine.EngineOptions;
import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.kernel.Simd;
import io.kvstash.engine.sampling.SamplingParams;
import io.kvstash.engine.scheduler.BatchScheduler;
import io.kvstash.engine.scheduler.Generation;
import io.kvstash.engine.scheduler.GenerationListener;
import io.kvstash.engine.scheduler.GenerationResult;
import io.kvstash.engine.scheduler.StopReason;
import java.util.Arrays;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Measure prefill and decode speed: after warm-up runs, the median of several runs. Prints one JSON object.",
                "Every run goes through the batch scheduler: --batch B sequences (prompts of --prompt-tokens, each a different"
                        + " rotation of the same text) prefill together, then run --gen-tokens greedy decode steps each (G + 1 sampled tokens, the first from the prefill; end-of-text ignored).",
                "prefill_tokens_per_s: B x prompt tokens / wall time from submission until every sequence has its first token.",
                "decode_tokens_per_s: tokens sampled after that moment (all B sequences decoding, B x G) / wall time"
                        + " from that moment to the last token; for B > 1 this is the aggregate over the batch, one step decoding"
                        + " one token of every sequence."})
final class BenchCommand implements Callable<Integer> {
    @Mixin
    EngineOptionsMixin engine;

    @Option(names = "--prompt-tokens", paramLabel = "P", description = "Prompt length for the prefill measurement (default 128).")
    int promptTokens = 128;

    @Option(names = "--gen-tokens", paramLabel = "G", description = "Tokens decoded one at a time after the prompt (default 128).")
    int genTokens = 128;

    @Option(names = "--batch", paramLabel = "B", description = "Concurrent sequences (default 1).")
    int batch = 1;

    @Option(names = "--runs", paramLabel = "N", description = "Measured runs (default 5).")
    int runs = 5;

    @Option(names = "--warmup", paramLabel = "N", description = "Warm-up runs, not measured (default 12: on 2 cores the JIT finishes the kernels around the 8th run).")
    int warmup = 12;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        if (promptTokens < 1 || genTokens < 1 || runs < 1 || warmup < 0 || batch < 1) {
            throw new IllegalArgumentException("--prompt-tokens, --gen-tokens, --runs and --batch must be positive, --warmup not negative");
        }
        EngineOptions options = engine.options();
        int prefillPerSequence = Math.min(options.maxBatch(), options.chunkTokens());
        // All B prompts prefill in the same steps (each sequence one chunk's worth per step), so
        // that the decode phase has every sequence decoding; plus room for B decode tokens.
        int prefillPerStep = batch * prefillPerSequence;
        options = options.withContextLength(Math.max(options.contextLength(), promptTokens + genTokens))
                .withMaxBatch(prefillPerStep + batch);
        try (InferenceEngine e = InferenceEngine.open(engine.model, options);
             BatchScheduler scheduler = new BatchScheduler(e, new BatchScheduler.Config(batch, batch, prefillPerStep))) {
            int[][] prompts = new int[batch][];
            for (int b = 0; b < batch; b++) {
                prompts[b] = benchPrompt(e, promptTokens, b);
            }
            long[][] times = new long[batch][genTokens + 1];
            double[] prefill = new double[runs];
            double[] decode = new double[runs];
            double[] rates = new double[2];
            // Initialised before warm-up: its first use loads and compiles the management classes.
            com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
            threads.getTotalThreadAllocatedBytes();
            for (int r = 0; r < warmup; r++) {
                runOnce(scheduler, prompts, times, rates);
                if (batch > 1 && r % 4 == 0) {
                    // A step of one token (the batch before the others join, or its last sequence)
                    // happens now and then in a batched run; warmed up only by chance, its first
                    // occurrence in a measured run deoptimised the weight kernels there.
                    runOnce(scheduler, new int[][] {prompts[0]}, new long[1][genTokens + 1], new double[2]);
                }
            }
            // Measured runs take the warm-up's code paths, so the JIT has nothing new to compile.
            long allocatedBefore = threads.getTotalThreadAllocatedBytes();
            double kvBytesPerToken = 0;
            for (int r = 0; r < runs; r++) {
                kvBytesPerToken = runOnce(scheduler, prompts, times, rates);
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
            json.put("batch", batch);
            json.put("prompt_tokens", promptTokens);
            json.put("gen_tokens", genTokens);
            json.put("runs", runs);
            json.put("prefill_tokens_per_s", round(median(prefill)));
            json.put("decode_tokens_per_s", round(median(decode)));
            json.put("heap_bytes_per_token", Math.round((double) allocated / ((long) runs * batch * (promptTokens + genTokens))));
            json.put("prefill_runs", Arrays.toString(Arrays.stream(prefill).map(BenchCommand::round).toArray()));
            json.put("decode_runs", Arrays.toString(Arrays.stream(decode).map(BenchCommand::round).toArray()));
            spec.commandLine().getOut().println(json);
        }
        return 0;
    }

    /**
     * One run of all sequences through the scheduler; rates into {@code rates[0..1]} (see the
     * command's description); returns the first sequence's KV bytes per token at its end (sealed
     * chunks and the F32 tail, everything counted).
     */
    private double runOnce(BatchScheduler scheduler, int[][] prompts, long[][] times, double[] rates) throws Exception {
        int b = prompts.length;
        Generation[] handles = new Generation[b];
        long submitted = System.nanoTime();
        for (int i = 0; i < b; i++) {
            long[] mine = times[i];
            int[] count = new int[1];
            handles[i] = scheduler.submit(prompts[i], SamplingParams.greedy(), genTokens + 1, true, new GenerationListener() {
                @Override
                public void onToken(int token, String text) {
                    mine[count[0]++] = System.nanoTime();
                }
            });
        }
        GenerationResult first = null;
        for (int i = 0; i < b; i++) {
            GenerationResult r = handles[i].result().get();
            if (r.reason() != StopReason.LENGTH || r.tokens().length != genTokens + 1) {
                throw new IllegalStateException("bench sequence " + i + " ended with " + r.reason() + " after " + r.tokens().length
                        + " tokens" + (r.error() != null ? ": " + r.error() : ""));
            }
            if (i == 0) {
                first = r;
            }
        }
        long prefilled = Long.MIN_VALUE;
        long end = Long.MIN_VALUE;
        for (long[] t : times) {
            prefilled = Math.max(prefilled, t[0]);
            end = Math.max(end, t[genTokens]);
        }
        long decoded = 0;
        for (long[] t : times) {
            for (long when : t) {
                if (when > prefilled) {
                    decoded++;
                }
            }
        }
        rates[0] = (double) b * promptTokens / ((prefilled - submitted) / 1e9);
        rates[1] = end > prefilled ? decoded / ((end - prefilled) / 1e9) : Double.NaN;
        return (double) first.kvBytes() / first.kvPositions();
    }

    /** A deterministic prompt of real text, repeated to the requested length, starting {@code shift} tokens in. */
    private static int[] benchPrompt(InferenceEngine e, int n, int shift) {
        int[] text = e.tokenizer().encode("Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. ", false, false);
        int[] prompt = new int[n];
        prompt[0] = e.tokenizer().bos();
        for (int i = 1; i < n; i++) {
            prompt[i] = text[(i - 1 + shift) % text.length];
        }
        return prompt;
    }

    private static double round(double v) {
        return Math.round(v * 10) / 10.0;
    }
}
