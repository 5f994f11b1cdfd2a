package io.kvstash.offload;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.sampling.SamplingParams;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Sessions over real tiers (stories15M, RocksDB in a temp dir). */
class SessionStoreTest {
    static final String MODEL = "stories15M-q8_0.gguf";
    static final long HOT_BYTES = 256L << 20;
    static final String STORY = "Lily liked to draw. She drew the sun, the moon, a cat and a tall tree with red apples. "
            + "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her "
            + "friends. One day, she saw a big red ball under a tree. She ran to get it, but a small dog got there first. The dog "
            + "wagged its tail and looked at Lily. Lily smiled and said, \"Can we play together?\" The dog barked happily. They "
            + "played with the ball all afternoon, running and jumping in the warm sun. When the sun began to set, Lily's mom "
            + "called her home. Lily waved goodbye to the dog and promised to come back tomorrow. That night, she dreamed of "
            + "the park, the ball and her new friend. The next morning, Lily woke up early and ran to the window. It was raining! "
            + "She felt sad because she could not go to the park. Her mom gave her a warm hug and said they could bake cookies "
            + "instead. Lily helped her mom mix the flour, the sugar and the butter, and soon the kitchen smelled sweet. "
            + "When the cookies were ready, Lily put some in a little box. She wanted to give them to the dog in the park. The rain "
            + "stopped in the afternoon, and a rainbow came out over the houses. Lily and her mom put on their boots and walked to "
            + "the park. The dog was there, sitting under the big tree. Lily opened the box and gave the dog a cookie. The dog "
            + "ate it and wagged its tail so hard that it fell over. Lily laughed and laughed. Her mom said the dog needed a name, "
            + "so Lily called him Biscuit. From that day on, Lily and Biscuit played in the park every day, rain or shine.";

    @TempDir
    Path dir;

    static int[] tokens(InferenceEngine e, int n, int skip) {
        int[] all = e.tokenizer().encode(STORY, true, false);
        assertTrue(all.length >= n + skip, "story has " + all.length + " tokens");
        int[] out = new int[n];
        out[0] = e.tokenizer().bos();
        System.arraycopy(all, 1 + skip, out, 1, n - 1);
        return out;
    }

    static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /** Next-token logits after {@code tokens}, computed from scratch in one fresh sequence. */
    static float[] fresh(InferenceEngine e, int[] tokens) {
        float[] logits = new float[e.config().vocabularySize()];
        try (KvCache cache = e.newSequence()) {
            e.forward(cache, tokens, 0, tokens.length, tokens.length - 1, logits);
        }
        return logits;
    }

    /**
     * Next-token logits after the tokens the session's KV holds (all of them, unless it shifted) plus
     * {@code next}, from its resumed KV.
     */
    static float[] resumed(Tiers t, String id, int[] next, int[] sources) {
        SessionRecord r = t.sessions.get("acme", id);
        int[] history = concat(r.kvTokens(), next);
        SessionStore.Resumed res = t.sessions.resume("acme", r, history);
        sources[0] = res.hotChunks();
        sources[1] = res.warmChunks();
        sources[2] = res.tailTokens();
        float[] logits = new float[t.engine.config().vocabularySize()];
        try (KvCache cache = res.cache()) {
            int from = cache.length();
            t.engine.forward(cache, history, from, history.length - from, history.length - from - 1, logits);
        }
        return logits;
    }

    static void assertLookups(HotTier.Stats before, HotTier.Stats after, long hits, long misses, String what) {
        assertEquals(hits, after.hits() - before.hits(), what + ": hot-tier hits");
        assertEquals(misses, after.misses() - before.misses(), what + ": hot-tier misses");
    }

