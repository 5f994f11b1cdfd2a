package io.kvstash.api;

import io.kvstash.api.config.EngineProperties;
import io.kvstash.api.config.KvProperties;
import io.kvstash.api.config.RemoteProperties;
import io.kvstash.api.config.StoreProperties;
import io.kvstash.engine.EngineOptions;
import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.scheduler.BatchScheduler;
import io.kvstash.offload.HotTier;
import io.kvstash.offload.RedisRemoteTier;
import io.kvstash.offload.RemoteTier;
import io.kvstash.offload.SessionStore;
import io.kvstash.persistence.WarmStore;
import io.kvstash.persistence.WarmStoreConfig;
import java.nio.file.Path;

/**
 * The engine on its hot tier, the batch scheduler, the warm store, the remote tier (when
 * configured) and the session layer, opened in that order and closed in the reverse one. Closing
 * first closes the scheduler (sequences still running end as cancelled, and their turns are stored
 * with what they produced), then drains the session layer's writes, then the remote tier's queue
 * (briefly), then closes RocksDB, then unmaps the model.
 */
public final class ServingStack implements AutoCloseable {
    private final InferenceEngine engine;
    private final BatchScheduler scheduler;
    private final WarmStore warm;
    private final RemoteTier remote;
    private final SessionStore sessions;
    private boolean closed;

    /** Opens {@code model} (the configured file or the demo model) with the settings of {@code e}. */
    public ServingStack(EngineProperties e, Path model, KvProperties kv, StoreProperties store, RemoteProperties remoteProperties) {
        EngineOptions options = EngineOptions.defaults()
                .withThreads(e.threadsOrCores())
                .withContextLength(e.contextLength())
                .withKvFormat(e.kvFormat())
                .withMaxBatch(e.maxBatch())
                .withSparse(e.sparse().settings());
        long hotBytes = kv.hotCapacity().toBytes();
        engine = InferenceEngine.open(model, options, g -> new HotTier(g, hotBytes));
        BatchScheduler s = null;
        WarmStore w = null;
        RemoteTier r = null;
        try {
            s = new BatchScheduler(engine, new BatchScheduler.Config(engine.maxBatch(), e.queueCapacity(),
                    BatchScheduler.Config.defaults(engine).prefillTokensPerStep()));
            w = WarmStore.open(WarmStoreConfig.defaults(store.dataDir()));
            r = remoteProperties.enabled() ? new RedisRemoteTier(remoteProperties.tierConfig()) : null;
            sessions = SessionStore.open(engine, s, w, r,
                    new SessionStore.Config(store.warmBudget().toBytes(), store.writeThrough(), store.orphanGrace(),
                            e.sparse().park().parking()));
        } catch (RuntimeException ex) {
            if (r != null) {
                r.close();
            }
            if (w != null) {
                w.close();
            }
            if (s != null) {
                s.close();
            }
            engine.close();
            throw ex;
        }
        scheduler = s;
        warm = w;
        remote = r;
    }

    public InferenceEngine engine() {
        return engine;
    }

    public BatchScheduler scheduler() {
        return scheduler;
    }

    public WarmStore warm() {
        return warm;
    }

    public SessionStore sessions() {
        return sessions;
    }

    public HotTier hotTier() {
        return sessions.hotTier();
    }

    public synchronized boolean isOpen() {
        return !closed;
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        scheduler.close();
        sessions.close();
        if (remote != null) {
            remote.close();
        }
        warm.close();
        engine.close();
    }
}
