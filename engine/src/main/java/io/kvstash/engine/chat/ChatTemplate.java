package io.kvstash.engine.chat;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.tokenizer.Tokenizer;

import java.util.List;
import java.util.Map;

/**
 * Turns a conversation into the prompt text a chat model was trained on.
 *
 * <p>A GGUF file's {@code tokenizer.chat_template} (a Jinja template, as in Hugging Face's
 * {@code tokenizer_config.json}) is rendered the way Hugging Face's {@code apply_chat_template}
 * renders it; see {@link #jinja}. A model without one (the TinyStories test models, say) gets the
 * {@linkplain #plain plain fallback}.
 *
 * <p>Instances are immutable and safe to share between threads.
 */
public sealed interface ChatTemplate permits JinjaChatTemplate, PlainChatTemplate {

    /** The GGUF metadata key of the template. */
    String METADATA_KEY = "tokenizer.chat_template";

    /**
     * The template of {@code file} ({@value #METADATA_KEY}), or the plain fallback when it has none.
     *
     * @param tokenizer the file's tokenizer: supplies {@code bos_token} and {@code eos_token}, and
     *                  whether prompts need BOS
     * @throws ChatTemplateException if the template has a syntax error in its tags (errors inside
     *                               expressions show when rendering)
     */
    static ChatTemplate fromGguf(GgufFile file, Tokenizer tokenizer) {
        String source = file.getString(METADATA_KEY, null);
        if (source == null || source.isBlank()) {
            return plain(tokenizer);
        }
        return new JinjaChatTemplate(source, tokenizer, file.path().getFileName() + " (" + METADATA_KEY + ")");
    }

    /**
     * A Jinja chat template rendered as Hugging Face's {@code apply_chat_template} renders it: jinja2
     * semantics with {@code trim_blocks} and {@code lstrip_blocks}, the variables {@code messages},
     * {@code add_generation_prompt}, {@code bos_token}, {@code eos_token} (the text of the
     * tokenizer's BOS and EOS), {@code tools} and {@code documents} (none), the functions
     * {@code raise_exception(message)} and {@code strftime_now(format)}, loop controls, and
     * {@code tojson} as Python's {@code json.dumps} writes it. Python's string methods
     * ({@code .startswith}, {@code .split}, {@code .strip}, ...) work on strings.
     *
     * @param origin names the template in error messages (e.g. the file it came from)
     * @throws ChatTemplateException if the template has a syntax error in its tags
     */
    static ChatTemplate jinja(String source, Tokenizer tokenizer, String origin) {
        return new JinjaChatTemplate(source, tokenizer, origin);
    }

    /**
     * The fallback for models without a template: each message is written as
     * {@code "<|" + role + "|>\n" + content + "\n"}, and the generation prompt is
     * {@code "<|assistant|>\n"}. The markers are plain text (no vocabulary is assumed to have
     * them as tokens), and nothing in the prompt is parsed as a control token. A prompt starts
     * with BOS when the tokenizer adds it by default.
     */
    static ChatTemplate plain(Tokenizer tokenizer) {
        return new PlainChatTemplate(tokenizer);
    }

    /** Renders {@code messages}; same as {@link #render(List, boolean, Map)} without extra variables. */
    default ChatPrompt render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        return render(messages, addGenerationPrompt, Map.of());
    }

    /**
     * Renders {@code messages}.
     *
     * @param addGenerationPrompt end with what opens the assistant's reply (the template decides
     *                            what that is, and whether it honours the flag at all)
     * @param variables           more template variables, as Hugging Face's {@code **kwargs}: e.g.
     *                            {@code enable_thinking = false} for Qwen3 (unset variables are
     *                            undefined, so templates take their defaults). May override
     *                            {@code bos_token}, {@code eos_token} and {@code tools}, not
     *                            {@code messages} or {@code add_generation_prompt}. The plain
     *                            fallback ignores them.
     * @throws ChatTemplateException if the template fails or refuses the conversation
     */
    ChatPrompt render(List<ChatMessage> messages, boolean addGenerationPrompt, Map<String, ?> variables);

    /** Whether this is the {@linkplain #plain plain fallback} rather than a model's own template. */
    boolean isPlainFallback();
}
