package io.kvstash.engine.chat;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.loader.ResourceNotFoundException;
import io.kvstash.engine.tokenizer.TextRange;
import io.kvstash.engine.tokenizer.Tokenizer;
import jinjava.javax.el.CompositeELResolver;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * A Jinja chat template rendered with Jinjava, configured and extended to behave as jinja2 does in
 * Hugging Face's {@code apply_chat_template} (see {@link ChatTemplate#jinja}).
 *
 * <p>What Jinjava is given on top of its defaults: jinja2's operator precedence and whitespace
 * control ({@link LegacyOverrides}), no nested interpretation (template syntax in a value stays
 * text), Python's string methods ({@link PythonMethods}), Hugging Face's {@code tojson}
 * ({@link PythonJson}), {@code raise_exception}, {@code strftime_now} and the {@code generation}
 * block; the template is first rewritten where Jinjava's reading differs ({@link Jinja2Syntax}:
 * step slices, keyword-argument values, string escapes, {@code trim_blocks} and
 * {@code lstrip_blocks} as Hugging Face sets them, the last newline). Loading other templates
 * ({@code include}, {@code import}) is refused.
 *
 * <p>Known differences from jinja2 that the templates in use do not meet: {@code not a == b}
 * parses as {@code (not a) == b}; printing {@code none} or a boolean gives {@code ""} and
 * {@code true}/{@code false} rather than {@code None} and {@code True}/{@code False}; an undefined
 * variable's attribute is undefined rather than an error; an unknown filter is ignored rather than
 * an error; {@code tools is defined} is false (Hugging Face passes {@code tools=None}, which is
 * defined).
 */
final class JinjaChatTemplate implements ChatTemplate {
    private static final Set<String> FIXED_VARIABLES = Set.of("messages", "add_generation_prompt");
    /** Rendered output above this is refused: no context window holds it, and a runaway loop stops here. */
    private static final long MAX_OUTPUT_CHARS = 64L << 20;

    private final String origin;
    private final String template; // as Jinjava reads it
    private final Tokenizer tokenizer;
    private final String bosToken;
    private final String eosToken;
    private final Jinjava jinjava;

    JinjaChatTemplate(String source, Tokenizer tokenizer, String origin) {
        this.origin = origin;
        this.template = Jinja2Syntax.toJinjava(source);
        this.tokenizer = tokenizer;
        this.bosToken = tokenText(tokenizer, tokenizer.bos());
        this.eosToken = tokenText(tokenizer, tokenizer.eos());
        this.jinjava = newJinjava();
        checkTags();
    }

    private static String tokenText(Tokenizer tokenizer, int id) {
        return id >= 0 && id < tokenizer.vocabularySize() ? tokenizer.piece(id) : "";
    }

    private static Jinjava newJinjava() {
        CompositeELResolver resolver = new CompositeELResolver();
        resolver.add(new PythonMethods());
        resolver.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
        JinjavaConfig config = JinjavaConfig.newBuilder()
                .withTrimBlocks(false) // done by Jinja2Syntax, which keeps the line numbers right
                .withLstripBlocks(false) // likewise: Jinjava's strips in the middle of lines too
                .withKeepTrailingNewline(true) // jinja2 drops the template's last newline, not the output's: see Jinja2Syntax
                .withMaxOutputSize(MAX_OUTPUT_CHARS)
                // Jinjava would otherwise render template syntax found in a value again: a user writing
                // "{{ 7 * 7 }}" must get exactly that text into the prompt, as with jinja2.
                .withNestedInterpretationEnabled(false)
                .withElResolver(resolver)
                .withLegacyOverrides(LegacyOverrides.newBuilder()
                        .withUseNaturalOperatorPrecedence(true)      // messages|length - 1 is (messages|length) - 1
                        .withParseWhitespaceControlStrictly(true)    // {%- and -%} as jinja2 reads them
                        .withUseTrimmingForNotesAndExpressions(true) // {{- and -}} too
                        .withKeepNullableLoopValues(true)
                        .withEvaluateMapKeys(true)                   // {key: value} evaluates key
                        .withIterateOverMapKeys(true)                // for k in mapping
                        .withUsePyishObjectMapper(true)              // lists and dicts print as Python writes them
                        .withHandleBackslashInQuotesOnly(true)
                        .build())
                .build();
        Jinjava jinjava = new Jinjava(config);
        jinjava.setResourceLocator((name, encoding, interpreter) -> {
            throw new ResourceNotFoundException("a chat template cannot load other templates ('" + name + "')");
        });
        jinjava.getGlobalContext().registerFunction(
                new ELFunctionDefinition("", "raise_exception", TemplateFunctions.class, "raiseException", Object.class));
        jinjava.getGlobalContext().registerFunction(
                new ELFunctionDefinition("", "strftime_now", TemplateFunctions.class, "strftimeNow", String.class));
        jinjava.getGlobalContext().registerFilter(new PythonJson());
        jinjava.getGlobalContext().registerTag(new GenerationTag());
        return jinjava;
    }

    /** Fails now rather than at the first conversation on errors in the tags (unclosed blocks, unknown tags). */
    private void checkTags() {
        JinjavaInterpreter interpreter = jinjava.newInterpreter();
        try (var current = JinjavaInterpreter.closeablePushCurrent(interpreter).get()) {
            interpreter.parse(template);
        }
        failOnErrors(interpreter.getErrors());
    }

