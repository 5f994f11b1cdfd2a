package io.kvstash.offload;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.kv.ChunkUnavailableException;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvChunk;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.model.SparseAttention;
import io.kvstash.engine.sampling.SamplingParams;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Sessions whose old chunks are parked in the warm tier (stories260K, Q8 KV, RocksDB in a temp dir): the
 * same replies and logits as with every chunk in the hot tier, fewer hot-tier bytes, and a resume from
 * RocksDB that parks instead of loading.
 */
class SessionParkingTest {
    static final String MODEL = "stories260K-f32.gguf";
    static final long HOT_BYTES = 64L << 20;
    static final int CONTEXT = 2048;
    static final KvFormat FORMAT = KvFormat.Q8;
    /** The sink chunk and the newest two stay hot; up to 32 transient slots (more than the parked chunks here). */
    static final SessionStore.Parking PARKING = new SessionStore.Parking(true, 2, 32, false);
    /** As {@link #PARKING} with three slots for a dozen parked chunks: prefills and dense steps attend in rounds. */
    static final SessionStore.Parking FEW_SLOTS = new SessionStore.Parking(true, 2, 3, false);

    @TempDir
    Path dir;

    /** Sparse decode past two chunks, {@code budget} positions of sink and chosen chunks, no dense layers. */
    static SparseAttention sparse(int budget) {
        return new SparseAttention(true, budget, 128, 0, SparseAttention.DEFAULT_SCORING, 16);
    }

    Tiers open(String name, boolean park, int budget) {
        return open(name, park ? PARKING : null, budget);
    }

    Tiers open(String name, SessionStore.Parking parking, int budget) {
        SessionStore.Config config = SessionStore.Config.defaults();
        return new Tiers(Tiers.model(MODEL), FORMAT, dir.resolve(name), HOT_BYTES, parking != null ? config.withParking(parking) : config, CONTEXT,
                sparse(budget));
    }

    /** {@code n} tokens of the story, repeated as often as needed, after a BOS when {@code bos}. */
    static int[] story(InferenceEngine e, int n, int skip, boolean bos) {
        int[] all = e.tokenizer().encode(SessionStoreTest.STORY, false, false);
        int[] out = new int[n];
        int from = 0;
        if (bos) {
            out[0] = e.tokenizer().bos();
            from = 1;
        }
        for (int i = from; i < n; i++) {
            out[i] = all[(skip + i) % all.length];
        }
        return out;
    }

    /** The turns of one conversation: a long prompt, then short messages; greedy replies of {@code reply} tokens each. */
    static SessionStore.TurnResult[] converse(Tiers t, int reply) throws Exception {
        String id = t.sessions.create("acme").id();
        SessionStore.TurnResult[] out = new SessionStore.TurnResult[4];
        out[0] = t.sessions.turn("acme", id, story(t.engine, 600, 0, true), List.of(), SamplingParams.greedy(), reply, true, null).get();
        for (int i = 1; i < out.length; i++) {
            out[i] = t.sessions.turn("acme", id, story(t.engine, 40, 100 * i, false), List.of(), SamplingParams.greedy(), reply, true, null)
                    .get();
        }
        return out;
    }

