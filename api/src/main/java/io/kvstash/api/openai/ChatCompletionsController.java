package io.kvstash.api.openai;

import io.kvstash.api.chat.ChatTurns;
import io.kvstash.api.chat.SamplingRequest;
import io.kvstash.api.chat.TurnEvent;
import io.kvstash.api.chat.TurnOutcome;
import io.kvstash.api.config.EngineProperties;
import io.kvstash.api.problem.ProblemBodies;
import io.kvstash.api.problem.ProblemException;
import io.kvstash.api.problem.Problems;
import io.kvstash.api.security.Caller;
import io.kvstash.api.session.SessionDefaults;
import io.kvstash.api.session.SessionDefaultsStore;
import io.kvstash.offload.SessionRecord;
import io.kvstash.offload.SessionRecord.Message;
import io.kvstash.offload.SessionStore;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.http.codec.ServerSentEvent;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestHeader;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import tools.jackson.databind.json.JsonMapper;

/**
 * OpenAI-compatible {@code POST /v1/chat/completions} and {@code POST /v1/completions}: the same
 * bodies, responses and stream chunks ({@code data: {...}} lines ending with {@code data: [DONE]}),
 * and usage with {@code prompt_tokens_details.cached_tokens}: the prompt tokens whose KV came from
 * the tiers. Without a session, a request runs in a one-off session: the longest prefix of its
 * prompt that an earlier request of the same tenant computed is reused.
 */
@RestController
public class ChatCompletionsController {
    private static final Set<String> ROLES = Set.of("system", "user", "assistant", "developer");

    private final ChatTurns turns;
    private final SessionStore sessions;
    private final SessionDefaultsStore defaults;
    private final Scheduler io;
    private final JsonMapper json;
    private final String model;

    public ChatCompletionsController(ChatTurns turns, SessionStore sessions, SessionDefaultsStore defaults, Scheduler storeScheduler,
                                     JsonMapper json, EngineProperties engine) {
        this.turns = turns;
        this.sessions = sessions;
        this.defaults = defaults;
        this.io = storeScheduler;
        this.json = json;
        this.model = engine.modelId();
    }

    private record Continuation(List<Message> added, SessionDefaults defaults) {}

    @PostMapping("/v1/chat/completions")
    public Mono<ResponseEntity<?>> chat(@RequestBody OpenAiRequests.ChatCompletion body,
                                        @RequestHeader(name = "X-Session-Id", required = false) String sessionHeader,
                                        ServerWebExchange exchange) {
        String tenant = Caller.of(exchange).tenant();
        OpenAiRequests.requireSingleChoice(body.n());
        if (body.messages() == null || body.messages().isEmpty()) {
            throw ProblemException.invalid("messages", "messages must hold at least one message");
        }
        List<Message> messages = new ArrayList<>();
        for (int i = 0; i < body.messages().size(); i++) {
            OpenAiRequests.ChatMessage m = body.messages().get(i);
            if (m == null || m.role() == null || !ROLES.contains(m.role())) {
                throw ProblemException.invalid("messages[" + i + "].role", "role must be one of " + ROLES);
            }
            // "developer" is OpenAI's newer name for the system message.
            messages.add(new Message(m.role().equals("developer") ? "system" : m.role(), m.text(i)));
        }
        Integer requested = body.maxCompletionTokens() != null ? body.maxCompletionTokens() : body.maxTokens();
        int maxTokens = turns.maxTokens(requested, body.maxCompletionTokens() != null ? "max_completion_tokens" : "max_tokens");
        List<String> stops = OpenAiRequests.stops(body.stop());
        SamplingRequest sampling = new SamplingRequest(body.temperature(), body.topP(), null, null, null, body.seed()).validated();
        String sessionId = body.sessionId() != null ? body.sessionId() : sessionHeader;

        Mono<ChatTurns.LiveTurn> live;
        if (sessionId == null) {
            // The model's own chat template when its GGUF has one (rendered as Hugging Face's
            // apply_chat_template would), else the documented plain format.
            live = turns.completeChat(tenant, messages, sampling.toParams(), maxTokens, stops);
        } else {
            live = Mono.fromCallable(() -> {
                SessionRecord r = sessions.get(tenant, sessionId);
                return new Continuation(newMessages(r.messages(), messages), defaults.get(sessionId));
            }).subscribeOn(io).flatMap(c -> turns.continueSession(tenant, sessionId, c.added(),
                    sampling.over(c.defaults().sampling()).toParams(), maxTokens, stops));
        }
        String id = "chatcmpl-" + UUID.randomUUID().toString().replace("-", "");
        long created = Instant.now().getEpochSecond();
        if (!Boolean.TRUE.equals(body.stream())) {
            return live.flatMap(t -> t.events().ofType(TurnEvent.Done.class).last())
                    .map(done -> ResponseEntity.ok().contentType(MediaType.APPLICATION_JSON).body(chatCompletion(id, created, done.outcome())));
        }
        boolean includeUsage = body.streamOptions() != null && Boolean.TRUE.equals(body.streamOptions().includeUsage());
        return live.map(t -> ResponseEntity.ok().contentType(MediaType.TEXT_EVENT_STREAM)
                .body(stream(t.events(), e -> chatChunks(id, created, e, includeUsage), chatChunk(id, created, Map.of("role", "assistant", "content", ""), null, sessionId))));
    }

