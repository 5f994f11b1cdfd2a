package io.kvstash.cli;

import io.kvstash.engine.EngineOptions;
import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.model.SparseAttention;
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

    @Option(names = "--chunk-tokens", paramLabel = "N", description = "Positions per KV chunk (default 64; KIVI2 needs a multiple of 64,"
            + " KIVI4 of 32).")
    int chunkTokens = KvGeometry.DEFAULT_CHUNK_TOKENS;

    @Option(names = "--prefill-batch", paramLabel = "N", description = "Tokens per prefill step (default 64).")
    int prefillBatch = 64;

    @Option(names = "--sparse", description = "Sparse decode: attend over the sink chunk, the tail and the chunks whose key summaries"
            + " bound the scores highest, within --sparse-budget (default off).")
    boolean sparse;

    @Option(names = "--sparse-budget", paramLabel = "TOKENS", description = "Positions of the sink and the chosen chunks a decoding"
            + " token attends over with --sparse; the tail comes on top (default 2048).")
    int sparseBudget = SparseAttention.OFF.budgetTokens();

    @Option(names = "--sparse-min-context", paramLabel = "TOKENS", description = "Context from which decode goes sparse (default 4096).")
    int sparseMinContext = SparseAttention.OFF.minContext();

    @Option(names = "--sparse-dense-layers", paramLabel = "N", description = "Leading layers that always attend densely (default 2).")
    int sparseDenseLayers = SparseAttention.OFF.denseLayers();

    @Option(names = "--sparse-scoring", paramLabel = "KIND", description = "How --sparse ranks chunks: ${COMPLETION-CANDIDATES}"
            + " (default ${DEFAULT-VALUE}; exact is a fidelity reference that reads every chunk).")
    SparseAttention.Scoring sparseScoring = SparseAttention.DEFAULT_SCORING;

    @Option(names = "--sparse-summary-tokens", paramLabel = "TOKENS", description = "Positions per sub-block of a chunk's key"
            + " statistics, for the scorings other than sketch; must divide --chunk-tokens; 0 = the whole chunk (default 16).")
    int sparseSummaryTokens = SparseAttention.DEFAULT_SUMMARY_TOKENS;

    @Option(names = "--verbose", description = "Print stack traces on errors.")
    boolean verbose;

    EngineOptions options() {
        EngineOptions o = EngineOptions.defaults().withKvFormat(KvFormat.parse(kv)).withMaxBatch(prefillBatch).withContextLength(context)
                .withChunkTokens(chunkTokens).withSparse(sparseSettings());
        return threads == null ? o : o.withThreads(threads);
    }

    /** The --sparse-* settings, switched on only with --sparse. */
    SparseAttention sparseSettings() {
        int block = sparseSummaryTokens == 0 ? chunkTokens : Math.min(sparseSummaryTokens, chunkTokens);
        if (sparseSummaryTokens < 0 || chunkTokens % block != 0) {
            throw new IllegalArgumentException("--sparse-summary-tokens " + sparseSummaryTokens + " must be 0 or divide --chunk-tokens "
                    + chunkTokens);
        }
        return new SparseAttention(sparse, sparseBudget, sparseMinContext, sparseDenseLayers, sparseScoring, sparseSummaryTokens);
    }

    InferenceEngine open() {
        return InferenceEngine.open(model, options());
    }
}
