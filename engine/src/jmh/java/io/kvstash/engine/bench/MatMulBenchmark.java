package io.kvstash.engine.bench;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.kernel.VectorMath;
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

/** Prefill's kernel: a batch of activation vectors (transposed) times every row, on one thread. */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class MatMulBenchmark {
    /** {@code model file:tensor}. */
    @Param({
        "stories15M-q8_0.gguf:blk.0.ffn_down.weight",
        "stories15M-q4_0.gguf:blk.0.ffn_up.weight",
        "stories15M-f16.gguf:blk.0.attn_q.weight",
    })
    public String tensor;

    /** Tokens in the batch. */
    @Param({"16", "64"})
    public int batch;

    private GgufFile file;
    private WeightMatrix w;
    private float[] xT;
    private float[] out;
    private float[] scratch;

    @Setup
    public void setup() {
        file = BenchModels.open(tensor);
        w = BenchModels.matrix(file, tensor);
        int nPad = WeightMatrix.paddedTokens(batch);
        xT = new float[w.cols * nPad];
        VectorMath.transpose(BenchModels.randomFloats(batch * w.cols, 42), batch, w.cols, xT, nPad);
        out = new float[batch * w.rows];
        scratch = new float[WeightMatrix.scratchSize(w.cols)];
    }

    @TearDown
    public void tearDown() {
        file.close();
    }

    @Benchmark
    public void matMul(Blackhole bh) {
        w.matMul(xT, batch, out, 0, w.rows, 0, w.rows, scratch);
        bh.consume(out);
    }
}
