package io.kvstash.engine.testing;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;

/** Locates the real models and reference data named by {@code KVSTASH_TEST_MODELS}; skips visibly when unset. */
public final class TestModels {
    public static final String ENV = "KVSTASH_TEST_MODELS";

    private TestModels() {
    }

    public static Path modelsDir() {
        String dir = System.getenv(ENV);
        assumeTrue(dir != null && !dir.isBlank(), ENV + " not set: skipping test that needs the real models");
        Path p = Path.of(dir);
        assumeTrue(Files.isDirectory(p), ENV + "=" + dir + " is not a directory: skipping");
        return p;
    }

    public static Path model(String file) {
        Path p = modelsDir().resolve(file);
        assumeTrue(Files.exists(p), p + " missing: skipping");
        return p;
    }

    public static Path reference(String file) {
        Path p = modelsDir().resolveSibling("reference").resolve(file);
        assumeTrue(Files.exists(p), p + " missing: skipping");
        return p;
    }

    public static Path data(String file) {
        Path p = modelsDir().resolveSibling("data").resolve(file);
        assumeTrue(Files.exists(p), p + " missing: skipping");
        return p;
    }
}
