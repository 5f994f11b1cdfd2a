package io.kvstash.engine.bench;

import io.kvstash.engine.kv.KvChunk;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.kv.SlabKvStore;
import java.util.Arrays;
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
 * Decode attention over one full chunk of one layer: for every KV head, the scores of a query
 * against the chunk's 64 keys, then the weighted sum of its 64 values. The softmax in between is
 * not the chunk's work and is left out (the weights are fixed).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class AttentionBenchmark {
    @Param({"F32", "F16", "Q8", "KIVI4", "KIVI2"})
    public KvFormat format;

    /** 48: stories15M (6 KV heads); 128: the Llama-family size. */
    @Param({"48", "128"})
    public int headDim;

    private static final int KV_HEADS = 6;

    private SlabKvStore store;
    private KvChunk chunk;
    private int tokens;
    private float[] q;
    private float[] scores;
    private float[] weights;
    private float[] out;
    private float[] scratch;

    @Setup
    public void setup() {
        KvGeometry g = new KvGeometry(1, KV_HEADS, headDim, KvGeometry.DEFAULT_CHUNK_TOKENS, format);
        store = new SlabKvStore(g, Long.MAX_VALUE);
        chunk = store.allocate();
        tokens = g.chunkTokens();
        for (int t = 0; t < tokens; t++) {
            chunk.write(0, t, BenchModels.randomFloats(g.kvDim(), 2 * t), 0, BenchModels.randomFloats(g.kvDim(), 2 * t + 1), 0);
        }
        chunk = store.seal(chunk);
        scratch = new float[KvChunk.scratchFloats(g)];
        q = BenchModels.randomFloats(g.kvDim(), -1);
        scores = new float[tokens];
        weights = new float[tokens];
        Arrays.fill(weights, 1f / tokens);
        out = new float[g.kvDim()];
    }

    @TearDown
    public void tearDown() {
        store.close();
    }

    @Benchmark
    public void keyScores(Blackhole bh) {
        float scale = (float) (1.0 / Math.sqrt(headDim));
        for (int h = 0; h < KV_HEADS; h++) {
            chunk.keyScores(0, h, q, h * headDim, tokens, scale, scores, 0, scratch);
            bh.consume(scores);
        }
    }

    @Benchmark
    public void accumulateValues(Blackhole bh) {
        Arrays.fill(out, 0f);
        for (int h = 0; h < KV_HEADS; h++) {
            chunk.accumulateValues(0, h, weights, 0, tokens, out, h * headDim, scratch);
        }
        bh.consume(out);
    }

    /** Both halves, as one head's attention over the chunk runs them. */
    @Benchmark
    public void scoresAndValues(Blackhole bh) {
        float scale = (float) (1.0 / Math.sqrt(headDim));
        Arrays.fill(out, 0f);
        for (int h = 0; h < KV_HEADS; h++) {
            chunk.keyScores(0, h, q, h * headDim, tokens, scale, scores, 0, scratch);
            chunk.accumulateValues(0, h, scores, 0, tokens, out, h * headDim, scratch);
        }
        bh.consume(out);
    }
}
