package io.kvstash.api.config;

import jakarta.validation.constraints.Min;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.validation.annotation.Validated;

/**
 * {@code kvstash.sessions}: what a session does when its conversation outgrows the context length
 * ({@code kvstash.engine.context-length}). Whatever the policy, the session keeps every message.
 *
 * @param contextPolicy {@code truncate} (default): drop the oldest whole turns after the system messages until the
 *                      conversation fits with room for the reply, and recompute from the first changed chunk;
 *                      {@code shift}: keep the first {@code sinkChunks} KV chunks, drop the oldest chunks after
 *                      them and move the rest without recomputing (also while generating, so a reply may go
 *                      past the context length); {@code reject}: a 400 {@code prompt-too-long} naming the limit
 * @param sinkChunks    with {@code shift}: KV chunks at the start that every shift keeps (attention sinks)
 */
@Validated
@ConfigurationProperties("kvstash.sessions")
public record SessionsProperties(@DefaultValue("truncate") ContextPolicy contextPolicy, @DefaultValue("1") @Min(0) int sinkChunks) {
    public SessionsProperties {
        if (sinkChunks < 0) {
            throw new IllegalArgumentException("kvstash.sessions.sink-chunks must not be negative, got " + sinkChunks);
        }
    }

    public enum ContextPolicy {
        REJECT, TRUNCATE, SHIFT
    }
}
