package io.kvstash.offload;

import io.kvstash.persistence.ChunkCodec;
import io.kvstash.persistence.ChunkHeader;
import io.lettuce.core.ClientOptions;
import io.lettuce.core.ConnectionFuture;
import io.lettuce.core.KeyValue;
import io.lettuce.core.RedisClient;
import io.lettuce.core.RedisFuture;
import io.lettuce.core.RedisURI;
import io.lettuce.core.SetArgs;
import io.lettuce.core.SocketOptions;
import io.lettuce.core.TimeoutOptions;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.codec.ByteArrayCodec;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

/**
 * The remote tier on Redis or Valkey, through Lettuce. One connection (Lettuce multiplexes it);
 * reads are one {@code MGET} per lookup, bounded by {@link Config#timeout()}; writes are
 * {@code SET key value PX ttl} from a bounded queue drained by one background thread, so a turn
 * never waits for Redis to store anything. A chunk read gets its time to live back ({@code PEXPIRE},
 * not awaited), so chunks in use, such as a shared prefix, do not expire under the replicas using them.
 *
 * <p>Failure handling: the first failure (connection refused, a timeout, a reset) makes the tier
 * stand aside for {@link Config#retryAfter()}: lookups in that time answer "missing" at once and
 * queued writes are dropped, so a Redis that is down or hanging costs at most one timeout per
 * retry period, not one per chunk. Commands are rejected at once, not queued, while the
 * connection is down.
 */
public final class RedisRemoteTier implements RemoteTier {
    private static final System.Logger LOG = System.getLogger(RedisRemoteTier.class.getName());
    private static final int WRITE_BATCH = 32;

    /**
     * @param url        {@code redis://[user:password@]host:port[/db]} (or {@code rediss://} for TLS)
     * @param ttl        how long a chunk stays in Redis after its write or its last read
     * @param queueCapacity chunks waiting to be written, at most; more are dropped
     * @param timeout    longest wait for one read, one write batch or one connection attempt
     * @param retryAfter how long the tier stands aside after a failure
     * @param keyPrefix  prepended to every Redis key (to share one Redis between deployments)
     */
    public record Config(String url, Duration ttl, int queueCapacity, Duration timeout, Duration retryAfter, String keyPrefix) {
        public Config {
            Objects.requireNonNull(url, "url");
            Objects.requireNonNull(ttl, "ttl");
            Objects.requireNonNull(timeout, "timeout");
            Objects.requireNonNull(retryAfter, "retryAfter");
            Objects.requireNonNull(keyPrefix, "keyPrefix");
            if (ttl.toMillis() < 1) {
                throw new IllegalArgumentException("ttl must be at least 1 ms, got " + ttl);
            }
            if (queueCapacity < 1) {
                throw new IllegalArgumentException("queue capacity must be at least 1, got " + queueCapacity);
            }
            if (timeout.toMillis() < 1) {
                throw new IllegalArgumentException("timeout must be at least 1 ms, got " + timeout);
            }
            if (retryAfter.isNegative()) {
                throw new IllegalArgumentException("retry-after must not be negative, got " + retryAfter);
            }
        }

        public static Config of(String url) {
            return new Config(url, Duration.ofHours(1), 256, Duration.ofMillis(250), Duration.ofSeconds(5), "kvstash:");
        }
    }

    private record Pending(ChunkKey key, ChunkHeader header, byte[] payload) {}

    private final Config config;
    private final RedisURI uri;
    private final RedisClient client;
    private final BlockingQueue<Pending> queue;
    private final AtomicInteger unfinished = new AtomicInteger();
    private final Thread writer;
    private final Object connecting = new Object();
    private volatile StatefulRedisConnection<byte[], byte[]> connection;
    private volatile long standAsideUntil = System.nanoTime();
    private volatile boolean failing;
    private volatile boolean closed;

    private final LongAdder hits = new LongAdder();
    private final LongAdder misses = new LongAdder();
    private final LongAdder errors = new LongAdder();
    private final LongAdder rejected = new LongAdder();
    private final LongAdder writes = new LongAdder();
    private final LongAdder writeErrors = new LongAdder();
    private final LongAdder drops = new LongAdder();

