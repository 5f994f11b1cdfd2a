package io.kvstash.engine.gguf;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A GGUF v2/v3 file, memory-mapped read-only. Metadata is parsed onto the heap (it is small and
 * bounded by the file size); tensor data stays in the mapping and is handed out as slices.
 *
 * <p>Every length, count and offset read from the file is checked against what is left of the
 * file before it is used, so a truncated, corrupted or fabricated file fails with a
 * {@link GgufFormatException} that names the problem, never with an out-of-bounds access or an
 * allocation larger than the file.
 */
public final class GgufFile implements AutoCloseable {
    public static final int MAGIC = 0x46554747; // "GGUF" little-endian
    public static final int DEFAULT_ALIGNMENT = 32;
    private static final int MAX_DIMS = 4;
    private static final int MAX_ARRAY_NESTING = 4;
    /** Largest length a Java array can have; a longer string or array can only be met in a file over 2 GiB. */
    private static final long MAX_JAVA_ARRAY = Integer.MAX_VALUE - 8;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path path;
    private final Arena arena;
    private final MemorySegment mapping;
    private final int version;
    private final Map<String, Object> metadata;
    private final Map<String, GgufValueType> metadataTypes;
    private final Map<String, GgufTensor> tensors;
    private final long dataOffset;
    private final int alignment;

    private GgufFile(Path path, Arena arena, MemorySegment mapping, int version, Map<String, Object> metadata,
                     Map<String, GgufValueType> metadataTypes, Map<String, GgufTensor> tensors, long dataOffset, int alignment) {
        this.path = path;
        this.arena = arena;
        this.mapping = mapping;
        this.version = version;
        this.metadata = Collections.unmodifiableMap(metadata);
        this.metadataTypes = Collections.unmodifiableMap(metadataTypes);
        this.tensors = Collections.unmodifiableMap(tensors);
        this.dataOffset = dataOffset;
        this.alignment = alignment;
    }