    static void assertBitIdentical(float[] expected, float[] actual, String what) {
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                throw new AssertionError(what + ": logit " + i + " is " + actual[i] + ", expected " + expected[i]);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(KvFormat.class)
    void shouldGiveBitIdenticalLogitsWhenResumedFromHotFromWarmAndAfterReopening(KvFormat format) throws Exception {
        Path model = Tiers.model(MODEL);
        String id;
        int[] next;
        float[] reference;
        int[] sources = new int[3];
        try (Tiers t = new Tiers(model, format, dir, HOT_BYTES, SessionStore.Config.defaults())) {
            int[] prompt = tokens(t.engine, 150, 0);
            next = Arrays.copyOfRange(tokens(t.engine, 40, 150), 1, 6);
            SessionRecord r = t.sessions.create("acme");
            id = r.id();
            SessionStore.TurnResult turn = t.sessions.turn("acme", id, prompt, List.of(), SamplingParams.greedy(), 20, true, null).get();
            assertEquals(170, turn.record().tokens().length);
            assertEquals(169, turn.record().kvLength(), "the last sampled token has no KV yet");
            assertEquals(2, turn.record().chunkKeys().size());
            reference = fresh(t.engine, concat(turn.record().tokens(), next));

            HotTier.Stats before = t.hot().stats();
            float[] hot = resumed(t, id, next, sources);
            assertEquals(List.of(2, 0, 41), List.of(sources[0], sources[1], sources[2]), "hot chunks, warm chunks, tail");
            assertBitIdentical(reference, hot, format + " resumed from the hot tier");
            assertLookups(before, t.hot().stats(), 2, 0, "resumed from the hot tier");

            assertTrue(t.hot().evictAll() >= 2);
            before = t.hot().stats();
            float[] warm = resumed(t, id, next, sources);
            assertEquals(List.of(0, 2, 41), List.of(sources[0], sources[1], sources[2]), "hot chunks, warm chunks, tail");
            assertBitIdentical(reference, warm, format + " resumed from the warm tier");
            // One miss per chunk read from the warm tier: the second look before registering it is not another miss.
            assertLookups(before, t.hot().stats(), 0, 2, "resumed from the warm tier");
        }
        try (Tiers t = new Tiers(model, format, dir, HOT_BYTES, SessionStore.Config.defaults())) {
            HotTier.Stats before = t.hot().stats();
            float[] reopened = resumed(t, id, next, sources);
            assertEquals(List.of(0, 2, 41), List.of(sources[0], sources[1], sources[2]), "hot chunks, warm chunks, tail");
            assertBitIdentical(reference, reopened, format + " resumed after closing and reopening the store");
            assertLookups(before, t.hot().stats(), 0, 2, "resumed after reopening");
        }
    }

    /**
     * Truncate: a session that drops its oldest turn replies as a fresh session holding only the
     * kept conversation (greedy, same tokens), reuses the KV of the prefix they share, and keeps
     * every message in its record; the view of the tokens skips the dropped messages.
     */
    @Test
    void shouldReplyAsAFreshSessionOnTheKeptConversationAndKeepEveryMessageWhenTruncated() throws Exception {
        try (Tiers t = new Tiers(Tiers.model(MODEL), KvFormat.Q8, dir, HOT_BYTES, SessionStore.Config.defaults())) {
            int[] system = tokens(t.engine, 70, 0);            // leading system turn: one full chunk and a bit
            int[] user1 = Arrays.copyOfRange(tokens(t.engine, 41, 70), 1, 41);
            int[] user2 = Arrays.copyOfRange(tokens(t.engine, 31, 120), 1, 31);
            SessionRecord.Message sys = new SessionRecord.Message("system", "sys");
            SessionRecord.Message u1 = new SessionRecord.Message("user", "one");
            SessionRecord.Message u2 = new SessionRecord.Message("user", "two");
            String id = t.sessions.create("acme").id();
            t.sessions.turn("acme", id, system, List.of(sys), SamplingParams.greedy(), 0, false, null).get();
            SessionRecord afterFirst = t.sessions.begin("acme", id, user1, List.of(u1),
                    g -> List.of(new SessionRecord.Message("assistant", "reply one")), SamplingParams.greedy(), 10, true, null)
                    .result().get().record();
            assertEquals(3, afterFirst.messages().size());

            // Drop user1 and its reply: the tokens become the system turn, then the new message.
            int[] kept = concat(system, user2);
            SessionStore.TurnResult truncated = t.sessions.beginTruncated("acme", id, afterFirst.version(), kept, 2, List.of(u2),
                    g -> List.of(new SessionRecord.Message("assistant", "reply two")), SamplingParams.greedy(), 12, true, null)
                    .result().get();
            SessionRecord r = truncated.record();
            assertEquals(List.of("system", "user", "assistant", "user", "assistant"), r.messages().stream().map(SessionRecord.Message::role)
                    .toList(), "every message survives");
            assertEquals(2, r.droppedMessages());
            assertEquals(List.of(sys, u2, new SessionRecord.Message("assistant", "reply two")), r.heldMessages());
            assertArrayEquals(kept, Arrays.copyOf(r.tokens(), kept.length), "the tokens are the kept conversation");
            assertEquals(1, truncated.hotChunks(), "the system turn's full chunk is reused");
            assertEquals(kept.length - 64, truncated.computedTokens(), "the rest is recomputed (the old tail does not fit)");

            String freshId = t.sessions.create("acme").id();
            SessionStore.TurnResult fresh = t.sessions.turn("acme", freshId, kept, List.of(), SamplingParams.greedy(), 12, true, null).get();
            assertArrayEquals(fresh.generation().tokens(), truncated.generation().tokens(), "same reply as a fresh session");

            // A later plain turn appends to the kept tokens and keeps the dropped count; the record reads back the same.
            SessionRecord next = t.sessions.turn("acme", id, new int[] {user2[0]}, List.of(u1), SamplingParams.greedy(), 2, true, null)
                    .get().record();
            assertEquals(2, next.droppedMessages());
            assertEquals(6, next.messages().size());
            assertEquals(next, SessionRecord.decode(next.encode()));
            assertEquals(2, t.sessions.fork("acme", id).droppedMessages(), "a fork holds the same tokens");

            assertThrows(SessionBusyException.class, () -> t.sessions.beginTruncated("acme", id, afterFirst.version(), kept, 2, List.of(),
                    g -> List.of(), SamplingParams.greedy(), 1, true, null), "the session changed since that version");
        }
    }

    /**
     * Shift: turns generate past the context length, shifting the KV in chunks behind one sink
     * chunk, and give the tokens of the same greedy run kept in memory without a break (shifting at
     * the same points); the record keeps every token, says which the KV no longer holds, and names
     * moved chunks with keys of their own; the KV resumes bit-identically from either tier.
     */
    @ParameterizedTest
    @EnumSource(value = KvFormat.class, names = {"F32", "Q8", "KIVI4"})
    void shouldGenerateAcrossTheContextAndResumeTheShiftedKvWhenShifting(KvFormat format) throws Exception {
        int context = 192;
        int c = 64;
        try (Tiers t = new Tiers(Tiers.model(MODEL), format, dir, HOT_BYTES, SessionStore.Config.defaults(), context)) {
            InferenceEngine e = t.engine;
            int[] prompt = tokens(e, 150, 0);
            int[] second = Arrays.copyOfRange(tokens(e, 91, 150), 1, 91);
            String id = t.sessions.create("acme").id();
            SessionRecord.Message m1 = new SessionRecord.Message("user", "one");
            SessionStore.TurnResult first = t.sessions.beginShifting("acme", id, prompt, List.of(m1), g -> List.of(), SamplingParams.greedy(),
                    120, true, null, 1).result().get();
            SessionStore.TurnResult next = t.sessions.beginShifting("acme", id, second, List.of(m1), g -> List.of(), SamplingParams.greedy(),
                    40, true, null, 1).result().get();

            // The same conversation in one cache, by hand.
            int[] expected1;
            int[] expected2;
            float[] after;
            try (KvCache cache = e.newSequence()) {
                List<Integer> held = new java.util.ArrayList<>();
                expected1 = greedyShifting(e, cache, held, prompt, 120, context);
                int before = cache.length();
                expected2 = greedyShifting(e, cache, held, concat(new int[] {expected1[119]}, second), 40, context);
                assertTrue(before + 1 + second.length > context, "the second turn shifts at its start too");
                after = new float[e.config().vocabularySize()];
                e.forward(cache, new int[] {expected2[39]}, 0, 1, 0, after);
            }
            assertArrayEquals(expected1, first.generation().tokens(), format + " first turn");
            assertArrayEquals(expected2, next.generation().tokens(), format + " second turn");

            SessionRecord r = next.record();
            assertEquals(150 + 120 + 90 + 40, r.tokens().length, "every token stays in the record");
            assertEquals(2, r.messages().size());
            assertEquals(c, r.sinkTokens());
            assertTrue(r.shiftedTokens() > 0 && r.shiftedTokens() % c == 0, "shifted " + r.shiftedTokens());
            assertEquals(r.tokens().length - r.shiftedTokens() - 1, r.kvLength(), "the KV holds all but the shifted and the last token");
            assertArrayEquals(Arrays.copyOfRange(r.tokens(), 0, c), Arrays.copyOfRange(r.kvTokens(), 0, c), "the sinks stay");
            ChunkKey[] chained = ChunkKey.chain("acme", e.fingerprint(), format, c, r.kvTokens(), r.chunkKeys().size());
            assertEquals(chained[0], r.chunkKeys().get(0), "the sink chunk keeps its key");
            assertTrue(!chained[1].equals(r.chunkKeys().get(1)), "a moved chunk is not named as if computed at its position");

            int[] sources = new int[3];
            int[] none = new int[0]; // the record's last token (the last one sampled) is not in the KV yet: it is fed
            assertBitIdentical(after, resumed(t, id, none, sources), format + " resumed from the hot tier");
            assertEquals(r.chunkKeys().size(), sources[0]);
            assertTrue(t.hot().evictAll() >= 1);
            assertBitIdentical(after, resumed(t, id, none, sources), format + " resumed from the warm tier");
            assertEquals(r.chunkKeys().size(), sources[1]);
        }
    }

    /**
     * A shifting session whose KV was dropped (over the disk budget) cannot shift at the start of
     * its next turn: it keeps the sinks' place, drops the same tokens and computes the rest again,
     * as a fresh sequence of the kept tokens would; its record stays consistent (resumes bit-identically).
     */
    @Test
    void shouldRecomputeTheKeptTokensWhenTheKvToShiftIsGone() throws Exception {
        int context = 192;
        int c = 64;
        SessionStore.Config tight = new SessionStore.Config(1, true, java.time.Duration.ZERO);
        try (Tiers t = new Tiers(Tiers.model(MODEL), KvFormat.Q8, dir, HOT_BYTES, tight, context)) {
            InferenceEngine e = t.engine;
            int[] second = Arrays.copyOfRange(tokens(e, 91, 150), 1, 91);
            String id = t.sessions.create("acme").id();
            SessionRecord first = t.sessions.beginShifting("acme", id, tokens(e, 150, 0), List.of(), g -> List.of(), SamplingParams.greedy(),
                    120, true, null, 1).result().get().record();
            assertTrue(first.shiftedTokens() > 0);
            String other = t.sessions.create("acme").id();
            t.sessions.turn("acme", other, tokens(e, 10, 300), List.of(), SamplingParams.greedy(), 1, true, null).get();
            assertEquals(0, t.sessions.get("acme", id).chunkKeys().size(), "the first session lost its KV to the budget");
            assertEquals(first.shiftedTokens(), t.sessions.get("acme", id).shiftedTokens(), "but not its tokens");

            SessionStore.TurnResult next = t.sessions.beginShifting("acme", id, second, List.of(), g -> List.of(), SamplingParams.greedy(),
                    40, true, null, 1).result().get();
            int[] all = concat(first.kvTokens(), second);
            int drop = Math.max((all.length - context + c - 1) / c, 1);
            int[] kept = new int[all.length - drop * c];
            System.arraycopy(all, 0, kept, 0, c);
            System.arraycopy(all, (1 + drop) * c, kept, c, kept.length - c);
            assertEquals(kept.length, next.promptTokens());
            assertEquals(kept.length, next.computedTokens(), "nothing to resume: all computed");
            float[] after = new float[e.config().vocabularySize()];
            int[] expected;
            try (KvCache cache = e.newSequence()) {
                expected = greedyShifting(e, cache, new java.util.ArrayList<>(), kept, 40, context);
                e.forward(cache, new int[] {expected[39]}, 0, 1, 0, after);
            }
            assertArrayEquals(expected, next.generation().tokens());
            assertTrue(next.record().shiftedTokens() >= first.shiftedTokens() + drop * c, "the dropped tokens count as shifted out");
            assertBitIdentical(after, resumed(t, id, new int[0], new int[3]), "resumed after the recompute");
        }
    }

    /**
     * Feeds {@code feed} and samples {@code n} tokens greedily, shifting as a shifting session
     * does with one sink chunk: at the start (cutting a partial tail, which is fed again) as much as
     * the feed needs and at least half the rest, while generating half the chunks after the sink
     * whenever the cache is full. {@code held}: the tokens in the cache, kept up to date.
     */
    static int[] greedyShifting(InferenceEngine e, KvCache cache, List<Integer> held, int[] feed, int n, int context) {
        int c = cache.geometry().chunkTokens();
        if (cache.length() + feed.length > context) {
            int needed = (cache.length() + feed.length - context + c - 1) / c;
            int drop = Math.max(needed, (context / c - 1) / 2);
            int whole = cache.length() / c * c;
            int[] refeed = held.subList(whole, held.size()).stream().mapToInt(Integer::intValue).toArray();
            cache.truncate(whole);
            e.shift(cache, 1, drop);
            held.subList(whole, held.size()).clear();
            held.subList(c, (1 + drop) * c).clear();
            feed = concat(refeed, feed);
        }
        float[] logits = new float[e.config().vocabularySize()];
        e.forward(cache, feed, 0, feed.length, feed.length - 1, logits);
        for (int t : feed) {
            held.add(t);
        }
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            int best = 0;
            for (int v = 1; v < logits.length; v++) {
                if (logits[v] > logits[best]) {
                    best = v;
                }
            }
            out[i] = best;
            if (i == n - 1) {
                break;
            }
            if (cache.length() >= context) {
                int drop = Math.max(1, (cache.length() / c - 1) / 2);
                e.shift(cache, 1, drop);
                held.subList(c, (1 + drop) * c).clear();
            }
            e.forward(cache, out, i, 1, 0, logits);
            held.add(best);
        }
        return out;
    }

