package io.kvstash.api.problem;

/** Server errors are logged with their cause; refused requests are the client's business and are not. */
final class ProblemLog {
    private static final System.Logger LOG = System.getLogger("io.kvstash.api.problems");

    private ProblemLog() {
    }

    static void log(ProblemException e, Throwable cause) {
        if (e.problem().status.is5xxServerError()) {
            LOG.log(System.Logger.Level.ERROR, e.getMessage(), cause);
        }
    }
}
