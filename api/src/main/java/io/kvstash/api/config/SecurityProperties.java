package io.kvstash.api.config;

import jakarta.validation.Valid;
import jakarta.validation.constraints.NotBlank;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.validation.annotation.Validated;

/**
 * {@code kvstash.security}: API keys ({@code Authorization: Bearer KEY}), each bound to a tenant.
 * With none the service runs open (every caller is tenant {@code default}, an admin) and says so at start-up.
 *
 * @param apiKeys e.g. {@code kvstash.security.api-keys[0].key=...}, {@code ...[0].tenant=acme}, {@code ...[0].admin=true}
 */
@Validated
@ConfigurationProperties("kvstash.security")
public record SecurityProperties(@DefaultValue List<@Valid ApiKey> apiKeys) {
    /** A key, its tenant, and whether it may call the actuator's write operations. */
    public record ApiKey(@NotBlank String key, @NotBlank String tenant, boolean admin) {}

    public SecurityProperties {
        apiKeys = apiKeys == null ? List.of() : List.copyOf(apiKeys);
        Set<String> seen = new HashSet<>();
        for (int i = 0; i < apiKeys.size(); i++) {
            ApiKey k = apiKeys.get(i);
            if (k != null && k.key() != null && !seen.add(k.key())) {
                throw new IllegalArgumentException("kvstash.security.api-keys[" + i + "].key repeats an earlier key");
            }
        }
    }
}
