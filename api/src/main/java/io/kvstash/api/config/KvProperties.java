package io.kvstash.api.config;

import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.util.unit.DataSize;
import org.springframework.validation.annotation.Validated;

/**
 * {@code kvstash.kv}: the hot tier.
 *
 * @param hotCapacity off-heap bytes for KV chunks in memory (sequences in flight and recently used sessions)
 * @param maxPinned   most of those bytes that registered prefixes ({@code /v1/prefixes}) may keep pinned; unset = a quarter of the hot capacity
 */
@Validated
@ConfigurationProperties("kvstash.kv")
public record KvProperties(@DefaultValue("512MB") DataSize hotCapacity, DataSize maxPinned) {
    public KvProperties {
        if (hotCapacity.toBytes() < (1 << 20)) {
            throw new IllegalArgumentException("kvstash.kv.hot-capacity must be at least 1MB, got " + hotCapacity);
        }
        if (maxPinned == null) {
            maxPinned = DataSize.ofBytes(hotCapacity.toBytes() / 4);
        }
        if (maxPinned.toBytes() < 0 || maxPinned.toBytes() > hotCapacity.toBytes() / 2) {
            throw new IllegalArgumentException("kvstash.kv.max-pinned must be between 0 and half of kvstash.kv.hot-capacity ("
                    + hotCapacity + "), got " + maxPinned);
        }
    }
}