    /** Does not connect: the first lookup or write does (so a Redis that is down does not stop the service from starting). */
    public RedisRemoteTier(Config config) {
        this.config = Objects.requireNonNull(config, "config");
        this.uri = parse(config.url());
        uri.setTimeout(config.timeout());
        this.client = RedisClient.create(uri);
        client.setOptions(ClientOptions.builder()
                .autoReconnect(true)
                .disconnectedBehavior(ClientOptions.DisconnectedBehavior.REJECT_COMMANDS)
                .socketOptions(SocketOptions.builder().connectTimeout(config.timeout()).build())
                .timeoutOptions(TimeoutOptions.enabled(config.timeout()))
                .build());
        this.queue = new ArrayBlockingQueue<>(config.queueCapacity());
        this.writer = Thread.ofPlatform().daemon().name("kvstash-remote-writer").unstarted(this::writeLoop);
        writer.start();
    }

    /** The URL as Lettuce reads it; a malformed one is an {@link IllegalArgumentException} that does not echo a password. */
    public static RedisURI parse(String url) {
        try {
            return RedisURI.create(url);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("not a Redis URL (expected redis://host:port): " + e.getMessage());
        }
    }

    public Config config() {
        return config;
    }

    @Override
    public List<Optional<byte[]>> get(List<ChunkKey> keys, ChunkHeader expected) {
        List<Optional<byte[]>> out = new ArrayList<>(keys.size());
        if (keys.isEmpty()) {
            return out;
        }
        StatefulRedisConnection<byte[], byte[]> c = closed ? null : connected();
        if (c == null) {
            errors.add(keys.size());
            return missing(out, keys.size());
        }
        byte[][] redisKeys = new byte[keys.size()][];
        for (int i = 0; i < redisKeys.length; i++) {
            redisKeys[i] = redisKey(keys.get(i));
        }
        List<KeyValue<byte[], byte[]>> values;
        try {
            RedisFuture<List<KeyValue<byte[], byte[]>>> f = c.async().mget(redisKeys);
            values = f.get(config.timeout().toNanos(), TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            errors.add(keys.size());
            return missing(out, keys.size());
        } catch (Exception e) {
            failed("read", e);
            errors.add(keys.size());
            return missing(out, keys.size());
        }
        recovered();
        for (int i = 0; i < keys.size(); i++) {
            KeyValue<byte[], byte[]> kv = i < values.size() ? values.get(i) : null;
            if (kv == null || !kv.hasValue()) {
                misses.increment();
                out.add(Optional.empty());
                continue;
            }
            switch (ChunkCodec.decode(kv.getValue(), expected)) {
                case ChunkCodec.Valid v -> {
                    hits.increment();
                    out.add(Optional.of(v.payload()));
                    // A chunk in use stays: its time to live starts again (not awaited; a lost
                    // refresh only lets the chunk expire at its old time).
                    c.async().pexpire(redisKeys[i], config.ttl().toMillis());
                }
                case ChunkCodec.Rejected r -> {
                    rejected.increment();
                    LOG.log(System.Logger.Level.WARNING, "remote chunk " + keys.get(i) + " rejected (" + r.defect() + ": " + r.detail()
                            + "); treated as missing");
                    out.add(Optional.empty());
                }
            }
        }
        return out;
    }

    @Override
    public void put(ChunkKey key, ChunkHeader header, byte[] payload) {
        unfinished.incrementAndGet();
        if (closed || !available() || !queue.offer(new Pending(key, header, payload))) {
            unfinished.decrementAndGet();
            drops.increment();
        }
    }

    @Override
    public Stats stats() {
        return new Stats(hits.sum(), misses.sum(), errors.sum(), rejected.sum(), writes.sum(), writeErrors.sum(), drops.sum(),
                Math.max(0, unfinished.get()));
    }

    /** Waits until every chunk queued so far is written, dropped or failed; false if {@code timeout} passed first. */
    public boolean awaitWrites(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (unfinished.get() > 0) {
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            Thread.sleep(5);
        }
        return true;
    }

    private void writeLoop() {
        List<Pending> batch = new ArrayList<>(WRITE_BATCH);
        List<RedisFuture<String>> sent = new ArrayList<>(WRITE_BATCH);
        SetArgs px = SetArgs.Builder.px(config.ttl().toMillis());
        while (!closed || !queue.isEmpty()) {
            try {
                Pending first = queue.poll(100, TimeUnit.MILLISECONDS);
                if (first == null) {
                    continue;
                }
                batch.add(first);
                queue.drainTo(batch, WRITE_BATCH - 1);
                writeBatch(batch, sent, px);
            } catch (InterruptedException e) {
                break;
            } catch (RuntimeException e) {
                // Whatever went wrong, the writer stays alive: this batch is lost and counted.
                failed("write", e);
                writeErrors.add(batch.size());
            } finally {
                unfinished.addAndGet(-batch.size());
                batch.clear();
                sent.clear();
            }
        }
        // Whatever is left when the writer is told to stop is dropped.
        int left = queue.size();
        queue.clear();
        drops.add(left);
        unfinished.addAndGet(-left);
    }

    private void writeBatch(List<Pending> batch, List<RedisFuture<String>> sent, SetArgs px) throws InterruptedException {
        StatefulRedisConnection<byte[], byte[]> c = connected();
        if (c == null) {
            drops.add(batch.size());
            return;
        }
        try {
            for (Pending p : batch) {
                sent.add(c.async().set(redisKey(p.key()), ChunkCodec.encode(p.header(), p.payload()), px));
            }
        } catch (RuntimeException e) {
            // Not sent at all (the connection went away under us): the whole batch failed.
            failed("write", e);
            writeErrors.add(batch.size());
            return;
        }
        long deadline = System.nanoTime() + config.timeout().toNanos();
        for (int i = 0; i < sent.size(); i++) {
            try {
                sent.get(i).get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                writes.increment();
            } catch (InterruptedException e) {
                writeErrors.add(sent.size() - i);
                throw e;
            } catch (Exception e) {
                failed("write", e);
                writeErrors.add(sent.size() - i);
                return;
            }
        }
        recovered();
    }

    private byte[] redisKey(ChunkKey key) {
        return (config.keyPrefix() + "chunk:" + HexFormat.of().formatHex(key.bytes())).getBytes(StandardCharsets.UTF_8);
    }

    private boolean available() {
        return System.nanoTime() - standAsideUntil >= 0;
    }

    /** The open connection, connecting if there is none; null while standing aside or when connecting fails. */
    private StatefulRedisConnection<byte[], byte[]> connected() {
        StatefulRedisConnection<byte[], byte[]> c = connection;
        if (c != null && c.isOpen()) {
            return available() ? c : null;
        }
        synchronized (connecting) {
            c = connection;
            if (c != null && c.isOpen()) {
                return available() ? c : null;
            }
            if (!available() || closed) {
                return null;
            }
            ConnectionFuture<StatefulRedisConnection<byte[], byte[]>> f;
            try {
                f = client.connectAsync(ByteArrayCodec.INSTANCE, uri);
            } catch (RuntimeException e) {
                failed("connect", e);
                return null;
            }
            try {
                c = f.get(config.timeout().toNanos(), TimeUnit.NANOSECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                f.thenAccept(StatefulRedisConnection::closeAsync);
                return null;
            } catch (Exception e) {
                // A connection that completes after we gave up is closed, not leaked.
                f.thenAccept(StatefulRedisConnection::closeAsync);
                failed("connect", e);
                return null;
            }
            if (c != connection && connection != null) {
                connection.closeAsync();
            }
            connection = c;
            return c;
        }
    }

    private void failed(String what, Exception e) {
        standAsideUntil = System.nanoTime() + config.retryAfter().toNanos();
        if (!failing) {
            failing = true;
            Throwable cause = e instanceof java.util.concurrent.ExecutionException && e.getCause() != null ? e.getCause() : e;
            LOG.log(System.Logger.Level.WARNING, "remote tier " + redacted() + ": " + what + " failed (" + cause
                    + "); standing aside for " + config.retryAfter() + " at a time until it answers again");
        }
    }

    private void recovered() {
        if (failing) {
            failing = false;
            LOG.log(System.Logger.Level.INFO, "remote tier " + redacted() + " answers again");
        }
    }

    private String redacted() {
        return uri.getHost() + ":" + uri.getPort();
    }

    private static List<Optional<byte[]>> missing(List<Optional<byte[]>> out, int n) {
        for (int i = 0; i < n; i++) {
            out.add(Optional.empty());
        }
        return out;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        try {
            awaitWrites(Duration.ofSeconds(2));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        closed = true;
        writer.interrupt();
        try {
            writer.join(Duration.ofSeconds(2));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        synchronized (connecting) {
            if (connection != null) {
                connection.close();
                connection = null;
            }
        }
        client.shutdown(Duration.ZERO, Duration.ofSeconds(2));
    }

    @Override
    public String toString() {
        return "RedisRemoteTier[" + redacted() + ", ttl " + config.ttl() + ", queue " + config.queueCapacity() + "]";
    }
}