    @Test
    void shouldReplyWithTheSameTokensAndHoldFewerHotBytesWhenParking() throws Exception {
        SessionStore.TurnResult[] hot;
        long hotBytesResident;
        try (Tiers t = open("resident", false, 192)) {
            hot = converse(t, 60);
            hotBytesResident = t.hot().bytesInUse();
        }
        try (Tiers t = open("parked", true, 192)) {
            SessionStore.TurnResult[] parked = converse(t, 60);
            for (int i = 0; i < hot.length; i++) {
                assertArrayEquals(hot[i].generation().tokens(), parked[i].generation().tokens(), "reply of turn " + i);
                assertEquals(0, hot[i].footprint().parkedChunks());
            }
            SessionRecord r = parked[3].record();
            int chunks = r.chunkKeys().size();
            int expectParked = chunks - 1 - PARKING.residentChunks();
            assertTrue(expectParked >= 8, "a long session: " + chunks + " chunks");
            for (int i = 1; i < parked.length; i++) {
                // Chunks the previous turn left in the warm tier come back parked, read from RocksDB once each.
                int before = parked[i - 1].record().chunkKeys().size();
                assertEquals(PARKING.parked(before), parked[i].warmChunks(), "turn " + i + " parked from the warm tier");
                assertTrue(parked[i].footprint().parkedChunks() >= PARKING.parked(before), "turn " + i);
                assertTrue(parked[i].footprint().residentBytes() < hot[i].footprint().residentBytes(), "turn " + i);
                assertTrue(parked[i].footprint().transientBytes() > 0, "turn " + i);
            }
            SessionStore.Residency res = t.sessions.residency(r);
            assertEquals(expectParked, res.parkedChunks());
            assertEquals(chunks - expectParked, res.hotChunks(), "the sink and the newest chunks stay hot");
            assertEquals(expectParked, res.warmChunks());
            for (int c = 1; c < 1 + expectParked; c++) {
                assertFalse(t.hot().contains(r.chunkKeys().get(c)), "chunk " + c + " left the hot tier");
            }
            long chunkBytes = t.hot().geometry().chunkBytes();
            assertEquals(expectParked * chunkBytes, res.transientBytes());
            assertTrue(res.summaryBytes() > 0);
            assertTrue(t.hot().bytesInUse() <= hotBytesResident - expectParked * chunkBytes,
                    t.hot().bytesInUse() + " hot bytes parked, " + hotBytesResident + " resident");
        }
    }

    @Test
    void shouldParkKeptSummariesWithoutReadingTheBodiesWhenTheSessionReturns() throws Exception {
        SessionStore.TurnResult[] none;
        try (Tiers t = open("nothing-kept", new SessionStore.Parking(true, 2, 32, false, 0), 192)) {
            none = converse(t, 60);
            assertEquals(0, t.sessions.parkedSummaryHits(), "a capacity of 0 keeps no summary");
            assertEquals(0, t.sessions.parkedSummaryBytes());
        }
        try (Tiers t = open("kept", true, 192)) {
            SessionStore.TurnResult[] kept = converse(t, 60);
            for (int i = 0; i < none.length; i++) {
                assertArrayEquals(none[i].generation().tokens(), kept[i].generation().tokens(), "reply of turn " + i);
                assertEquals(none[i].warmChunks(), kept[i].warmChunks(), "turn " + i + ": parked chunks count as resumed from the warm tier");
            }
            // Turn 1 parks what turn 0 left (reading each body once); turns 2 and 3 find at least the chunks
            // the turn before them parked.
            long atLeast = 0;
            for (int i = 2; i < kept.length; i++) {
                atLeast += PARKING.parked(kept[i - 2].record().chunkKeys().size());
            }
            assertTrue(atLeast > 0);
            assertTrue(t.sessions.parkedSummaryHits() >= atLeast, t.sessions.parkedSummaryHits() + " summaries reused, " + atLeast + " expected");
            // One kept summary per chunk some turn parked: at least those of the chunks turn 3 found in the warm
            // tier, at most one per full chunk but the sink and the resident ones.
            long each = KvChunk.summaryBytes(t.hot().geometry(), KvChunk.SKETCH);
            long keptBytes = t.sessions.parkedSummaryBytes();
            assertEquals(0, keptBytes % each);
            assertTrue(keptBytes >= PARKING.parked(kept[2].record().chunkKeys().size()) * each, keptBytes + " bytes kept");
            assertTrue(keptBytes <= PARKING.parked(kept[3].record().chunkKeys().size()) * each, keptBytes + " bytes kept");
        }
    }