    @Test
    void shouldComputeAndStoreASharedPrefixOnceWhenTwoSessionsStartWithIt() throws Exception {
        Path model = Tiers.model(MODEL);
        try (Tiers t = new Tiers(model, KvFormat.KIVI4, dir, HOT_BYTES, SessionStore.Config.defaults())) {
            int[] prefix = tokens(t.engine, 200, 0);
            int[] a = concat(prefix, Arrays.copyOfRange(tokens(t.engine, 40, 200), 1, 31));
            int[] b = concat(prefix, Arrays.copyOfRange(tokens(t.engine, 40, 240), 1, 31));
            String ida = t.sessions.create("acme").id();
            String idb = t.sessions.create("acme").id();
            SessionStore.TurnResult ta = t.sessions.turn("acme", ida, a, List.of(), SamplingParams.greedy(), 8, true, null).get();
            SessionStore.TurnResult tb = t.sessions.turn("acme", idb, b, List.of(), SamplingParams.greedy(), 8, true, null).get();
            assertEquals(0, ta.cachedTokens());
            assertEquals(3, tb.hotChunks(), "the 200-token prefix holds three full chunks, computed by the first session");
            assertEquals(b.length - 192, tb.computedTokens());

            Set<ChunkKey> union = new HashSet<>(ta.record().chunkKeys());
            union.addAll(tb.record().chunkKeys());
            assertEquals(ta.record().chunkKeys().subList(0, 3), tb.record().chunkKeys().subList(0, 3));
            assertEquals(union.size(), t.sessions.storedChunks(), "each distinct chunk stored once");
            assertTrue(union.size() < ta.record().chunkKeys().size() + tb.record().chunkKeys().size());

            // Same logits as computing B alone, from scratch.
            int[] next = {tb.record().tokens()[5]};
            int[] sources = new int[3];
            assertBitIdentical(fresh(t.engine, concat(tb.record().tokens(), next)), resumed(t, idb, next, sources), "prefix reuse");

            // Another tenant computes its own.
            String other = t.sessions.create("globex").id();
            SessionStore.TurnResult tc = t.sessions.turn("globex", other, a, List.of(), SamplingParams.greedy(), 1, true, null).get();
            assertEquals(0, tc.cachedTokens(), "chunks are never shared across tenants");
            assertThrows(UnknownSessionException.class, () -> t.sessions.get("globex", ida));
        }
    }

