package io.kvstash.api.problem;

import java.net.URI;
import org.springframework.http.HttpStatus;

/**
 * The kinds of failure the API reports, each with a stable problem {@code type} (RFC 9457) and the
 * OpenAI error {@code type}/{@code code} used on the OpenAI-compatible endpoints.
 */
public enum Problem {
    UNKNOWN_SESSION(HttpStatus.NOT_FOUND, "unknown-session", "Unknown session", "invalid_request_error", "session_not_found"),
    UNKNOWN_PREFIX(HttpStatus.NOT_FOUND, "unknown-prefix", "Unknown prefix", "invalid_request_error", "prefix_not_found"),
    TOO_MANY_PREFIXES(HttpStatus.CONFLICT, "too-many-prefixes", "Prefix limit reached", "invalid_request_error", "prefix_limit_reached"),
    UNKNOWN_MODEL(HttpStatus.NOT_FOUND, "unknown-model", "Unknown model", "invalid_request_error", "model_not_found"),
    SESSION_BUSY(HttpStatus.CONFLICT, "session-busy", "Session busy", "invalid_request_error", "session_busy"),
    INCOMPATIBLE_SESSION(HttpStatus.CONFLICT, "incompatible-session", "Session from another model or KV format", "invalid_request_error",
            "incompatible_session"),
    QUEUE_FULL(HttpStatus.TOO_MANY_REQUESTS, "queue-full", "Too many requests", "rate_limit_error", "queue_full"),
    PROMPT_TOO_LONG(HttpStatus.BAD_REQUEST, "prompt-too-long", "Prompt too long", "invalid_request_error", "context_length_exceeded"),
    REPLY_TOO_LONG(HttpStatus.BAD_REQUEST, "reply-too-long", "Reply limit exceeded", "invalid_request_error", "max_tokens_exceeded"),
    BODY_TOO_LARGE(HttpStatus.CONTENT_TOO_LARGE, "body-too-large", "Request body too large", "invalid_request_error", "body_too_large"),
    MALFORMED_REQUEST(HttpStatus.BAD_REQUEST, "malformed-request", "Malformed request", "invalid_request_error", "malformed_request"),
    INVALID_REQUEST(HttpStatus.BAD_REQUEST, "invalid-request", "Invalid request", "invalid_request_error", "invalid_value"),
    UNSUPPORTED_MEDIA_TYPE(HttpStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type",
            "invalid_request_error", "unsupported_media_type"),
    UNAUTHORIZED(HttpStatus.UNAUTHORIZED, "unauthorized", "Unauthorized", "invalid_request_error", "invalid_api_key"),
    FORBIDDEN(HttpStatus.FORBIDDEN, "forbidden", "Forbidden", "invalid_request_error", "forbidden"),
    UNAVAILABLE(HttpStatus.SERVICE_UNAVAILABLE, "unavailable", "Service unavailable", "server_error", "unavailable"),
    GENERATION_FAILED(HttpStatus.INTERNAL_SERVER_ERROR, "generation-failed", "Generation failed", "server_error", "generation_failed");

    public static final String TYPE_BASE = "https://kvstash.io/problems/";

    public final HttpStatus status;
    public final URI type;
    public final String title;
    public final String openAiType;
    public final String openAiCode;

    Problem(HttpStatus status, String slug, String title, String openAiType, String openAiCode) {
        this.status = status;
        this.type = URI.create(TYPE_BASE + slug);
        this.title = title;
        this.openAiType = openAiType;
        this.openAiCode = openAiCode;
    }
}
