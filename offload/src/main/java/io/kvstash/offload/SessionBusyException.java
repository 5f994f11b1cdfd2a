package io.kvstash.offload;

/** A second turn (or a delete) on a session while one is running: one turn at a time per session. */
public final class SessionBusyException extends RuntimeException {
    public SessionBusyException(String id) {
        super("session " + id + " is busy: a turn is already running on it");
    }
}
