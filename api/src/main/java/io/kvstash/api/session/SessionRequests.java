package io.kvstash.api.session;

import io.kvstash.api.chat.SamplingRequest;
import java.util.List;

/** Request bodies of the sessions API (snake_case on the wire). */
public final class SessionRequests {
    private SessionRequests() {
    }

    /**
     * {@code POST /v1/sessions}.
     *
     * @param model        the model to talk to: optional, as this service serves one; another id is a 404
     * @param systemPrompt the conversation's opening system message, prefilled with the session's first turn
     * @param defaults     sampling settings and reply length for this session's turns
     * @param prefixId     a registered prefix ({@code /v1/prefixes}) the conversation starts with: the
     *                     session shares its KV (exclusive with {@code systemPrompt}: put the system
     *                     prompt in the prefix)
     */
    public record Create(String model, String systemPrompt, SessionDefaults defaults, String prefixId) {}

    /**
     * {@code POST /v1/sessions/{id}/messages}: a user message; the reply is JSON, or server-sent
     * events when {@code stream} is true.
     */
    public record Post(String role, String content, Boolean stream, Integer maxTokens, Double temperature, Double topP, Integer topK,
                       Double minP, Double repetitionPenalty, Long seed, List<String> stop) {
        SamplingRequest sampling() {
            return new SamplingRequest(temperature, topP, topK, minP, repetitionPenalty, seed);
        }
    }
}