    @PostMapping("/v1/completions")
    public Mono<ResponseEntity<?>> complete(@RequestBody OpenAiRequests.Completion body, ServerWebExchange exchange) {
        String tenant = Caller.of(exchange).tenant();
        OpenAiRequests.requireSingleChoice(body.n());
        String prompt = switch (body.prompt()) {
            case String s when !s.isEmpty() -> s;
            case List<?> l when l.size() == 1 && l.getFirst() instanceof String s && !s.isEmpty() -> s;
            case null, default -> throw ProblemException.invalid("prompt", "prompt must be a non-empty string");
        };
        int maxTokens = turns.maxTokens(body.maxTokens() != null ? body.maxTokens() : 16, "max_tokens");
        List<String> stops = OpenAiRequests.stops(body.stop());
        SamplingRequest sampling = new SamplingRequest(body.temperature(), body.topP(), null, null, null, body.seed()).validated();
        Mono<ChatTurns.LiveTurn> live = turns.complete(tenant, prompt, List.of(new Message("user", prompt)), sampling.toParams(),
                maxTokens, stops);
        String id = "cmpl-" + UUID.randomUUID().toString().replace("-", "");
        long created = Instant.now().getEpochSecond();
        if (!Boolean.TRUE.equals(body.stream())) {
            return live.flatMap(t -> t.events().ofType(TurnEvent.Done.class).last())
                    .map(done -> ResponseEntity.ok().contentType(MediaType.APPLICATION_JSON).body(
                            textCompletion(id, created, done.outcome().text(), done.outcome().finishReason(), usage(done.outcome()))));
        }
        boolean includeUsage = body.streamOptions() != null && Boolean.TRUE.equals(body.streamOptions().includeUsage());
        return live.map(t -> ResponseEntity.ok().contentType(MediaType.TEXT_EVENT_STREAM).body(stream(t.events(), e -> switch (e) {
            case TurnEvent.Delta d -> List.of(textCompletion(id, created, d.text(), null, null));
            case TurnEvent.Done d -> includeUsage
                    ? List.of(textCompletion(id, created, "", finish(d.outcome()), null), usageChunk(id, created, "text_completion", d.outcome()))
                    : List.of(textCompletion(id, created, "", finish(d.outcome()), null));
        }, null)));
    }

    /** The request's messages past the session's stored conversation when they repeat it, else all of them. */
    static List<Message> newMessages(List<Message> stored, List<Message> sent) {
        if (!stored.isEmpty() && sent.size() > stored.size() && sent.subList(0, stored.size()).equals(stored)) {
            return sent.subList(stored.size(), sent.size());
        }
        if (sent.equals(stored)) {
            throw ProblemException.invalid("messages", "the messages only repeat the session's conversation: nothing new to answer");
        }
        return sent;
    }