    /** Maps and parses {@code path}. The caller owns the result and must close it. */
    public static GgufFile open(Path path) {
        Arena arena = Arena.ofShared();
        try {
            MemorySegment mapping;
            try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
                long size = ch.size();
                if (size == 0) {
                    mapping = MemorySegment.NULL.reinterpret(0);
                } else {
                    MemorySegment mapped = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
                    // The same bytes, same arena (so same lifetime and checks), but as a plain native
                    // segment: kernels then see one segment class for weights and KV chunks alike.
                    // Mixed classes make the JIT's type profile polymorphic, and it stops turning
                    // vector loads from segments into single instructions everywhere.
                    mapping = mapped.reinterpret(size, arena, null).asReadOnly();
                }
            } catch (NoSuchFileException e) {
                throw new GgufFormatException(path + ": no such file");
            } catch (IOException e) {
                throw new GgufFormatException(path + ": cannot read: " + e.getMessage(), e);
            }
            return parse(path, arena, mapping);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static GgufFile parse(Path path, Arena arena, MemorySegment mapping) {
        Reader r = new Reader(path, mapping);
        if (mapping.byteSize() < 4) {
            throw r.fail("file too short to be GGUF (" + mapping.byteSize() + " bytes)");
        }
        int magic = r.u32AsInt("magic");
        if (magic != MAGIC) {
            throw r.fail(String.format("not a GGUF file: wrong magic 0x%08x (expected \"GGUF\")", magic));
        }
        int version = r.u32AsInt("version");
        if (version == 0x03000000 || version == 0x02000000) {
            throw r.fail("big-endian GGUF files are not supported");
        }
        if (version != 2 && version != 3) {
            throw r.fail("unsupported GGUF version " + Integer.toUnsignedString(version) + " (supported: 2, 3)");
        }
        long tensorCount = r.u64("tensor count");
        long kvCount = r.u64("metadata count");
        // Smallest possible metadata entry: 8 (key length) + 1 (key) + 4 (type) + 1 (value).
        if (kvCount < 0 || kvCount > r.remaining() / 14) {
            throw r.fail("absurd metadata count " + Long.toUnsignedString(kvCount) + " for a file of " + mapping.byteSize() + " bytes");
        }
        // Smallest possible tensor info: 8 + 1 (name) + 4 (n_dims) + 4 (type) + 8 (offset).
        if (tensorCount < 0 || tensorCount > r.remaining() / 25) {
            throw r.fail("absurd tensor count " + Long.toUnsignedString(tensorCount) + " for a file of " + mapping.byteSize() + " bytes");
        }

        Map<String, Object> metadata = new LinkedHashMap<>();
        Map<String, GgufValueType> types = new LinkedHashMap<>();
        for (long i = 0; i < kvCount; i++) {
            String key = r.string("metadata key #" + i);
            GgufValueType type = r.valueType("metadata '" + key + "'");
            Object value = r.value(type, "metadata '" + key + "'", 0);
            if (metadata.putIfAbsent(key, value) != null) {
                throw r.fail("duplicate metadata key '" + key + "'");
            }
            types.put(key, type);
        }

        int alignment = DEFAULT_ALIGNMENT;
        if (metadata.containsKey("general.alignment")) {
            Object a = metadata.get("general.alignment");
            if (!(a instanceof Long l) || l <= 0 || l > (1 << 20) || Long.bitCount(l) != 1) {
                throw r.fail("general.alignment must be a power of two between 1 and 2^20, got " + a);
            }
            alignment = (int) (long) l;
        }

        record Info(String name, GgmlType type, long[] dims, long elements, long offset, long bytes) {}
        // Not presized: the count passed only a size check, so room grows with infos actually read.
        List<Info> infos = new java.util.ArrayList<>();
        java.util.Set<String> names = new java.util.HashSet<>();
        for (long i = 0; i < tensorCount; i++) {
            String name = r.string("tensor name #" + i);
            if (!names.add(name)) {
                throw r.fail("duplicate tensor name '" + name + "'");
            }
            long nDims = r.u32("tensor '" + name + "' dimension count");
            if (nDims < 1 || nDims > MAX_DIMS) {
                throw r.fail("tensor '" + name + "' has " + nDims + " dimensions (allowed: 1 to " + MAX_DIMS + ")");
            }
            long[] dims = new long[(int) nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++) {
                long n = r.u64("tensor '" + name + "' dimension " + d);
                if (n <= 0 || n > (1L << 40)) {
                    throw r.fail("tensor '" + name + "' has absurd dimension " + d + " = " + Long.toUnsignedString(n));
                }
                dims[d] = n;
                try {
                    elements = Math.multiplyExact(elements, n);
                } catch (ArithmeticException e) {
                    throw r.fail("tensor '" + name + "' element count overflows");
                }
            }
            long typeId = r.u32("tensor '" + name + "' type");
            GgmlType type = GgmlType.byId(typeId);
            if (type == null) {
                throw r.fail("tensor '" + name + "' has unknown type " + typeId);
            }
            if (dims[0] % type.blockSize != 0) {
                throw r.fail("tensor '" + name + "' of type " + type + " has row length " + dims[0]
                        + ", not a multiple of its block size " + type.blockSize);
            }
            long offset = r.u64("tensor '" + name + "' offset");
            if (offset < 0) {
                throw r.fail("tensor '" + name + "' offset " + Long.toUnsignedString(offset) + " lies outside the file");
            }
            if (offset % alignment != 0) {
                throw r.fail("tensor '" + name + "' offset " + Long.toUnsignedString(offset) + " is not aligned to " + alignment);
            }
            long bytes;
            try {
                bytes = Math.multiplyExact(elements / type.blockSize, (long) type.blockBytes);
            } catch (ArithmeticException e) {
                throw r.fail("tensor '" + name + "' byte size overflows");
            }
            infos.add(new Info(name, type, dims, elements, offset, bytes));
        }

        long dataOffset = alignUp(r.position(), alignment);
        long fileSize = mapping.byteSize();
        if (tensorCount > 0 && dataOffset > fileSize) {
            throw r.fail("truncated: tensor data would start at " + dataOffset + " but the file has " + fileSize + " bytes");
        }
        Map<String, GgufTensor> tensors = new LinkedHashMap<>();
        for (Info info : infos) {
            long available = fileSize - dataOffset;
            if (info.offset > available || info.bytes > available - info.offset) {
                throw r.fail("tensor '" + info.name + "' (" + info.type + ", " + info.bytes + " bytes at data offset "
                        + info.offset + ") lies outside the file (" + available + " bytes of tensor data)");
            }
            MemorySegment data = mapping.asSlice(dataOffset + info.offset, info.bytes).asReadOnly();
            tensors.put(info.name, new GgufTensor(info.name, info.type, info.dims, info.elements, info.offset, data));
        }
        return new GgufFile(path, arena, mapping, version, metadata, types, tensors, dataOffset, alignment);
    }

    private static long alignUp(long x, long alignment) {
        return (x + alignment - 1) / alignment * alignment;
    }

    public Path path() {
        return path;
    }

    public int version() {
        return version;
    }

    public int alignment() {
        return alignment;
    }

    public long dataOffset() {
        return dataOffset;
    }

    public long sizeBytes() {
        return mapping.byteSize();
    }

    /** Metadata values: {@code Long} for integers, {@code Float}/{@code Double}, {@code Boolean}, {@code String}, {@link GgufArray}. */
    public Map<String, Object> metadata() {
        return metadata;
    }

    public GgufValueType metadataType(String key) {
        return metadataTypes.get(key);
    }

    public Map<String, GgufTensor> tensors() {
        return tensors;
    }

    public GgufTensor tensor(String name) {
        return tensors.get(name);
    }

    public GgufTensor requireTensor(String name) {
        GgufTensor t = tensors.get(name);
        if (t == null) {
            throw new GgufFormatException(path + ": missing tensor '" + name + "'");
        }
        return t;
    }

    public boolean has(String key) {
        return metadata.containsKey(key);
    }

    public String getString(String key) {
        return get(key, String.class, "a string");
    }

    public String getString(String key, String fallback) {
        return has(key) ? getString(key) : fallback;
    }

    public long getLong(String key) {
        return get(key, Long.class, "an integer");
    }

    public int getInt(String key) {
        long v = getLong(key);
        if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
            throw new GgufFormatException(path + ": metadata '" + key + "' = " + v + " is out of range");
        }
        return (int) v;
    }

