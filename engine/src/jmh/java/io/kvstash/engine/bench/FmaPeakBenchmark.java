package io.kvstash.engine.bench;

import io.kvstash.engine.kernel.Simd;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The ceiling the weight kernels are measured against: vector FMAs per microsecond on one thread,
 * sixteen independent accumulators in registers (enough to cover the FMA latency on every port),
 * no loads. A kernel's FMA count divided by its time, over this score, is the share of the peak it
 * reaches (e.g. {@code PanelMatrixBenchmark} at 16 tokens: rows × columns × 16 / lanes FMAs).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class FmaPeakBenchmark {
    private static final int ROUNDS = 4096;

    private final float[] in = new float[2 * Simd.FL];

    @Setup
    public void setup() {
        java.util.Arrays.fill(in, 0.999f);
    }

    /** One operation is one vector FMA ({@link Simd#FL} lanes). */
    @Benchmark
    @OperationsPerInvocation(ROUNDS * 16)
    public float fma() {
        FloatVector b = FloatVector.fromArray(Simd.F, in, 0);
        FloatVector c = FloatVector.fromArray(Simd.F, in, Simd.FL);
        FloatVector a0 = b, a1 = c, a2 = b, a3 = c, a4 = b, a5 = c, a6 = b, a7 = c;
        FloatVector a8 = b, a9 = c, a10 = b, a11 = c, a12 = b, a13 = c, a14 = b, a15 = c;
        for (int i = 0; i < ROUNDS; i++) {
            a0 = a0.fma(b, c);
            a1 = a1.fma(b, c);
            a2 = a2.fma(b, c);
            a3 = a3.fma(b, c);
            a4 = a4.fma(b, c);
            a5 = a5.fma(b, c);
            a6 = a6.fma(b, c);
            a7 = a7.fma(b, c);
            a8 = a8.fma(b, c);
            a9 = a9.fma(b, c);
            a10 = a10.fma(b, c);
            a11 = a11.fma(b, c);
            a12 = a12.fma(b, c);
            a13 = a13.fma(b, c);
            a14 = a14.fma(b, c);
            a15 = a15.fma(b, c);
        }
        return a0.add(a1).add(a2).add(a3).add(a4).add(a5).add(a6).add(a7)
                .add(a8).add(a9).add(a10).add(a11).add(a12).add(a13).add(a14).add(a15)
                .reduceLanes(VectorOperators.ADD);
    }
}
