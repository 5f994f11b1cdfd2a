package io.kvstash.api.problem;

import java.util.Objects;

/**
 * A request the API refuses, with the {@link Problem} it reports. {@code limit} names the
 * configuration key of a limit the request went past, {@code param} the request field at fault.
 */
public final class ProblemException extends RuntimeException {
    private final Problem problem;
    private final String limit;
    private final String param;

    public ProblemException(Problem problem, String detail, String limit, String param) {
        super(detail);
        this.problem = Objects.requireNonNull(problem, "problem");
        this.limit = limit;
        this.param = param;
    }

    public static ProblemException invalid(String param, String detail) {
        return new ProblemException(Problem.INVALID_REQUEST, detail, null, param);
    }

    public static ProblemException limit(Problem problem, String limit, String param, String detail) {
        return new ProblemException(problem, detail, limit, param);
    }

    public Problem problem() {
        return problem;
    }

    public String limit() {
        return limit;
    }

    public String param() {
        return param;
    }
}
