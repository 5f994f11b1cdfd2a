package io.kvstash.api.session;

import io.kvstash.api.chat.ChatTurns;
import io.kvstash.api.chat.TurnEvent;
import io.kvstash.api.prefix.PrefixRegistry;
import io.kvstash.api.problem.Problem;
import io.kvstash.api.problem.ProblemBodies;
import io.kvstash.api.problem.ProblemException;
import io.kvstash.api.problem.Problems;
import io.kvstash.api.security.Caller;
import io.kvstash.api.session.SessionViews.DeltaView;
import io.kvstash.api.session.SessionViews.ResidencyView;
import io.kvstash.api.session.SessionViews.SessionPage;
import io.kvstash.api.session.SessionViews.SessionSummary;
import io.kvstash.api.session.SessionViews.SessionView;
import io.kvstash.api.session.SessionViews.TurnView;
import io.kvstash.offload.SessionRecord;
import io.kvstash.offload.SessionRecord.Message;
import io.kvstash.offload.SessionStore;
import io.kvstash.offload.UnknownSessionException;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.http.codec.ServerSentEvent;
import org.springframework.web.bind.annotation.DeleteMapping;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RequestParam;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;

/**
 * The sessions API: a conversation whose KV cache is kept in the tiers between turns. Every call is
 * scoped to the caller's tenant (another tenant's session is a 404). Failures are RFC 9457 problem
 * details ({@link io.kvstash.api.problem.SessionProblemHandler}); once a reply stream has started,
 * a failure is an {@code error} event and the stream ends.
 */
@RestController
@RequestMapping("/v1/sessions")
public class SessionController {
    static final int MAX_PAGE = 100;
    private static final Set<String> ROLES = Set.of("system", "user", "assistant");

    private final SessionStore sessions;
    private final SessionDefaultsStore defaults;
    private final ChatTurns turns;
    private final Scheduler io;
    private final PrefixRegistry prefixes;
    private final String model;

    public SessionController(SessionStore sessions, SessionDefaultsStore defaults, ChatTurns turns, Scheduler storeScheduler,
                             PrefixRegistry prefixes, io.kvstash.api.config.EngineProperties engine) {
        this.model = engine.modelId();
        this.sessions = sessions;
        this.prefixes = prefixes;
        this.defaults = defaults;
        this.turns = turns;
        this.io = storeScheduler;
    }

    @PostMapping
    public Mono<ResponseEntity<SessionView>> create(@RequestBody(required = false) SessionRequests.Create body, ServerWebExchange exchange) {
        String tenant = Caller.of(exchange).tenant();
        SessionRequests.Create req = body == null ? new SessionRequests.Create(null, null, null, null) : body;
        SessionDefaults d = req.defaults() == null ? SessionDefaults.NONE : req.defaults();
        d.sampling().validated();
        if (d.maxTokens() != null) {
            turns.maxTokens(d.maxTokens(), "defaults.max_tokens");
        }
        if (req.systemPrompt() != null && req.systemPrompt().isBlank()) {
            throw ProblemException.invalid("system_prompt", "system_prompt must not be blank (leave it out for none)");
        }
        if (req.model() != null && !req.model().equals(model)) {
            throw new ProblemException(Problem.UNKNOWN_MODEL, "the model '" + req.model() + "' is not served here; this service serves '"
                    + model + "' (GET /v1/models)", null, "model");
        }
        if (req.prefixId() != null && req.systemPrompt() != null) {
            throw ProblemException.invalid("prefix_id", "give either prefix_id or system_prompt, not both (put the system prompt in the prefix)");
        }
        Mono<SessionRecord> created = Mono.fromCallable(() -> {
            SessionRecord r = req.prefixId() != null
                    ? sessions.fork(tenant, prefixes.sessionOf(tenant, req.prefixId()))
                    : sessions.create(tenant);
            defaults.put(r.id(), d);
            return r;
        }).subscribeOn(io);
        if (req.systemPrompt() != null) {
            created = created.flatMap(r -> turns.prime(tenant, r.id(), List.of(new Message("system", req.systemPrompt()))));
        }
        return created.flatMap(r -> view(tenant, r.id()))
                .map(v -> ResponseEntity.created(URI.create("/v1/sessions/" + v.id())).body(v));
    }

    @GetMapping("/{id}")
    public Mono<SessionView> get(@PathVariable String id, ServerWebExchange exchange) {
        return view(Caller.of(exchange).tenant(), id);
    }

    @GetMapping
    public Mono<SessionPage> list(@RequestParam(defaultValue = "20") int limit, @RequestParam(required = false) String after,
                                  ServerWebExchange exchange) {
        if (limit < 1 || limit > MAX_PAGE) {
            throw ProblemException.invalid("limit", "limit must be between 1 and " + MAX_PAGE + ", got " + limit);
        }
        String tenant = Caller.of(exchange).tenant();
        return Mono.fromCallable(() -> {
            List<String> ids = new ArrayList<>(sessions.list(tenant));
            ids.sort(null);
            List<SessionSummary> page = new ArrayList<>();
            boolean more = false;
            for (String id : ids) {
                if ((after != null && id.compareTo(after) <= 0) || prefixes.isBacking(id)) {
                    continue;
                }
                if (page.size() == limit) {
                    more = true;
                    break;
                }
                try {
                    page.add(SessionSummary.of(sessions.get(tenant, id)));
                } catch (UnknownSessionException deletedMeanwhile) {
                    // listed, then deleted by another request: not part of the page
                }
            }
            return new SessionPage(page, more, more ? page.getLast().id() : null);
        }).subscribeOn(io);
    }

