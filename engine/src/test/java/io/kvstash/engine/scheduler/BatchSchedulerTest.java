package io.kvstash.engine.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.EngineOptions;
import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.gguf.GgmlType;
import io.kvstash.engine.gguf.TinyModels;
import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.sampling.SamplingParams;
import io.kvstash.engine.testing.TestModels;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@link BatchScheduler}: batched greedy decoding gives every sequence exactly the tokens a solo
 * {@link InferenceEngine#generate} gives it, on a tiny seeded model and on stories15M (skipped
 * without {@code KVSTASH_TEST_MODELS}); sequences join and leave, cancel, concurrent submission,
 * the bounded queue and close with sequences in flight.
 */
class BatchSchedulerTest {
    static final String STORIES = "stories15M-q8_0.gguf";
    static final long TIMEOUT_S = 120;

    private static final String[] STORY_PROMPTS = {
        "Once upon a time",
        "Tom had a red ball. He liked to throw it high in the sky and catch it with both hands. One day the ball",
        "The little cat was hungry. She looked in the kitchen, under the table and behind the door, but there was no food."
                + " Then she heard a noise from the garden. It was her friend the dog, and he",
        "Lily and Ben were best friends. They played in the park every day after school. They liked the swings, the slide"
                + " and the big sandbox. One day they found a shiny key in the sand. \"What does it open?\" asked Ben. Lily did"
                + " not know, so they took it to the old man who lived next to the park. He looked at the key and smiled.",
        "Sam saw a bird.",
        "It was a sunny day. Mia went to the beach with her mom and dad. She built a big castle with towers and a wall,"
                + " and she put shells on the top. A wave came and",
    };

    @TempDir
    static Path dir;
    private static Path tiny;

    @BeforeAll
    static void setUp() {
        tiny = TinyModels.write(dir.resolve("tiny.gguf"),
                TinyModels.Spec.builder().weightType(GgmlType.Q4_0).heads(4).kvHeads(2).contextLength(512).seed(11).build());
    }

    static InferenceEngine open(Path model, KvFormat format) {
        return InferenceEngine.open(model, EngineOptions.defaults().withThreads(2).withKvFormat(format));
    }

    static int[] randomPrompt(int vocab, int n, long seed) {
        Random r = new Random(seed);
        int[] t = new int[n];
        t[0] = 1; // BOS
        for (int i = 1; i < n; i++) {
            t[i] = 3 + r.nextInt(vocab - 3); // no control tokens inside the prompt
        }
        return t;
    }

    /** Prompts of 1 to 150 tokens: some cross the 64-token chunk boundary in prefill, others in decode. */
    static List<int[]> tinyPrompts(InferenceEngine e) {
        int vocab = e.config().vocabularySize();
        int[] lengths = {1, 7, 63, 64, 65, 100, 150, 30};
        List<int[]> out = new ArrayList<>();
        for (int i = 0; i < lengths.length; i++) {
            out.add(randomPrompt(vocab, lengths[i], 100 + i));
        }
        return out;
    }

    static List<int[]> storyPrompts(InferenceEngine e) {
        List<int[]> out = new ArrayList<>();
        for (String p : STORY_PROMPTS) {
            out.add(e.tokenizer().encode(p, true, false));
        }
        return out;
    }

    static GenerationResult await(Generation g) throws Exception {
        return g.result().get(TIMEOUT_S, TimeUnit.SECONDS);
    }

    /** Solo generate, batched scheduler, same tokens and stop reason for every prompt. */
    static void assertBatchedEqualsSolo(InferenceEngine e, List<int[]> prompts, int maxTokens, String what) throws Exception {
        assertBatchedEqualsSolo(e, prompts, i -> SamplingParams.greedy(), maxTokens, what);
    }

