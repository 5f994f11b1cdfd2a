package io.kvstash.cli;

import static io.kvstash.cli.BenchStats.hundredths;
import static io.kvstash.cli.BenchStats.median;

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

@Command(name = "bench-shift", mixinStandardHelpOptions = true,
        description = {"Measure a context shift against a full recompute: after warm-up runs, the median of several runs. Prints one JSON object.",
                "Each run prefills a sequence of --context tokens (not measured), then times the shift that keeps --sink-chunks chunks,"
                        + " drops --drop-chunks chunks after them and re-rotates the rest (shift_ms), and a fresh prefill of the kept"
                        + " tokens at their new positions, what a recompute would cost (recompute_ms)."})
final class BenchShiftCommand implements Callable<Integer> {
    @Mixin
    EngineOptionsMixin engine;

    @Option(names = "--sink-chunks", paramLabel = "N", description = "Chunks kept at the start: the attention sinks (default 1).")
    int sinkChunks = 1;

    @Option(names = "--drop-chunks", paramLabel = "N", description = "Chunks dropped after the sinks (default 1).")
    int dropChunks = 1;

    @Option(names = "--runs", paramLabel = "N", description = "Measured runs (default 5).")
    int runs = 5;

    @Option(names = "--warmup", paramLabel = "N", description = "Warm-up runs, not measured (default 5).")
    int warmup = 5;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        if (runs < 1 || warmup < 0 || sinkChunks < 0 || dropChunks < 1) {
            throw new IllegalArgumentException("--runs and --drop-chunks must be positive, --warmup and --sink-chunks not negative");
        }
        EngineOptions options = engine.options();
        try (InferenceEngine e = InferenceEngine.open(engine.model, options)) {
            int context = e.contextLength();
            int chunk = options.chunkTokens();
            if ((long) (sinkChunks + dropChunks) * chunk >= context) {
                throw new IllegalArgumentException("--context " + context + " must hold more than the " + (sinkChunks + dropChunks)
                        + " sink and dropped chunks of " + chunk + " tokens");
            }
            int[] prompt = prompt(e, context);
            int[] kept = new int[context - dropChunks * chunk];
            System.arraycopy(prompt, 0, kept, 0, sinkChunks * chunk);
            System.arraycopy(prompt, (sinkChunks + dropChunks) * chunk, kept, sinkChunks * chunk, kept.length - sinkChunks * chunk);
            double[] shift = new double[runs];
            double[] recompute = new double[runs];
            double[] times = new double[2];
            for (int r = 0; r < warmup; r++) {
                runOnce(e, prompt, kept, times);
            }
            for (int r = 0; r < runs; r++) {
                runOnce(e, prompt, kept, times);
                shift[r] = times[0];
                recompute[r] = times[1];
            }
            ObjectNode json = new ObjectMapper().createObjectNode();
            json.put("model", engine.model.getFileName().toString());
            json.put("threads", options.threads());
            json.put("simd", Simd.describe());
            json.put("kv_format", options.kvFormat().name());
            json.put("context", context);
            json.put("chunk_tokens", chunk);
            json.put("sink_chunks", sinkChunks);
            json.put("dropped_tokens", dropChunks * chunk);
            json.put("moved_tokens", context - (sinkChunks + dropChunks) * chunk);
            json.put("kept_tokens", kept.length);
            json.put("runs", runs);
            json.put("shift_ms", hundredths(median(shift)));
            json.put("recompute_ms", hundredths(median(recompute)));
            json.put("recompute_over_shift", hundredths(median(recompute) / median(shift)));
            json.put("shift_runs", Arrays.toString(Arrays.stream(shift).map(BenchStats::hundredths).toArray()));
            json.put("recompute_runs", Arrays.toString(Arrays.stream(recompute).map(BenchStats::hundredths).toArray()));
            spec.commandLine().getOut().println(json);
        }
        return 0;
    }

    /** Milliseconds of the shift into {@code times[0]}, of the recompute into {@code times[1]}. */
    private void runOnce(InferenceEngine e, int[] prompt, int[] kept, double[] times) {
        try (KvCache cache = e.newSequence()) {
            e.forward(cache, prompt, 0, prompt.length, prompt.length, null);
            long start = System.nanoTime();
            e.shift(cache, sinkChunks, dropChunks);
            times[0] = (System.nanoTime() - start) / 1e6;
        }
        try (KvCache cache = e.newSequence()) {
            long start = System.nanoTime();
            e.forward(cache, kept, 0, kept.length, kept.length, null);
            times[1] = (System.nanoTime() - start) / 1e6;
        }
    }

    /** Real text repeated to {@code n} tokens after BOS. */
    private static int[] prompt(InferenceEngine e, int n) {
        int[] text = e.tokenizer().encode("Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. ", false, false);
        int[] prompt = new int[n];
        prompt[0] = e.tokenizer().bos();
        for (int i = 1; i < n; i++) {
            prompt[i] = text[(i - 1) % text.length];
        }
        return prompt;
    }

}
