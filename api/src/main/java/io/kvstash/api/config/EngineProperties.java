package io.kvstash.api.config;

import io.kvstash.engine.kv.KvFormat;
import jakarta.validation.constraints.Max;
import jakarta.validation.constraints.Min;
import jakarta.validation.constraints.NotNull;
import java.nio.file.Files;
import java.nio.file.Path;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.validation.annotation.Validated;

/**
 * {@code kvstash.engine}: the model and how to run it.
 *
 * @param model         the GGUF file
 * @param modelName     the id clients see ({@code /v1/models}); blank = the file name without {@code .gguf}
 * @param threads       compute threads; 0 = one per core
 * @param contextLength positions a sequence may reach; 0 = the model's trained length
 * @param kvFormat      format of stored KV chunks
 * @param maxBatch      tokens per forward step (and sequences decoded at once)
 * @param queueCapacity sequences that may wait for the scheduler before new work gets 429
 */
@Validated
@ConfigurationProperties("kvstash.engine")
public record EngineProperties(
        @NotNull Path model,
        @DefaultValue("") String modelName,
        @DefaultValue("0") @Min(0) @Max(1024) int threads,
        @DefaultValue("0") @Min(0) @Max(1 << 20) int contextLength,
        @DefaultValue("Q8") @NotNull KvFormat kvFormat,
        @DefaultValue("64") @Min(1) @Max(4096) int maxBatch,
        @DefaultValue("256") @Min(1) @Max(1 << 20) int queueCapacity) {

    public EngineProperties {
        if (model != null && !Files.isRegularFile(model)) {
            throw new IllegalArgumentException("kvstash.engine.model: no readable file at " + model.toAbsolutePath());
        }
    }

    public int threadsOrCores() {
        return threads > 0 ? threads : Runtime.getRuntime().availableProcessors();
    }

    public String modelId() {
        if (modelName != null && !modelName.isBlank()) {
            return modelName;
        }
        String file = model.getFileName().toString();
        return file.endsWith(".gguf") ? file.substring(0, file.length() - 5) : file;
    }
}