    /** As above with each prompt's own sampling settings (seeded, so a solo run is the reference). */
    static void assertBatchedEqualsSolo(InferenceEngine e, List<int[]> prompts, java.util.function.IntFunction<SamplingParams> params,
                                        int maxTokens, String what) throws Exception {
        List<InferenceEngine.Generation> solo = new ArrayList<>();
        for (int i = 0; i < prompts.size(); i++) {
            solo.add(e.generate(prompts.get(i), params.apply(i), maxTokens, text -> true));
        }
        List<Generation> handles = new ArrayList<>();
        try (BatchScheduler s = new BatchScheduler(e)) {
            for (int i = 0; i < prompts.size(); i++) {
                handles.add(s.submit(prompts.get(i), params.apply(i), maxTokens, null));
            }
            for (int i = 0; i < prompts.size(); i++) {
                int[] p = prompts.get(i);
                GenerationResult r = await(handles.get(i));
                int[] expected = Arrays.copyOfRange(solo.get(i).tokens(), p.length, solo.get(i).tokens().length);
                System.out.println(what + ": prompt " + i + " (" + p.length + " tokens): " + r.tokens().length + " tokens, "
                        + r.reason() + " (solo " + expected.length + ", " + solo.get(i).stopReason() + ")");
                assertArrayEquals(expected, r.tokens(), what + ": prompt " + i + " of " + p.length + " tokens; first difference at "
                        + firstDifference(expected, r.tokens()));
                assertEquals(solo.get(i).stopReason(), r.reason().name().toLowerCase(), what + ": stop reason of prompt " + i);
            }
        }
        assertEquals(0, e.kvBytesInUse(), "every cache closed");
    }

    static int firstDifference(int[] a, int[] b) {
        int n = Math.min(a.length, b.length);
        for (int i = 0; i < n; i++) {
            if (a[i] != b[i]) {
                return i;
            }
        }
        return n;
    }

    // ---- (a) batched greedy = solo greedy -------------------------------------------------------------

    @ParameterizedTest
    @EnumSource(value = KvFormat.class, names = {"F32", "KIVI4"})
    void shouldMatchSoloGreedyOnTinyModel(KvFormat format) throws Exception {
        try (InferenceEngine e = open(tiny, format)) {
            assertBatchedEqualsSolo(e, tinyPrompts(e), 90, "tiny " + format);
        }
    }

    @ParameterizedTest
    @EnumSource(value = KvFormat.class, names = {"F32", "KIVI4"})
    void shouldMatchSoloGreedyOnStories(KvFormat format) throws Exception {
        Path model = TestModels.model(STORIES);
        try (InferenceEngine e = open(model, format)) {
            assertBatchedEqualsSolo(e, storyPrompts(e), 100, STORIES + " " + format);
        }
    }

    @Test
    void shouldMatchSoloWhenEachSequenceSamplesWithItsOwnSeedAndSettings() throws Exception {
        // The batch's tokens are sampled on both compute threads, each sequence by its own sampler:
        // every sequence must still draw exactly what it draws alone.
        try (InferenceEngine e = open(tiny, KvFormat.KIVI4)) {
            assertBatchedEqualsSolo(e, tinyPrompts(e), i -> i % 3 == 0 ? SamplingParams.greedy()
                    : new SamplingParams(0.6f + 0.1f * i, i % 2 == 0 ? 0 : 20, 0.9f, 0.02f, 1.1f, 32, 1_000 + i), 60, "tiny KIVI4 sampled");
        }
    }

    // ---- (b) joining and leaving mid-run ------------------------------------------------------------