    @Test
    void shouldForkDeleteAndCollectChunksOnlyWhenNoSessionListsThem() throws Exception {
        Path model = Tiers.model(MODEL);
        SessionStore.Config config = new SessionStore.Config(Long.MAX_VALUE, true, java.time.Duration.ZERO);
        try (Tiers t = new Tiers(model, KvFormat.Q8, dir, HOT_BYTES, config)) {
            String id = t.sessions.create("acme").id();
            SessionStore.TurnResult first = t.sessions.turn("acme", id, tokens(t.engine, 140, 0), List.of(), SamplingParams.greedy(), 4, true, null).get();
            SessionRecord fork = t.sessions.fork("acme", id);
            assertEquals(first.record().chunkKeys(), fork.chunkKeys());
            int stored = t.sessions.storedChunks();

            SessionStore.TurnResult onFork = t.sessions.turn("acme", fork.id(), new int[] {first.record().tokens()[3]}, List.of(),
                    SamplingParams.greedy(), 3, true, null).get();
            assertEquals(2, onFork.hotChunks(), "the fork resumes from the original's chunks");

            t.sessions.delete("acme", id);
            assertEquals(0, t.sessions.collectGarbage(), "the fork still lists every chunk");
            assertEquals(stored, t.sessions.storedChunks());
            t.sessions.delete("acme", fork.id());
            assertEquals(stored, t.sessions.collectGarbage());
            assertEquals(0, t.sessions.storedChunks());
            assertThrows(UnknownSessionException.class, () -> t.sessions.get("acme", id));
        }
    }

