package io.kvstash.engine.bench;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.kernel.Simd;
import io.kvstash.engine.kernel.WeightMatrix;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/**
 * The real model files the benchmarks take their weights from: the folder named by the system
 * property {@code kvstash.test.models}, else {@code $KVSTASH_TEST_MODELS}, else
 * {@code ../shared/models} (relative to the directory the benchmarks run in).
 */
final class BenchModels {
    static final String PROPERTY = "kvstash.test.models";
    static final String ENV = "KVSTASH_TEST_MODELS";

    private BenchModels() {
    }

    static Path dir() {
        String dir = System.getProperty(PROPERTY);
        if (dir == null || dir.isBlank()) {
            dir = System.getenv(ENV);
        }
        if (dir == null || dir.isBlank()) {
            dir = "../shared/models";
        }
        Path p = Path.of(dir).toAbsolutePath().normalize();
        if (!Files.isDirectory(p)) {
            throw new IllegalStateException(p + " is not a directory: set -D" + PROPERTY + " or " + ENV + " to the folder with stories15M-*.gguf");
        }
        return p;
    }

    /** Opens {@code spec} = {@code "file.gguf:tensor.name"}; the caller closes the file. */
    static GgufFile open(String spec) {
        return GgufFile.open(dir().resolve(spec.substring(0, spec.indexOf(':'))));
    }

    static WeightMatrix matrix(GgufFile file, String spec) {
        WeightMatrix w = WeightMatrix.of(file.requireTensor(spec.substring(spec.indexOf(':') + 1)));
        System.out.printf("[%s: %d x %d %s, %d weight bytes; kernels %s] ", spec, w.rows, w.cols, w.type(),
                w.type().bytesFor((long) w.rows * w.cols), Simd.describe());
        return w;
    }

    static float[] randomFloats(int n, long seed) {
        Random rnd = new Random(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        return x;
    }
}
