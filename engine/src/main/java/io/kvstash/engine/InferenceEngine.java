package io.kvstash.engine;

import io.kvstash.engine.chat.ChatTemplate;
import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.kernel.ComputePool;
import io.kvstash.engine.kv.KvCache;
import io.kvstash.engine.kv.KvGeometry;
import io.kvstash.engine.kv.KvStore;
import io.kvstash.engine.kv.SlabKvStore;
import io.kvstash.engine.model.ForwardPass;
import io.kvstash.engine.model.SparseAttention;
import io.kvstash.engine.model.SparseProbe;
import io.kvstash.engine.model.LlamaModel;
import io.kvstash.engine.model.ModelConfig;
import io.kvstash.engine.model.ModelFingerprint;
import io.kvstash.engine.model.RopeRotation;
import io.kvstash.engine.sampling.Sampler;
import io.kvstash.engine.sampling.SamplingParams;
import io.kvstash.engine.tokenizer.TokenDecoder;
import io.kvstash.engine.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.Optional;
import java.util.function.Function;

/**
 * A loaded model ready to run: the mapped file, weights, tokenizer, compute threads, a KV store
 * and one forward pass. Owns all of them; {@link #close()} releases them in reverse order.
 * Sequences are run one at a time through this object (calls are serialised).
 */
public final class InferenceEngine implements AutoCloseable {
    private final GgufFile file;
    private final LlamaModel model;
    private final Tokenizer tokenizer;
    private final ComputePool pool;
    private final KvStore kvStore;
    private final ForwardPass forward;
    private final EngineOptions options;
    private final int contextLength;
    private final ModelFingerprint fingerprint;
    private final ChatTemplate chatTemplate;
    private final RopeRotation rotation; // guarded by this: used by shift only

    private InferenceEngine(GgufFile file, LlamaModel model, Tokenizer tokenizer, ComputePool pool, KvStore kvStore,
                            ForwardPass forward, EngineOptions options, ModelFingerprint fingerprint, ChatTemplate chatTemplate) {
        this.fingerprint = fingerprint;
        this.chatTemplate = chatTemplate;
        this.file = file;
        this.model = model;
        this.tokenizer = tokenizer;
        this.pool = pool;
        this.kvStore = kvStore;
        this.forward = forward;
        this.options = options;
        this.rotation = new RopeRotation(model);
        this.contextLength = options.contextLength() > 0 ? options.contextLength() : model.config().contextLength();
    }

    public static InferenceEngine open(Path path, EngineOptions options) {
        return open(path, options, geometry -> new SlabKvStore(geometry, options.kvCapacityBytes()));
    }

    /**
     * As {@link #open(Path, EngineOptions)}, with the KV store made by {@code stores} for the
     * model's geometry (the offload module's tiers); the engine closes it.
     */
    public static InferenceEngine open(Path path, EngineOptions options, Function<KvGeometry, ? extends KvStore> stores) {
        GgufFile file = GgufFile.open(path);
        LlamaModel model = null;
        ComputePool pool = null;
        KvStore store = null;
        try {
            model = LlamaModel.load(file);
            Tokenizer tokenizer = Tokenizer.fromGguf(file);
            ModelConfig c = model.config();
            pool = new ComputePool(options.threads());
            store = stores.apply(new KvGeometry(c.layers(), c.kvHeads(), c.headDim(), options.chunkTokens(), options.kvFormat()));
            ForwardPass forward = new ForwardPass(model, pool, options.maxBatch());
            forward.setSparse(options.sparse());
            String template = file.getString(ChatTemplate.METADATA_KEY, null);
            ChatTemplate chat = template == null || template.isBlank() ? null : ChatTemplate.fromGguf(file, tokenizer);
            return new InferenceEngine(file, model, tokenizer, pool, store, forward, options, ModelFingerprint.of(file, c), chat);
        } catch (RuntimeException e) {
            if (store != null) {
                store.close();
            }
            if (pool != null) {
                pool.close();
            }
            if (model != null) {
                model.close();
            }
            file.close();
            throw e;
        }
    }

    public LlamaModel model() {
        return model;
    }

    public ModelConfig config() {
        return model.config();
    }

    /** What stored KV chunks of this model carry, so that no other model's chunk is ever used. */
    public ModelFingerprint fingerprint() {
        return fingerprint;
    }

    /** The chat template the GGUF file carries ({@code tokenizer.chat_template}), if any. */
    public Optional<ChatTemplate> modelChatTemplate() {
        return Optional.ofNullable(chatTemplate);
    }