    @Test
    void shouldWriteChunksBackOnEvictionWhenNotWritingThrough() throws Exception {
        Path model = Tiers.model(MODEL);
        SessionStore.Config writeBack = new SessionStore.Config(Long.MAX_VALUE, false, java.time.Duration.ofMinutes(10));
        try (Tiers t = new Tiers(model, KvFormat.KIVI4, dir, HOT_BYTES, writeBack)) {
            String id = t.sessions.create("acme").id();
            SessionStore.TurnResult turn = t.sessions.turn("acme", id, tokens(t.engine, 150, 0), List.of(), SamplingParams.greedy(), 4, true, null).get();
            assertEquals(0, t.sessions.storedChunks(), "write-back: the turn stored its record only");
            assertEquals(0, turn.record().chunkKeys().size(), "the record lists only chunks already in the warm tier");
            int[] next = {turn.record().tokens()[9]};
            float[] reference = fresh(t.engine, concat(turn.record().tokens(), next));

            assertEquals(2, t.hot().evictAll());
            assertEquals(2, t.sessions.storedChunks(), "eviction wrote both chunks back");
            assertEquals(2, t.hot().stats().writeBacks());
            int[] sources = new int[3];
            float[] logits = resumed(t, id, next, sources);
            assertEquals(List.of(0, 2, 0), List.of(sources[0], sources[1], sources[2]), "chunks from the warm tier, the tail recomputed");
            assertBitIdentical(reference, logits, "resumed after write-back");
        }
    }