    public int getInt(String key, int fallback) {
        return has(key) ? getInt(key) : fallback;
    }

    public float getFloat(String key) {
        Object v = metadata.get(key);
        if (v instanceof Float f) {
            return f;
        }
        if (v instanceof Double d) {
            return d.floatValue();
        }
        if (v == null) {
            throw missing(key);
        }
        throw wrongType(key, "a float");
    }

    public float getFloat(String key, float fallback) {
        return has(key) ? getFloat(key) : fallback;
    }

    public boolean getBoolean(String key, boolean fallback) {
        return has(key) ? get(key, Boolean.class, "a boolean") : fallback;
    }

    public GgufArray getArray(String key) {
        return get(key, GgufArray.class, "an array");
    }

    public String[] getStringArray(String key) {
        GgufArray a = getArray(key);
        if (!(a.values() instanceof String[] s)) {
            throw wrongType(key, "an array of strings");
        }
        return s;
    }

    public float[] getFloatArray(String key) {
        GgufArray a = getArray(key);
        return switch (a.values()) {
            case float[] f -> f;
            case double[] d -> {
                float[] f = new float[d.length];
                for (int i = 0; i < d.length; i++) f[i] = (float) d[i];
                yield f;
            }
            default -> throw wrongType(key, "an array of floats");
        };
    }

    public int[] getIntArray(String key) {
        GgufArray a = getArray(key);
        return switch (a.values()) {
            case int[] i -> i;
            case byte[] b -> {
                int[] out = new int[b.length];
                boolean unsigned = a.elementType() == GgufValueType.UINT8;
                for (int i = 0; i < b.length; i++) out[i] = unsigned ? b[i] & 0xFF : b[i];
                yield out;
            }
            case short[] s -> {
                int[] out = new int[s.length];
                boolean unsigned = a.elementType() == GgufValueType.UINT16;
                for (int i = 0; i < s.length; i++) out[i] = unsigned ? s[i] & 0xFFFF : s[i];
                yield out;
            }
            case long[] l -> {
                int[] out = new int[l.length];
                for (int i = 0; i < l.length; i++) {
                    if (l[i] < Integer.MIN_VALUE || l[i] > Integer.MAX_VALUE) {
                        throw new GgufFormatException(path + ": metadata '" + key + "'[" + i + "] is out of range");
                    }
                    out[i] = (int) l[i];
                }
                yield out;
            }
            default -> throw wrongType(key, "an array of integers");
        };
    }

    private <T> T get(String key, Class<T> type, String what) {
        Object v = metadata.get(key);
        if (v == null) {
            throw missing(key);
        }
        if (!type.isInstance(v)) {
            throw wrongType(key, what);
        }
        return type.cast(v);
    }

    private GgufFormatException missing(String key) {
        return new GgufFormatException(path + ": missing metadata '" + key + "'");
    }

    private GgufFormatException wrongType(String key, String what) {
        return new GgufFormatException(path + ": metadata '" + key + "' is " + metadataTypes.get(key) + ", expected " + what);
    }