    @Test
    void shouldRestoreOnlyTheChunksTheNextTurnKeepsHotWhenTheOthersSummariesAreKept() throws Exception {
        try (Tiers t = open("restore", true, 192)) {
            String id = t.sessions.create("acme").id();
            int[] prompt = story(t.engine, 600, 0, true);
            t.sessions.turn("acme", id, prompt, List.of(), SamplingParams.greedy(), 20, true, null).get();
            // The second turn parks the old chunks, reading them once: their summaries are kept from then on.
            SessionRecord r = t.sessions.turn("acme", id, story(t.engine, 40, 100, false), List.of(), SamplingParams.greedy(), 20, true,
                    null).get().record();
            t.hot().evictAll();
            SessionStore.Residency res = t.sessions.restore("acme", id);
            int chunks = r.chunkKeys().size();
            int parkedNext = PARKING.parked(chunks); // chunks 1 .. parkedNext: at least these the next turn parks
            int left = 0;
            for (int c = 0; c < chunks; c++) {
                ChunkKey k = r.chunkKeys().get(c);
                boolean kept = c >= 1 && c <= parkedNext && t.sessions.summaryKept(k);
                left += kept ? 1 : 0;
                assertEquals(!kept, t.hot().contains(k), "chunk " + c + (kept ? " is parked next turn from its kept summary" : ""));
            }
            // The second turn added under a chunk (40 + 20 tokens), so it parked all but at most the last of them.
            assertTrue(left >= parkedNext - 1 && left >= 5, left + " of " + chunks + " chunks left in the warm tier");
            assertEquals(chunks - left, res.hotChunks());
            long hits = t.sessions.parkedSummaryHits();
            t.sessions.turn("acme", id, story(t.engine, 40, 200, false), List.of(), SamplingParams.greedy(), 20, true, null).get();
            assertTrue(t.sessions.parkedSummaryHits() - hits >= left, "the chunks left in the warm tier parked from their summaries");
        }
        try (Tiers t = open("restore-no-cache", new SessionStore.Parking(true, 2, 32, false, 0), 192)) {
            String id = t.sessions.create("acme").id();
            t.sessions.turn("acme", id, story(t.engine, 600, 0, true), List.of(), SamplingParams.greedy(), 20, true, null).get();
            SessionRecord r = t.sessions.turn("acme", id, story(t.engine, 40, 100, false), List.of(), SamplingParams.greedy(), 20, true,
                    null).get().record();
            t.hot().evictAll();
            assertEquals(r.chunkKeys().size(), t.sessions.restore("acme", id).hotChunks(), "with no kept summary every chunk is restored");
        }
    }

    @Test
    void shouldReplyWithTheSameTokensWhenParkedChunksOutnumberTheSlots() throws Exception {
        // Every turn's prefill (dense over the parked chunks) and each decode step's union of picks need
        // more than three slots: the engine attends in rounds, whose logits differ from one pass only
        // in rounding (ParkedChunksTest bounds it), so greedy replies stay the same.
        SessionStore.TurnResult[] hot;
        try (Tiers t = open("resident", null, 192)) {
            hot = converse(t, 60);
        }
        try (Tiers t = open("few-slots", FEW_SLOTS, 192)) {
            SessionStore.TurnResult[] parked = converse(t, 60);
            for (int i = 0; i < hot.length; i++) {
                assertArrayEquals(hot[i].generation().tokens(), parked[i].generation().tokens(), "reply of turn " + i);
            }
            long chunkBytes = t.hot().geometry().chunkBytes();
            for (int i = 1; i < parked.length; i++) {
                int before = parked[i - 1].record().chunkKeys().size();
                assertTrue(FEW_SLOTS.parked(before) > FEW_SLOTS.transientChunks(), "turn " + i + " parks more chunks than it has slots");
                assertEquals(FEW_SLOTS.parked(before), parked[i].warmChunks(), "turn " + i + " parked from the warm tier");
                assertEquals(FEW_SLOTS.transientChunks() * chunkBytes, parked[i].footprint().transientBytes(), "turn " + i + ": three slots");
            }
            SessionStore.Residency res = t.sessions.residency(parked[3].record());
            assertEquals(FEW_SLOTS.transientChunks() * chunkBytes, res.transientBytes());
        }
    }

