package io.kvstash.api.problem;

import java.net.URI;
import java.util.LinkedHashMap;
import java.util.Map;
import org.springframework.http.HttpHeaders;
import org.springframework.http.MediaType;
import org.springframework.http.ProblemDetail;
import org.springframework.http.ResponseEntity;

/** The two error bodies: RFC 9457 problem details (sessions, admin) and OpenAI's {@code {"error": {...}}} envelope. */
public final class ProblemBodies {
    /** Seconds a client is told to wait after a 429. */
    public static final String RETRY_AFTER_SECONDS = "1";

    private ProblemBodies() {
    }

    public static ProblemDetail problemDetail(ProblemException e, String path) {
        Problem p = e.problem();
        ProblemDetail d = ProblemDetail.forStatusAndDetail(p.status, e.getMessage());
        d.setType(p.type);
        d.setTitle(p.title);
        if (path != null) {
            d.setInstance(URI.create(path));
        }
        if (e.limit() != null) {
            d.setProperty("limit", e.limit());
        }
        if (e.param() != null) {
            d.setProperty("param", e.param());
        }
        return d;
    }

    /** The same as a map, for writers outside the codecs (filters, SSE error events). */
    public static Map<String, Object> problemMap(ProblemException e, String path) {
        Problem p = e.problem();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", p.type.toString());
        m.put("title", p.title);
        m.put("status", p.status.value());
        m.put("detail", e.getMessage());
        if (path != null) {
            m.put("instance", path);
        }
        if (e.limit() != null) {
            m.put("limit", e.limit());
        }
        if (e.param() != null) {
            m.put("param", e.param());
        }
        return m;
    }

    public static Map<String, Object> openAiError(ProblemException e) {
        Problem p = e.problem();
        Map<String, Object> error = new LinkedHashMap<>();
        error.put("message", e.getMessage());
        error.put("type", p.openAiType);
        error.put("param", e.param());
        error.put("code", p.openAiCode);
        return Map.of("error", error);
    }

    public static ResponseEntity<Object> response(ProblemException e, Object body, MediaType type) {
        ResponseEntity.BodyBuilder b = ResponseEntity.status(e.problem().status).contentType(type);
        headers(e).forEach((k, v) -> b.header(k, v));
        return b.body(body);
    }

    public static Map<String, String> headers(ProblemException e) {
        return switch (e.problem()) {
            case QUEUE_FULL -> Map.of(HttpHeaders.RETRY_AFTER, RETRY_AFTER_SECONDS);
            case UNAUTHORIZED -> Map.of(HttpHeaders.WWW_AUTHENTICATE, "Bearer");
            default -> Map.of();
        };
    }
}