    /** Unmaps the file. Tensor slices handed out before become unusable. Idempotent. */
    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }

    /** Bounds-checked little-endian cursor over the mapping. */
    private static final class Reader {
        private final Path path;
        private final MemorySegment seg;
        private long pos;

        Reader(Path path, MemorySegment seg) {
            this.path = path;
            this.seg = seg;
        }

        long position() {
            return pos;
        }

        long remaining() {
            return seg.byteSize() - pos;
        }

        GgufFormatException fail(String message) {
            return new GgufFormatException(path + ": " + message);
        }

        private void need(long n, String what) {
            if (n < 0 || n > remaining()) {
                throw fail("truncated: " + what + " needs " + Long.toUnsignedString(n) + " bytes at offset " + pos
                        + " but only " + remaining() + " remain");
            }
        }

        int u32AsInt(String what) {
            need(4, what);
            int v = seg.get(I32, pos);
            pos += 4;
            return v;
        }

        long u32(String what) {
            return Integer.toUnsignedLong(u32AsInt(what));
        }

        long u64(String what) {
            need(8, what);
            long v = seg.get(I64, pos);
            pos += 8;
            return v;
        }

        String string(String what) {
            long len = u64(what + " length");
            need(len, what);
            if (len > MAX_JAVA_ARRAY) {
                throw fail(what + " is " + len + " bytes long, more than a Java array holds");
            }
            byte[] bytes = new byte[(int) len];
            MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, pos, bytes, 0, (int) len);
            pos += len;
            return new String(bytes, StandardCharsets.UTF_8);
        }

        GgufValueType valueType(String what) {
            long id = u32(what + " type");
            GgufValueType t = GgufValueType.byId(id);
            if (t == null) {
                throw fail(what + " has unknown value type " + id);
            }
            return t;
        }

        Object value(GgufValueType type, String what, int depth) {
            return switch (type) {
                case UINT8 -> { need(1, what); yield (long) (seg.get(ValueLayout.JAVA_BYTE, pos++) & 0xFF); }
                case INT8 -> { need(1, what); yield (long) seg.get(ValueLayout.JAVA_BYTE, pos++); }
                case BOOL -> {
                    need(1, what);
                    byte b = seg.get(ValueLayout.JAVA_BYTE, pos++);
                    if (b != 0 && b != 1) throw fail(what + " is a bool with invalid value " + b);
                    yield b == 1;
                }
                case UINT16 -> { need(2, what); long v = seg.get(I16, pos) & 0xFFFF; pos += 2; yield v; }
                case INT16 -> { need(2, what); long v = seg.get(I16, pos); pos += 2; yield v; }
                case UINT32 -> u32(what);
                case INT32 -> (long) u32AsInt(what);
                case UINT64, INT64 -> u64(what);
                case FLOAT32 -> { need(4, what); float v = seg.get(F32, pos); pos += 4; yield v; }
                case FLOAT64 -> { need(8, what); double v = seg.get(F64, pos); pos += 8; yield v; }
                case STRING -> string(what);
                case ARRAY -> array(what, depth);
            };
        }

        private GgufArray array(String what, int depth) {
            if (depth >= MAX_ARRAY_NESTING) {
                throw fail(what + " nests arrays deeper than " + MAX_ARRAY_NESTING);
            }
            GgufValueType et = valueType(what + " element");
            long count = u64(what + " array length");
            long minElement = et.size > 0 ? et.size : (et == GgufValueType.STRING ? 8 : 12);
            if (count < 0 || count > remaining() / minElement) {
                throw fail("absurd array length " + Long.toUnsignedString(count) + " for " + what + " (" + remaining() + " bytes left)");
            }
            if (count > MAX_JAVA_ARRAY) {
                throw fail("array length " + count + " for " + what + " is more than a Java array holds");
            }
            int n = (int) count;
            Object values = switch (et) {
                case UINT8, INT8, BOOL -> {
                    byte[] a = new byte[n];
                    MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, pos, a, 0, n);
                    pos += n;
                    yield a;
                }
                case UINT16, INT16 -> {
                    short[] a = new short[n];
                    MemorySegment.copy(seg, I16, pos, a, 0, n);
                    pos += 2L * n;
                    yield a;
                }
                case UINT32, INT32 -> {
                    int[] a = new int[n];
                    MemorySegment.copy(seg, I32, pos, a, 0, n);
                    pos += 4L * n;
                    yield a;
                }
                case UINT64, INT64 -> {
                    long[] a = new long[n];
                    MemorySegment.copy(seg, I64, pos, a, 0, n);
                    pos += 8L * n;
                    yield a;
                }
                case FLOAT32 -> {
                    float[] a = new float[n];
                    MemorySegment.copy(seg, F32, pos, a, 0, n);
                    pos += 4L * n;
                    yield a;
                }
                case FLOAT64 -> {
                    double[] a = new double[n];
                    MemorySegment.copy(seg, F64, pos, a, 0, n);
                    pos += 8L * n;
                    yield a;
                }
                case STRING -> {
                    String[] a = new String[n];
                    for (int i = 0; i < n; i++) a[i] = string(what + "[" + i + "]");
                    yield a;
                }
                case ARRAY -> {
                    GgufArray[] a = new GgufArray[n];
                    for (int i = 0; i < n; i++) a[i] = array(what + "[" + i + "]", depth + 1);
                    yield a;
                }
            };
            return new GgufArray(et, values);
        }
    }
}