    /**
     * A resume after the hot tier was emptied parks the old chunks (the hot tier gets only the sink and
     * the newest chunks) and gives bit-identical logits to a resume that loads every chunk: for a
     * prefill of new tokens (dense over the parked chunks) and the decode step after it, with a budget
     * that leaves chunks out (sparse) and one that covers the context (dense attention).
     */
    @ParameterizedTest
    @ValueSource(ints = {192, 4096})
    void shouldGiveBitIdenticalLogitsAndParkInsteadOfLoadingWhenResumedFromTheWarmTier(int budget) throws Exception {
        float[][] resident;
        try (Tiers t = open("resident", false, budget)) {
            resident = resumeAndStep(t, -1);
        }
        try (Tiers t = open("parked", true, budget)) {
            float[][] parked = resumeAndStep(t, 11);
            SessionStoreTest.assertBitIdentical(resident[0], parked[0], "prefill over parked chunks, budget " + budget);
            SessionStoreTest.assertBitIdentical(resident[1], parked[1], "decode over parked chunks, budget " + budget);
        }
    }

    /**
     * One session of 900 tokens (14 full chunks); the hot tier emptied; resumed with 5 new tokens, their
     * logits, then one decode step's. {@code expectParked} &gt;= 0: checks the resume parked that many and
     * loaded only the rest into the hot tier.
     */
    float[][] resumeAndStep(Tiers t, int expectParked) throws Exception {
        String id = t.sessions.create("acme").id();
        t.sessions.turn("acme", id, story(t.engine, 900, 0, true), List.of(), SamplingParams.greedy(), 1, true, null).get();
        t.hot().evictAll();
        assertEquals(0, t.hot().bytesInUse());
        SessionRecord r = t.sessions.get("acme", id);
        int[] next = story(t.engine, 6, 500, false);
        int[] history = SessionStoreTest.concat(r.kvTokens(), Arrays.copyOf(next, 5));
        SessionStore.Resumed res = t.sessions.resume("acme", r, history);
        int vocabulary = t.engine.config().vocabularySize();
        float[][] logits = new float[2][vocabulary];
        try (KvCache cache = res.cache()) {
            if (expectParked >= 0) {
                assertEquals(expectParked, cache.parkedChunks());
                assertEquals(r.chunkKeys().size(), res.warmChunks(), "every chunk came from the warm tier");
                int resident = r.chunkKeys().size() - expectParked;
                // The resident chunks and the tail: each parked one went through one slab, freed at once.
                assertEquals(cache.bytes(), t.hot().bytesInUse(), "the hot tier holds what the cache holds resident, nothing else");
                assertEquals(resident, t.hot().keys().size());
                for (int c = 1; c <= expectParked; c++) {
                    assertFalse(t.hot().contains(r.chunkKeys().get(c)), "parked chunk " + c + " is not in the hot tier");
                }
            }
            int from = cache.length();
            t.engine.forward(cache, history, from, history.length - from, history.length - from - 1, logits[0]);
            int[] step = SessionStoreTest.concat(history, new int[] {next[5]});
            t.engine.forward(cache, step, history.length, 1, 0, logits[1]);
        }
        return logits;
    }

