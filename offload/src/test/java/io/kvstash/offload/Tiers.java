package io.kvstash.offload;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kvstash.engine.EngineOptions;
import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.scheduler.BatchScheduler;
import io.kvstash.persistence.WarmStore;
import io.kvstash.persistence.WarmStoreConfig;
import java.nio.file.Files;
import java.nio.file.Path;

/** An engine on a hot tier, a scheduler, a warm store and the session layer over them, closed in reverse order. */
final class Tiers implements AutoCloseable {
    final InferenceEngine engine;
    final BatchScheduler scheduler;
    final WarmStore warm;
    final SessionStore sessions;

    Tiers(Path model, KvFormat format, Path dir, long hotBytes, SessionStore.Config config) {
        this(model, format, dir, hotBytes, config, null, 1024);
    }

    /** With a shared remote tier (not closed here: several tiers may share one). */
    Tiers(Path model, KvFormat format, Path dir, long hotBytes, SessionStore.Config config, RemoteTier remote) {
        this(model, format, dir, hotBytes, config, remote, 1024);
    }

    Tiers(Path model, KvFormat format, Path dir, long hotBytes, SessionStore.Config config, int contextLength) {
        this(model, format, dir, hotBytes, config, null, contextLength);
    }

    Tiers(Path model, KvFormat format, Path dir, long hotBytes, SessionStore.Config config, RemoteTier remote, int contextLength) {
        this(model, format, dir, hotBytes, config, remote, contextLength, io.kvstash.engine.model.SparseAttention.OFF);
    }

    /** With sparse decode set up as {@code sparse} says. */
    Tiers(Path model, KvFormat format, Path dir, long hotBytes, SessionStore.Config config, int contextLength,
          io.kvstash.engine.model.SparseAttention sparse) {
        this(model, format, dir, hotBytes, config, null, contextLength, sparse);
    }

    Tiers(Path model, KvFormat format, Path dir, long hotBytes, SessionStore.Config config, RemoteTier remote, int contextLength,
          io.kvstash.engine.model.SparseAttention sparse) {
        engine = InferenceEngine.open(model, EngineOptions.defaults().withThreads(2).withKvFormat(format).withContextLength(contextLength)
                        .withSparse(sparse), g -> new HotTier(g, hotBytes));
        BatchScheduler s = null;
        WarmStore w = null;
        try {
            s = new BatchScheduler(engine);
            w = WarmStore.open(WarmStoreConfig.defaults(dir));
            sessions = SessionStore.open(engine, s, w, remote, config);
        } catch (RuntimeException e) {
            if (w != null) {
                w.close();
            }
            if (s != null) {
                s.close();
            }
            engine.close();
            throw e;
        }
        scheduler = s;
        warm = w;
    }

    HotTier hot() {
        return (HotTier) engine.kvStore();
    }

    static Path model(String file) {
        String dir = System.getenv("KVSTASH_TEST_MODELS");
        assumeTrue(dir != null && !dir.isBlank(), "KVSTASH_TEST_MODELS not set: skipping test that needs the real models");
        Path p = Path.of(dir).resolve(file);
        assumeTrue(Files.exists(p), p + " missing: skipping");
        return p;
    }

    @Override
    public void close() {
        sessions.close();
        scheduler.close();
        warm.close();
        engine.close();
    }
}
