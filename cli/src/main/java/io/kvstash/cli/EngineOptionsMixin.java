package io.kvstash.cli;

import io.kvstash.engine.EngineOptions;
import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.kv.KvFormat;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** Options every model-running subcommand shares. */
final class EngineOptionsMixin {
    @Option(names = {"-m", "--model"}, required = true, paramLabel = "FILE", description = "GGUF model file.")
    Path model;

    @Option(names = {"-t", "--threads"}, paramLabel = "N", description = "Compute threads (default: all cores).")
    Integer threads;

    @Option(names = {"-c", "--context"}, paramLabel = "N", description = "Context length (default: the model's trained length; larger computes too).")
    int context;

    @Option(names = "--kv", paramLabel = "FORMAT", description = "KV cache format of full chunks: F32, F16, Q8, KIVI4 or KIVI2 (default F32).")
    String kv = "F32";

    @Option(names = "--prefill-batch", paramLabel = "N", description = "Tokens per prefill step (default 64).")
    int prefillBatch = 64;

    @Option(names = "--verbose", description = "Print stack traces on errors.")
    boolean verbose;

    EngineOptions options() {
        EngineOptions o = EngineOptions.defaults().withKvFormat(KvFormat.parse(kv)).withMaxBatch(prefillBatch).withContextLength(context);
        return threads == null ? o : o.withThreads(threads);
    }

    InferenceEngine open() {
        return InferenceEngine.open(model, options());
    }
}
