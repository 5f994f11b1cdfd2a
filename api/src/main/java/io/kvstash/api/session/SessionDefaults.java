package io.kvstash.api.session;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonInclude;
import io.kvstash.api.chat.SamplingRequest;

/**
 * A session's default settings for its turns; a turn's own settings win. Stored beside the session
 * record in the warm tier's metadata ({@code api.session-defaults.<id>}).
 *
 * @param maxTokens default reply length (at most {@code kvstash.limits.max-tokens-per-reply})
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record SessionDefaults(Double temperature, Double topP, Integer topK, Double minP, Double repetitionPenalty, Long seed,
                              Integer maxTokens) {
    public static final SessionDefaults NONE = new SessionDefaults(null, null, null, null, null, null, null);

    @JsonIgnore
    public SamplingRequest sampling() {
        return new SamplingRequest(temperature, topP, topK, minP, repetitionPenalty, seed);
    }
}
