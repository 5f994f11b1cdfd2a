package io.kvstash.engine.bench;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.kernel.WeightMatrix;
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

/** Decode's kernel: one activation vector times every row of a weight matrix, on one thread. */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class MatVecBenchmark {
    /** {@code model file:tensor}. */
    @Param({
        "stories15M-q8_0.gguf:output.weight",
        "stories15M-q8_0.gguf:blk.0.ffn_down.weight",
        "stories15M-q4_0.gguf:blk.0.ffn_up.weight",
        "stories15M-f16.gguf:blk.0.attn_q.weight",
    })
    public String tensor;

    private GgufFile file;
    private WeightMatrix w;
    private float[] x;
    private float[] out;

    @Setup
    public void setup() {
        file = BenchModels.open(tensor);
        w = BenchModels.matrix(file, tensor);
        x = BenchModels.randomFloats(w.cols, 42);
        out = new float[w.rows];
    }

    @TearDown
    public void tearDown() {
        file.close();
    }

    @Benchmark
    public void matVec(Blackhole bh) {
        w.matVec(x, 0, out, 0, 0, w.rows);
        bh.consume(out);
    }
}