    /** The store every sequence's chunks come from. */
    public KvStore kvStore() {
        return kvStore;
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    public EngineOptions options() {
        return options;
    }

    public int contextLength() {
        return contextLength;
    }

    /** An empty sequence; close it to return its chunks. */
    public KvCache newSequence() {
        return new KvCache(kvStore);
    }

    /**
     * Appends {@code tokens[off..off+n)} to the sequence and fills {@code logits} (rows for tokens
     * {@code [logitsFrom, n)}).
     */
    public synchronized void forward(KvCache cache, int[] tokens, int off, int n, int logitsFrom, float[] logits) {
        if ((long) cache.length() + n > contextLength) {
            throw new ContextOverflowException("sequence of " + cache.length() + " + " + n + " tokens exceeds the context length "
                    + contextLength + " (raise the context length, e.g. --context on the command line)");
        }
        forward.forward(cache, tokens, off, n, logitsFrom, logits);
    }

    /**
     * One step over tokens of several sequences (see {@link ForwardPass#step}): token {@code i}
     * belongs to {@code caches[i]}; logits for the step's tokens {@code logitTokens[0..logitCount)}
     * go to rows {@code 0..logitCount)} of {@code logits}. Serialised with {@link #forward}.
     */
    public synchronized void forwardStep(KvCache[] caches, int[] tokens, int off, int n, int[] logitTokens, int logitCount,
                                         float[] logits) {
        for (int i = 0; i < n; i++) {
            int pos = caches[i].length();
            for (int j = 0; j < i; j++) {
                if (caches[j] == caches[i]) {
                    pos++;
                }
            }
            if (pos >= contextLength) {
                throw new ContextOverflowException("sequence of " + caches[i].length() + " tokens cannot grow past the context length "
                        + contextLength + " (raise the context length, e.g. --context on the command line)");
            }
        }
        forward.step(caches, tokens, off, n, logitTokens, logitCount, logits);
    }

    /**
     * Runs {@code task} over {@code [0, n)} on the engine's compute threads (the caller works too),
     * serialised with the forward calls: for per-sequence work between steps, such as sampling a
     * batch's tokens. The task gets the worker index to pick its scratch.
     */
    public synchronized void parallel(ComputePool.RangeTask task, int n) {
        pool.run(task, n);
    }

    /** Compute threads, including the caller of a forward call. */
    public int threads() {
        return pool.threads();
    }

    /**
     * Context shift of a sequence (see {@link KvCache#shift}): keeps its first {@code keepChunks}
     * chunks (attention sinks), drops the {@code dropChunks} chunks after them and moves the rest
     * back with their keys re-rotated by the model's rope, without running the model. Serialised
     * with the forward calls. Returns the sequence's new length. If it throws, close the cache.
     */
    public synchronized int shift(KvCache cache, int keepChunks, int dropChunks) {
        return cache.shift(keepChunks, dropChunks, rotation, pool);
    }

    /** Switches how decoding tokens attend (from the next step on); starts as {@link EngineOptions#sparse()}. */
    public synchronized void setSparse(SparseAttention sparse) {
        if (sparse.enabled()) {
            sparse.summaryTokens(kvStore.geometry().chunkTokens()); // rejects sub-blocks that do not divide the chunks
        }
        forward.setSparse(sparse);
    }

    public synchronized SparseAttention sparse() {
        return forward.sparse();
    }

    /** Measures sparse against dense attention in the following steps; null stops (see {@link SparseProbe}). */
    public synchronized void setSparseProbe(SparseProbe probe) {
        forward.setProbe(probe);
    }

    /** Most tokens one forward step takes ({@link EngineOptions#maxBatch()}). */
    public int maxBatch() {
        return forward.maxBatch();
    }

    /** Bytes of KV chunks currently handed out by this engine's store. */
    public long kvBytesInUse() {
        return kvStore.bytesInUse();
    }

    /** Receives generated text as it becomes complete; returning false stops generation. */
    @FunctionalInterface
    public interface TextSink {
        boolean accept(String text);
    }

    /** What a generation produced. */
    public record Generation(int promptTokens, int[] tokens, String stopReason) {}

    /**
     * Prefills {@code prompt}, then samples up to {@code maxTokens} tokens, streaming their text to
     * {@code sink}. Stops at an end-of-generation token, at the context length, or when the sink
     * says so.
     */
    public Generation generate(int[] prompt, SamplingParams params, int maxTokens, TextSink sink) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("empty prompt");
        }
        if (maxTokens < 0) {
            throw new IllegalArgumentException("max tokens must not be negative, got " + maxTokens);
        }
        if (prompt.length > contextLength) {
            throw new ContextOverflowException("prompt of " + prompt.length + " tokens exceeds the context length " + contextLength
                    + " (raise the context length, e.g. --context on the command line)");
        }
        // Never more than the context has room for: also bounds the history buffer below.
        maxTokens = Math.min(maxTokens, contextLength - prompt.length + 1);
        int vocab = config().vocabularySize();
        float[] logits = new float[vocab];
        Sampler sampler = new Sampler(params, vocab);
        int[] history = new int[prompt.length + maxTokens];
        System.arraycopy(prompt, 0, history, 0, prompt.length);
        int produced = 0;
        String reason = "length";
        TokenDecoder decoder = tokenizer.newDecoder();
        // The continuation follows the prompt: its first piece keeps its leading space, as it
        // would after any earlier token (the decoder strips it only at the start of a text).
        decoder.next(tokenizer.bos());
        try (KvCache cache = newSequence()) {
            forward(cache, prompt, 0, prompt.length, prompt.length - 1, logits);
            while (produced < maxTokens) {
                int token = sampler.sample(logits, history, prompt.length + produced);
                if (tokenizer.isEndOfGeneration(token)) {
                    reason = "stop";
                    break;
                }
                history[prompt.length + produced++] = token;
                String text = decoder.next(token);
                if (!text.isEmpty() && !sink.accept(text)) {
                    reason = "cancelled";
                    break;
                }
                if (produced == maxTokens) {
                    break;
                }
                if (cache.length() >= contextLength) {
                    reason = "context";
                    break;
                }
                forward(cache, history, prompt.length + produced - 1, 1, 0, logits);
            }
            String tail = decoder.flush();
            if (!tail.isEmpty()) {
                sink.accept(tail);
            }
        }
        return new Generation(prompt.length, java.util.Arrays.copyOf(history, prompt.length + produced), reason);
    }

    @Override
    public void close() {
        kvStore.close();
        pool.close();
        model.close();
        file.close();
    }
}