    @Test
    void shouldLetSequencesJoinAndLeaveMidRun() throws Exception {
        try (InferenceEngine e = open(tiny, KvFormat.KIVI4)) {
            List<int[]> prompts = tinyPrompts(e);
            int[] maxTokens = {120, 5, 40, 1, 80, 17, 60, 3};
            int[][] expected = new int[prompts.size()][];
            for (int i = 0; i < prompts.size(); i++) {
                int[] all = e.generate(prompts.get(i), SamplingParams.greedy(), maxTokens[i], text -> true).tokens();
                expected[i] = Arrays.copyOfRange(all, prompts.get(i).length, all.length);
            }
            try (BatchScheduler s = new BatchScheduler(e)) {
                // The first sequence runs alone for a while; the others join while it decodes, in two waves.
                CountDownLatch tenTokens = new CountDownLatch(10);
                CountDownLatch thirtyTokens = new CountDownLatch(30);
                Generation first = s.submit(prompts.get(0), SamplingParams.greedy(), maxTokens[0], new GenerationListener() {
                    @Override
                    public void onToken(int token, String text) {
                        tenTokens.countDown();
                        thirtyTokens.countDown();
                    }
                });
                assertTrue(tenTokens.await(TIMEOUT_S, TimeUnit.SECONDS));
                List<Generation> handles = new ArrayList<>(List.of(first));
                for (int i = 1; i < 4; i++) {
                    handles.add(s.submit(prompts.get(i), SamplingParams.greedy(), maxTokens[i], null));
                }
                assertTrue(thirtyTokens.await(TIMEOUT_S, TimeUnit.SECONDS));
                for (int i = 4; i < prompts.size(); i++) {
                    handles.add(s.submit(prompts.get(i), SamplingParams.greedy(), maxTokens[i], null));
                }
                for (int i = 0; i < prompts.size(); i++) {
                    GenerationResult r = await(handles.get(i));
                    assertArrayEquals(expected[i], r.tokens(), "sequence " + i);
                }
                assertFalse(first.isCancelRequested());
            }
            assertEquals(0, e.kvBytesInUse());
        }
    }

    @Test
    void shouldOnlyPrefillWhenNoTokensAreAskedForAndContinueFromThatKv() throws Exception {
        try (InferenceEngine e = open(tiny, KvFormat.KIVI4); BatchScheduler s = new BatchScheduler(e)) {
            for (int[] prompt : tinyPrompts(e)) {
                if (prompt.length < 2) {
                    continue;
                }
                int[] all = e.generate(prompt, SamplingParams.greedy(), 12, text -> true).tokens();
                int[] expected = Arrays.copyOfRange(all, prompt.length, all.length);
                try (io.kvstash.engine.kv.KvCache cache = e.newSequence()) {
                    int[] head = Arrays.copyOf(prompt, prompt.length - 1);
                    GenerationResult only = await(s.submit(cache, head, SamplingParams.greedy(), 0, false, null));
                    assertEquals(StopReason.LENGTH, only.reason());
                    assertEquals(0, only.tokens().length);
                    assertEquals(head.length, cache.length(), "the prompt's KV is computed");
                    GenerationResult rest = await(s.submit(cache, prompt, SamplingParams.greedy(), 12, false, null));
                    assertArrayEquals(expected, rest.tokens(), "continuing from the prefilled KV, prompt of " + prompt.length);
                }
            }
        }
    }