    @Override
    public ChatPrompt render(List<ChatMessage> messages, boolean addGenerationPrompt, Map<String, ?> variables) {
        for (String fixed : FIXED_VARIABLES) {
            if (variables.containsKey(fixed)) {
                throw new IllegalArgumentException("'" + fixed + "' is set by the renderer, not a template variable to pass");
            }
        }
        String text = renderText(messages, -1, null, addGenerationPrompt, variables);
        List<TextRange> literal = new ArrayList<>();
        for (int i = 0; i < messages.size(); i++) {
            if (tokenizer.containsControlTokenText(messages.get(i).content())) {
                locateContent(text, messages, i, addGenerationPrompt, variables).ifPresent(literal::add);
            }
        }
        boolean rendersBos = !bosToken.isEmpty() && text.startsWith(bosToken);
        return new ChatPrompt(text, tokenizer.addBosByDefault() && !rendersBos, union(literal));
    }

    /**
     * Where message {@code index}'s content went in {@code text}: the template is rendered again
     * with a marker for that content, and what stands between the common beginning and end of the
     * two renderings is what the template made of the content (itself, or trimmed, or cut).
     */
    private Optional<TextRange> locateContent(String text, List<ChatMessage> messages, int index,
                                             boolean addGenerationPrompt, Map<String, ?> variables) {
        String marker = marker(messages);
        String marked = renderText(messages, index, marker, addGenerationPrompt, variables);
        int at = marked.indexOf(marker);
        if (at < 0 && marked.equals(text)) {
            return Optional.empty(); // the template leaves this message's content out
        }
        if (at >= 0 && marked.indexOf(marker, at + marker.length()) < 0) {
            String before = marked.substring(0, at);
            String after = marked.substring(at + marker.length());
            if (text.length() >= before.length() + after.length() && text.startsWith(before) && text.endsWith(after)) {
                return Optional.of(new TextRange(before.length(), text.length() - after.length()));
            }
        }
        ChatMessage message = messages.get(index);
        throw new ChatTemplateException("message " + index + " (" + message.role() + ") of the conversation holds control-token"
                + " text, and chat template " + origin + " does not write that content out as one piece, so it cannot be kept"
                + " from being read as control tokens; refusing the conversation", false, null);
    }

    private static String marker(List<ChatMessage> messages) {
        // Private-use characters: no template tests for them, and no sane content holds them.
        String marker = "\uE000kvstash-content\uE001";
        while (true) {
            String candidate = marker;
            if (messages.stream().noneMatch(m -> m.content().contains(candidate))) {
                return marker;
            }
            marker += "\uE001";
        }
    }

    private String renderText(List<ChatMessage> messages, int replaced, String replacement, boolean addGenerationPrompt,
                              Map<String, ?> variables) {
        List<Map<String, Object>> messageMaps = new ArrayList<>(messages.size());
        for (int i = 0; i < messages.size(); i++) {
            Map<String, Object> map = new LinkedHashMap<>(); // key order shows in tojson
            map.put("role", messages.get(i).role());
            map.put("content", i == replaced ? replacement : messages.get(i).content());
            messageMaps.add(map);
        }
        Map<String, Object> context = new HashMap<>();
        context.put("bos_token", bosToken);
        context.put("eos_token", eosToken);
        context.put("tools", null);
        context.put("documents", null);
        context.putAll(variables);
        context.put("messages", messageMaps);
        context.put("add_generation_prompt", addGenerationPrompt);
        RenderResult result = jinjava.renderForResult(template, context);
        failOnErrors(result.getErrors());
        return result.getOutput();
    }

    private void failOnErrors(List<TemplateError> errors) {
        TemplateError firstFatal = null;
        for (TemplateError error : errors) {
            if (error.getSeverity() != TemplateError.ErrorType.FATAL) {
                continue;
            }
            for (Throwable cause = error.getException(); cause != null; cause = cause.getCause()) {
                if (cause instanceof TemplateFunctions.RaisedByTemplate raised) {
                    throw new ChatTemplateException("chat template " + origin + " refused the conversation: "
                            + raised.getMessage(), true, raised);
                }
            }
            if (firstFatal == null) {
                firstFatal = error;
            }
        }
        if (firstFatal != null) {
            throw new ChatTemplateException("chat template " + origin + " failed at line " + firstFatal.getLineno() + ": "
                    + firstFatal.getMessage(), false, firstFatal.getException());
        }
    }

    private static List<TextRange> union(List<TextRange> ranges) {
        List<TextRange> sorted = new ArrayList<>(ranges);
        sorted.sort(Comparator.comparingInt(TextRange::start));
        List<TextRange> merged = new ArrayList<>();
        for (TextRange r : sorted) {
            TextRange last = merged.isEmpty() ? null : merged.getLast();
            if (last != null && r.start() <= last.end()) {
                merged.set(merged.size() - 1, new TextRange(last.start(), Math.max(last.end(), r.end())));
            } else {
                merged.add(r);
            }
        }
        return merged;
    }

    @Override
    public boolean isPlainFallback() {
        return false;
    }
}
