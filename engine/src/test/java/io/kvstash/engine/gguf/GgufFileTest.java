package io.kvstash.engine.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

final class GgufFileTest {
    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @TempDir
    Path dir;
    private int files;

    // ---- round trips --------------------------------------------------------------------------

    @Test
    void shouldRoundTripEveryScalarTypeWhenWrittenAndRead() {
        GgufWriter w = new GgufWriter()
                .addUint8("u8", 255)
                .addInt8("i8", -128)
                .addUint16("u16", 65535)
                .addInt16("i16", -32768)
                .addUint32("u32", 0xFFFF_FFFFL)
                .addInt32("i32", Integer.MIN_VALUE)
                .addUint64("u64", -1L) // 2^64 - 1: unsigned 64-bit values keep their bits in a long
                .addInt64("i64", Long.MIN_VALUE)
                .addFloat32("f32", -0.0f)
                .addFloat32("f32max", Float.MAX_VALUE)
                .addFloat64("f64", Math.PI)
                .addFloat64("f64min", Double.MIN_VALUE)
                .addBool("yes", true)
                .addBool("no", false)
                .addString("s", "héllo ▁world 世界 🦙")
                .addString("empty", "")
                .addString("", "empty key");
        try (GgufFile f = open(w)) {
            Map<String, Object> m = f.metadata();
            assertEquals(255L, m.get("u8"));
            assertEquals(-128L, m.get("i8"));
            assertEquals(65535L, m.get("u16"));
            assertEquals(-32768L, m.get("i16"));
            assertEquals(0xFFFF_FFFFL, m.get("u32"));
            assertEquals((long) Integer.MIN_VALUE, m.get("i32"));
            assertEquals(-1L, m.get("u64"));
            assertEquals(Long.MIN_VALUE, m.get("i64"));
            assertEquals(Float.floatToRawIntBits(-0.0f), Float.floatToRawIntBits((Float) m.get("f32")));
            assertEquals(Float.MAX_VALUE, m.get("f32max"));
            assertEquals(Math.PI, m.get("f64"));
            assertEquals(Double.MIN_VALUE, m.get("f64min"));
            assertEquals(true, m.get("yes"));
            assertEquals(false, m.get("no"));
            assertEquals("héllo ▁world 世界 🦙", f.getString("s"));
            assertEquals("", f.getString("empty"));
            assertEquals("empty key", f.getString(""));

            assertEquals(List.of("u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f32max", "f64", "f64min",
                    "yes", "no", "s", "empty", ""), List.copyOf(m.keySet()), "file order is kept");
            assertEquals(GgufValueType.UINT8, f.metadataType("u8"));
            assertEquals(GgufValueType.INT8, f.metadataType("i8"));
            assertEquals(GgufValueType.UINT16, f.metadataType("u16"));
            assertEquals(GgufValueType.INT16, f.metadataType("i16"));
            assertEquals(GgufValueType.UINT32, f.metadataType("u32"));
            assertEquals(GgufValueType.INT32, f.metadataType("i32"));
            assertEquals(GgufValueType.UINT64, f.metadataType("u64"));
            assertEquals(GgufValueType.INT64, f.metadataType("i64"));
            assertEquals(GgufValueType.FLOAT32, f.metadataType("f32"));
            assertEquals(GgufValueType.FLOAT64, f.metadataType("f64"));
            assertEquals(GgufValueType.BOOL, f.metadataType("yes"));
            assertEquals(GgufValueType.STRING, f.metadataType("s"));
            assertEquals(3, f.version());
            assertTrue(f.tensors().isEmpty());
        }
    }