    /**
     * A user message and the assistant's reply: JSON ({@link TurnView}), or with {@code "stream": true}
     * server-sent events: {@code delta} events ({@code {"content": "..."}}), then one {@code done} event
     * with the {@link TurnView}, or an {@code error} event with a problem body.
     */
    @PostMapping(value = "/{id}/messages")
    public Mono<ResponseEntity<?>> post(@PathVariable String id, @RequestBody SessionRequests.Post body, ServerWebExchange exchange) {
        String tenant = Caller.of(exchange).tenant();
        conversation(id);
        String role = body.role() == null ? "user" : body.role();
        if (!ROLES.contains(role)) {
            throw ProblemException.invalid("role", "role must be one of " + ROLES + ", got '" + role + "'");
        }
        if (body.content() == null || body.content().isEmpty()) {
            throw ProblemException.invalid("content", "content is required");
        }
        List<String> stops = body.stop() == null ? List.of() : body.stop();
        if (stops.size() > 4 || stops.stream().anyMatch(s -> s == null || s.isEmpty())) {
            throw ProblemException.invalid("stop", "stop takes up to 4 non-empty strings");
        }
        body.sampling().validated();
        boolean stream = Boolean.TRUE.equals(body.stream());
        String path = exchange.getRequest().getPath().value();
        Mono<ChatTurns.LiveTurn> live = Mono.fromCallable(() -> defaults.get(id)).subscribeOn(io).flatMap(d -> {
            int maxTokens = turns.maxTokens(body.maxTokens() != null ? body.maxTokens() : d.maxTokens(), "max_tokens");
            var params = body.sampling().over(d.sampling()).toParams();
            return turns.continueSession(tenant, id, List.of(new Message(role, body.content())), params, maxTokens, stops);
        });
        if (!stream) {
            return live.flatMap(t -> t.events().ofType(TurnEvent.Done.class).last())
                    .map(done -> ResponseEntity.ok().contentType(MediaType.APPLICATION_JSON).body(TurnView.of(done.outcome())));
        }
        return live.map(t -> ResponseEntity.ok().contentType(MediaType.TEXT_EVENT_STREAM).body(sse(t.events(), path)));
    }

    private static Flux<ServerSentEvent<Object>> sse(Flux<TurnEvent> events, String path) {
        return events.<ServerSentEvent<Object>>map(e -> switch (e) {
            case TurnEvent.Delta d -> ServerSentEvent.<Object>builder(new DeltaView(d.text())).event("delta").build();
            case TurnEvent.Done d -> ServerSentEvent.<Object>builder(TurnView.of(d.outcome())).event("done").build();
        }).onErrorResume(error -> Mono.just(
                ServerSentEvent.<Object>builder(ProblemBodies.problemMap(Problems.of(error), path)).event("error").build()));
    }

    @PostMapping("/{id}/fork")
    public Mono<ResponseEntity<SessionView>> fork(@PathVariable String id, ServerWebExchange exchange) {
        String tenant = Caller.of(exchange).tenant();
        conversation(id);
        return Mono.fromCallable(() -> {
            SessionRecord copy = sessions.fork(tenant, id);
            defaults.put(copy.id(), defaults.get(id));
            return copy.id();
        }).subscribeOn(io).flatMap(copy -> view(tenant, copy))
                .map(v -> ResponseEntity.created(URI.create("/v1/sessions/" + v.id())).body(v));
    }

    /** Writes the session's chunks to the warm tier and drops them from memory. */
    @PostMapping("/{id}/offload")
    public Mono<ResidencyView> offload(@PathVariable String id, ServerWebExchange exchange) {
        String tenant = Caller.of(exchange).tenant();
        conversation(id);
        return Mono.fromCallable(() -> ResidencyView.of(sessions.offload(tenant, id))).subscribeOn(io);
    }

    /** Loads the session's chunks from the warm tier into memory ahead of its next turn. */
    @PostMapping("/{id}/restore")
    public Mono<ResidencyView> restore(@PathVariable String id, ServerWebExchange exchange) {
        String tenant = Caller.of(exchange).tenant();
        conversation(id);
        return Mono.fromCallable(() -> ResidencyView.of(sessions.restore(tenant, id))).subscribeOn(io);
    }

    @DeleteMapping("/{id}")
    public Mono<ResponseEntity<Void>> delete(@PathVariable String id, ServerWebExchange exchange) {
        String tenant = Caller.of(exchange).tenant();
        conversation(id);
        return Mono.fromRunnable(() -> {
            sessions.delete(tenant, id);
            defaults.remove(id);
        }).subscribeOn(io).then(Mono.just(ResponseEntity.noContent().<Void>build()));
    }

    /** Sessions that back a prefix are not conversations: the sessions API does not know them. */
    private void conversation(String id) {
        if (prefixes.isBacking(id)) {
            throw new UnknownSessionException(id);
        }
    }

    private Mono<SessionView> view(String tenant, String id) {
        conversation(id);
        return Mono.fromCallable(() -> {
            SessionRecord r = sessions.get(tenant, id);
            return SessionView.of(r, sessions.residency(r), defaults.get(id));
        }).subscribeOn(io);
    }
}
