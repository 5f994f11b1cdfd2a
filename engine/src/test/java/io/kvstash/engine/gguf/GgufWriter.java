package io.kvstash.engine.gguf;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes GGUF v3 files for tests, laid out the way llama.cpp's {@code gguf_write_to_buf} does:
 * header, metadata, tensor infos, padding to the alignment, then each tensor's data padded to the
 * alignment.
 *
 * <p>It validates nothing on purpose, so tests can also build broken files: duplicate keys and
 * tensor names are kept, {@link #addRaw} writes any type id and payload, and the {@code tensorOffset},
 * {@code tensorTypeId}, {@code tensorDims}, {@code tensorCount} and {@code metadataCount} overrides
 * change only what the header claims, never where the data actually goes. For anything else, patch
 * or cut the array that {@link #toBytes()} returns.
 */
public final class GgufWriter {
    private record Metadata(String key, long typeId, byte[] payload) {}

    /** One tensor: the header fields may be overridden; {@code data} is always written in the natural layout. */
    private static final class Tensor {
        public final String name;
        public final byte[] data;
        public long typeId;
        long[] dims;
        Long offsetOverride;

        Tensor(String name, long typeId, long[] dims, byte[] data) {
            this.name = name;
            this.typeId = typeId;
            this.dims = dims;
            this.data = data;
        }
    }

    private final List<Metadata> metadata = new ArrayList<>();
    private final List<Tensor> tensors = new ArrayList<>();
    private int magic = GgufFile.MAGIC;
    private int version = 3;
    private int alignment = GgufFile.DEFAULT_ALIGNMENT;
    private Long tensorCountOverride;
    private Long metadataCountOverride;

    // ---- header -------------------------------------------------------------------------------

    public GgufWriter magic(int magic) {
        this.magic = magic;
        return this;
    }

    public GgufWriter version(int version) {
        this.version = version;
        return this;
    }

    /** Lays tensor data out on {@code alignment} and records it as {@code general.alignment} (UINT32), as llama.cpp does. */
    public GgufWriter alignment(int alignment) {
        this.alignment = alignment;
        return addUint32("general.alignment", alignment);
    }

    /** Claims {@code count} tensors in the header whatever was added. */
    public GgufWriter tensorCount(long count) {
        this.tensorCountOverride = count;
        return this;
    }

    /** Claims {@code count} metadata entries in the header whatever was added. */
    public GgufWriter metadataCount(long count) {
        this.metadataCountOverride = count;
        return this;
    }

    // ---- metadata -----------------------------------------------------------------------------

    public GgufWriter addUint8(String key, int value) {
        return add(key, GgufValueType.UINT8, value);
    }

    public GgufWriter addInt8(String key, int value) {
        return add(key, GgufValueType.INT8, value);
    }

    public GgufWriter addUint16(String key, int value) {
        return add(key, GgufValueType.UINT16, value);
    }

    public GgufWriter addInt16(String key, int value) {
        return add(key, GgufValueType.INT16, value);
    }

    public GgufWriter addUint32(String key, long value) {
        return add(key, GgufValueType.UINT32, value);
    }

    public GgufWriter addInt32(String key, int value) {
        return add(key, GgufValueType.INT32, value);
    }

    public GgufWriter addUint64(String key, long value) {
        return add(key, GgufValueType.UINT64, value);
    }

    public GgufWriter addInt64(String key, long value) {
        return add(key, GgufValueType.INT64, value);
    }

    public GgufWriter addFloat32(String key, float value) {
        return add(key, GgufValueType.FLOAT32, value);
    }

    public GgufWriter addFloat64(String key, double value) {
        return add(key, GgufValueType.FLOAT64, value);
    }

    public GgufWriter addBool(String key, boolean value) {
        return add(key, GgufValueType.BOOL, value);
    }

    public GgufWriter addString(String key, String value) {
        return add(key, GgufValueType.STRING, value);
    }

    /** Any array, nested ones included; {@code values} uses {@link GgufArray}'s representation. */
    public GgufWriter addArray(String key, GgufArray array) {
        return add(key, GgufValueType.ARRAY, array);
    }

    public GgufWriter addArray(String key, GgufValueType elementType, Object values) {
        return addArray(key, new GgufArray(elementType, values));
    }

    public GgufWriter addStringArray(String key, String... values) {
        return addArray(key, GgufValueType.STRING, values);
    }

    public GgufWriter addFloat32Array(String key, float... values) {
        return addArray(key, GgufValueType.FLOAT32, values);
    }

    public GgufWriter addInt32Array(String key, int... values) {
        return addArray(key, GgufValueType.INT32, values);
    }

    public GgufWriter addBoolArray(String key, boolean... values) {
        byte[] bytes = new byte[values.length];
        for (int i = 0; i < values.length; i++) bytes[i] = (byte) (values[i] ? 1 : 0);
        return addArray(key, GgufValueType.BOOL, bytes);
    }

    /**
     * Adds {@code key} with a value of {@code type}: a {@link Number} for numeric types (integers
     * keep their low bits, so unsigned values can be given as their signed bit pattern), a
     * {@link Boolean}, a {@link String} or a {@link GgufArray}.
     */
    public GgufWriter add(String key, GgufValueType type, Object value) {
        Out out = new Out();
        out.value(type, value);
        metadata.add(new Metadata(key, type.ordinal(), out.toByteArray()));
        return this;
    }

    /** Adds {@code key} with any type id and the value bytes exactly as given (for unknown types, invalid bools, lies). */
    public GgufWriter addRaw(String key, long typeId, byte[] payload) {
        metadata.add(new Metadata(key, typeId, payload.clone()));
        return this;
    }

    // ---- tensors ------------------------------------------------------------------------------

    /** Adds a tensor with {@code data} already in {@code type}'s encoding; {@code dims} in GGML order (innermost first). */
    public GgufWriter addTensor(String name, GgmlType type, byte[] data, long... dims) {
        tensors.add(new Tensor(name, type.id, dims.clone(), data.clone()));
        return this;
    }

    /** Adds a tensor encoding {@code data} as {@code type}: F32, F16, Q8_0 or Q4_0. */
    public GgufWriter addTensor(String name, GgmlType type, float[] data, long... dims) {
        return addTensor(name, type, encode(type, data), dims);
    }

    public GgufWriter addF32Tensor(String name, float[] data, long... dims) {
        return addTensor(name, GgmlType.F32, f32Bytes(data), dims);
    }

    public GgufWriter addF16Tensor(String name, float[] data, long... dims) {
        return addTensor(name, GgmlType.F16, f16Bytes(data), dims);
    }

    public GgufWriter addQ8_0Tensor(String name, float[] data, long... dims) {
        return addTensor(name, GgmlType.Q8_0, quantizeQ8_0(data), dims);
    }

    public GgufWriter addQ4_0Tensor(String name, float[] data, long... dims) {
        return addTensor(name, GgmlType.Q4_0, quantizeQ4_0(data), dims);
    }

    /** Makes the header claim {@code offset} (relative to the data section) for tensor {@code name}. */
    public GgufWriter tensorOffset(String name, long offset) {
        tensor(name).offsetOverride = offset;
        return this;
    }

    /** Makes the header claim type id {@code typeId} for tensor {@code name}. */
    public GgufWriter tensorTypeId(String name, long typeId) {
        tensor(name).typeId = typeId;
        return this;
    }

    /** Makes the header claim {@code dims} for tensor {@code name} (any count, any values). */
    public GgufWriter tensorDims(String name, long... dims) {
        tensor(name).dims = dims.clone();
        return this;
    }

    /** Drops tensor {@code name} (which must have been added), e.g. to build a model missing one. */
    public GgufWriter removeTensor(String name) {
        tensors.remove(tensor(name));
        return this;
    }

    /** Drops every metadata entry under {@code key} (which must exist), so a test can replace a value. */
    public GgufWriter removeMetadata(String key) {
        if (!metadata.removeIf(m -> m.key.equals(key))) {
            throw new IllegalArgumentException("no metadata '" + key + "' added");
        }
        return this;
    }

    private Tensor tensor(String name) {
        return tensors.stream().filter(t -> t.name.equals(name)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no tensor '" + name + "' added"));
    }

    // ---- output -------------------------------------------------------------------------------

    public byte[] toBytes() {
        Out out = new Out();
        out.u32(magic);
        out.u32(version);
        out.u64(tensorCountOverride != null ? tensorCountOverride : tensors.size());
        out.u64(metadataCountOverride != null ? metadataCountOverride : metadata.size());
        for (Metadata m : metadata) {
            out.string(m.key);
            out.u32((int) m.typeId);
            out.bytes(m.payload);
        }
        long next = 0;
        for (Tensor t : tensors) {
            out.string(t.name);
            out.u32(t.dims.length);
            for (long d : t.dims) out.u64(d);
            out.u32((int) t.typeId);
            out.u64(t.offsetOverride != null ? t.offsetOverride : next);
            next = alignUp(next + t.data.length, alignment);
        }
        out.padTo(alignment);
        for (Tensor t : tensors) {
            out.bytes(t.data);
            out.padTo(alignment);
        }
        return out.toByteArray();
    }

    public Path write(Path file) {
        try {
            Files.write(file, toBytes());
            return file;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static long alignUp(long x, long alignment) {
        return (x + alignment - 1) / alignment * alignment;
    }

    // ---- encodings ----------------------------------------------------------------------------

    public static byte[] encode(GgmlType type, float[] data) {
        return switch (type) {
            case F32 -> f32Bytes(data);
            case F16 -> f16Bytes(data);
            case Q8_0 -> quantizeQ8_0(data);
            case Q4_0 -> quantizeQ4_0(data);
            default -> throw new IllegalArgumentException("cannot encode " + type);
        };
    }

    public static byte[] f32Bytes(float[] data) {
        ByteBuffer b = le(4 * data.length);
        for (float f : data) b.putFloat(f);
        return b.array();
    }

    /** IEEE half precision, round to nearest even: what GGML_FP32_TO_FP16 gives on F16C hardware. */
    public static byte[] f16Bytes(float[] data) {
        ByteBuffer b = le(2 * data.length);
        for (float f : data) b.putShort(Float.floatToFloat16(f));
        return b.array();
    }

    /**
     * ggml's {@code quantize_row_q8_0_ref}: per block of 32, fp16 {@code d = amax / 127} then 32
     * int8 {@code roundf(x * (1/d))}. It multiplies by the reciprocal rather than dividing, and
     * rounds half away from zero; both matter for bit-exactness.
     */
    public static byte[] quantizeQ8_0(float[] x) {
        requireBlocks(x, 32);
        ByteBuffer b = le(x.length / 32 * 34);
        for (int block = 0; block < x.length; block += 32) {
            float amax = 0f;
            for (int j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[block + j]));
            float d = amax / 127;
            float id = d != 0f ? 1.0f / d : 0f;
            b.putShort(Float.floatToFloat16(d));
            for (int j = 0; j < 32; j++) b.put((byte) roundf(x[block + j] * id));
        }
        return b.array();
    }

    /**
     * ggml's {@code quantize_row_q4_0_ref}: per block of 32, fp16 {@code d = max / -8} where
     * {@code max} is the signed value of largest magnitude (the first one on ties), then 16 bytes:
     * byte j holds element j in its low nibble and element j + 16 in its high nibble, each
     * {@code min(15, (int) (x * (1/d) + 8.5))}.
     */
    public static byte[] quantizeQ4_0(float[] x) {
        requireBlocks(x, 32);
        ByteBuffer b = le(x.length / 32 * 18);
        for (int block = 0; block < x.length; block += 32) {
            float amax = 0f;
            float max = 0f;
            for (int j = 0; j < 32; j++) {
                float v = x[block + j];
                if (amax < Math.abs(v)) {
                    amax = Math.abs(v);
                    max = v;
                }
            }
            float d = max / -8;
            float id = d != 0f ? 1.0f / d : 0f;
            b.putShort(Float.floatToFloat16(d));
            for (int j = 0; j < 16; j++) {
                // ggml casts through int8_t, which truncates toward zero like Java's (int).
                int lo = Math.min(15, (int) (x[block + j] * id + 8.5f));
                int hi = Math.min(15, (int) (x[block + 16 + j] * id + 8.5f));
                b.put((byte) (lo | hi << 4));
            }
        }
        return b.array();
    }

    /** C's roundf: half away from zero (Math.round rounds half up, which differs for negative halves). */
    private static float roundf(float x) {
        return (float) Math.copySign(Math.floor(Math.abs((double) x) + 0.5), x);
    }

    private static void requireBlocks(float[] x, int blockSize) {
        if (x.length % blockSize != 0) {
            throw new IllegalArgumentException(x.length + " values are not a whole number of blocks of " + blockSize);
        }
    }

    private static ByteBuffer le(int capacity) {
        return ByteBuffer.allocate(capacity).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** Little-endian byte sink. */
    private static final class Out {
        private final ByteArrayOutputStream buf = new ByteArrayOutputStream();

        void u8(int v) {
            buf.write(v);
        }

        void u16(int v) {
            u8(v);
            u8(v >>> 8);
        }

        void u32(int v) {
            u16(v);
            u16(v >>> 16);
        }

        void u64(long v) {
            u32((int) v);
            u32((int) (v >>> 32));
        }

        void bytes(byte[] b) {
            buf.writeBytes(b);
        }

        void string(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            u64(b.length);
            bytes(b);
        }

        void padTo(int alignment) {
            while (buf.size() % alignment != 0) u8(0);
        }

        void value(GgufValueType type, Object v) {
            switch (type) {
                case UINT8, INT8 -> u8(((Number) v).intValue());
                case BOOL -> u8((Boolean) v ? 1 : 0);
                case UINT16, INT16 -> u16(((Number) v).intValue());
                case UINT32, INT32 -> u32(((Number) v).intValue());
                case UINT64, INT64 -> u64(((Number) v).longValue());
                case FLOAT32 -> u32(Float.floatToRawIntBits(((Number) v).floatValue()));
                case FLOAT64 -> u64(Double.doubleToRawLongBits(((Number) v).doubleValue()));
                case STRING -> string((String) v);
                case ARRAY -> array((GgufArray) v);
            }
        }

        private void array(GgufArray a) {
            u32(a.elementType().ordinal());
            u64(a.length());
            switch (a.values()) {
                case byte[] values -> bytes(values);
                case short[] values -> { for (short x : values) u16(x); }
                case int[] values -> { for (int x : values) u32(x); }
                case long[] values -> { for (long x : values) u64(x); }
                case float[] values -> { for (float x : values) u32(Float.floatToRawIntBits(x)); }
                case double[] values -> { for (double x : values) u64(Double.doubleToRawLongBits(x)); }
                case String[] values -> { for (String x : values) string(x); }
                case GgufArray[] values -> { for (GgufArray x : values) array(x); }
                default -> throw new IllegalArgumentException("unsupported array values " + a.values().getClass());
            }
        }

        public byte[] toByteArray() {
            return buf.toByteArray();
        }
    }
}
