package io.kvstash.api;

import io.kvstash.api.config.EngineProperties;
import io.kvstash.api.config.KvProperties;
import io.kvstash.api.config.LimitsProperties;
import io.kvstash.api.config.StoreProperties;
import io.kvstash.api.demo.DemoModel;
import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.scheduler.BatchScheduler;
import io.kvstash.offload.HotTier;
import io.kvstash.offload.SessionStore;
import io.kvstash.persistence.WarmStore;
import java.nio.file.Path;
import java.time.Duration;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.http.codec.ServerCodecConfigurer;
import org.springframework.web.reactive.config.WebFluxConfigurer;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * The serving stack's beans. Only {@link ServingStack} has a destroy method: it closes the four
 * parts in their order (Spring would close independent beans in an order of its own choosing).
 */
@Configuration(proxyBeanMethods = false)
public class StackConfiguration {

    /**
     * Takes every kvstash.* record, so that all of them are bound and validated before the model is
     * opened (or, with no model configured, the demo model fetched).
     */
    @Bean(destroyMethod = "close")
    ServingStack servingStack(EngineProperties engine, KvProperties kv, StoreProperties store, LimitsProperties limits,
                              io.kvstash.api.config.SecurityProperties security, io.kvstash.api.config.SessionsProperties sessions,
                              io.kvstash.api.config.RemoteProperties remote) {
        if (engine.sparse().park().enabled() && sessions.contextPolicy() == io.kvstash.api.config.SessionsProperties.ContextPolicy.SHIFT) {
            throw new IllegalArgumentException("kvstash.engine.sparse.park.enabled = true cannot be combined with"
                    + " kvstash.sessions.context-policy = shift (a context shift moves chunks; a parked chunk cannot be moved):"
                    + " use truncate or reject, or turn parking off");
        }
        Path model = engine.model() != null ? engine.model() : new DemoModel(store.dataDir().resolve("models")).resolve();
        return new ServingStack(engine, model, kv, store, remote);
    }

    @Bean(destroyMethod = "")
    InferenceEngine inferenceEngine(ServingStack stack) {
        return stack.engine();
    }

    @Bean(destroyMethod = "")
    BatchScheduler batchScheduler(ServingStack stack) {
        return stack.scheduler();
    }

    @Bean(destroyMethod = "")
    WarmStore warmStore(ServingStack stack) {
        return stack.warm();
    }

    @Bean(destroyMethod = "")
    SessionStore sessionStore(ServingStack stack) {
        return stack.sessions();
    }

    @Bean(destroyMethod = "")
    HotTier hotTier(ServingStack stack) {
        return stack.hotTier();
    }

    /** How conversations become tokens: the model's chat template, or the plain format. */
    @Bean
    io.kvstash.api.chat.ConversationFormat conversationFormat(InferenceEngine engine) {
        return new io.kvstash.api.chat.ConversationFormat(engine.tokenizer(), engine.modelChatTemplate());
    }

    /** RocksDB reads and writes and tokenizing: never on a Netty event loop, and bounded. */
    @Bean(destroyMethod = "dispose")
    Scheduler storeScheduler() {
        return Schedulers.newBoundedElastic(Math.max(4, Runtime.getRuntime().availableProcessors() * 2), 1024, "kvstash-store");
    }

    /** Deletes chunks no session has listed for the grace period (see {@link SessionStore#collectGarbage()}). */
    @Bean(destroyMethod = "dispose")
    Disposable orphanCollector(SessionStore sessions, Scheduler storeScheduler, StoreProperties store) {
        Duration every = store.orphanGrace().isZero() ? Duration.ofMinutes(1) : store.orphanGrace().dividedBy(2).plusSeconds(1);
        return Flux.interval(every, storeScheduler)
                .onBackpressureDrop()
                .concatMap(tick -> reactor.core.publisher.Mono.fromCallable(sessions::collectGarbage)
                        .onErrorResume(e -> reactor.core.publisher.Mono.empty()), 1)
                .subscribe();
    }

    /** Request bodies are decoded in memory up to the configured limit; past it the request gets 413. */
    @Bean
    WebFluxConfigurer bodyLimit(LimitsProperties limits) {
        return new WebFluxConfigurer() {
            @Override
            public void configureHttpMessageCodecs(ServerCodecConfigurer configurer) {
                configurer.defaultCodecs().maxInMemorySize((int) Math.min(Integer.MAX_VALUE, limits.maxBodySize().toBytes()));
            }
        };
    }
}
