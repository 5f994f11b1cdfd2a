package io.kvstash.api.problem;

import io.kvstash.engine.ContextOverflowException;
import io.kvstash.engine.scheduler.QueueFullException;
import io.kvstash.offload.SessionBusyException;
import io.kvstash.offload.UnknownSessionException;
import io.kvstash.persistence.StoreClosedException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import org.springframework.core.codec.DecodingException;
import org.springframework.core.io.buffer.DataBufferLimitException;
import org.springframework.web.server.ServerWebInputException;
import org.springframework.web.server.UnsupportedMediaTypeStatusException;

/** Maps what the layers below throw to the {@link Problem} the API reports. */
public final class Problems {
    private Problems() {
    }

    /** The problem of {@code error}, unwrapping completion wrappers; unknown errors are server errors. */
    public static ProblemException of(Throwable error) {
        Throwable e = error;
        while ((e instanceof CompletionException || e instanceof ExecutionException) && e.getCause() != null) {
            e = e.getCause();
        }
        return switch (e) {
            case ProblemException p -> p;
            case UnknownSessionException u -> new ProblemException(Problem.UNKNOWN_SESSION, u.getMessage(), null, null);
            case SessionBusyException b -> new ProblemException(Problem.SESSION_BUSY, b.getMessage(), null, null);
            case QueueFullException q -> new ProblemException(Problem.QUEUE_FULL, q.getMessage(), "kvstash.engine.queue-capacity", null);
            case ContextOverflowException c -> new ProblemException(Problem.PROMPT_TOO_LONG, c.getMessage(),
                    "kvstash.engine.context-length", null);
            case DataBufferLimitException d -> new ProblemException(Problem.BODY_TOO_LARGE,
                    "request body exceeds the limit: " + d.getMessage(), "kvstash.limits.max-body-size", null);
            case UnsupportedMediaTypeStatusException u -> new ProblemException(Problem.UNSUPPORTED_MEDIA_TYPE,
                    "content type " + u.getContentType() + " is not supported; send application/json", null, null);
            case ServerWebInputException s when causedBy(s, DataBufferLimitException.class) -> new ProblemException(Problem.BODY_TOO_LARGE,
                    "request body exceeds the limit", "kvstash.limits.max-body-size", null);
            case ServerWebInputException s -> new ProblemException(Problem.MALFORMED_REQUEST, inputDetail(s), null, null);
            case DecodingException d -> new ProblemException(Problem.MALFORMED_REQUEST, "request body is not valid JSON for this endpoint",
                    null, null);
            case io.kvstash.engine.kv.ChunkUnavailableException c -> new ProblemException(Problem.GENERATION_FAILED,
                    "a parked KV chunk could not be read back from the warm tier: " + c.getMessage()
                            + "; the session is unchanged, and its next turn computes what is missing", null, null);
            case StoreClosedException c -> new ProblemException(Problem.UNAVAILABLE, "the service is shutting down", null, null);
            case IllegalStateException s when s.getMessage() != null && s.getMessage().contains("closed") ->
                    new ProblemException(Problem.UNAVAILABLE, "the service is shutting down", null, null);
            default -> new ProblemException(Problem.GENERATION_FAILED, "internal error: " + e.getClass().getSimpleName(), null, null);
        };
    }

    private static boolean causedBy(Throwable e, Class<? extends Throwable> type) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (type.isInstance(t)) {
                return true;
            }
        }
        return false;
    }

    private static String inputDetail(ServerWebInputException s) {
        if (s.getMethodParameter() != null && s.getMethodParameter().getParameterName() != null
                && !causedBy(s, DecodingException.class)) {
            return "invalid request parameter '" + s.getMethodParameter().getParameterName() + "': " + s.getReason();
        }
        return "request body is missing or not valid JSON for this endpoint";
    }
}