    @Test
    void shouldRefuseASecondConcurrentTurnOnOneSession() throws Exception {
        Path model = Tiers.model(MODEL);
        try (Tiers t = new Tiers(model, KvFormat.KIVI4, dir, HOT_BYTES, SessionStore.Config.defaults())) {
            String id = t.sessions.create("acme").id();
            var turn = t.sessions.turn("acme", id, tokens(t.engine, 50, 0), List.of(), SamplingParams.greedy(), 64, true, null);
            assertThrows(SessionBusyException.class,
                    () -> t.sessions.turn("acme", id, new int[] {5}, List.of(), SamplingParams.greedy(), 1, true, null));
            turn.get();
            t.sessions.turn("acme", id, new int[] {5}, List.of(), SamplingParams.greedy(), 1, true, null).get();
        }
    }

    @Test
    void shouldEndACancelledTurnWithTheTokensSoFarAndRecordTheReplyMessage() throws Exception {
        Path model = Tiers.model(MODEL);
        try (Tiers t = new Tiers(model, KvFormat.Q8, dir, HOT_BYTES, SessionStore.Config.defaults())) {
            String id = t.sessions.create("acme").id();
            java.util.concurrent.CountDownLatch firstToken = new java.util.concurrent.CountDownLatch(1);
            SessionStore.Turn turn = t.sessions.begin("acme", id, tokens(t.engine, 20, 0),
                    List.of(new SessionRecord.Message("user", "hi")),
                    result -> List.of(new SessionRecord.Message("assistant", result.text())), SamplingParams.greedy(), 500, true,
                    new io.kvstash.engine.scheduler.GenerationListener() {
                        @Override
                        public void onToken(int token, String text) {
                            firstToken.countDown();
                        }
                    });
            assertTrue(firstToken.await(1, java.util.concurrent.TimeUnit.MINUTES));
            turn.generation().cancel();
            SessionStore.TurnResult done = turn.result().get();
            assertEquals(io.kvstash.engine.scheduler.StopReason.CANCELLED, done.generation().reason());
            int generated = done.generation().tokens().length;
            assertTrue(generated >= 1 && generated < 500, generated + " tokens generated");
            assertEquals(20 + generated, t.sessions.get("acme", id).tokens().length);
            assertEquals(List.of(new SessionRecord.Message("user", "hi"), new SessionRecord.Message("assistant", done.generation().text())),
                    t.sessions.get("acme", id).messages());
        }
    }

