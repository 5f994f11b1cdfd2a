package io.kvstash.api.session;

import io.kvstash.api.chat.ChatTurns;
import io.kvstash.api.chat.PromptLimits;
import io.kvstash.api.prefix.PrefixRegistry;
import io.kvstash.api.problem.Problem;
import io.kvstash.api.problem.ProblemException;
import io.kvstash.api.security.Caller;
import io.kvstash.api.session.SessionViews.SessionView;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.offload.ChunkKey;
import io.kvstash.offload.InvalidImportException;
import io.kvstash.offload.SessionRecord;
import io.kvstash.offload.SessionRecord.Message;
import io.kvstash.offload.SessionStore;
import io.kvstash.offload.UnknownSessionException;
import java.net.URI;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;

/**
 * Moving a session between replicas: {@code GET /v1/sessions/{id}/export} hands the owner the
 * session's record (messages, token ids, how many positions have KV, the chunk keys, the F32 tail
 * and the session's defaults) with the model fingerprint, KV format and chunk size it belongs to;
 * {@code POST /v1/sessions/import} makes a new session (always a new id) of the caller's tenant
 * from such a document. The KV itself does not travel in the document: the importing replica
 * takes the chunks from its tiers (the shared remote tier, for a move between replicas) or
 * recomputes them. The chunk keys are derived again from the tokens under the importer's tenant,
 * so the exported keys are only checked for form: a document cannot make a replica read another
 * tenant's chunks.
 */
@RestController
@RequestMapping("/v1/sessions")
public class SessionTransferController {
    /** The version of the export document; an import of another version is a 400. */
    public static final int FORMAT_VERSION = 1;
    private static final Set<String> ROLES = Set.of("system", "user", "assistant");
    private static final Pattern KEY = Pattern.compile("[0-9a-f]{32}");

    /**
     * The export document (snake_case on the wire).
     *
     * @param formatVersion    {@link #FORMAT_VERSION}
     * @param model            the served model's id (informative)
     * @param modelFingerprint the hash of the model's KV-relevant layout and weights: an import needs the same
     * @param kvFormat         the KV format: an import needs the same
     * @param chunkTokens      tokens per chunk: an import needs the same
     * @param tokens           every token of the conversation
     * @param kvLength         positions with KV: full chunks plus the tail's filled positions
     * @param chunkKeys        the full chunks' content keys (hex), informative: an import derives its own
     * @param tail             the F32 KV of the positions past the last full chunk (base64), for an exact resume
     * @param messages         the conversation as sent
     * @param defaults         the session's default settings
     * @param droppedMessages  turns left out of the tokens by the truncate policy (after the leading system messages)
     * @param sinkTokens       with {@code shiftedTokens}: the leading tokens a context shift kept
     * @param shiftedTokens    tokens after the sinks that context shifts took out of the KV (the importer
     *                         computes the KV again: moved chunks have keys no tokens chain to)
     */
    public record SessionExport(Integer formatVersion, String model, String modelFingerprint, String kvFormat, Integer chunkTokens,
                                int[] tokens, Integer kvLength, List<String> chunkKeys, byte[] tail, List<Message> messages,
                                SessionDefaults defaults, Integer droppedMessages, Integer sinkTokens, Integer shiftedTokens) {}

    private final SessionStore sessions;
    private final SessionDefaultsStore defaults;
    private final ChatTurns turns;
    private final PrefixRegistry prefixes;
    private final PromptLimits promptLimits;
    private final Scheduler io;
    private final String model;

    public SessionTransferController(SessionStore sessions, SessionDefaultsStore defaults, ChatTurns turns, PrefixRegistry prefixes,
                                     PromptLimits promptLimits, Scheduler storeScheduler, io.kvstash.api.config.EngineProperties engine) {
        this.sessions = sessions;
        this.defaults = defaults;
        this.turns = turns;
        this.prefixes = prefixes;
        this.promptLimits = promptLimits;
        this.io = storeScheduler;
        this.model = engine.modelId();
    }

    @GetMapping("/{id}/export")
    public Mono<SessionExport> export(@PathVariable String id, ServerWebExchange exchange) {
        String tenant = Caller.of(exchange).tenant();
        if (prefixes.isBacking(id)) {
            throw new UnknownSessionException(id);
        }
        return Mono.fromCallable(() -> {
            SessionRecord r = sessions.get(tenant, id);
            KvGeometry g = sessions.geometry();
            return new SessionExport(FORMAT_VERSION, model, sessions.engine().fingerprint().toString(), g.format().name(), g.chunkTokens(),
                    r.tokens(), r.kvLength(), r.chunkKeys().stream().map(ChunkKey::toString).toList(), r.tail(), r.messages(),
                    defaults.get(id), r.droppedMessages(), r.sinkTokens(), r.shiftedTokens());
        }).subscribeOn(io);
    }

