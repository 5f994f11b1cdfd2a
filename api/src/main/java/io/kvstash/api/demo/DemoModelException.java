package io.kvstash.api.demo;

/** The demo model could not be provided; the message says why and how to start with a model of one's own. */
public final class DemoModelException extends RuntimeException {
    public DemoModelException(String message) {
        super(message);
    }

    public DemoModelException(String message, Throwable cause) {
        super(message, cause);
    }
}
