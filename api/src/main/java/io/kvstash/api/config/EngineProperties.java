package io.kvstash.api.config;

import io.kvstash.api.demo.DemoModel;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.model.SparseAttention;
import jakarta.validation.Valid;
import jakarta.validation.constraints.Max;
import jakarta.validation.constraints.Min;
import jakarta.validation.constraints.NotNull;
import java.nio.file.Files;
import java.nio.file.Path;
import org.jspecify.annotations.Nullable;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.util.unit.DataSize;
import org.springframework.validation.annotation.Validated;

/**
 * {@code kvstash.engine}: the model and how to run it.
 *
 * @param model         the GGUF file; unset = the demo model (see {@code demoModel})
 * @param demoModel     when {@code model} is unset, fetch and serve the demo model ({@link DemoModel}, kept under
 *                      {@code <kvstash.store.data-dir>/models/}); false makes an unset {@code model} an error
 * @param modelName     the id clients see ({@code /v1/models}); blank = the file name without {@code .gguf}
 * @param threads       compute threads; 0 = one per core
 * @param contextLength positions a sequence may reach; 0 = the model's trained length
 * @param kvFormat      format of stored KV chunks
 * @param maxBatch      tokens per forward step (and sequences decoded at once)
 * @param queueCapacity sequences that may wait for the scheduler before new work gets 429
 * @param sparse        sparse decode over chunk key summaries ({@code kvstash.engine.sparse.*})
 */
@Validated
@ConfigurationProperties("kvstash.engine")
public record EngineProperties(
        @Nullable Path model,
        @DefaultValue("true") boolean demoModel,
        @DefaultValue("") String modelName,
        @DefaultValue("0") @Min(0) @Max(1024) int threads,
        @DefaultValue("0") @Min(0) @Max(1 << 20) int contextLength,
        @DefaultValue("Q8") @NotNull KvFormat kvFormat,
        @DefaultValue("64") @Min(1) @Max(4096) int maxBatch,
        @DefaultValue("256") @Min(1) @Max(1 << 20) int queueCapacity,
        @DefaultValue @Valid @NotNull Sparse sparse) {

    /**
     * {@code kvstash.engine.sparse}: decoding tokens attend over the sink chunk, the tail and the chunks
     * whose key summaries bound their scores highest (see {@link SparseAttention}).
     *
     * @param enabled      on or off
     * @param budgetTokens positions of the sink and the chosen chunks (whole chunks; the tail comes on top)
     * @param minContext   positions a sequence must hold before its decode goes sparse
     * @param denseLayers  leading layers that always attend densely
     * @param scoring      how chunks are ranked ({@link SparseAttention.Scoring}; {@code exact} is a CLI fidelity reference and refused here)
     * @param summaryTokens positions per sub-block of a chunk's key statistics (the scorings other than {@code sketch});
     *                      divides the 64-token chunks; 0 = the whole chunk
     * @param park         parking the old chunks of long sessions in the warm tier ({@code kvstash.engine.sparse.park.*})
     */
    public record Sparse(
            @DefaultValue("false") boolean enabled,
            @DefaultValue("2048") @Min(1) @Max(1 << 24) int budgetTokens,
            @DefaultValue("4096") @Min(0) @Max(1 << 24) int minContext,
            @DefaultValue("2") @Min(0) @Max(1024) int denseLayers,
            @DefaultValue("sketch") @NotNull SparseAttention.Scoring scoring,
            @DefaultValue("16") @Min(0) @Max(1 << 24) int summaryTokens,
            @DefaultValue @Valid @NotNull Park park) {

        /**
         * {@code kvstash.engine.sparse.park}: a session's full chunks past the sink and the newest
         * {@code residentChunks} stay in the warm tier (RocksDB) with their key summaries in memory; decode reads
         * the ones it picks into {@code transientChunks} per-sequence slots, never into the hot tier.
         *
         * @param enabled         on or off (needs {@code kvstash.engine.sparse.enabled})
         * @param residentChunks  newest full chunks of a session that stay in the hot tier (chunk 0 always does)
         * @param transientChunks chunk-sized slots per sequence that parked chunks are read into; at most this many are parked
         * @param prefetch        read the chunks the next layer needed last step on a background thread
         * @param summaryCache    heap memory for parked chunks' key summaries kept across turns (least recently used out;
         *                        0 keeps none): a turn parks a chunk kept there without reading its body back
         */
        public record Park(
                @DefaultValue("false") boolean enabled,
                @DefaultValue("8") @Min(0) @Max(1 << 20) int residentChunks,
                @DefaultValue("64") @Min(1) @Max(1 << 16) int transientChunks,
                @DefaultValue("false") boolean prefetch,
                @DefaultValue("64MB") @NotNull DataSize summaryCache) {

            public Park {
                if (summaryCache != null && summaryCache.isNegative()) {
                    throw new IllegalArgumentException("kvstash.engine.sparse.park.summary-cache must not be negative, got " + summaryCache);
                }
            }

            public io.kvstash.offload.SessionStore.Parking parking() {
                return enabled ? new io.kvstash.offload.SessionStore.Parking(true, residentChunks, transientChunks, prefetch,
                        summaryCache.toBytes())
                        : io.kvstash.offload.SessionStore.Parking.OFF;
            }
        }

        public Sparse {
            if (park != null && park.enabled() && !enabled) {
                throw new IllegalArgumentException("kvstash.engine.sparse.park.enabled = true needs kvstash.engine.sparse.enabled = true"
                        + " (parked chunks are chosen by their key summaries)");
            }
            if (scoring == SparseAttention.Scoring.EXACT) {
                throw new IllegalArgumentException("kvstash.engine.sparse.scoring: exact reads every chunk (a fidelity reference for"
                        + " ./kvstash sparse-fidelity); use sketch, moments, mass-bound, mean or bound");
            }
            int chunk = KvGeometry.DEFAULT_CHUNK_TOKENS;
            if (summaryTokens > 0 && summaryTokens < chunk && chunk % summaryTokens != 0) {
                throw new IllegalArgumentException("kvstash.engine.sparse.summary-tokens: " + summaryTokens + " does not divide the "
                        + chunk + "-token KV chunks");
            }
        }

        public SparseAttention settings() {
            return new SparseAttention(enabled, budgetTokens, minContext, denseLayers, scoring, summaryTokens);
        }
    }

    public EngineProperties {
        if (model != null && !Files.isRegularFile(model)) {
            throw new IllegalArgumentException("kvstash.engine.model: no readable file at " + model.toAbsolutePath());
        }
        if (model == null && !demoModel) {
            throw new IllegalArgumentException("kvstash.engine.model is not set (and kvstash.engine.demo-model is false):"
                    + " set it to a GGUF file, e.g. ./kvstash serve --model FILE or KVSTASH_ENGINE_MODEL=FILE");
        }
    }

    public int threadsOrCores() {
        return threads > 0 ? threads : Runtime.getRuntime().availableProcessors();
    }

    public String modelId() {
        if (modelName != null && !modelName.isBlank()) {
            return modelName;
        }
        String file = model != null ? model.getFileName().toString() : DemoModel.FILE_NAME;
        return file.endsWith(".gguf") ? file.substring(0, file.length() - 5) : file;
    }
}