    @PostMapping("/import")
    public Mono<ResponseEntity<SessionView>> importSession(@RequestBody SessionExport body, ServerWebExchange exchange) {
        String tenant = Caller.of(exchange).tenant();
        if (body.formatVersion() == null || body.formatVersion() != FORMAT_VERSION) {
            throw ProblemException.invalid("format_version", "format_version must be " + FORMAT_VERSION + ", got " + body.formatVersion());
        }
        KvGeometry g = sessions.geometry();
        String fingerprint = sessions.engine().fingerprint().toString();
        if (body.modelFingerprint() == null || !body.modelFingerprint().equals(fingerprint)) {
            throw new ProblemException(Problem.INCOMPATIBLE_SESSION, "the session was exported for model fingerprint "
                    + body.modelFingerprint() + "; this service's model '" + model + "' has " + fingerprint, null, "model_fingerprint");
        }
        if (body.kvFormat() == null || !body.kvFormat().equals(g.format().name())) {
            throw new ProblemException(Problem.INCOMPATIBLE_SESSION, "the session was exported with KV format " + body.kvFormat()
                    + "; this service stores " + g.format().name() + " (kvstash.engine.kv-format)", null, "kv_format");
        }
        if (body.chunkTokens() == null || body.chunkTokens() != g.chunkTokens()) {
            throw new ProblemException(Problem.INCOMPATIBLE_SESSION, "the session was exported with chunks of " + body.chunkTokens()
                    + " tokens; this service uses " + g.chunkTokens(), null, "chunk_tokens");
        }
        if (body.tokens() == null) {
            throw ProblemException.invalid("tokens", "tokens is required");
        }
        // What the KV is to hold: a shifted session keeps every token but holds fewer (validated with the rest below).
        int shifted = Math.max(0, Math.min(orZero(body.shiftedTokens()), body.tokens().length));
        promptLimits.check(body.tokens().length - shifted, "imported session", "tokens");
        int kvLength = body.kvLength() == null ? 0 : body.kvLength();
        if (kvLength < 0 || kvLength > body.tokens().length) {
            throw ProblemException.invalid("kv_length", "kv_length must be between 0 and the token count " + body.tokens().length
                    + ", got " + kvLength);
        }
        if (body.chunkKeys() != null) {
            if (body.chunkKeys().size() != kvLength / g.chunkTokens()) {
                throw ProblemException.invalid("chunk_keys", "kv_length " + kvLength + " means " + kvLength / g.chunkTokens()
                        + " full chunks, but chunk_keys has " + body.chunkKeys().size());
            }
            if (body.chunkKeys().stream().anyMatch(k -> k == null || !KEY.matcher(k).matches())) {
                throw ProblemException.invalid("chunk_keys", "chunk_keys must be 32 lower-case hex digits each");
            }
        }
        List<Message> messages = body.messages() == null ? List.of() : body.messages();
        for (int i = 0; i < messages.size(); i++) {
            Message m = messages.get(i);
            if (m == null || !ROLES.contains(m.role())) {
                throw ProblemException.invalid("messages[" + i + "].role", "role must be one of " + ROLES);
            }
        }
        SessionDefaults d = body.defaults() == null ? SessionDefaults.NONE : body.defaults();
        d.sampling().validated();
        if (d.maxTokens() != null) {
            turns.maxTokens(d.maxTokens(), "defaults.max_tokens");
        }
        return Mono.fromCallable(() -> {
            SessionRecord r;
            try {
                r = sessions.importSession(tenant, body.tokens(), kvLength, body.tail(), messages, orZero(body.droppedMessages()),
                        orZero(body.sinkTokens()), orZero(body.shiftedTokens()));
            } catch (InvalidImportException e) {
                throw ProblemException.invalid(e.field(), e.getMessage());
            }
            defaults.put(r.id(), d);
            return SessionView.of(r, sessions.residency(r), d);
        }).subscribeOn(io).map(v -> ResponseEntity.created(URI.create("/v1/sessions/" + v.id())).body(v));
    }

    private static int orZero(Integer v) {
        return v == null ? 0 : v;
    }
}
