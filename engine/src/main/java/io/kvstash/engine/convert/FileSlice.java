package io.kvstash.engine.convert;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Bytes {@code [offset, offset + length)} of {@code file}: a whole {@code model.bin}, or one of the
 * files packed into an emscripten {@code .data} file.
 */
public record FileSlice(Path file, long offset, long length) {
    public FileSlice {
        if (offset < 0 || length < 0 || offset > Long.MAX_VALUE - length) {
            throw new IllegalArgumentException(file + ": invalid byte range at " + offset + " of length " + length);
        }
    }

    /** All of {@code file}, however long it is when this is called. */
    public static FileSlice whole(Path file) throws IOException {
        return new FileSlice(file, 0, size(file));
    }

    public long end() {
        return offset + length;
    }

    /** Fails unless the file exists and holds the whole range. */
    void requireWithinFile() throws IOException {
        long size = size(file);
        if (end() > size) {
            throw new Llama2cFormatException(this + " lies outside the file, which has " + size + " bytes");
        }
    }

    private static long size(Path file) throws IOException {
        if (!Files.exists(file)) {
            throw new Llama2cFormatException(file + ": no such file");
        }
        if (!Files.isRegularFile(file)) {
            throw new Llama2cFormatException(file + ": not a regular file");
        }
        return Files.size(file);
    }

    @Override
    public String toString() {
        return file + " bytes [" + offset + ", " + end() + ")";
    }
}
