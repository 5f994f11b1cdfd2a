package io.kvstash.engine.bench;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.kernel.PanelMatrix;
import java.lang.foreign.Arena;
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
 * The forward pass's product on one thread: {@code tokens} activation vectors times every row of
 * a packed weight matrix. tokens = 1 is decode of one sequence; 4, 16, 64 are batched decode and
 * prefill. Divide by tokens for the cost per token.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class PanelMatrixBenchmark {
    /** {@code model file:tensor}. */
    @Param({
        "stories15M-q8_0.gguf:output.weight",
        "stories15M-q8_0.gguf:blk.0.ffn_down.weight",
        "stories15M-q4_k_m.gguf:blk.0.ffn_up.weight",
        "stories15M-f16.gguf:blk.0.attn_q.weight",
    })
    public String tensor;

    @Param({"1", "4", "16", "64"})
    public int tokens;

    /**
     * Rows per {@code multiply} call: 0 for the whole matrix in one call; 32 for the pieces the
     * compute pool hands out for a batch at the finest grain ({@link PanelMatrix#rowGrain}), each
     * of which ends in a half tile.
     */
    @Param({"0"})
    public int piece;

    private GgufFile file;
    private Arena arena;
    private PanelMatrix w;
    private float[] x;
    private float[] out;
    private float[] scratch;

    @Setup
    public void setup() {
        file = BenchModels.open(tensor);
        arena = Arena.ofShared();
        w = PanelMatrix.pack(BenchModels.matrix(file, tensor), arena);
        x = BenchModels.randomFloats(tokens * w.cols, 42);
        out = new float[tokens * w.rows];
        scratch = new float[PanelMatrix.scratchFloats(w.cols)];
    }

    @TearDown
    public void tearDown() {
        arena.close();
        file.close();
    }

    @Benchmark
    public void multiply(Blackhole bh) {
        if (piece == 0) {
            w.multiply(x, tokens, out, 0, w.rows, 0, w.rows, scratch);
        } else {
            for (int r = 0; r < w.rows; r += piece) {
                w.multiply(x, tokens, out, 0, w.rows, r, Math.min(w.rows, r + piece), scratch);
            }
        }
        bh.consume(out);
    }
}
