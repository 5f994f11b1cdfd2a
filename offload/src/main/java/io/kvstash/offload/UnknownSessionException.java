package io.kvstash.offload;

/** No session with this id for the caller's tenant (another tenant's session is reported the same way). */
public final class UnknownSessionException extends RuntimeException {
    public UnknownSessionException(String id) {
        super("no session " + id);
    }
}
