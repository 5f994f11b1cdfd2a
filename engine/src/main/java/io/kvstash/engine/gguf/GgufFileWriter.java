package io.kvstash.engine.gguf;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes a GGUF v3 file in llama.cpp's layout: header, metadata, tensor infos, padding to
 * {@value GgufFile#DEFAULT_ALIGNMENT} bytes, then each tensor's data padded to the same alignment.
 *
 * <p>Metadata is encoded when it is put (it is small: a 32,000-token vocabulary is about 400 KB);
 * tensor data is streamed from each tensor's {@link TensorData} into the file when it is written,
 * so a converter never holds the weights in memory. {@link #write} goes through a temporary file
 * beside the target and an atomic move: the target is either the complete file or untouched.
 *
 * <p>Everything that would make the file unreadable by {@link GgufFile} is refused when it is put
 * (duplicate keys or tensor names, bad dimensions, rows that are not whole blocks), and a tensor
 * source that writes more or fewer bytes than its shape needs fails the write.
 */
public final class GgufFileWriter {
    private static final int VERSION = 3;
    private static final int ALIGNMENT = GgufFile.DEFAULT_ALIGNMENT;
    private static final int MAX_DIMS = 4;
    private static final java.security.SecureRandom RANDOM = new java.security.SecureRandom();

    /** Writes one tensor's bytes, exactly {@link GgmlType#bytesFor} of its element count, to {@code out}. */
    @FunctionalInterface
    public interface TensorData {
        void writeTo(WritableByteChannel out) throws IOException;

        /** {@code length} bytes of {@code source} from {@code position}, copied by the channel (no heap copy). */
        static TensorData fileRange(FileChannel source, long position, long length) {
            return out -> {
                long done = 0;
                while (done < length) {
                    long n = source.transferTo(position + done, length - done, out);
                    if (n <= 0) {
                        // transferTo returns 0 at the end of the source: the file shrank under us.
                        throw new IOException("source ended after " + (position + done) + " bytes, " + (length - done)
                                + " bytes of tensor data short (was the file changed while it was read?)");
                    }
                    done += n;
                }
            };
        }

        /** The bytes of {@code segment} as they are (already in the tensor's encoding, little-endian). */
        static TensorData segment(MemorySegment segment) {
            return out -> writeFully(out, segment.asByteBuffer());
        }

        /** {@code values} as little-endian F32. */
        static TensorData floats(float[] values) {
            return out -> {
                ByteBuffer b = ByteBuffer.allocate(Math.min(values.length, 1 << 16) * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
                for (int i = 0; i < values.length; ) {
                    b.clear();
                    int n = Math.min(values.length - i, b.capacity() / Float.BYTES);
                    b.asFloatBuffer().put(values, i, n);
                    b.limit(n * Float.BYTES);
                    writeFully(out, b);
                    i += n;
                }
            };
        }
    }

    private record Tensor(String name, GgmlType type, long[] dims, long bytes, TensorData data) {}

    private final Map<String, byte[]> metadata = new LinkedHashMap<>();
    private final List<Tensor> tensors = new ArrayList<>();
    private final Set<String> tensorNames = new HashSet<>();

    // ---- metadata -----------------------------------------------------------------------------

    public GgufFileWriter putString(String key, String value) {
        return put(key, GgufValueType.STRING, new Encoder().string(value));
    }

    /** An unsigned 32-bit value, given as a {@code long} in [0, 2^32). */
    public GgufFileWriter putUint32(String key, long value) {
        if (value < 0 || value > 0xFFFF_FFFFL) {
            throw new IllegalArgumentException("metadata '" + key + "': " + value + " does not fit an unsigned 32-bit integer");
        }
        return put(key, GgufValueType.UINT32, new Encoder().i32((int) value));
    }

    public GgufFileWriter putInt32(String key, int value) {
        return put(key, GgufValueType.INT32, new Encoder().i32(value));
    }

    public GgufFileWriter putUint64(String key, long value) {
        if (value < 0) {
            throw new IllegalArgumentException("metadata '" + key + "': " + value + " is negative");
        }
        return put(key, GgufValueType.UINT64, new Encoder().i64(value));
    }

    public GgufFileWriter putFloat32(String key, float value) {
        return put(key, GgufValueType.FLOAT32, new Encoder().i32(Float.floatToRawIntBits(value)));
    }

    public GgufFileWriter putBool(String key, boolean value) {
        return put(key, GgufValueType.BOOL, new Encoder().u8(value ? 1 : 0));
    }

    public GgufFileWriter putStringArray(String key, List<String> values) {
        Encoder e = new Encoder().i32(GgufValueType.STRING.ordinal()).i64(values.size());
        for (String v : values) {
            e.string(v);
        }
        return put(key, GgufValueType.ARRAY, e);
    }

    public GgufFileWriter putFloat32Array(String key, float[] values) {
        Encoder e = new Encoder().i32(GgufValueType.FLOAT32.ordinal()).i64(values.length);
        for (float v : values) {
            e.i32(Float.floatToRawIntBits(v));
        }
        return put(key, GgufValueType.ARRAY, e);
    }

    public GgufFileWriter putInt32Array(String key, int[] values) {
        Encoder e = new Encoder().i32(GgufValueType.INT32.ordinal()).i64(values.length);
        for (int v : values) {
            e.i32(v);
        }
        return put(key, GgufValueType.ARRAY, e);
    }

    private GgufFileWriter put(String key, GgufValueType type, Encoder value) {
        if (key == null || key.isEmpty()) {
            throw new IllegalArgumentException("metadata key must not be empty");
        }
        if (metadata.containsKey(key)) {
            throw new IllegalArgumentException("metadata '" + key + "' put twice");
        }
        if (key.equals("general.alignment")) {
            throw new IllegalArgumentException("general.alignment is fixed at " + ALIGNMENT + " by this writer");
        }
        Encoder entry = new Encoder().string(key).i32(type.ordinal());
        entry.bytes(value.toByteArray());
        metadata.put(key, entry.toByteArray());
        return this;
    }

    // ---- tensors ------------------------------------------------------------------------------

    /**
     * Declares tensor {@code name} of {@code type} with {@code dims} in GGML order (innermost
     * first); {@code data} writes its bytes when the file is written.
     */
    public GgufFileWriter addTensor(String name, GgmlType type, long[] dims, TensorData data) {
        if (name == null || name.isEmpty()) {
            throw new IllegalArgumentException("tensor name must not be empty");
        }
        if (tensorNames.contains(name)) {
            throw new IllegalArgumentException("tensor '" + name + "' added twice");
        }
        if (dims.length < 1 || dims.length > MAX_DIMS) {
            throw new IllegalArgumentException("tensor '" + name + "' has " + dims.length + " dimensions (allowed: 1 to " + MAX_DIMS + ")");
        }
        long elements = 1;
        for (int d = 0; d < dims.length; d++) {
            if (dims[d] <= 0) {
                throw new IllegalArgumentException("tensor '" + name + "' dimension " + d + " is " + dims[d] + ", must be positive");
            }
            elements = Math.multiplyExact(elements, dims[d]);
        }
        if (dims[0] % type.blockSize != 0) {
            throw new IllegalArgumentException("tensor '" + name + "' of type " + type + " has row length " + dims[0]
                    + ", not a multiple of its block size " + type.blockSize);
        }
        tensorNames.add(name);
        tensors.add(new Tensor(name, type, dims.clone(), type.bytesFor(elements), data));
        return this;
    }

    // ---- output -------------------------------------------------------------------------------

    /**
     * Writes the file to {@code target} (replacing it) through a temporary file in the same
     * directory, synced before the atomic move. On failure the temporary file is deleted and
     * {@code target} is left as it was. Returns the file's size.
     */
    public long write(Path target) throws IOException {
        Path dir = target.toAbsolutePath().getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new IOException("cannot write " + target + ": directory " + dir + " does not exist");
        }
        // Not Files.createTempFile: its owner-only permissions would stay on the model file; this
        // one gets the process's usual permissions, like any file the user writes.
        Path temp = dir.resolve("." + target.getFileName() + "." + Long.toHexString(RANDOM.nextLong()) + ".part");
        FileChannel channel = FileChannel.open(temp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
        try {
            long size;
            try (FileChannel out = channel) {
                writeTo(out);
                out.force(true);
                size = out.size();
            }
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            return size;
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(temp);
            throw e;
        }
    }

    private void writeTo(FileChannel out) throws IOException {
        Encoder header = new Encoder();
        header.i32(GgufFile.MAGIC).i32(VERSION).i64(tensors.size()).i64(metadata.size());
        for (byte[] entry : metadata.values()) {
            header.bytes(entry);
        }
        long offset = 0;
        for (Tensor t : tensors) {
            header.string(t.name).i32(t.dims.length);
            for (long d : t.dims) {
                header.i64(d);
            }
            header.i32(t.type.id).i64(offset);
            offset = alignUp(offset + t.bytes);
        }
        writeFully(out, ByteBuffer.wrap(header.toByteArray()));
        pad(out);
        for (Tensor t : tensors) {
            long start = out.position();
            t.data.writeTo(out);
            long written = out.position() - start;
            if (written != t.bytes) {
                throw new IllegalStateException("tensor '" + t.name + "' " + t.type + " " + java.util.Arrays.toString(t.dims)
                        + " needs " + t.bytes + " bytes but its source wrote " + written);
            }
            pad(out);
        }
    }

    private static void pad(FileChannel out) throws IOException {
        int n = (int) (alignUp(out.position()) - out.position());
        if (n > 0) {
            writeFully(out, ByteBuffer.allocate(n));
        }
    }

    private static long alignUp(long x) {
        return (x + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    }

    private static void writeFully(WritableByteChannel out, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            out.write(b);
        }
    }

    /** Little-endian bytes of metadata values and header fields. */
    private static final class Encoder {
        private byte[] buf = new byte[64];
        private int size;

        private void ensure(int n) {
            if (size + n > buf.length) {
                buf = java.util.Arrays.copyOf(buf, Math.max(buf.length * 2, size + n));
            }
        }

        Encoder u8(int v) {
            ensure(1);
            buf[size++] = (byte) v;
            return this;
        }

        Encoder i32(int v) {
            ensure(4);
            for (int i = 0; i < 4; i++) {
                buf[size++] = (byte) (v >>> (8 * i));
            }
            return this;
        }

        Encoder i64(long v) {
            ensure(8);
            for (int i = 0; i < 8; i++) {
                buf[size++] = (byte) (v >>> (8 * i));
            }
            return this;
        }

        Encoder bytes(byte[] b) {
            ensure(b.length);
            System.arraycopy(b, 0, buf, size, b.length);
            size += b.length;
            return this;
        }

        Encoder string(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            return i64(b.length).bytes(b);
        }

        byte[] toByteArray() {
            return java.util.Arrays.copyOf(buf, size);
        }
    }
}