    private Flux<ServerSentEvent<String>> stream(Flux<TurnEvent> events, java.util.function.Function<TurnEvent, List<Map<String, Object>>> chunks,
                                                 Map<String, Object> first) {
        Flux<ServerSentEvent<String>> body = events.concatMapIterable(chunks).map(c -> ServerSentEvent.builder(json.writeValueAsString(c)).build());
        if (first != null) {
            body = Flux.just(ServerSentEvent.builder(json.writeValueAsString(first)).build()).concatWith(body);
        }
        return body.concatWith(Flux.just(ServerSentEvent.builder("[DONE]").build()))
                .onErrorResume(error -> Flux.just(ServerSentEvent.builder(json.writeValueAsString(ProblemBodies.openAiError(Problems.of(error))))
                        .event("error").build()));
    }

    private List<Map<String, Object>> chatChunks(String id, long created, TurnEvent e, boolean includeUsage) {
        return switch (e) {
            case TurnEvent.Delta d -> List.of(chatChunk(id, created, Map.of("content", d.text()), null, null));
            case TurnEvent.Done d -> includeUsage
                    ? List.of(chatChunk(id, created, Map.of(), finish(d.outcome()), d.outcome().sessionId()),
                            usageChunk(id, created, "chat.completion.chunk", d.outcome()))
                    : List.of(chatChunk(id, created, Map.of(), finish(d.outcome()), d.outcome().sessionId()));
        };
    }

    private Map<String, Object> chatChunk(String id, long created, Map<String, Object> delta, String finishReason, String sessionId) {
        Map<String, Object> choice = new LinkedHashMap<>();
        choice.put("index", 0);
        choice.put("delta", delta);
        choice.put("logprobs", null);
        choice.put("finish_reason", finishReason);
        Map<String, Object> c = envelope(id, created, "chat.completion.chunk");
        c.put("choices", List.of(choice));
        if (sessionId != null) {
            c.put("session_id", sessionId);
        }
        return c;
    }

    private Map<String, Object> usageChunk(String id, long created, String object, TurnOutcome o) {
        Map<String, Object> c = envelope(id, created, object);
        c.put("choices", List.of());
        c.put("usage", usage(o));
        return c;
    }

    private Map<String, Object> chatCompletion(String id, long created, TurnOutcome o) {
        Map<String, Object> message = new LinkedHashMap<>();
        message.put("role", "assistant");
        message.put("content", o.text());
        message.put("refusal", null);
        Map<String, Object> choice = new LinkedHashMap<>();
        choice.put("index", 0);
        choice.put("message", message);
        choice.put("logprobs", null);
        choice.put("finish_reason", finish(o));
        Map<String, Object> c = envelope(id, created, "chat.completion");
        c.put("choices", List.of(choice));
        c.put("usage", usage(o));
        if (o.sessionId() != null) {
            c.put("session_id", o.sessionId());
        }
        return c;
    }

    private Map<String, Object> textCompletion(String id, long created, String text, String finishReason, Object usage) {
        Map<String, Object> choice = new LinkedHashMap<>();
        choice.put("text", text);
        choice.put("index", 0);
        choice.put("logprobs", null);
        choice.put("finish_reason", finishReason);
        Map<String, Object> c = envelope(id, created, "text_completion");
        c.put("choices", List.of(choice));
        if (usage != null) {
            c.put("usage", usage);
        }
        return c;
    }

    private Map<String, Object> envelope(String id, long created, String object) {
        Map<String, Object> c = new LinkedHashMap<>();
        c.put("id", id);
        c.put("object", object);
        c.put("created", created);
        c.put("model", model);
        return c;
    }

    private static Map<String, Object> usage(TurnOutcome o) {
        Map<String, Object> u = new LinkedHashMap<>();
        u.put("prompt_tokens", o.promptTokens());
        u.put("completion_tokens", o.completionTokens());
        u.put("total_tokens", o.promptTokens() + o.completionTokens());
        u.put("prompt_tokens_details", Map.of("cached_tokens", o.cachedTokens()));
        return u;
    }

    /** OpenAI knows {@code stop} and {@code length}; a turn whose client went away is nobody's to read. */
    private static String finish(TurnOutcome o) {
        return o.finishReason().equals("length") ? "length" : "stop";
    }
}
