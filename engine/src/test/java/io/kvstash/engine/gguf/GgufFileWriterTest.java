package io.kvstash.engine.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.gguf.GgufFileWriter.TensorData;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The streaming writer's files must read back through {@link GgufFile} exactly as they were put. */
class GgufFileWriterTest {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @TempDir
    Path dir;

    @Test
    void shouldReadBackEveryValueAndTensorWhenWritten() throws IOException {
        float[] matrix = new float[3 * 5];
        for (int i = 0; i < matrix.length; i++) matrix[i] = i * 0.5f - 3;
        Path source = Files.write(dir.resolve("source.bin"), new byte[] {9, 9, 9, 0, 0, (byte) 0x80, 0x3F, 7});
        byte[] f16 = GgufWriter.f16Bytes(new float[] {1, -2, 0.5f, 65504});
        Path out = dir.resolve("m.gguf");
        long size;
        try (FileChannel src = FileChannel.open(source)) {
            size = new GgufFileWriter()
                    .putString("general.architecture", "llama")
                    .putUint32("a.u32", 0xFFFF_FFFFL)
                    .putInt32("a.i32", -7)
                    .putUint64("a.u64", 1L << 40)
                    .putFloat32("a.f32", 1e-5f)
                    .putBool("a.bool", true)
                    .putStringArray("a.strings", List.of("<unk>", "▁Once", ""))
                    .putFloat32Array("a.floats", new float[] {0, -1e9f, 2.5f})
                    .putInt32Array("a.ints", new int[] {2, 3, 6})
                    .addTensor("m", GgmlType.F32, new long[] {5, 3}, TensorData.floats(matrix))
                    .addTensor("one", GgmlType.F32, new long[] {1}, TensorData.fileRange(src, 3, 4))
                    .addTensor("h", GgmlType.F16, new long[] {4}, TensorData.segment(MemorySegment.ofArray(f16)))
                    .write(out);
        }
        assertEquals(Files.size(out), size);
        try (GgufFile f = GgufFile.open(out)) {
            assertEquals(3, f.version());
            assertEquals("llama", f.getString("general.architecture"));
            assertEquals(0xFFFF_FFFFL, f.getLong("a.u32"));
            assertEquals(GgufValueType.UINT32, f.metadataType("a.u32"));
            assertEquals(-7, f.getInt("a.i32"));
            assertEquals(1L << 40, f.getLong("a.u64"));
            assertEquals(1e-5f, f.getFloat("a.f32"));
            assertTrue(f.getBoolean("a.bool", false));
            assertArrayEquals(new String[] {"<unk>", "▁Once", ""}, f.getStringArray("a.strings"));
            assertArrayEquals(new float[] {0, -1e9f, 2.5f}, f.getFloatArray("a.floats"));
            assertArrayEquals(new int[] {2, 3, 6}, f.getIntArray("a.ints"));
            assertEquals(List.of("m", "one", "h"), List.copyOf(f.tensors().keySet()));
            GgufTensor m = f.requireTensor("m");
            assertArrayEquals(new long[] {5, 3}, m.dims());
            assertArrayEquals(matrix, m.data().toArray(F32));
            assertArrayEquals(new float[] {1f}, f.requireTensor("one").data().toArray(F32), "bytes 3..7 of the source: 1.0f");
            assertArrayEquals(f16, f.requireTensor("h").data().toArray(ValueLayout.JAVA_BYTE));
            for (GgufTensor t : f.tensors().values()) {
                assertEquals(0, (f.dataOffset() + t.offset()) % 32, t.name() + " aligned");
            }
        }
    }

    @Test
    void shouldRefuseWhatGgufFileWouldRejectWhenPut() {
        GgufFileWriter w = new GgufFileWriter().putString("k", "v").addTensor("t", GgmlType.F32, new long[] {2}, TensorData.floats(new float[2]));
        assertMessage(assertThrows(IllegalArgumentException.class, () -> w.putUint32("k", 1)), "metadata 'k' put twice");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> w.addTensor("t", GgmlType.F32, new long[] {2}, out -> {})),
                "tensor 't' added twice");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> w.addTensor("u", GgmlType.F32, new long[] {2, 0}, out -> {})),
                "dimension 1 is 0");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> w.addTensor("u", GgmlType.F32, new long[5], out -> {})),
                "5 dimensions");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> w.addTensor("q", GgmlType.Q8_0, new long[] {48}, out -> {})),
                "row length 48, not a multiple of its block size 32");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> w.putUint32("big", 1L << 32)), "unsigned 32-bit");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> w.putUint32("general.alignment", 64)), "fixed at 32");
    }

    @Test
    void shouldFailAndKeepTheTargetWhenATensorSourceWritesTheWrongAmount() throws IOException {
        Path out = Files.writeString(dir.resolve("keep.gguf"), "previous");
        GgufFileWriter w = new GgufFileWriter().addTensor("short", GgmlType.F32, new long[] {4}, TensorData.floats(new float[3]));
        assertMessage(assertThrows(IllegalStateException.class, () -> w.write(out)), "tensor 'short' F32 [4] needs 16 bytes but its source wrote 12");
        assertEquals("previous", Files.readString(out));
        assertNoPartFiles();

        Path source = Files.write(dir.resolve("src.bin"), new byte[8]);
        try (FileChannel src = FileChannel.open(source)) {
            GgufFileWriter w2 = new GgufFileWriter().addTensor("t", GgmlType.F32, new long[] {4}, TensorData.fileRange(src, 0, 16));
            assertMessage(assertThrows(IOException.class, () -> w2.write(out)), "8 bytes of tensor data short");
        }
        assertEquals("previous", Files.readString(out));
        assertNoPartFiles();
        assertMessage(assertThrows(IOException.class, () -> w.write(dir.resolve("missing-dir/x.gguf"))), "does not exist");
    }

    private void assertNoPartFiles() throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            assertFalse(files.anyMatch(p -> p.getFileName().toString().endsWith(".part")), "temporary file left behind");
        }
    }

    private static void assertMessage(Exception e, String fragment) {
        assertTrue(e.getMessage().contains(fragment), "message lacks '" + fragment + "': " + e.getMessage());
    }
}
