package io.kvstash.api.openai;

import io.kvstash.api.problem.ProblemException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Request bodies of the OpenAI-compatible endpoints (snake_case on the wire; unknown fields are ignored). */
public final class OpenAiRequests {
    private OpenAiRequests() {
    }

    /** {@code content} is a string, or an array of parts of which the {@code text} parts are joined. */
    public record ChatMessage(String role, Object content) {
        String text(int index) {
            return switch (content) {
                case String s -> s;
                case List<?> parts -> {
                    StringBuilder b = new StringBuilder();
                    for (Object p : parts) {
                        if (p instanceof Map<?, ?> m && "text".equals(m.get("type")) && m.get("text") instanceof String t) {
                            b.append(t);
                        } else {
                            throw ProblemException.invalid("messages[" + index + "].content", "only text content parts are supported");
                        }
                    }
                    yield b.toString();
                }
                case null -> throw ProblemException.invalid("messages[" + index + "].content", "content is required");
                default -> throw ProblemException.invalid("messages[" + index + "].content", "content must be a string or an array of text parts");
            };
        }
    }

    public record StreamOptions(Boolean includeUsage) {}

    /**
     * {@code POST /v1/chat/completions}. {@code session_id} (or the {@code X-Session-Id} header)
     * continues a kvstash session: {@code messages} are then the new messages; a request that
     * repeats the session's stored conversation first has that part skipped.
     */
    public record ChatCompletion(String model, List<ChatMessage> messages, Integer maxTokens, Integer maxCompletionTokens,
                                 Double temperature, Double topP, Long seed, Object stop, Boolean stream, StreamOptions streamOptions,
                                 Integer n, String sessionId) {}

    /** {@code POST /v1/completions}: a plain text prompt. */
    public record Completion(String model, Object prompt, Integer maxTokens, Double temperature, Double topP, Long seed, Object stop,
                             Boolean stream, StreamOptions streamOptions, Integer n) {}

    /** OpenAI's {@code stop}: a string or up to 4 strings. */
    static List<String> stops(Object stop) {
        return switch (stop) {
            case null -> List.of();
            case String s when !s.isEmpty() -> List.of(s);
            case List<?> l when l.size() <= 4 -> {
                List<String> out = new ArrayList<>();
                for (Object o : l) {
                    if (!(o instanceof String s) || s.isEmpty()) {
                        throw ProblemException.invalid("stop", "stop must be a non-empty string or an array of up to 4 of them");
                    }
                    out.add(s);
                }
                yield out;
            }
            default -> throw ProblemException.invalid("stop", "stop must be a non-empty string or an array of up to 4 of them");
        };
    }

    static void requireSingleChoice(Integer n) {
        if (n != null && n != 1) {
            throw ProblemException.invalid("n", "only n = 1 is supported");
        }
    }
}