    @Test
    void shouldOffloadAndRestoreASessionsChunks() throws Exception {
        Path model = Tiers.model(MODEL);
        try (Tiers t = new Tiers(model, KvFormat.KIVI2, dir, HOT_BYTES, SessionStore.Config.defaults())) {
            String id = t.sessions.create("acme").id();
            t.sessions.turn("acme", id, tokens(t.engine, 200, 0), List.of(), SamplingParams.greedy(), 1, true, null).get();
            assertEquals(new SessionStore.Residency(3, 0, 0, 3 * chunkBytes(t), 3 * chunkBytes(t)), t.sessions.residency("acme", id));
            assertEquals(0, t.sessions.offload("acme", id).hotChunks());
            assertEquals(3, t.sessions.residency("acme", id).warmChunks());
            assertEquals(3, t.sessions.restore("acme", id).hotChunks());
        }
    }

    @Test
    void shouldDropLeastRecentlyUsedSessionsChunksButKeepTheirTokensWhenOverTheDiskBudget() throws Exception {
        Path model = Tiers.model(MODEL);
        long budget;
        try (Tiers t = new Tiers(model, KvFormat.KIVI4, dir, HOT_BYTES, SessionStore.Config.defaults())) {
            budget = 5 * (chunkBytes(t) + 36) + 64 * 1024; // room for about five chunks
        }
        try (Tiers t = new Tiers(model, KvFormat.KIVI4, dir.resolve("budget"), HOT_BYTES,
                new SessionStore.Config(budget, true, java.time.Duration.ofHours(1)))) {
            String old = t.sessions.create("acme").id();
            SessionStore.TurnResult first = t.sessions.turn("acme", old, tokens(t.engine, 200, 0), List.of(), SamplingParams.greedy(), 1, true, null).get();
            Thread.sleep(5);
            String recent = t.sessions.create("acme").id();
            t.sessions.turn("acme", recent, tokens(t.engine, 200, 20), List.of(), SamplingParams.greedy(), 1, true, null).get();
            assertTrue(t.sessions.warmBytes() <= budget, t.sessions.warmBytes() + " bytes over a budget of " + budget);
            SessionRecord dropped = t.sessions.get("acme", old);
            assertEquals(0, dropped.chunkKeys().size(), "the older session lost its chunks");
            assertArrayEquals(first.record().tokens(), dropped.tokens(), "but not its tokens");
            assertEquals(3, t.sessions.get("acme", recent).chunkKeys().size());
            // Its next turn recomputes and answers.
            t.hot().evictAll();
            SessionStore.TurnResult again = t.sessions.turn("acme", old, new int[] {13}, List.of(), SamplingParams.greedy(), 2, true, null).get();
            assertEquals(0, again.cachedTokens());
        }
    }

    @Test
    void shouldReportUnknownSessionsAndEmptyTurns() throws ExecutionException, InterruptedException {
        Path model = Tiers.model(MODEL);
        try (Tiers t = new Tiers(model, KvFormat.F16, dir, HOT_BYTES, SessionStore.Config.defaults())) {
            assertThrows(UnknownSessionException.class, () -> t.sessions.get("acme", "no-such-session"));
            assertThrows(UnknownSessionException.class,
                    () -> t.sessions.turn("acme", "nope", new int[] {1}, List.of(), SamplingParams.greedy(), 1, true, null));
            String id = t.sessions.create("acme").id();
            assertThrows(IllegalArgumentException.class,
                    () -> t.sessions.turn("acme", id, new int[0], List.of(), SamplingParams.greedy(), 1, true, null));
            t.sessions.turn("acme", id, new int[] {1, 300}, List.of(), SamplingParams.greedy(), 1, true, null).get();
        }
    }

    static long chunkBytes(Tiers t) {
        var g = t.hot().geometry();
        return io.kvstash.engine.kv.ChunkLayout.of(g, g.format()).chunkBytes();
    }
}