    @Test
    void shouldEndOnlyTheSequenceWhoseParkedChunkIsLostWhenTheyShareAStep() throws Exception {
        try (InferenceEngine e = open(tiny, KvFormat.KIVI4); BatchScheduler s = new BatchScheduler(e)) {
            int vocab = e.config().vocabularySize();
            int[] promptB = randomPrompt(vocab, 40, 7);
            int[] all = e.generate(promptB, SamplingParams.greedy(), 60, text -> true).tokens();
            int[] expectedB = Arrays.copyOfRange(all, promptB.length, all.length);
            // A: two full chunks and a tail, chunk 1 parked with a tier that has lost it.
            int[] historyA = randomPrompt(vocab, 150, 8);
            try (io.kvstash.engine.kv.KvCache cacheA = e.newSequence()) {
                e.forward(cacheA, historyA, 0, historyA.length - 1, historyA.length - 1, null);
                cacheA.useTransientChunks(new io.kvstash.engine.kv.TransientChunks(cacheA.geometry(), 2, false));
                cacheA.park(1, (keys, into, from, to) -> {
                    throw new io.kvstash.engine.kv.ChunkUnavailableException("chunk " + keys[from] + " is gone");
                }, "lost-chunk");
                CountDownLatch bRunning = new CountDownLatch(1);
                CountDownLatch aQueued = new CountDownLatch(1);
                AtomicInteger bTokens = new AtomicInteger();
                Generation b = s.submit(promptB, SamplingParams.greedy(), 60, new GenerationListener() {
                    @Override
                    public void onToken(int token, String text) {
                        if (bTokens.incrementAndGet() == 3) {
                            // Hold the scheduler until A is queued: A then joins B's next step.
                            bRunning.countDown();
                            try {
                                aQueued.await(TIMEOUT_S, TimeUnit.SECONDS);
                            } catch (InterruptedException ex) {
                                Thread.currentThread().interrupt();
                            }
                        }
                    }
                });
                assertTrue(bRunning.await(TIMEOUT_S, TimeUnit.SECONDS));
                AtomicInteger bAtFailure = new AtomicInteger(-1);
                Generation pendingA = s.submit(cacheA, historyA, SamplingParams.greedy(), 10, false, new GenerationListener() {
                    @Override
                    public void onComplete(GenerationResult r) {
                        bAtFailure.set(bTokens.get());
                    }
                });
                aQueued.countDown();
                GenerationResult a = await(pendingA);
                GenerationResult rb = await(b);
                assertEquals(StopReason.ERROR, a.reason(), "the sequence whose chunk is lost");
                assertTrue(a.error() instanceof io.kvstash.engine.kv.ChunkUnavailableException, "its error names the chunk: " + a.error());
                assertTrue(a.error().getMessage().contains("lost-chunk"), a.error().getMessage());
                assertTrue(bAtFailure.get() >= 3 && bAtFailure.get() < expectedB.length, "B was decoding when A failed: " + bAtFailure.get());
                assertArrayEquals(expectedB, rb.tokens(), "the other sequence goes on, token for token as alone");
            }
        }
    }

    private static void assertFalse(boolean b) {
        assertTrue(!b);
    }

    // ---- (c) cancel ---------------------------------------------------------------------------------

    @Test
    void shouldStopCancelledSequenceAtNextStepAndFreeItsChunks() throws Exception {
        try (InferenceEngine e = open(tiny, KvFormat.KIVI4); BatchScheduler s = new BatchScheduler(e)) {
            long baseline = e.kvBytesInUse();
            List<int[]> prompts = tinyPrompts(e);
            Generation other = s.submit(prompts.get(5), SamplingParams.greedy(), 150, true, null);
            Generation[] self = new Generation[1];
            CountDownLatch submitted = new CountDownLatch(1);
            AtomicInteger seen = new AtomicInteger();
            // Cancelled from its own listener after the 7th token: no 8th token is sampled.
            self[0] = s.submit(prompts.get(6), SamplingParams.greedy(), 300, true, new GenerationListener() {
                @Override
                public void onToken(int token, String text) {
                    awaitQuietly(submitted);
                    if (seen.incrementAndGet() == 7) {
                        self[0].cancel();
                    }
                }
            });
            submitted.countDown();
            GenerationResult r = await(self[0]);
            assertEquals(StopReason.CANCELLED, r.reason());
            assertEquals(7, r.tokens().length);
            assertEquals(prompts.get(6).length + 6, r.kvPositions(), "the 7th token was sampled but never run");
            assertTrue(e.kvBytesInUse() > baseline, "the other sequence still holds its cache");

            // Cancelled from another thread while decoding.
            other.cancel();
            GenerationResult o = await(other);
            assertEquals(StopReason.CANCELLED, o.reason());
            assertTrue(o.tokens().length < 150, "stopped early: " + o.tokens().length);
            assertEquals(baseline, e.kvBytesInUse(), "chunks of cancelled sequences returned");
        }
    }

