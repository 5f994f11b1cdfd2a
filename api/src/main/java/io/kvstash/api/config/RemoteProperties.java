package io.kvstash.api.config;

import io.kvstash.offload.RedisRemoteTier;
import java.time.Duration;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.validation.annotation.Validated;

/**
 * {@code kvstash.remote.redis}: the optional shared tier (Redis / Valkey) that replicas read each
 * other's chunks from. Off while {@code url} is unset.
 *
 * @param url           {@code redis://[user:password@]host:port[/db]} ({@code rediss://} for TLS); unset = no remote tier
 * @param ttl           how long a chunk stays in Redis after it is written
 * @param queueCapacity chunks waiting to be written; past it new chunks are not written (counted as dropped)
 * @param timeout       longest wait for a lookup, a write batch or a connection attempt
 * @param retryAfter    after a failure, how long the tier is left alone (lookups miss at once, writes are dropped)
 * @param keyPrefix     prefix of every Redis key (several deployments on one Redis)
 */
@Validated
@ConfigurationProperties("kvstash.remote.redis")
public record RemoteProperties(
        String url,
        @DefaultValue("1h") Duration ttl,
        @DefaultValue("256") int queueCapacity,
        @DefaultValue("250ms") Duration timeout,
        @DefaultValue("5s") Duration retryAfter,
        @DefaultValue("kvstash:") String keyPrefix) {
    public RemoteProperties {
        if (url != null && !url.isBlank()) {
            try {
                RedisRemoteTier.parse(url);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("kvstash.remote.redis.url: " + e.getMessage());
            }
        }
        if (ttl.toMillis() < 1) {
            throw new IllegalArgumentException("kvstash.remote.redis.ttl must be at least 1ms, got " + ttl);
        }
        if (queueCapacity < 1) {
            throw new IllegalArgumentException("kvstash.remote.redis.queue-capacity must be at least 1, got " + queueCapacity);
        }
        if (timeout.toMillis() < 1) {
            throw new IllegalArgumentException("kvstash.remote.redis.timeout must be at least 1ms, got " + timeout);
        }
        if (retryAfter.isNegative()) {
            throw new IllegalArgumentException("kvstash.remote.redis.retry-after must not be negative, got " + retryAfter);
        }
    }

    public boolean enabled() {
        return url != null && !url.isBlank();
    }

    public RedisRemoteTier.Config tierConfig() {
        return new RedisRemoteTier.Config(url, ttl, queueCapacity, timeout, retryAfter, keyPrefix);
    }
}
