package io.kvstash.persistence;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Path;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/** Validation messages of {@link WarmStoreConfig}. */
class WarmStoreConfigTest {
    private static final WarmStoreConfig DEFAULTS = WarmStoreConfig.defaults(Path.of("store"));

    private static String messageOf(Supplier<WarmStoreConfig> build) {
        return assertThrows(IllegalArgumentException.class, build::get).getMessage();
    }

    @Test
    void shouldNameTheSettingWhenAValueIsOutOfRange() {
        assertEquals("path must be given", messageOf(() -> DEFAULTS.withPath(null)));
        assertEquals("blockCacheBytes must be between 1 MiB and 1 TiB, got 1000",
                messageOf(() -> DEFAULTS.withBlockCacheBytes(1000)));
        assertEquals("minBlobBytes must be between 0 and 64 MiB, got -1", messageOf(() -> DEFAULTS.withMinBlobBytes(-1)));
        assertEquals("writeBufferBytes must be between 1 MiB and 4 GiB, got 0", messageOf(() -> DEFAULTS.withWriteBufferBytes(0)));
        assertEquals("backgroundJobs must be between 1 and 64, got 0", messageOf(() -> DEFAULTS.withBackgroundJobs(0)));
    }

    @Test
    void shouldKeepOtherSettingsWhenChangingOne() {
        WarmStoreConfig changed = DEFAULTS.withBlockCacheBytes(8L << 20).withSyncWrites(true).withBlobFiles(false);
        assertEquals(8L << 20, changed.blockCacheBytes());
        assertEquals(true, changed.syncWrites());
        assertEquals(false, changed.blobFiles());
        assertEquals(DEFAULTS.path(), changed.path());
        assertEquals(DEFAULTS.writeBufferBytes(), changed.writeBufferBytes());
        assertEquals(DEFAULTS.minBlobBytes(), changed.minBlobBytes());
    }
}