    static void awaitQuietly(CountDownLatch latch) {
        try {
            latch.await();
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
        }
    }

    // ---- (d) concurrent submit ----------------------------------------------------------------------

    @Test
    void shouldServeSubmissionsFromManyThreads() throws Exception {
        try (InferenceEngine e = open(tiny, KvFormat.F32)) {
            int vocab = e.config().vocabularySize();
            int threads = 6;
            int perThread = 5;
            int[][] prompts = new int[threads * perThread][];
            int[][] expected = new int[prompts.length][];
            for (int i = 0; i < prompts.length; i++) {
                prompts[i] = randomPrompt(vocab, 5 + 7 * i % 90, 500 + i);
                int[] all = e.generate(prompts[i], SamplingParams.greedy(), 20, text -> true).tokens();
                expected[i] = Arrays.copyOfRange(all, prompts[i].length, all.length);
            }
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try (BatchScheduler s = new BatchScheduler(e)) {
                CountDownLatch go = new CountDownLatch(1);
                List<Future<List<Generation>>> submitted = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int thread = t;
                    submitted.add(pool.submit(() -> {
                        go.await();
                        List<Generation> mine = new ArrayList<>();
                        for (int k = 0; k < perThread; k++) {
                            mine.add(s.submit(prompts[thread * perThread + k], SamplingParams.greedy(), 20, null));
                        }
                        return mine;
                    }));
                }
                go.countDown();
                for (int t = 0; t < threads; t++) {
                    List<Generation> mine = submitted.get(t).get(TIMEOUT_S, TimeUnit.SECONDS);
                    for (int k = 0; k < perThread; k++) {
                        int i = t * perThread + k;
                        assertArrayEquals(expected[i], await(mine.get(k)).tokens(), "prompt " + i);
                    }
                }
            } finally {
                pool.shutdownNow();
            }
            assertEquals(0, e.kvBytesInUse());
        }
    }

    // ---- (e) queue full -----------------------------------------------------------------------------

    @Test
    void shouldRejectSubmissionWhenQueueIsFull() throws Exception {
        try (InferenceEngine e = open(tiny, KvFormat.F32);
             BatchScheduler s = new BatchScheduler(e, new BatchScheduler.Config(1, 2, 64))) {
            int[] prompt = randomPrompt(e.config().vocabularySize(), 10, 1);
            CountDownLatch inListener = new CountDownLatch(1);
            CountDownLatch release = new CountDownLatch(1);
            // Holds the scheduling thread (and the only active slot) until released.
            Generation blocker = s.submit(prompt, SamplingParams.greedy(), 3, true, new GenerationListener() {
                @Override
                public void onToken(int token, String text) {
                    inListener.countDown();
                    awaitQuietly(release);
                }
            });
            assertTrue(inListener.await(TIMEOUT_S, TimeUnit.SECONDS));
            Generation a = s.submit(prompt, SamplingParams.greedy(), 2, true, null);
            Generation b = s.submit(prompt, SamplingParams.greedy(), 2, true, null);
            QueueFullException full = assertThrows(QueueFullException.class, () -> s.submit(prompt, SamplingParams.greedy(), 2, null));
            assertTrue(full.getMessage().contains("queue is full"), full.getMessage());
            release.countDown();
            assertEquals(StopReason.LENGTH, await(blocker).reason());
            assertEquals(2, await(a).tokens().length);
            assertEquals(2, await(b).tokens().length);
            // Room again.
            assertEquals(StopReason.LENGTH, await(s.submit(prompt, SamplingParams.greedy(), 1, true, null)).reason());
        }
    }

    // ---- (f) close with sequences in flight ---------------------------------------------------------

    @Test
    void shouldCancelEverythingOnClose() throws Exception {
        try (InferenceEngine e = open(tiny, KvFormat.KIVI4)) {
            List<int[]> prompts = tinyPrompts(e);
            List<Generation> handles = new ArrayList<>();
            BatchScheduler s = new BatchScheduler(e, new BatchScheduler.Config(4, 16, 64));
            CountDownLatch decoding = new CountDownLatch(5);
            for (int[] p : prompts) {
                handles.add(s.submit(p, SamplingParams.greedy(), 300, true, new GenerationListener() {
                    @Override
                    public void onToken(int token, String text) {
                        decoding.countDown();
                    }
                }));
            }
            assertTrue(decoding.await(TIMEOUT_S, TimeUnit.SECONDS));
            s.close();
            int cancelled = 0;
            for (Generation g : handles) {
                assertTrue(g.isDone(), "every future completes by the time close returns");
                GenerationResult r = g.result().getNow(null);
                assertEquals(StopReason.CANCELLED, r.reason());
                cancelled++;
            }
            assertEquals(prompts.size(), cancelled);
            assertEquals(0, e.kvBytesInUse(), "all chunks returned");
            assertThrows(IllegalStateException.class, () -> s.submit(prompts.get(0), SamplingParams.greedy(), 1, null));
            s.close(); // idempotent
        }
    }

    /**
     * With a context shift, a generation goes on past the context length: each time the cache is
     * full the hook drops a chunk after the sink, and the tokens are those of the same greedy loop
     * run by hand (shifting at the same points); without the hook it stops at the context length.
     */
    @ParameterizedTest
    @EnumSource(value = KvFormat.class, names = {"F32", "Q8"})
    void shouldGenerateAcrossTheContextLengthWhenTheSequenceShifts(KvFormat format) throws Exception {
        int context = 192;
        try (InferenceEngine e = InferenceEngine.open(tiny, EngineOptions.defaults().withThreads(2).withKvFormat(format)
                .withContextLength(context)); BatchScheduler scheduler = new BatchScheduler(e)) {
            int vocab = e.config().vocabularySize();
            int[] prompt = randomPrompt(vocab, 150, 5);
            int generate = 200;
            int[] shifts = new int[1];
            ContextShift shift = cache -> {
                shifts[0]++;
                return cache.length() - e.shift(cache, 1, 1);
            };
            GenerationResult shifted;
            try (io.kvstash.engine.kv.KvCache cache = e.newSequence()) {
                shifted = scheduler.submit(cache, prompt, SamplingParams.greedy(), generate, true, null, shift).result()
                        .get(TIMEOUT_S, TimeUnit.SECONDS);
            }
            assertEquals(StopReason.LENGTH, shifted.reason());
            assertEquals(generate, shifted.tokens().length, "generated past the context length of " + context);
            assertTrue(shifts[0] >= 2, "shifted " + shifts[0] + " times");

            int[] expected = new int[generate];
            float[] logits = new float[vocab];
            try (io.kvstash.engine.kv.KvCache cache = e.newSequence()) {
                e.forward(cache, prompt, 0, prompt.length, prompt.length - 1, logits);
                for (int i = 0; i < generate; i++) {
                    expected[i] = argmax(logits);
                    if (cache.length() >= context) {
                        e.shift(cache, 1, 1);
                    }
                    e.forward(cache, expected, i, 1, 0, logits);
                }
            }
            assertArrayEquals(expected, shifted.tokens());

            try (io.kvstash.engine.kv.KvCache cache = e.newSequence()) {
                GenerationResult stopped = scheduler.submit(cache, prompt, SamplingParams.greedy(), generate, true, null).result()
                        .get(TIMEOUT_S, TimeUnit.SECONDS);
                assertEquals(context - prompt.length + 1, stopped.tokens().length, "without a shift: stops at the context length");
            }
        }
    }

    private static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }
}
