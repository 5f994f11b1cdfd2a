package io.kvstash.api.config;

import java.nio.file.Path;
import java.time.Duration;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.util.unit.DataSize;
import org.springframework.validation.annotation.Validated;

/**
 * {@code kvstash.store}: the warm tier (RocksDB) and session records.
 *
 * @param dataDir      the RocksDB directory; created if missing
 * @param warmBudget   most bytes of chunks and records kept; past it the least recently used sessions lose their KV (not their text)
 * @param writeThrough write a turn's new chunks with its record (resume after a restart without recomputing)
 * @param orphanGrace  how long a chunk no session lists is kept (e.g. the prefix of a finished chat completion)
 */
@Validated
@ConfigurationProperties("kvstash.store")
public record StoreProperties(
        @DefaultValue("./data") Path dataDir,
        @DefaultValue("10GB") DataSize warmBudget,
        @DefaultValue("true") boolean writeThrough,
        @DefaultValue("10m") Duration orphanGrace) {
    public StoreProperties {
        if (dataDir == null || dataDir.toString().isBlank()) {
            throw new IllegalArgumentException("kvstash.store.data-dir must be set");
        }
        if (warmBudget.toBytes() < 1) {
            throw new IllegalArgumentException("kvstash.store.warm-budget must be positive, got " + warmBudget);
        }
        if (orphanGrace.isNegative()) {
            throw new IllegalArgumentException("kvstash.store.orphan-grace must not be negative, got " + orphanGrace);
        }
    }
}
