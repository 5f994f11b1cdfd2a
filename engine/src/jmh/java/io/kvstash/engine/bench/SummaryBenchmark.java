package io.kvstash.engine.bench;

import io.kvstash.engine.kv.KvChunk;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.kv.SlabKvStore;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

/**
 * The key summary of one sealed stories15M-shaped chunk (6 layers, 6 KV heads, head dimension 48,
 * 64 tokens): {@code summarise} as sparse decode computes it, against the former way of reading
 * every channel back through the scoring kernel with a one-hot query.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class SummaryBenchmark {
    @Param({"F16", "Q8", "KIVI4", "KIVI2"})
    public KvFormat format;

    @Param({"16", "64"})
    public int summaryTokens;

    private static final int LAYERS = 6;
    private static final int KV_HEADS = 6;
    private static final int HEAD_DIM = 48;

    private SlabKvStore store;
    private KvChunk chunk;
    private float[] keys;
    private float[] oneHot;
    private float[] column;
    private float[] scratch;

    @Setup
    public void setup() {
        KvGeometry g = new KvGeometry(LAYERS, KV_HEADS, HEAD_DIM, KvGeometry.DEFAULT_CHUNK_TOKENS, format);
        store = new SlabKvStore(g, Long.MAX_VALUE);
        chunk = store.allocate();
        for (int l = 0; l < LAYERS; l++) {
            for (int t = 0; t < g.chunkTokens(); t++) {
                chunk.write(l, t, BenchModels.randomFloats(g.kvDim(), 2 * t + 1000 * l), 0,
                        BenchModels.randomFloats(g.kvDim(), 2 * t + 1 + 1000 * l), 0);
            }
        }
        chunk = store.seal(chunk);
        keys = new float[KvChunk.summaryScratchFloats(g)];
        oneHot = new float[HEAD_DIM];
        column = new float[g.chunkTokens()];
        scratch = new float[KvChunk.scratchFloats(g)];
    }

    @TearDown
    public void tearDown() {
        store.close();
    }

    /** Hands the chunk back and out again (the store drops its summary), then summarises it. */
    @Benchmark
    public void summarise(Blackhole bh) {
        store.release(chunk);
        chunk = store.allocateSealed();
        chunk.summarise(summaryTokens, keys);
        bh.consume(chunk.summaryTokens());
    }

    /** The former summary: per layer, head and channel one scoring pass with a one-hot query, then min and max. */
    @Benchmark
    public void oneHotReadBack(Blackhole bh) {
        int c = KvGeometry.DEFAULT_CHUNK_TOKENS;
        float acc = 0f;
        for (int l = 0; l < LAYERS; l++) {
            for (int h = 0; h < KV_HEADS; h++) {
                for (int ch = 0; ch < HEAD_DIM; ch++) {
                    oneHot[ch] = 1f;
                    chunk.keyScores(l, h, oneHot, 0, c, 1f, column, 0, scratch);
                    oneHot[ch] = 0f;
                    float min = Float.POSITIVE_INFINITY;
                    float max = Float.NEGATIVE_INFINITY;
                    for (float x : column) {
                        min = Math.min(min, x);
                        max = Math.max(max, x);
                    }
                    acc += max - min;
                }
            }
        }
        bh.consume(acc);
    }
}
