package io.kvstash.engine.scheduler;

import io.kvstash.engine.ContextOverflowException;
import io.kvstash.engine.InferenceEngine;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.sampling.Sampler;
import io.kvstash.engine.sampling.SamplingParams;
import io.kvstash.engine.tokenizer.TokenDecoder;
import io.kvstash.engine.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Continuous batching over one {@link InferenceEngine}: a single scheduling thread runs forward
 * steps, each of which decodes one token for every sequence in decode state and, in the room left
 * (at most {@link Config#prefillTokensPerStep()} tokens), a slice of the prompt of one or a few
 * sequences still prefilling. New sequences join between steps; finished or cancelled ones leave
 * and their KV cache is closed. All forward calls go through {@link InferenceEngine#forwardStep},
 * which is serialised with the engine's other forward calls.
 *
 * <p>{@link #submit} is thread-safe. Waiting (not yet admitted) sequences sit in a bounded queue;
 * when it is full, {@code submit} throws {@link QueueFullException}. Listeners run on the
 * scheduling thread. {@link #close()} cancels every sequence (in flight or waiting) and joins the
 * thread; it does not close the engine.
 */
public final class BatchScheduler implements AutoCloseable {
    /**
     * @param maxActive            sequences admitted at once (prefilling or decoding); at most the engine's max batch
     * @param queueCapacity        sequences that may wait for admission
     * @param prefillTokensPerStep most prompt tokens in one step (across prefilling sequences)
     */
    public record Config(int maxActive, int queueCapacity, int prefillTokensPerStep) {
        public Config {
            if (maxActive < 1 || queueCapacity < 1 || prefillTokensPerStep < 1) {
                throw new IllegalArgumentException("maxActive, queueCapacity and prefillTokensPerStep must be positive");
            }
        }

        /** As many active sequences as the engine's step holds, a queue of 256, 64 prompt tokens per step. */
        public static Config defaults(InferenceEngine engine) {
            return new Config(engine.maxBatch(), 256, 64);
        }
    }

    private final InferenceEngine engine;
    private final Tokenizer tokenizer;
    private final Config config;
    private final int maxBatch;
    private final int vocab;
    private final ArrayBlockingQueue<Seq> pending;
    private final Object submitLock = new Object();
    private final AtomicLong ids = new AtomicLong();
    private final Thread thread;
    private volatile boolean closed;

    // Scheduling thread only.
    private final List<Seq> active = new ArrayList<>();
    /** {@code active.size()} for other threads (the list itself is the scheduling thread's). */
    private volatile int running;
    private final KvCache[] stepCaches;
    private final int[] stepTokens;
    private final int[] logitTokens;
    private final Seq[] logitSeqs;
    private final float[] logits;
    /** A logit row per compute thread: sampling changes the logits (penalties), the batch's rows stay as computed. */
    private final float[][] sampleRows;
    private final int[] sampledTokens;
    private final RuntimeException[] sampleErrors;
    private final SampleTask sampleTask = new SampleTask();
    private final KvCache[] soloCaches;
    private final int[] soloLogitTokens = new int[1];
    private final float[] soloLogits;

    public BatchScheduler(InferenceEngine engine) {
        this(engine, Config.defaults(engine));
    }

    public BatchScheduler(InferenceEngine engine, Config config) {
        this.engine = Objects.requireNonNull(engine, "engine");
        this.config = Objects.requireNonNull(config, "config");
        this.maxBatch = engine.maxBatch();
        if (config.maxActive() > maxBatch) {
            throw new IllegalArgumentException("maxActive " + config.maxActive() + " exceeds the engine's max batch " + maxBatch
                    + " (every decoding sequence takes one token of a step)");
        }
        this.tokenizer = engine.tokenizer();
        this.vocab = engine.config().vocabularySize();
        this.pending = new ArrayBlockingQueue<>(config.queueCapacity());
        stepCaches = new KvCache[maxBatch];
        stepTokens = new int[maxBatch];
        // At most one logit row per active sequence per step.
        logitTokens = new int[config.maxActive()];
        logitSeqs = new Seq[config.maxActive()];
        logits = new float[config.maxActive() * vocab];
        sampleRows = new float[engine.threads()][vocab];
        sampledTokens = new int[config.maxActive()];
        sampleErrors = new RuntimeException[config.maxActive()];
        soloCaches = new KvCache[maxBatch];
        soloLogits = new float[vocab];
        thread = new Thread(this::loop, "kvstash-scheduler");
        thread.setDaemon(true);
        thread.start();
    }

    public Config config() {
        return config;
    }

    /** Same as {@link #submit(int[], SamplingParams, int, boolean, GenerationListener)} stopping at end-of-generation tokens. */
    public Generation submit(int[] prompt, SamplingParams params, int maxTokens, GenerationListener listener) {
        return submit(prompt, params, maxTokens, false, listener);
    }

    /**
     * Queues a sequence: prefill {@code prompt}, then sample up to {@code maxTokens} tokens (fewer
     * at an end-of-generation token unless {@code ignoreEndOfGeneration}, or at the context length).
     * With {@code maxTokens} 0 the sequence only prefills: its result is the prompt's KV.
     *
     * @throws QueueFullException        when the queue of waiting sequences is full
     * @throws IllegalStateException     after {@link #close()}
     * @throws ContextOverflowException  when the prompt alone exceeds the context length
     */
    public Generation submit(int[] prompt, SamplingParams params, int maxTokens, boolean ignoreEndOfGeneration,
                             GenerationListener listener) {
        return enqueue(null, prompt, params, maxTokens, ignoreEndOfGeneration, listener, null);
    }

    /**
     * Continues a sequence whose first {@code cache.length()} tokens of {@code history} are already
     * in {@code cache} (a session resumed from the KV tiers, or sharing a prefix): prefills the rest
     * of {@code history}, then samples as {@link #submit}. The cache stays the caller's: the
     * scheduler does not close it, and does not touch it once the generation has completed. After
     * an error or a cancellation it may hold positions past what the caller keeps: truncate it.
     *
     * @throws IllegalArgumentException when the cache holds all of {@code history} (at least one
     *                                  token must be fed to get logits) or more
     */
    public Generation submit(KvCache cache, int[] history, SamplingParams params, int maxTokens, boolean ignoreEndOfGeneration,
                             GenerationListener listener) {
        return submit(cache, history, params, maxTokens, ignoreEndOfGeneration, listener, null);
    }

    /**
     * As {@link #submit(KvCache, int[], SamplingParams, int, boolean, GenerationListener)}; when the
     * cache reaches the context length while generating, {@code shift} (if not null) makes room and
     * the generation goes on: {@code maxTokens} is then not bounded by the context length.
     */
    public Generation submit(KvCache cache, int[] history, SamplingParams params, int maxTokens, boolean ignoreEndOfGeneration,
                             GenerationListener listener, ContextShift shift) {
        Objects.requireNonNull(cache, "cache");
        if (cache.length() >= history.length) {
            throw new IllegalArgumentException("the cache holds " + cache.length() + " positions of a history of " + history.length
                    + " tokens: at least the last token must be fed");
        }
        return enqueue(cache, history, params, maxTokens, ignoreEndOfGeneration, listener, shift);
    }

    private Generation enqueue(KvCache cache, int[] prompt, SamplingParams params, int maxTokens, boolean ignoreEndOfGeneration,
                               GenerationListener listener, ContextShift shift) {
        Objects.requireNonNull(params, "params");
        if (prompt.length == 0) {
            throw new IllegalArgumentException("empty prompt");
        }
        if (maxTokens < 0) {
            throw new IllegalArgumentException("max tokens must not be negative, got " + maxTokens);
        }
        for (int id : prompt) {
            if (id < 0 || id >= vocab) {
                throw new IllegalArgumentException("token id " + id + " outside the vocabulary [0, " + vocab + ")");
            }
        }
        int context = engine.contextLength();
        if (prompt.length > context) {
            throw new ContextOverflowException("prompt of " + prompt.length + " tokens exceeds the context length " + context
                    + " (raise the context length, e.g. --context on the command line)");
        }
        Generation handle = new Generation(ids.incrementAndGet(), prompt.length);
        Seq seq = new Seq(handle, prompt.clone(), params, shift != null ? maxTokens : Math.min(maxTokens, context - prompt.length + 1),
                ignoreEndOfGeneration, listener == null ? new GenerationListener() {} : listener);
        seq.shift = shift;
        if (cache != null) {
            seq.cache = cache;
            seq.callerCache = true;
            seq.prefilled = cache.length();
        }
        synchronized (submitLock) {
            if (closed) {
                throw new IllegalStateException("scheduler is closed");
            }
            if (!pending.offer(seq)) {
                throw new QueueFullException("scheduler queue is full: " + config.queueCapacity()
                        + " sequences already waiting for admission");
            }
        }
        return handle;
    }

    /** Sequences in flight: prefilling or decoding in the current steps, i.e. the batch size (a snapshot). */
    public int running() {
        return running;
    }

    /** Sequences submitted and not yet admitted (a snapshot). */
    public int waiting() {
        return pending.size();
    }

    /** Cancels every sequence, in flight or waiting, and waits for the scheduling thread to end. */
    @Override
    public void close() {
        synchronized (submitLock) {
            closed = true;
        }
        if (Thread.currentThread() == thread) {
            return; // from a listener: the loop ends after this step
        }
        boolean interrupted = false;
        while (thread.isAlive()) {
            try {
                thread.join();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    private void loop() {
        try {
            while (!closed) {
                admit();
                if (active.isEmpty()) {
                    Seq s = pending.poll(20, TimeUnit.MILLISECONDS);
                    if (s != null && !closed) {
                        start(s);
                    } else if (s != null) {
                        finish(s, StopReason.CANCELLED, null);
                    }
                    continue;
                }
                step();
            }
        } catch (InterruptedException e) {
            // treated as close
        } catch (Throwable t) {
            for (int i = active.size() - 1; i >= 0; i--) {
                finish(active.get(i), StopReason.ERROR, t);
            }
        } finally {
            synchronized (submitLock) {
                closed = true;
            }
            for (int i = active.size() - 1; i >= 0; i--) {
                finish(active.get(i), StopReason.CANCELLED, null);
            }
            for (Seq s; (s = pending.poll()) != null; ) {
                finish(s, StopReason.CANCELLED, null);
            }
        }
    }

    /** Drops cancelled waiting sequences, then admits while there is room. */
    private void admit() {
        if (!pending.isEmpty()) {
            for (Iterator<Seq> it = pending.iterator(); it.hasNext(); ) {
                Seq s = it.next();
                if (s.handle.isCancelRequested()) {
                    it.remove();
                    finish(s, StopReason.CANCELLED, null);
                }
            }
        }
        while (active.size() < config.maxActive()) {
            Seq s = pending.poll();
            if (s == null) {
                break;
            }
            start(s);
        }
    }

    private void start(Seq s) {
        if (s.handle.isCancelRequested()) {
            finish(s, StopReason.CANCELLED, null);
            return;
        }
        try {
            if (s.cache == null) {
                s.cache = engine.newSequence();
            }
            s.sampler = new Sampler(s.params, vocab);
            s.decoder = tokenizer.newDecoder();
            // As in InferenceEngine.generate: the continuation follows the prompt, so its first
            // piece keeps its leading space.
            s.decoder.next(tokenizer.bos());
        } catch (RuntimeException e) {
            finish(s, StopReason.ERROR, e);
            return;
        }
        active.add(s);
        running = active.size();
    }

    private void step() {
        for (int i = active.size() - 1; i >= 0; i--) {
            Seq s = active.get(i);
            if (s.handle.isCancelRequested()) {
                finish(s, StopReason.CANCELLED, null);
            }
        }
        if (active.isEmpty()) {
            return;
        }
        int n = 0;
        int rows = 0;
        for (Seq s : active) {
            s.stepFrom = 0;
            s.stepTo = 0;
            s.stepRow = -1;
        }
        // Decode tokens first: one per decoding sequence.
        for (int i = 0; i < active.size(); i++) {
            Seq s = active.get(i);
            if (s.prefilled == s.prompt.length) {
                stepCaches[n] = s.cache;
                stepTokens[n] = s.history[s.count - 1];
                s.stepFrom = n;
                s.stepTo = n + 1;
                s.stepRow = rows;
                logitTokens[rows] = n;
                logitSeqs[rows++] = s;
                n++;
            }
        }
        // Then prompt slices, in admission order, within the prefill budget and the step's room.
        int budget = Math.min(config.prefillTokensPerStep(), maxBatch - n);
        for (int i = 0; i < active.size() && budget > 0; i++) {
            Seq s = active.get(i);
            if (s.prefilled < s.prompt.length) {
                int chunkTokens = s.cache.geometry().chunkTokens();
                int pos = s.prefilled;
                int take = Math.min(Math.min(budget, s.prompt.length - pos), chunkTokens - pos % chunkTokens);
                for (int t = 0; t < take; t++) {
                    stepCaches[n + t] = s.cache;
                }
                System.arraycopy(s.prompt, pos, stepTokens, n, take);
                s.stepFrom = n;
                s.stepTo = n + take;
                n += take;
                budget -= take;
                s.inStep = take;
                if (pos + take == s.prompt.length && s.maxTokens > 0) {
                    s.stepRow = rows;
                    logitTokens[rows] = n - 1;
                    logitSeqs[rows++] = s;
                }
            }
        }
        try {
            engine.forwardStep(stepCaches, stepTokens, 0, n, logitTokens, rows, logits);
        } catch (RuntimeException e) {
            // One sequence's failure (a parked chunk the warm tier cannot give back, a cache at the
            // context length) must not end the others. A failed step has advanced no cache (the
            // positions it wrote are past each cache's length and are written again), so every
            // sequence of the step runs it again alone, which gives the logits it gets in any batch;
            // those that fail alone end with their own error.
            retryAlone(rows);
        } finally {
            Arrays.fill(stepCaches, 0, n, null);
        }
        for (int i = active.size() - 1; i >= 0; i--) {
            Seq s = active.get(i);
            s.prefilled += s.inStep;
            s.inStep = 0;
            if (s.maxTokens == 0 && s.prefilled == s.prompt.length) {
                // Prefill only: the prompt's KV is the result.
                finish(s, StopReason.LENGTH, null);
            }
        }
        // Each row belongs to a different sequence with its own sampler: they sample in parallel,
        // and the results are applied (listeners, stops) here, in row order.
        if (rows > 0) {
            engine.parallel(sampleTask, rows);
        }
        for (int r = 0; r < rows; r++) {
            Seq s = logitSeqs[r];
            logitSeqs[r] = null;
            RuntimeException error = sampleErrors[r];
            sampleErrors[r] = null;
            if (s == null) {
                continue; // ended when the step failed
            }
            if (error != null) {
                finish(s, StopReason.ERROR, error);
            } else {
                sampled(s, sampledTokens[r]);
            }
        }
    }

    /**
     * Runs the failed step's tokens again sequence by sequence, writing each one's logit row where
     * the batch would have; a sequence that fails alone ends with its error and leaves its row empty.
     */
    private void retryAlone(int rows) {
        for (int i = active.size() - 1; i >= 0; i--) {
            Seq s = active.get(i);
            int len = s.stepTo - s.stepFrom;
            if (len == 0) {
                continue;
            }
            int count = s.stepRow >= 0 ? 1 : 0;
            soloLogitTokens[0] = count == 1 ? logitTokens[s.stepRow] - s.stepFrom : 0;
            Arrays.fill(soloCaches, 0, len, s.cache);
            try {
                engine.forwardStep(soloCaches, stepTokens, s.stepFrom, len, soloLogitTokens, count, soloLogits);
                if (count == 1) {
                    System.arraycopy(soloLogits, 0, logits, s.stepRow * vocab, vocab);
                }
            } catch (RuntimeException e) {
                if (s.stepRow >= 0) {
                    logitSeqs[s.stepRow] = null;
                }
                s.inStep = 0;
                finish(s, StopReason.ERROR, e);
            } finally {
                Arrays.fill(soloCaches, 0, len, null);
            }
        }
    }

    /** Samples the next token of the sequence of each logit row in its range. */
    private final class SampleTask implements io.kvstash.engine.kernel.ComputePool.RangeTask {
        @Override
        public void run(int from, int to, int worker) {
            float[] row = sampleRows[worker];
            for (int r = from; r < to; r++) {
                Seq s = logitSeqs[r];
                if (s == null) {
                    continue;
                }
                System.arraycopy(logits, r * vocab, row, 0, vocab);
                try {
                    sampledTokens[r] = s.sampler.sample(row, s.history, s.count);
                } catch (RuntimeException e) {
                    sampleErrors[r] = e;
                }
            }
        }
    }

    /** Mirrors {@link InferenceEngine#generate}: stop or emit the sampled token, then decide whether to go on. */
    private void sampled(Seq s, int token) {
        if (!s.ignoreEndOfGeneration && tokenizer.isEndOfGeneration(token)) {
            finish(s, StopReason.STOP, null);
            return;
        }
        s.history[s.count++] = token;
        try {
            String text = s.decoder.next(token);
            s.text.append(text);
            s.listener.onToken(token, text);
        } catch (RuntimeException e) {
            finish(s, StopReason.ERROR, e);
            return;
        }
        if (s.count - s.prompt.length == s.maxTokens) {
            finish(s, StopReason.LENGTH, null);
        } else if (s.cache.length() >= (s.shift == null ? engine.contextLength() : s.shift.shiftAt(engine.contextLength()))) {
            int freed = 0;
            if (s.shift != null) {
                try {
                    freed = s.shift.shift(s.cache);
                } catch (RuntimeException e) {
                    finish(s, StopReason.ERROR, e);
                    return;
                }
            }
            if (freed <= 0 || s.cache.length() >= engine.contextLength()) {
                finish(s, StopReason.CONTEXT, null);
            }
        }
    }

    private void finish(Seq s, StopReason reason, Throwable error) {
        if (s.finished) {
            return;
        }
        s.finished = true;
        active.remove(s);
        running = active.size();
        long kvBytes = 0;
        int kvPositions = 0;
        if (s.cache != null) {
            kvBytes = s.cache.bytes();
            kvPositions = s.cache.length();
            if (!s.callerCache) {
                s.cache.close();
            }
            s.cache = null;
        }
        if (s.decoder != null) {
            try {
                s.text.append(s.decoder.flush());
            } catch (RuntimeException e) {
                // keep what was decoded
            }
        }
        int generated = Math.max(0, s.count - s.prompt.length);
        GenerationResult result = new GenerationResult(s.prompt.length,
                Arrays.copyOfRange(s.history, s.prompt.length, s.prompt.length + generated), s.text.toString(), reason, error,
                kvBytes, kvPositions);
        try {
            s.listener.onComplete(result);
        } catch (RuntimeException e) {
            // the result stands; a failing completion callback cannot change it
        } finally {
            s.handle.complete(result);
        }
    }

    /** A sequence's state, touched only by the scheduling thread (after submission). */
    private static final class Seq {
        final Generation handle;
        final int[] prompt;
        final SamplingParams params;
        final int maxTokens;
        final boolean ignoreEndOfGeneration;
        final GenerationListener listener;
        final int[] history; // prompt, then generated tokens
        final StringBuilder text = new StringBuilder();
        int count;           // valid entries of history
        int prefilled;       // prompt tokens in the cache
        boolean callerCache; // the cache came with the submission and goes back to the caller
        int inStep;          // prompt tokens in the current step
        int stepFrom;        // its tokens in the current step: [stepFrom, stepTo) of stepTokens
        int stepTo;
        int stepRow;         // its logit row in the current step, or -1
        KvCache cache;
        ContextShift shift;  // null: stop at the context length
        Sampler sampler;
        TokenDecoder decoder;
        boolean finished;

        Seq(Generation handle, int[] prompt, SamplingParams params, int maxTokens, boolean ignoreEndOfGeneration,
            GenerationListener listener) {
            this.handle = handle;
            this.prompt = prompt;
            this.params = params;
            this.maxTokens = maxTokens;
            this.ignoreEndOfGeneration = ignoreEndOfGeneration;
            this.listener = listener;
            this.history = new int[prompt.length + maxTokens];
            System.arraycopy(prompt, 0, history, 0, prompt.length);
            this.count = prompt.length;
        }
    }
}