    @Test
    void shouldRoundTripEveryArrayTypeWhenWrittenAndRead() {
        List<GgufArray> arrays = List.of(
                new GgufArray(GgufValueType.UINT8, new byte[] {0, 1, (byte) 255}),
                new GgufArray(GgufValueType.INT8, new byte[] {-128, 0, 127}),
                new GgufArray(GgufValueType.UINT16, new short[] {0, (short) 65535}),
                new GgufArray(GgufValueType.INT16, new short[] {-32768, 32767}),
                new GgufArray(GgufValueType.UINT32, new int[] {0, -1}),
                new GgufArray(GgufValueType.INT32, new int[] {Integer.MIN_VALUE, 0, Integer.MAX_VALUE}),
                new GgufArray(GgufValueType.UINT64, new long[] {0, -1}),
                new GgufArray(GgufValueType.INT64, new long[] {Long.MIN_VALUE, Long.MAX_VALUE}),
                new GgufArray(GgufValueType.FLOAT32, new float[] {-1.5f, Float.MIN_VALUE, Float.POSITIVE_INFINITY}),
                new GgufArray(GgufValueType.FLOAT64, new double[] {Math.E, -0.0}),
                new GgufArray(GgufValueType.BOOL, new byte[] {1, 0, 1}),
                new GgufArray(GgufValueType.STRING, new String[] {"<unk>", "", "▁the", "<0x0A>", "世界"}),
                new GgufArray(GgufValueType.FLOAT32, new float[0]),
                new GgufArray(GgufValueType.STRING, new String[0]),
                new GgufArray(GgufValueType.ARRAY, new GgufArray[] {
                        new GgufArray(GgufValueType.INT32, new int[] {1, 2, 3}),
                        new GgufArray(GgufValueType.INT32, new int[0]),
                        new GgufArray(GgufValueType.STRING, new String[] {"mixed", "element types"})}),
                new GgufArray(GgufValueType.ARRAY, new GgufArray[] { // as deep as the reader allows: 4 levels
                        new GgufArray(GgufValueType.ARRAY, new GgufArray[] {
                                new GgufArray(GgufValueType.ARRAY, new GgufArray[] {
                                        new GgufArray(GgufValueType.UINT8, new byte[] {42})})})}));
        GgufWriter w = new GgufWriter();
        for (int i = 0; i < arrays.size(); i++) {
            w.addArray("a" + i, arrays.get(i));
        }
        w.addBoolArray("bools", true, false);
        try (GgufFile f = open(w)) {
            for (int i = 0; i < arrays.size(); i++) {
                assertEquals(GgufValueType.ARRAY, f.metadataType("a" + i));
                assertSameArray(arrays.get(i), f.getArray("a" + i), "a" + i);
            }
            assertSameArray(new GgufArray(GgufValueType.BOOL, new byte[] {1, 0}), f.getArray("bools"), "bools");
            assertArrayEquals(new String[] {"<unk>", "", "▁the", "<0x0A>", "世界"}, f.getStringArray("a11"));
            assertArrayEquals(new int[] {0, 1, 255}, f.getIntArray("a0"), "UINT8 widens unsigned");
            assertArrayEquals(new int[] {-128, 0, 127}, f.getIntArray("a1"), "INT8 widens signed");
            assertArrayEquals(new int[] {0, 65535}, f.getIntArray("a2"), "UINT16 widens unsigned");
        }
    }

    @Test
    void shouldReadVersion2WhenHeaderSaysVersion2() {
        try (GgufFile f = open(new GgufWriter().version(2).addString("k", "v").addF32Tensor("t", new float[] {1, 2}, 2))) {
            assertEquals(2, f.version());
            assertEquals("v", f.getString("k"));
            assertEquals(2, f.requireTensor("t").elementCount());
        }
    }

