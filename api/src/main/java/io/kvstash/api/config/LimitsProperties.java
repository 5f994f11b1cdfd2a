package io.kvstash.api.config;

import jakarta.validation.constraints.Min;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.util.unit.DataSize;
import org.springframework.validation.annotation.Validated;

/**
 * {@code kvstash.limits}: what one request may ask for. Each is enforced with a 4xx problem that names it.
 *
 * @param maxPromptTokens   most tokens a turn's prompt may have (the whole conversation so far plus the new message)
 * @param maxTokensPerReply most tokens one reply may ask for ({@code max_tokens}); also the default
 * @param maxBodySize       largest request body
 * @param maxPrefixes       most shared prefixes ({@code /v1/prefixes}) one tenant may register
 */
@Validated
@ConfigurationProperties("kvstash.limits")
public record LimitsProperties(
        @DefaultValue("4096") @Min(1) int maxPromptTokens,
        @DefaultValue("512") @Min(1) int maxTokensPerReply,
        @DefaultValue("1MB") DataSize maxBodySize,
        @DefaultValue("32") @Min(0) int maxPrefixes) {
    public LimitsProperties {
        if (maxBodySize.toBytes() < 1024) {
            throw new IllegalArgumentException("kvstash.limits.max-body-size must be at least 1KB, got " + maxBodySize);
        }
    }
}
