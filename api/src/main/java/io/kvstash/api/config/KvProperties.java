package io.kvstash.api.config;

import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.util.unit.DataSize;
import org.springframework.validation.annotation.Validated;

/**
 * {@code kvstash.kv}: the hot tier.
 *
 * @param hotCapacity off-heap bytes for KV chunks in memory (sequences in flight and recently used sessions)
 */
@Validated
@ConfigurationProperties("kvstash.kv")
public record KvProperties(@DefaultValue("512MB") DataSize hotCapacity) {
    public KvProperties {
        if (hotCapacity.toBytes() < (1 << 20)) {
            throw new IllegalArgumentException("kvstash.kv.hot-capacity must be at least 1MB, got " + hotCapacity);
        }
    }
}