    // ---- tensors and alignment ----------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 8, 32, 64, 4096})
    void shouldSliceTensorsAtAlignedOffsetsWhenAlignmentIsSet(int alignment) {
        // 0 means: no general.alignment key, so the default of 32 applies.
        int expectedAlignment = alignment == 0 ? GgufFile.DEFAULT_ALIGNMENT : alignment;
        byte[] i8 = {1, 2, 3, 4, 5, 6, 7};
        byte[] q8 = GgufWriter.quantizeQ8_0(ramp(64));
        byte[] q4 = GgufWriter.quantizeQ4_0(ramp(32));
        GgufWriter w = new GgufWriter();
        if (alignment != 0) {
            w.alignment(alignment);
        }
        w.addString("general.architecture", "test")
                .addF32Tensor("f32", new float[] {1, 2, 3, 4, 5, 6}, 3, 2)
                .addF16Tensor("f16", new float[] {0.5f, -2, 65504, 1e-3f, 0}, 5)
                .addTensor("i8", GgmlType.I8, i8, 7)
                .addTensor("q8", GgmlType.Q8_0, q8, 32, 2)
                .addTensor("q4", GgmlType.Q4_0, q4, 32, 1, 1, 1);
        try (GgufFile f = open(w)) {
            assertEquals(expectedAlignment, f.alignment());
            assertEquals(0, f.dataOffset() % expectedAlignment, "data section starts aligned");
            assertEquals(List.of("f32", "f16", "i8", "q8", "q4"), List.copyOf(f.tensors().keySet()));

            long expectedOffset = 0;
            long[] sizes = {24, 10, 7, q8.length, q4.length};
            for (int i = 0; i < sizes.length; i++) {
                GgufTensor t = f.tensors().values().stream().toList().get(i);
                assertEquals(expectedOffset, t.offset(), t.name() + " offset");
                assertEquals(sizes[i], t.data().byteSize(), t.name() + " size");
                assertEquals(0, (f.dataOffset() + t.offset()) % expectedAlignment, t.name() + " absolute offset aligned");
                expectedOffset = alignUp(expectedOffset + sizes[i], expectedAlignment);
            }

            GgufTensor f32 = f.requireTensor("f32");
            assertEquals(GgmlType.F32, f32.type());
            assertArrayEquals(new long[] {3, 2}, f32.dims());
            assertEquals(6, f32.elementCount());
            assertEquals(3, f32.rowLength());
            assertEquals(2, f32.rowCount());
            assertEquals("[3, 2]", f32.shape());
            assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, f32.data().toArray(F32_LE));

            float[] halves = new float[5];
            for (int i = 0; i < 5; i++) halves[i] = Float.float16ToFloat(f.requireTensor("f16").data().getAtIndex(I16_LE, i));
            assertArrayEquals(new float[] {0.5f, -2, 65504, Float.float16ToFloat(Float.floatToFloat16(1e-3f)), 0}, halves);

            assertArrayEquals(i8, f.requireTensor("i8").data().toArray(ValueLayout.JAVA_BYTE));
            assertArrayEquals(q8, f.requireTensor("q8").data().toArray(ValueLayout.JAVA_BYTE));
            assertEquals(2, f.requireTensor("q8").rowCount());
            GgufTensor q4t = f.requireTensor("q4");
            assertArrayEquals(q4, q4t.data().toArray(ValueLayout.JAVA_BYTE));
            assertArrayEquals(new long[] {32, 1, 1, 1}, q4t.dims());
            assertTrue(q4t.data().isReadOnly(), "tensor slices must not allow writes into the mapping");
            assertNull(f.tensor("missing"));
            GgufFormatException e = assertThrows(GgufFormatException.class, () -> f.requireTensor("missing"));
            assertTrue(e.getMessage().contains("missing tensor 'missing'"), e.getMessage());
        }
    }

    @Test
    void shouldAcceptFileWithoutTensorsWhenItEndsRightAfterMetadata() {
        // llama.cpp's vocab-only files: no tensor data, so no padding is needed after the header.
        GgufWriter w = new GgufWriter().addString("general.architecture", "llama").addUint32("n", 7).addString("last", "x");
        byte[] bytes = w.toBytes();
        int end = bytes.length;
        while (bytes[end - 1] == 0) end--; // drop the padding: the last value, "x", is not zero
        try (GgufFile f = GgufFile.open(write(Arrays.copyOf(bytes, end)))) {
            assertEquals(7, f.getInt("n"));
            assertTrue(f.tensors().isEmpty());
        }
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"F32", "F16", "Q8_0", "Q4_0"})
    void shouldOpenTinyModelWhenWrittenWithEachWeightType(GgmlType type) {
        TinyModels.Spec spec = TinyModels.Spec.builder().weightType(type).ropeFreqBase(10000f).ropeDimensionCount(16).build();
        try (GgufFile f = GgufFile.open(TinyModels.write(dir.resolve("tiny-" + type + ".gguf"), spec))) {
            assertEquals("llama", f.getString("general.architecture"));
            assertEquals(64, f.getInt("llama.embedding_length"));
            assertEquals(2, f.getInt("llama.block_count"));
            assertEquals(96, f.getInt("llama.feed_forward_length"));
            assertEquals(4, f.getInt("llama.attention.head_count"));
            assertEquals(2, f.getInt("llama.attention.head_count_kv"));
            assertEquals(128, f.getInt("llama.context_length"));
            assertEquals(1e-5f, f.getFloat("llama.attention.layer_norm_rms_epsilon"));
            assertEquals(10000f, f.getFloat("llama.rope.freq_base"));
            assertEquals(16, f.getInt("llama.rope.dimension_count"));

            assertEquals("llama", f.getString("tokenizer.ggml.model"));
            String[] tokens = f.getStringArray("tokenizer.ggml.tokens");
            int[] types = f.getIntArray("tokenizer.ggml.token_type");
            assertEquals(spec.vocabSize(), tokens.length);
            assertEquals(tokens.length, f.getFloatArray("tokenizer.ggml.scores").length);
            assertEquals(tokens.length, types.length);
            assertEquals(List.of("<unk>", "<s>", "</s>", "<0x00>"), List.of(tokens).subList(0, 4));
            assertEquals("<0xFF>", tokens[TinyModels.FIRST_BYTE_TOKEN + 255]);
            assertEquals(6, types[TinyModels.FIRST_BYTE_TOKEN + 0x41]);
            assertTrue(List.of(tokens).containsAll(List.of("▁a", "▁the")));
            assertEquals(1, f.getInt("tokenizer.ggml.bos_token_id"));
            assertEquals(2, f.getInt("tokenizer.ggml.eos_token_id"));

            int vocab = spec.vocabSize();
            assertTensor(f, "token_embd.weight", type, 64, vocab);
            assertTensor(f, "output_norm.weight", GgmlType.F32, 64);
            assertTensor(f, "output.weight", type, 64, vocab);
            for (int l = 0; l < 2; l++) {
                assertTensor(f, "blk." + l + ".attn_norm.weight", GgmlType.F32, 64);
                assertTensor(f, "blk." + l + ".attn_q.weight", type, 64, 64);
                assertTensor(f, "blk." + l + ".attn_k.weight", type, 64, 32);
                assertTensor(f, "blk." + l + ".attn_v.weight", type, 64, 32);
                assertTensor(f, "blk." + l + ".attn_output.weight", type, 64, 64);
                assertTensor(f, "blk." + l + ".ffn_norm.weight", GgmlType.F32, 64);
                assertTensor(f, "blk." + l + ".ffn_gate.weight", type, 64, 96);
                assertTensor(f, "blk." + l + ".ffn_down.weight", type, 96, 64);
                assertTensor(f, "blk." + l + ".ffn_up.weight", type, 64, 96);
            }
            assertEquals(2 * 9 + 3, f.tensors().size());
            // The stored bytes are the encoding of TinyModels.weights, so tests can compare against those floats.
            TinyModels.Weight q = TinyModels.weights(spec).get(4);
            assertEquals("blk.0.attn_q.weight", q.name());
            assertArrayEquals(GgufWriter.encode(type, q.values()),
                    f.requireTensor(q.name()).data().toArray(ValueLayout.JAVA_BYTE));
        }
    }

    @Test
    void shouldOmitOutputWeightWhenTinyModelIsTied() {
        TinyModels.Spec spec = TinyModels.Spec.builder().tiedOutput(true).layers(1).build();
        try (GgufFile f = GgufFile.open(TinyModels.write(dir.resolve("tied.gguf"), spec))) {
            assertNull(f.tensor("output.weight"));
            assertNotNull(f.tensor("token_embd.weight"));
            assertFalse(f.has("llama.rope.freq_base"), "rope.freq_base is absent unless asked for");
        }
    }

    @Test
    void shouldWriteSameBytesWhenTinyModelSeedIsSame() {
        TinyModels.Spec spec = TinyModels.Spec.builder().weightType(GgmlType.Q4_0).build();
        assertArrayEquals(TinyModels.writer(spec).toBytes(), TinyModels.writer(spec).toBytes());
        TinyModels.Spec other = TinyModels.Spec.builder().weightType(GgmlType.Q4_0).seed(7).build();
        assertFalse(Arrays.equals(TinyModels.writer(spec).toBytes(), TinyModels.writer(other).toBytes()));
    }

    // ---- hostile files: each must fail with a GgufFormatException that names the problem ------

    @Test
    void shouldRejectFileWhenEmpty() {
        assertRejected(new byte[0], "file too short");
    }

    @Test
    void shouldRejectFileWhenMagicIsWrong() {
        assertRejected(new GgufWriter().magic(0x4c4d4747), "wrong magic 0x4c4d4747"); // "GGML"
        assertRejected("PK\u0003\u0004 a zip file, not a model".getBytes(), "not a GGUF file");
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 4, 0x7FFF_FFFF, -1})
    void shouldRejectFileWhenVersionIsUnsupported(int version) {
        assertRejected(new GgufWriter().version(version), "unsupported GGUF version " + Integer.toUnsignedString(version));
    }

    @Test
    void shouldRejectFileWhenHeaderIsBigEndian() {
        // llama.cpp's big-endian files keep the "GGUF" bytes but store the version (and all else) big-endian.
        byte[] bytes = new GgufWriter().addUint32("k", 1).toBytes();
        byte[] be = ByteBuffer.allocate(4).order(ByteOrder.BIG_ENDIAN).putInt(3).array();
        System.arraycopy(be, 0, bytes, 4, 4);
        assertRejected(bytes, "big-endian");
    }

    @Test
    void shouldRejectEveryTruncationWhenFileIsCutShort() throws IOException {
        byte[] full = smallValidFile().toBytes();
        long end;
        try (GgufFile f = GgufFile.open(write(full))) {
            // Past the end of the last tensor's data there is only padding: cutting that leaves a valid file.
            GgufTensor last = f.tensors().values().stream().reduce((a, b) -> b).orElseThrow();
            end = f.dataOffset() + last.offset() + last.data().byteSize();
        }
        Path path = dir.resolve("cut.gguf");
        for (int length = 0; length < full.length; length++) {
            Files.write(path, Arrays.copyOf(full, length));
            if (length >= end) {
                GgufFile.open(path).close();
                continue;
            }
            int cut = length;
            GgufFormatException e = assertThrows(GgufFormatException.class, () -> GgufFile.open(path).close(),
                    "cut at " + cut + " of " + full.length);
            String m = e.getMessage();
            assertTrue(m.contains("truncated") || m.contains("too short") || m.contains("outside the file")
                    || m.contains("absurd"), "cut at " + cut + ": " + m);
        }
    }

    @Test
    void shouldRejectCountsWhenTheyCannotFitInTheFile() {
        assertRejected(smallValidFile().tensorCount(1L << 62), "absurd tensor count 4611686018427387904");
        assertRejected(smallValidFile().metadataCount(1L << 62), "absurd metadata count 4611686018427387904");
        assertRejected(smallValidFile().metadataCount(-1), "absurd metadata count 18446744073709551615");
        assertRejected(smallValidFile().tensorCount(-1), "absurd tensor count 18446744073709551615");
    }

    @Test
    void shouldRejectStringWhenLengthIsAbsurd() {
        assertRejected(new GgufWriter().addRaw("k", GgufValueType.STRING.ordinal(), u64(1L << 62)),
                "metadata 'k' needs 4611686018427387904 bytes");
        assertRejected(new GgufWriter().addRaw("k", GgufValueType.STRING.ordinal(), u64(-1)),
                "metadata 'k' needs 18446744073709551615 bytes");
        // The key's own length: patch the first key's length field, right after the 24-byte header.
        byte[] bytes = new GgufWriter().addUint32("key", 1).toBytes();
        System.arraycopy(u64(1L << 62), 0, bytes, 24, 8);
        assertRejected(bytes, "metadata key #0 needs 4611686018427387904 bytes");
    }

    @Test
    void shouldRejectArrayWhenLengthIsAbsurd() {
        for (GgufValueType et : GgufValueType.values()) {
            byte[] payload = concat(u32(et.ordinal()), u64(1L << 62));
            assertRejected(new GgufWriter().addRaw("k", GgufValueType.ARRAY.ordinal(), payload),
                    "absurd array length 4611686018427387904 for metadata 'k'");
        }
        // Nested: the inner array's length is the absurd one.
        byte[] nested = concat(u32(GgufValueType.ARRAY.ordinal()), u64(1), u32(GgufValueType.STRING.ordinal()), u64(-1));
        assertRejected(new GgufWriter().addRaw("k", GgufValueType.ARRAY.ordinal(), nested),
                "absurd array length 18446744073709551615 for metadata 'k'[0]");
    }

    @Test
    void shouldRejectMetadataWhenValueTypeIsUnknown() {
        assertRejected(new GgufWriter().addRaw("k", 13, new byte[8]), "metadata 'k' has unknown value type 13");
        assertRejected(new GgufWriter().addRaw("k", 0xFFFF_FFFFL, new byte[8]), "unknown value type 4294967295");
        assertRejected(new GgufWriter().addRaw("k", GgufValueType.ARRAY.ordinal(), concat(u32(99), u64(0))),
                "metadata 'k' element has unknown value type 99");
    }

    @Test
    void shouldRejectBoolWhenValueIsNeitherZeroNorOne() {
        assertRejected(new GgufWriter().addRaw("flag", GgufValueType.BOOL.ordinal(), new byte[] {2}),
                "metadata 'flag' is a bool with invalid value 2");
    }

    @Test
    void shouldRejectArraysWhenNestedTooDeep() {
        GgufArray a = new GgufArray(GgufValueType.INT32, new int[] {1});
        for (int i = 0; i < 4; i++) {
            a = new GgufArray(GgufValueType.ARRAY, new GgufArray[] {a}); // 5 levels of arrays in all
        }
        assertRejected(new GgufWriter().addArray("deep", a), "nests arrays deeper than 4");
    }

    @Test
    void shouldRejectMetadataWhenKeyIsDuplicated() {
        assertRejected(new GgufWriter().addUint32("llama.block_count", 1).addString("llama.block_count", "two"),
                "duplicate metadata key 'llama.block_count'");
    }

    @ParameterizedTest
    @ValueSource(longs = {0, 3, 48, 1L << 21, -32})
    void shouldRejectAlignmentWhenNotAPowerOfTwoInRange(long alignment) {
        assertRejected(new GgufWriter().addInt64("general.alignment", alignment), "general.alignment must be a power of two");
    }

    @Test
    void shouldRejectAlignmentWhenNotAnInteger() {
        assertRejected(new GgufWriter().addString("general.alignment", "32"), "general.alignment must be a power of two");
    }

    @Test
    void shouldRejectTensorWhenOffsetIsBeyondTheFile() {
        assertRejected(smallValidFile().tensorOffset("b", 1L << 20), "tensor 'b' (Q8_0, 68 bytes at data offset 1048576) lies outside the file");
        assertRejected(smallValidFile().tensorOffset("a", 1L << 62), "tensor 'a' (F32, 24 bytes at data offset 4611686018427387904) lies outside the file");
        assertRejected(smallValidFile().tensorOffset("a", Long.MIN_VALUE), "lies outside the file");
        // The last tensor claiming more rows than its data has.
        assertRejected(smallValidFile().tensorDims("b", 32, 3), "tensor 'b' (Q8_0, 102 bytes at data offset 32) lies outside the file");
    }

    @Test
    void shouldRejectTensorWhenOffsetIsMisaligned() {
        assertRejected(smallValidFile().tensorOffset("b", 4), "tensor 'b' offset 4 is not aligned to 32");
        assertRejected(smallValidFile().alignment(64).tensorOffset("b", 32), "tensor 'b' offset 32 is not aligned to 64");
    }

    @Test
    void shouldRejectTensorWhenSizeOverflows() {
        assertRejected(smallValidFile().tensorDims("a", 1L << 40, 1L << 40), "tensor 'a' element count overflows");
        // 2^61 F32 elements fit in a long but their 2^63 bytes do not.
        assertRejected(smallValidFile().tensorDims("a", 1L << 40, 1L << 21), "tensor 'a' byte size overflows");
        assertRejected(smallValidFile().tensorDims("a", 1L << 41), "tensor 'a' has absurd dimension 0 = 2199023255552");
        assertRejected(smallValidFile().tensorDims("a", -1), "tensor 'a' has absurd dimension 0 = 18446744073709551615");
    }

    @Test
    void shouldRejectTensorWhenTypeIdIsUnknown() {
        assertRejected(smallValidFile().tensorTypeId("a", 99), "tensor 'a' has unknown type 99");
        assertRejected(smallValidFile().tensorTypeId("a", 4), "tensor 'a' has unknown type 4"); // Q4_2, long removed
        assertRejected(smallValidFile().tensorTypeId("a", 0xFFFF_FFFFL), "tensor 'a' has unknown type 4294967295");
    }

    @Test
    void shouldRejectTensorWhenDimensionCountIsOutOfRange() {
        assertRejected(smallValidFile().tensorDims("a", 6, 1, 1, 1, 1), "tensor 'a' has 5 dimensions (allowed: 1 to 4)");
        assertRejected(smallValidFile().tensorDims("a"), "tensor 'a' has 0 dimensions");
        // A dimension count near 2^32 must not be used to size anything.
        byte[] bytes = smallValidFile().toBytes();
        int at = indexOf(bytes, "\u0001\u0000\u0000\u0000\u0000\u0000\u0000\u0000a".getBytes()) + 9; // name "a", then n_dims
        System.arraycopy(u32(-1), 0, bytes, at, 4);
        assertRejected(bytes, "tensor 'a' has 4294967295 dimensions");
    }

    @Test
    void shouldRejectTensorWhenADimensionIsZero() {
        assertRejected(smallValidFile().tensorDims("a", 6, 0), "tensor 'a' has absurd dimension 1 = 0");
    }

    @Test
    void shouldRejectTensorWhenRowLengthIsNotAMultipleOfTheBlockSize() {
        assertRejected(smallValidFile().tensorDims("b", 16, 4),
                "tensor 'b' of type Q8_0 has row length 16, not a multiple of its block size 32");
    }

    @Test
    void shouldRejectTensorWhenNameIsDuplicated() {
        assertRejected(smallValidFile().addF32Tensor("a", new float[] {1}, 1), "duplicate tensor name 'a'");
    }

    @Test
    void shouldRejectPathWhenFileDoesNotExist() {
        Path missing = dir.resolve("nope.gguf");
        GgufFormatException e = assertThrows(GgufFormatException.class, () -> GgufFile.open(missing));
        assertTrue(e.getMessage().contains(missing + ": no such file"), e.getMessage());
    }

    @Test
    void shouldRejectPathWhenItIsADirectory() {
        GgufFormatException e = assertThrows(GgufFormatException.class, () -> GgufFile.open(dir));
        assertTrue(e.getMessage().startsWith(dir.toString()), e.getMessage());
    }

    // ---- hostile lengths in files larger than a Java array (sparse, so they cost no disk) -----

    @Test
    void shouldRejectStringWhenLongerThanAJavaArrayCanHold() throws IOException {
        long length = (1L << 31) + 64; // fits in the file, but not in a byte[]
        byte[] header = concat(u32(GgufFile.MAGIC), u32(3), u64(0), u64(1), u64(length));
        Path path = sparseFile(header, (1L << 31) + (1 << 20));
        GgufFormatException e = assertThrows(GgufFormatException.class, () -> GgufFile.open(path));
        assertTrue(e.getMessage().contains("metadata key #0 is 2147483712 bytes long"), e.getMessage());
    }

    @Test
    void shouldRejectArrayWhenLongerThanAJavaArrayCanHold() throws IOException {
        long length = (1L << 31) + 64;
        byte[] header = concat(u32(GgufFile.MAGIC), u32(3), u64(0), u64(1), u64(1), "k".getBytes(),
                u32(GgufValueType.ARRAY.ordinal()), u32(GgufValueType.UINT8.ordinal()), u64(length));
        Path path = sparseFile(header, (1L << 31) + (1 << 20));
        GgufFormatException e = assertThrows(GgufFormatException.class, () -> GgufFile.open(path));
        assertTrue(e.getMessage().contains("array length 2147483712 for metadata 'k'"), e.getMessage());
    }

    @Test
    void shouldNotAllocateForClaimedTensorsWhenCountIsHighButFits() throws IOException {
        // 40M tensor infos could fit in 1 GiB, so the count passes the size check; the reader must
        // still not reserve room for them before reading a single one (the holes read as zeros, so
        // tensor #0 fails on its zero dimension count).
        long count = 40_000_000;
        Path path = sparseFile(concat(u32(GgufFile.MAGIC), u32(3), u64(count), u64(0)), 1L << 30);
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        assertRejected(new byte[0], "too short"); // warm up, so class loading is not counted below
        long before = threads.getCurrentThreadAllocatedBytes();
        GgufFormatException e = assertThrows(GgufFormatException.class, () -> GgufFile.open(path));
        long allocated = threads.getCurrentThreadAllocatedBytes() - before;
        assertTrue(e.getMessage().contains("tensor '' has 0 dimensions"), e.getMessage());
        assertTrue(allocated < 16 << 20, "allocated " + allocated + " bytes for a header claiming " + count + " tensors");
    }

    // ---- fuzzing ------------------------------------------------------------------------------

    @Test
    void shouldOnlyThrowGgufFormatExceptionWhenRandomBytesAreMutated() throws IOException {
        byte[] valid = smallValidFile().toBytes();
        int headerEnd;
        try (GgufFile f = GgufFile.open(write(valid))) {
            headerEnd = (int) f.dataOffset();
        }
        long[] interesting = {0, 1, 2, 3, 31, 32, 33, 64, 255, 256, 4096, 1L << 31, (1L << 32) - 1, 1L << 32, 1L << 62,
                Long.MAX_VALUE, Long.MIN_VALUE, -1, valid.length, headerEnd};
        Random random = new Random(20240611);
        Path path = dir.resolve("fuzz.gguf");
        int opened = 0;
        for (int iteration = 0; iteration < 4000; iteration++) {
            byte[] bytes = valid.clone();
            int mutations = 1 + random.nextInt(4);
            StringBuilder what = new StringBuilder();
            for (int m = 0; m < mutations; m++) {
                // Mostly the header: flips in tensor data are always valid and test nothing.
                int at = random.nextInt(10) < 9 ? random.nextInt(headerEnd) : random.nextInt(bytes.length);
                switch (random.nextInt(4)) {
                    case 0 -> bytes[at] ^= (byte) (1 << random.nextInt(8));
                    case 1 -> bytes[at] = (byte) random.nextInt(256);
                    case 2 -> bytes[at] = random.nextBoolean() ? 0 : (byte) 0xFF;
                    default -> {
                        at = Math.min(at, bytes.length - 8);
                        System.arraycopy(u64(interesting[random.nextInt(interesting.length)]), 0, bytes, at, 8);
                    }
                }
                what.append(' ').append(at);
            }
            if (random.nextInt(20) == 0) {
                bytes = Arrays.copyOf(bytes, random.nextInt(bytes.length));
                what.append(" cut to ").append(bytes.length);
            }
            Files.write(path, bytes);
            try (GgufFile f = GgufFile.open(path)) {
                touchEverything(f);
                opened++;
            } catch (GgufFormatException expected) {
                assertTrue(expected.getMessage().startsWith(path.toString()), expected.getMessage());
            } catch (Throwable t) {
                fail("iteration " + iteration + " (mutated at" + what + ") threw " + t, t);
            }
        }
        assertTrue(opened > 0, "some mutations (e.g. in tensor data) leave the file valid");
    }

    // ---- real models --------------------------------------------------------------------------

    @Test
    void shouldOpenStories15MWhenTestModelsAreAvailable() {
        Path models = testModels();
        try (GgufFile f = GgufFile.open(models.resolve("stories15M-q8_0.gguf"))) {
            assertEquals(3, f.version());
            assertEquals("llama", f.getString("general.architecture"));
            assertEquals(6, f.getInt("llama.block_count"));
            assertEquals(288, f.getInt("llama.embedding_length"));
            assertEquals(768, f.getInt("llama.feed_forward_length"));
            assertEquals(6, f.getInt("llama.attention.head_count"));
            assertEquals(32000, f.getStringArray("tokenizer.ggml.tokens").length);
            GgufTensor embd = f.requireTensor("token_embd.weight");
            assertEquals(GgmlType.Q8_0, embd.type());
            assertArrayEquals(new long[] {288, 32000}, embd.dims());
            assertEquals(288L * 32000 / 32 * 34, embd.data().byteSize());
            assertEquals(GgmlType.F32, f.requireTensor("blk.0.attn_norm.weight").type());
            assertEquals(3 + 6 * 9, f.tensors().size());
        }
    }

    @Test
    void shouldOpenEveryTestModelWhenTestModelsAreAvailable() throws IOException {
        Path models = testModels();
        List<Path> paths;
        try (Stream<Path> s = Files.list(models)) {
            paths = s.filter(p -> p.toString().endsWith(".gguf")).sorted().toList();
        }
        assertFalse(paths.isEmpty(), "no .gguf files in " + models);
        for (Path p : paths) {
            try (GgufFile f = GgufFile.open(p)) {
                assertTrue(f.has("general.architecture"), p + " has general.architecture");
                for (GgufTensor t : f.tensors().values()) {
                    assertEquals(0, (f.dataOffset() + t.offset()) % f.alignment(), p + " " + t.name());
                    assertTrue(f.dataOffset() + t.offset() + t.data().byteSize() <= f.sizeBytes(), p + " " + t.name());
                }
            }
        }
        try (GgufFile f = GgufFile.open(models.resolve("stories260K-f32.gguf"))) {
            assertEquals(8, f.getInt("llama.attention.head_count"));
            assertEquals(4, f.getInt("llama.attention.head_count_kv"));
            assertEquals(GgmlType.F32, f.requireTensor("token_embd.weight").type());
        }
    }

    static Path testModels() {
        String env = System.getenv("KVSTASH_TEST_MODELS");
        Assumptions.assumeTrue(env != null && !env.isBlank(),
                "KVSTASH_TEST_MODELS not set: skipping real-model checks (point it at the folder with stories15M-q8_0.gguf)");
        return Path.of(env);
    }

    // ---- helpers ------------------------------------------------------------------------------

    /** A few metadata kinds and two tensors (F32, then Q8_0), small enough to cut or mutate byte by byte. */
    private static GgufWriter smallValidFile() {
        return new GgufWriter()
                .addString("general.architecture", "llama")
                .addUint32("llama.block_count", 2)
                .addFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5f)
                .addBool("flag", true)
                .addStringArray("tokenizer.ggml.tokens", "<unk>", "<s>", "▁a")
                .addArray("nested", GgufValueType.ARRAY, new GgufArray[] {new GgufArray(GgufValueType.INT16, new short[] {1, 2})})
                .addF32Tensor("a", new float[] {1, 2, 3, 4, 5, 6}, 3, 2)
                .addQ8_0Tensor("b", ramp(64), 32, 2);
    }

    private Path write(byte[] bytes) {
        try {
            return Files.write(dir.resolve("test-" + files++ + ".gguf"), bytes);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private GgufFile open(GgufWriter w) {
        return GgufFile.open(write(w.toBytes()));
    }

    private GgufFormatException assertRejected(GgufWriter w, String expected) {
        return assertRejected(w.toBytes(), expected);
    }

    /** Asserts that opening {@code bytes} fails with a message naming the file and containing {@code expected}. */
    private GgufFormatException assertRejected(byte[] bytes, String expected) {
        Path path = write(bytes);
        GgufFormatException e = assertThrows(GgufFormatException.class, () -> GgufFile.open(path).close(),
                "expected rejection with '" + expected + "'");
        assertTrue(e.getMessage().contains(expected), "message '" + e.getMessage() + "' should contain '" + expected + "'");
        assertTrue(e.getMessage().startsWith(path.toString()), "message should name the file: " + e.getMessage());
        return e;
    }

    private Path sparseFile(byte[] header, long size) throws IOException {
        Path path = dir.resolve("sparse-" + files++ + ".gguf");
        try (RandomAccessFile f = new RandomAccessFile(path.toFile(), "rw")) {
            f.write(header);
            f.setLength(size);
        }
        return path;
    }

    /** Reads every metadata value and every tensor byte, so a slice past the mapping would throw here. */
    private static void touchEverything(GgufFile f) {
        f.metadata().forEach((k, v) -> String.valueOf(v));
        for (GgufTensor t : f.tensors().values()) {
            MemorySegment data = t.data();
            long sum = 0;
            for (long i = 0; i < data.byteSize(); i++) sum += data.get(ValueLayout.JAVA_BYTE, i);
            assertTrue(sum != Long.MIN_VALUE);
            assertEquals(t.type().bytesFor(t.elementCount()), data.byteSize());
        }
    }

    private static void assertSameArray(GgufArray expected, GgufArray actual, String where) {
        assertEquals(expected.elementType(), actual.elementType(), where);
        assertEquals(expected.length(), actual.length(), where);
        if (expected.values() instanceof GgufArray[] e) {
            GgufArray[] a = (GgufArray[]) actual.values();
            for (int i = 0; i < e.length; i++) assertSameArray(e[i], a[i], where + "[" + i + "]");
        } else {
            assertTrue(Objects.deepEquals(expected.values(), actual.values()),
                    where + ": " + Arrays.deepToString(new Object[] {expected.values()}) + " vs "
                            + Arrays.deepToString(new Object[] {actual.values()}));
        }
    }

    private static void assertTensor(GgufFile f, String name, GgmlType type, long... dims) {
        GgufTensor t = f.requireTensor(name);
        assertEquals(type, t.type(), name);
        assertArrayEquals(dims, t.dims(), name);
    }

    static float[] ramp(int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (i % 7 - 3) * 0.25f + i * 0.01f;
        return x;
    }

    private static long alignUp(long x, long a) {
        return (x + a - 1) / a * a;
    }

    private static byte[] u32(long v) {
        return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt((int) v).array();
    }

    private static byte[] u64(long v) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array();
    }

    private static byte[] concat(byte[]... parts) {
        int n = 0;
        for (byte[] p : parts) n += p.length;
        ByteBuffer b = ByteBuffer.allocate(n);
        for (byte[] p : parts) b.put(p);
        return b.array();
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) continue outer;
            }
            return i;
        }
        throw new AssertionError("pattern not found");
    }
}