    /**
     * A parked chunk the warm tier cannot give back fails the step that needs it with an error naming the
     * chunk, and the record stays as it was; a turn whose resume finds a chunk missing recomputes it.
     */
    @Test
    void shouldFailTheStepNamingTheChunkAndKeepTheRecordWhenAParkedChunkCannotBeRead() throws Exception {
        try (Tiers t = open("parked", true, 192)) {
            String id = t.sessions.create("acme").id();
            SessionStore.TurnResult first = t.sessions.turn("acme", id, story(t.engine, 900, 0, true), List.of(), SamplingParams.greedy(), 4,
                    true, null).get();
            SessionRecord r = first.record();
            int[] history = SessionStoreTest.concat(r.kvTokens(), story(t.engine, 3, 500, false));
            SessionStore.Resumed res = t.sessions.resume("acme", r, history);
            ChunkKey lost = r.chunkKeys().get(3);
            try (KvCache cache = res.cache()) {
                assertTrue(cache.chunk(3).parked());
                t.warm.deleteChunks(List.of(lost.bytes()));
                int from = cache.length();
                float[] logits = new float[t.engine.config().vocabularySize()];
                ChunkUnavailableException e = assertThrows(ChunkUnavailableException.class,
                        () -> t.engine.forward(cache, history, from, history.length - from, history.length - from - 1, logits));
                assertTrue(e.getMessage().contains(lost.toString()), e.getMessage());
            }
            assertEquals(r, t.sessions.get("acme", id), "the record is unchanged");

            // The next turn does not find chunk 3: it computes it (and what follows) again, and stores it again.
            SessionStore.TurnResult again = t.sessions.turn("acme", id, story(t.engine, 3, 500, false), List.of(), SamplingParams.greedy(), 4,
                    true, null).get();
            assertEquals(3, again.hotChunks() + again.warmChunks(), "chunks 0..2 resumed");
            assertTrue(again.computedTokens() > r.kvLength() - 3 * 64);
            assertEquals(r.chunkKeys(), again.record().chunkKeys().subList(0, r.chunkKeys().size()));
        }
    }

    /**
     * A turn whose prefill needs a parked chunk that the warm tier lost (deleted behind the store's back
     * while the chunk was still hot, so the resume parked it without reading it) fails with that error;
     * the record stays as it was, and the next turn computes the chunk again and replies as a session that
     * never lost it.
     */
    @Test
    void shouldFailTheTurnAndKeepTheRecordWhenAParkedChunkIsLostThenRecompute() throws Exception {
        int[] prompt;
        int[] message;
        int[] expected;
        try (Tiers t = open("reference", false, 192)) {
            prompt = story(t.engine, 900, 0, true);
            message = story(t.engine, 3, 500, false);
            String id = t.sessions.create("acme").id();
            t.sessions.turn("acme", id, prompt, List.of(), SamplingParams.greedy(), 4, true, null).get();
            expected = t.sessions.turn("acme", id, message, List.of(), SamplingParams.greedy(), 8, true, null).get().generation().tokens();
        }
        try (Tiers t = open("parked", true, 192)) {
            String id = t.sessions.create("acme").id();
            SessionRecord r = t.sessions.turn("acme", id, prompt, List.of(), SamplingParams.greedy(), 4, true, null).get().record();
            t.sessions.restore("acme", id); // every chunk hot again: the next resume parks chunk 3 without reading it
            ChunkKey lost = r.chunkKeys().get(3);
            t.warm.deleteChunks(List.of(lost.bytes()));
            java.util.concurrent.ExecutionException e = assertThrows(java.util.concurrent.ExecutionException.class,
                    () -> t.sessions.turn("acme", id, message, List.of(), SamplingParams.greedy(), 8, true, null).get());
            Throwable cause = e.getCause() instanceof java.util.concurrent.CompletionException c ? c.getCause() : e.getCause();
            assertTrue(cause instanceof ChunkUnavailableException && cause.getMessage().contains(lost.toString()), String.valueOf(cause));
            assertEquals(r, t.sessions.get("acme", id), "the record is unchanged");

            SessionStore.TurnResult again = t.sessions.turn("acme", id, message, List.of(), SamplingParams.greedy(), 8, true, null).get();
            assertArrayEquals(expected, again.generation().tokens(), "the reply of a session that never lost the chunk");
            assertTrue(t.warm.chunkExists(lost.bytes()), "the recomputed chunk is stored again");
        }
    }

    @Test
    void shouldRefuseToParkWhenSparseDecodeIsOff() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new Tiers(Tiers.model(MODEL), FORMAT, dir, HOT_BYTES, SessionStore.Config.defaults().withParking(PARKING), CONTEXT,
                        SparseAttention.OFF).close());
        assertTrue(e.getMessage().contains("sparse decode"), e.getMessage());
    }
}
