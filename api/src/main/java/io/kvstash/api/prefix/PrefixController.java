package io.kvstash.api.prefix;

import io.kvstash.api.problem.ProblemException;
import io.kvstash.api.security.Caller;
import io.kvstash.api.session.SessionViews.MessageView;
import io.kvstash.api.session.SessionViews.ResidencyView;
import io.kvstash.offload.SessionRecord.Message;
import java.net.URI;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.DeleteMapping;
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
 * Shared prefixes: register a text or the opening messages of a conversation once; it is prefilled,
 * stored and pinned in the hot tier, and sessions ({@code POST /v1/sessions} with {@code prefix_id})
 * and chat completions that start with it reuse its KV. Scoped to the caller's tenant; failures are
 * RFC 9457 problem details.
 */
@RestController
@RequestMapping("/v1/prefixes")
public class PrefixController {
    static final int MAX_NAME = 200;
    private static final Set<String> ROLES = Set.of("system", "user", "assistant");

    private final PrefixRegistry registry;
    private final Scheduler io;

    public PrefixController(PrefixRegistry registry, Scheduler storeScheduler) {
        this.registry = registry;
        this.io = storeScheduler;
    }

    /**
     * {@code POST /v1/prefixes}: exactly one of {@code text} (taken as it is) and {@code messages}
     * (the opening of a conversation, e.g. a system prompt, written as the chat template writes it).
     */
    public record Create(String name, String text, List<MessageView> messages) {}

    /** A prefix: its tokens, and where its KV is ({@code pinned_chunks} are held in the hot tier while it is registered). */
    public record PrefixView(String id, String name, Instant createdAt, int tokenCount, String text, List<MessageView> messages,
                             int pinnedChunks, long pinnedBytes, ResidencyView residency) {
        static PrefixView of(PrefixRegistry.Prefix p) {
            return new PrefixView(p.entry().id(), p.entry().name(), Instant.ofEpochMilli(p.entry().createdMillis()), p.record().tokens().length,
                    p.entry().text(), p.entry().text() != null ? null : p.record().messages().stream().map(m -> new MessageView(m.role(), m.content())).toList(),
                    p.pinnedChunks(), p.pinnedBytes(), ResidencyView.of(p.residency()));
        }
    }

    public record PrefixList(List<PrefixView> data) {}

    @PostMapping
    public Mono<ResponseEntity<PrefixView>> create(@RequestBody Create body, ServerWebExchange exchange) {
        String tenant = Caller.of(exchange).tenant();
        if ((body.text() == null) == (body.messages() == null)) {
            throw ProblemException.invalid("text", "give exactly one of text and messages");
        }
        if (body.text() != null && body.text().isEmpty()) {
            throw ProblemException.invalid("text", "text must not be empty");
        }
        if (body.name() != null && body.name().length() > MAX_NAME) {
            throw ProblemException.invalid("name", "name may have at most " + MAX_NAME + " characters");
        }
        List<Message> messages = null;
        if (body.messages() != null) {
            if (body.messages().isEmpty()) {
                throw ProblemException.invalid("messages", "messages must hold at least one message");
            }
            messages = new ArrayList<>();
            for (int i = 0; i < body.messages().size(); i++) {
                MessageView m = body.messages().get(i);
                if (m == null || m.role() == null || !ROLES.contains(m.role())) {
                    throw ProblemException.invalid("messages[" + i + "].role", "role must be one of " + ROLES);
                }
                if (m.content() == null || m.content().isEmpty()) {
                    throw ProblemException.invalid("messages[" + i + "].content", "content is required");
                }
                messages.add(new Message(m.role(), m.content()));
            }
        }
        List<Message> opening = messages;
        return Mono.fromCallable(() -> PrefixView.of(registry.register(tenant, body.name(), body.text(), opening))).subscribeOn(io)
                .map(v -> ResponseEntity.created(URI.create("/v1/prefixes/" + v.id())).body(v));
    }

    @GetMapping("/{id}")
    public Mono<PrefixView> get(@PathVariable String id, ServerWebExchange exchange) {
        String tenant = Caller.of(exchange).tenant();
        return Mono.fromCallable(() -> PrefixView.of(registry.get(tenant, id))).subscribeOn(io);
    }

    @GetMapping
    public Mono<PrefixList> list(ServerWebExchange exchange) {
        String tenant = Caller.of(exchange).tenant();
        return Mono.fromCallable(() -> new PrefixList(registry.list(tenant).stream().map(PrefixView::of).toList())).subscribeOn(io);
    }

    /** Unpins and deletes the prefix; sessions already made from it are not affected. */
    @DeleteMapping("/{id}")
    public Mono<ResponseEntity<Void>> delete(@PathVariable String id, ServerWebExchange exchange) {
        String tenant = Caller.of(exchange).tenant();
        return Mono.fromRunnable(() -> registry.delete(tenant, id)).subscribeOn(io).then(Mono.just(ResponseEntity.noContent().<Void>build()));
    }
}
