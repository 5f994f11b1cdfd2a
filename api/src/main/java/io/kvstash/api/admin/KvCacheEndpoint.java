package io.kvstash.api.admin;

import io.kvstash.offload.HotTier;
import io.kvstash.offload.SessionRecord;
import io.kvstash.offload.SessionStore;
import io.kvstash.offload.UnknownSessionException;
import io.kvstash.persistence.SessionScan;
import io.kvstash.persistence.WarmStore;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.springframework.boot.actuate.endpoint.annotation.Endpoint;
import org.springframework.boot.actuate.endpoint.annotation.ReadOperation;
import org.springframework.boot.actuate.endpoint.annotation.WriteOperation;
import org.jspecify.annotations.Nullable;
import org.springframework.stereotype.Component;

/**
 * {@code /actuator/kvcache}: tier occupancy and budgets, the largest sessions and where their chunks
 * are; write operations (admin key) to offload one session to the warm tier or evict the hot tier.
 * Actuator operations are blocking calls run off the event loop by the actuator itself.
 */
@Component
@Endpoint(id = "kvcache")
public class KvCacheEndpoint {
    static final int TOP_SESSIONS = 20;

    private final SessionStore sessions;
    private final HotTier hot;
    private final WarmStore warm;
    private final long warmBudget;

    public KvCacheEndpoint(SessionStore sessions, HotTier hot, WarmStore warm, io.kvstash.api.config.StoreProperties store) {
        this.sessions = sessions;
        this.hot = hot;
        this.warm = warm;
        this.warmBudget = store.warmBudget().toBytes();
    }

    public record SessionResidency(String id, String tenant, int tokens, int hotChunks, int warmChunks, int missingChunks,
                                   long hotBytes, long warmBytes, int parkedChunks, long summaryBytes, long transientBytes) {}

    @ReadOperation
    public Map<String, Object> kvcache() {
        HotTier.Stats s = hot.stats();
        Map<String, Object> hotView = new LinkedHashMap<>();
        hotView.put("capacityBytes", s.capacityBytes());
        hotView.put("bytesInUse", s.bytesInUse());
        hotView.put("registeredChunks", s.registeredChunks());
        hotView.put("pinnedChunks", s.pinnedChunks());
        hotView.put("hits", s.hits());
        hotView.put("misses", s.misses());
        hotView.put("evictions", s.evictions());
        hotView.put("writeBacks", s.writeBacks());
        Map<String, Object> warmView = new LinkedHashMap<>();
        warmView.put("budgetBytes", warmBudget);
        warmView.put("bytes", sessions.warmBytes());
        warmView.put("storedChunks", sessions.storedChunks());
        warmView.put("referencedChunks", sessions.referencedChunks());
        warmView.put("diskBytes", warm.diskUsage().totalBytes());
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("hot", hotView);
        out.put("warm", warmView);
        io.kvstash.offload.RemoteTier remote = sessions.remoteTier();
        if (remote != null) {
            io.kvstash.offload.RemoteTier.Stats r = remote.stats();
            Map<String, Object> remoteView = new LinkedHashMap<>();
            remoteView.put("hits", r.hits());
            remoteView.put("misses", r.misses());
            remoteView.put("errors", r.errors());
            remoteView.put("rejected", r.rejected());
            remoteView.put("writes", r.writes());
            remoteView.put("writeErrors", r.writeErrors());
            remoteView.put("drops", r.drops());
            remoteView.put("queued", r.queued());
            out.put("remote", remoteView);
        }
        out.put("largestSessions", largestSessions());
        return out;
    }

    /** Offloads {@code session} (of {@code tenant}) to the warm tier; without a session, evicts every unpinned chunk of the hot tier. */
    @WriteOperation
    public Map<String, Object> offload(@Nullable String session, @Nullable String tenant) {
        if (session == null) {
            return Map.of("evictedChunks", hot.evictAll());
        }
        String owner = tenant != null ? tenant : tenantOf(session).orElseThrow(() -> new UnknownSessionException(session));
        SessionStore.Residency r = sessions.offload(owner, session);
        return Map.of("session", session, "hotChunks", r.hotChunks(), "warmChunks", r.warmChunks(), "missingChunks", r.missingChunks());
    }

    private Optional<String> tenantOf(String id) {
        return warm.getSession(id.getBytes(java.nio.charset.StandardCharsets.UTF_8)).map(v -> SessionRecord.decode(v).tenant());
    }

    private List<SessionResidency> largestSessions() {
        List<SessionResidency> all = new ArrayList<>();
        try (SessionScan it = warm.scanSessions(null)) {
            while (it.hasNext()) {
                byte[] id = it.next();
                Optional<byte[]> v = warm.getSession(id);
                if (v.isEmpty()) {
                    continue;
                }
                SessionRecord r;
                try {
                    r = SessionRecord.decode(v.get());
                } catch (IllegalArgumentException e) {
                    continue;
                }
                try {
                    SessionStore.Residency res = sessions.residency(r.tenant(), r.id());
                    all.add(new SessionResidency(r.id(), r.tenant(), r.tokens().length, res.hotChunks(), res.warmChunks(),
                            res.missingChunks(), res.hotBytes(), res.warmBytes(), res.parkedChunks(), res.summaryBytes(),
                            res.transientBytes()));
                } catch (UnknownSessionException deletedMeanwhile) {
                    // gone since the scan saw it
                }
                if (all.size() > 10 * TOP_SESSIONS) {
                    all.sort(Comparator.comparingInt(SessionResidency::tokens).reversed());
                    all.subList(TOP_SESSIONS, all.size()).clear();
                }
            }
        }
        all.sort(Comparator.comparingInt(SessionResidency::tokens).reversed());
        return all.size() > TOP_SESSIONS ? List.copyOf(all.subList(0, TOP_SESSIONS)) : all;
    }
}
