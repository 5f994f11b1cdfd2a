package io.kvstash.api.session;

import io.kvstash.persistence.WarmStore;
import java.util.Optional;
import org.springframework.stereotype.Component;
import tools.jackson.databind.json.JsonMapper;

/**
 * Sessions' default settings, as JSON in the warm tier's metadata. Written before the session is
 * used and read per turn; a session without an entry (or after delete, an empty one) has none.
 * Blocking: call from the store scheduler.
 */
@Component
public class SessionDefaultsStore {
    private static final String PREFIX = "api.session-defaults.";
    private final WarmStore warm;
    private final JsonMapper json;

    public SessionDefaultsStore(WarmStore warm, JsonMapper json) {
        this.warm = warm;
        this.json = json;
    }

    public void put(String sessionId, SessionDefaults defaults) {
        warm.putMeta(PREFIX + sessionId, json.writeValueAsBytes(defaults));
    }

    public SessionDefaults get(String sessionId) {
        Optional<byte[]> v = warm.getMeta(PREFIX + sessionId);
        if (v.isEmpty() || v.get().length == 0) {
            return SessionDefaults.NONE;
        }
        return json.readValue(v.get(), SessionDefaults.class);
    }

    /** The store has no delete for metadata: an empty value means none. */
    public void remove(String sessionId) {
        if (warm.getMeta(PREFIX + sessionId).isPresent()) {
            warm.putMeta(PREFIX + sessionId, new byte[0]);
        }
    }
}
