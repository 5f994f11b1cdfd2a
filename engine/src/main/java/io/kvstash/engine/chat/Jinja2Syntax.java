package io.kvstash.engine.chat;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Rewrites a jinja2 template where Jinjava would read it differently, before Jinjava parses it:
 * <ul>
 *   <li>a slice with a step, {@code messages[::-1]} (Jinjava knows only {@code [a:b]}), becomes a
 *       call {@code messages.py_slice(null, null, -1)} that {@link PythonMethods} answers;</li>
 *   <li>a keyword argument whose value is an expression,
 *       {@code namespace(last=messages|length - 1)}: Jinjava binds {@code =} tighter than the
 *       arithmetic and reads {@code (last=messages|length) - 1}, so the value is put in
 *       parentheses, {@code last=(messages|length - 1)};</li>
 *   <li>Python's escapes in string literals ({@code \\u00e9}, {@code \\x41}, an unknown one
 *       keeping its backslash) become what Jinjava's expression language reads;</li>
 *   <li>{@code trim_blocks} and {@code lstrip_blocks} are done here, as jinja2 does them: Jinjava's
 *       own options strip in the middle of a line and lose count of lines;</li>
 *   <li>one newline at the very end of the template is dropped (jinja2's
 *       {@code keep_trailing_newline=False}; Jinjava's option trims the output instead).</li>
 * </ul>
 * Template text, comments, {@code raw} blocks and the rest of string literals are left as they
 * are, and no line break is added or removed before the end, so Jinjava's line numbers still point
 * into the original template. A part it cannot make sense of (unbalanced brackets, say) is left
 * as it is, for Jinjava to report.
 */
final class Jinja2Syntax {
    /** The method name slices with a step become; see {@link PythonMethods}. */
    static final String SLICE_METHOD = "py_slice";

    /** Words after which a bracket opens a group or a literal, not a call or a subscript. */
    private static final Set<String> KEYWORDS = Set.of("and", "or", "not", "in", "is", "if", "else", "elif", "for",
            "set", "with", "as", "import", "from", "recursive", "return", "call", "filter");
    private static final Pattern KEYWORD_ARGUMENT = Pattern.compile("(\\s*[A-Za-z_][A-Za-z0-9_]*\\s*)=(?!=)(.*)", Pattern.DOTALL);
    private static final Pattern SIMPLE_VALUE = Pattern.compile(
            "\\s*(?:[A-Za-z_][A-Za-z0-9_.]*|-?[0-9][0-9.]*|'[^'\\\\]*'|\"[^\"\\\\]*\")\\s*");
    private static final Pattern END_RAW = Pattern.compile("\\{%[-+]?\\s*endraw\\s*[-+]?%}");

    private Jinja2Syntax() {
    }

    static String toJinjava(String source) {
        // jinja2 drops one newline at the very end of a template (keep_trailing_newline=False);
        // Jinjava's option for it trims the rendered output instead, which is not the same thing.
        String template = source.endsWith("\r\n") ? source.substring(0, source.length() - 2)
                : source.endsWith("\n") || source.endsWith("\r") ? source.substring(0, source.length() - 1) : source;
        StringBuilder out = new StringBuilder(template.length() + 32);
        int i = 0;
        int n = template.length();
        while (i < n) {
            int open = nextDelimiter(template, i);
            if (open < 0) {
                out.append(template, i, n);
                break;
            }
            out.append(template, i, open);
            char kind = template.charAt(open + 1);
            if (kind != '{') {
                lstripBlock(template, out, open);
            }
            if (kind == '#') {
                int close = template.indexOf("#}", open + 2);
                if (close < 0) {
                    out.append(template, open, n);
                    break;
                }
                i = closeBlock(template, out, open, close, "#}");
                continue;
            }
            String close = kind == '{' ? "}}" : "%}";
            int bodyEnd = closingDelimiter(template, open + 2, close);
            if (bodyEnd < 0) {
                out.append(template, open, n);
                break;
            }
            String body = template.substring(open + 2, bodyEnd);
            if (kind == '%' && body.startsWith("+")) {
                body = " " + body.substring(1); // done: lstripBlock left the line alone
            }
            out.append(template, open, open + 2);
            String tag = kind == '%' ? tagName(body) : "";
            if (tag.equals("raw")) {
                // jinja2 trims the newline after {% endraw %}, not the one after {% raw %}.
                Matcher endRaw = END_RAW.matcher(template);
                if (!endRaw.find(bodyEnd + 2)) {
                    out.append(template, open + 2, n);
                    break;
                }
                out.append(template, open + 2, endRaw.start());
                i = closeBlock(template, out, endRaw.start(), endRaw.end() - 2, "%}");
                continue;
            }
            if (kind == '{') {
                out.append(expression(body)).append(close);
                i = bodyEnd + 2;
                continue;
            }
            // A macro's signature holds parameter defaults, not call arguments; leave it to Jinjava.
            out.append(tag.equals("macro") ? body : expression(body));
            i = closeBlock(template, out, bodyEnd, bodyEnd, "%}");
        }
        return out.toString();
    }

    /**
     * Writes the end of a block or comment tag, {@code template[from, close)} then {@code delimiter},
     * with jinja2's {@code trim_blocks}: one newline right after the tag is dropped. Jinjava's own
     * option for it loses count of lines, so the newline is moved inside the tag instead, where
     * it is only whitespace, and the lines still number as in the original template. Not after a
     * {@code -} (which strips the whitespace anyway) or a {@code +} (which asks to keep it).
     *
     * @return where the template goes on
     */
    private static int closeBlock(String template, StringBuilder out, int from, int close, String delimiter) {
        out.append(template, from, close);
        int after = close + delimiter.length();
        char marker = close > 0 ? template.charAt(close - 1) : ' ';
        if (marker == '+') {
            out.setCharAt(out.length() - 1, ' '); // done: the newline stays; Jinjava does not know the marker
        }
        if (after < template.length() && template.charAt(after) == '\n' && marker != '-' && marker != '+') {
            out.append('\n').append(delimiter);
            return after + 1;
        }
        out.append(delimiter);
        return after;
    }

    /**
     * jinja2's {@code lstrip_blocks}: spaces and tabs between the start of a line and a block or
     * comment tag are dropped, unless the tag opens with {@code +}. (Jinjava's own option also
     * strips them in the middle of a line.) They are the last characters written to {@code out}.
     */
    private static void lstripBlock(String template, StringBuilder out, int open) {
        if (open + 2 < template.length() && template.charAt(open + 2) == '+') {
            return;
        }
        int start = open;
        while (start > 0 && (template.charAt(start - 1) == ' ' || template.charAt(start - 1) == '\t')) {
            start--;
        }
        if (start < open && (start == 0 || template.charAt(start - 1) == '\n')) {
            out.setLength(out.length() - (open - start));
        }
    }

    private static int nextDelimiter(String s, int from) {
        for (int i = s.indexOf('{', from); i >= 0 && i + 1 < s.length(); i = s.indexOf('{', i + 1)) {
            char next = s.charAt(i + 1);
            if (next == '{' || next == '%' || next == '#') {
                return i;
            }
        }
        return -1;
    }

    /** Where {@code close} ends the tag whose body starts at {@code from}, outside strings and brackets; -1 if nowhere. */
    private static int closingDelimiter(String s, int from, String close) {
        int depth = 0;
        for (int i = from; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\'' || c == '"') {
                i = stringEnd(s, i) - 1;
            } else if (depth == 0 && s.startsWith(close, i)) {
                return i;
            } else if (c == '(' || c == '[' || c == '{') {
                depth++;
            } else if ((c == ')' || c == ']' || c == '}') && depth > 0) {
                depth--;
            }
        }
        return -1;
    }

    private static String tagName(String body) {
        int i = 0;
        while (i < body.length() && (body.charAt(i) == '-' || body.charAt(i) == '+' || Character.isWhitespace(body.charAt(i)))) {
            i++;
        }
        int start = i;
        while (i < body.length() && Character.isLetter(body.charAt(i))) {
            i++;
        }
        return body.substring(start, i);
    }

    /** {@code e} with its step slices and keyword-argument values rewritten, at every nesting depth. */
    static String expression(String e) {
        StringBuilder out = new StringBuilder(e.length() + 8);
        boolean afterValue = false; // whether a bracket here would be a call or subscript
        int i = 0;
        while (i < e.length()) {
            char c = e.charAt(i);
            if (c == '\'' || c == '"') {
                int end = stringEnd(e, i);
                out.append(stringLiteral(e.substring(i, end)));
                i = end;
                afterValue = true;
            } else if (c == '(' || c == '[' || c == '{') {
                int close = matchingBracket(e, i);
                if (close < 0) {
                    out.append(e, i, e.length());
                    break;
                }
                String inner = e.substring(i + 1, close);
                List<String> sliceParts = c == '[' && afterValue ? splitTopLevel(inner, ':') : List.of();
                if (sliceParts.size() == 3) {
                    out.append('.').append(SLICE_METHOD).append('(');
                    for (int p = 0; p < 3; p++) {
                        String part = sliceParts.get(p);
                        out.append(p > 0 ? "," : "").append(part.isBlank() ? part + "null" : expression(part));
                    }
                    out.append(')');
                } else if (c == '(' && afterValue) {
                    out.append('(').append(arguments(inner)).append(')');
                } else {
                    out.append(c).append(expression(inner)).append(e.charAt(close));
                }
                i = close + 1;
                afterValue = true;
            } else if (Character.isLetter(c) || c == '_') {
                int end = i;
                while (end < e.length() && (Character.isLetterOrDigit(e.charAt(end)) || e.charAt(end) == '_')) {
                    end++;
                }
                String word = e.substring(i, end);
                out.append(word);
                afterValue = !KEYWORDS.contains(word);
                i = end;
            } else if (Character.isDigit(c)) {
                int end = i;
                while (end < e.length() && (Character.isLetterOrDigit(e.charAt(end)) || e.charAt(end) == '.')) {
                    end++;
                }
                out.append(e, i, end);
                afterValue = true;
                i = end;
            } else {
                out.append(c);
                if (!Character.isWhitespace(c)) {
                    afterValue = false;
                }
                i++;
            }
        }
        return out.toString();
    }

    private static String arguments(String inner) {
        List<String> parts = splitTopLevel(inner, ',');
        StringBuilder out = new StringBuilder(inner.length() + 8);
        for (int p = 0; p < parts.size(); p++) {
            String part = parts.get(p);
            out.append(p > 0 ? "," : "");
            Matcher keyword = KEYWORD_ARGUMENT.matcher(part);
            if (keyword.matches() && !SIMPLE_VALUE.matcher(keyword.group(2)).matches()) {
                out.append(keyword.group(1)).append("=(").append(expression(keyword.group(2))).append(')');
            } else {
                out.append(expression(part));
            }
        }
        return out.toString();
    }

    /**
     * A string literal with Python's escapes (jinja2 decodes them as {@code unicode-escape}) turned
     * into the ones Jinjava's expression language reads ({@code \\n \\r \\t \\\\ \\' \\"}) or into
     * the characters themselves; an escape Python does not know keeps its backslash, as in Python.
     */
    static String stringLiteral(String literal) {
        if (literal.indexOf('\\') < 0 || literal.length() < 2) {
            return literal;
        }
        char quote = literal.charAt(0);
        boolean closed = literal.length() >= 2 && literal.charAt(literal.length() - 1) == quote;
        String body = literal.substring(1, closed ? literal.length() - 1 : literal.length());
        StringBuilder out = new StringBuilder(literal.length()).append(quote);
        for (int i = 0; i < body.length(); i++) {
            char c = body.charAt(i);
            if (c != '\\' || i + 1 == body.length()) {
                out.append(c);
                continue;
            }
            char next = body.charAt(++i);
            switch (next) {
                case '\\', '\'', '"', 'n', 'r', 't' -> out.append('\\').append(next);
                case 'a' -> out.append('\u0007');
                case 'b' -> out.append('\b');
                case 'f' -> out.append('\f');
                case 'v' -> out.append('\u000b');
                case '\n' -> { } // a backslash before a line break joins the lines
                case 'x', 'u', 'U' -> {
                    int digits = next == 'x' ? 2 : next == 'u' ? 4 : 8;
                    if (isHex(body, i + 1, digits)) {
                        appendCodePoint(out, Integer.parseInt(body, i + 1, i + 1 + digits, 16));
                        i += digits;
                    } else {
                        out.append("\\\\").append(next);
                    }
                }
                default -> {
                    if (next >= '0' && next <= '7') {
                        int end = i + 1;
                        while (end < body.length() && end < i + 3 && body.charAt(end) >= '0' && body.charAt(end) <= '7') {
                            end++;
                        }
                        appendCodePoint(out, Integer.parseInt(body, i, end, 8));
                        i = end - 1;
                    } else {
                        out.append("\\\\").append(next); // unknown escape: the backslash stays
                    }
                }
            }
        }
        return closed ? out.append(quote).toString() : out.toString();
    }

    private static boolean isHex(String s, int from, int count) {
        if (from + count > s.length()) {
            return false;
        }
        for (int i = from; i < from + count; i++) {
            if (Character.digit(s.charAt(i), 16) < 0) {
                return false;
            }
        }
        return true;
    }

    private static void appendCodePoint(StringBuilder out, int codePoint) {
        switch (codePoint) {
            case '\n' -> out.append("\\n"); // keeps the template's lines where they were
            case '\r' -> out.append("\\r");
            case '\\' -> out.append("\\\\");
            case '\'' -> out.append("\\'");
            case '"' -> out.append("\\\"");
            default -> out.appendCodePoint(codePoint);
        }
    }

    /** {@code s} cut at each {@code separator} outside brackets and strings. */
    private static List<String> splitTopLevel(String s, char separator) {
        List<String> parts = new ArrayList<>();
        int depth = 0;
        int start = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\'' || c == '"') {
                i = stringEnd(s, i) - 1;
            } else if (c == '(' || c == '[' || c == '{') {
                depth++;
            } else if (c == ')' || c == ']' || c == '}') {
                depth--;
            } else if (c == separator && depth == 0) {
                parts.add(s.substring(start, i));
                start = i + 1;
            }
        }
        parts.add(s.substring(start));
        return parts;
    }

    /** The index after the string literal that opens at {@code start} (or the end of {@code s} if it never closes). */
    private static int stringEnd(String s, int start) {
        char quote = s.charAt(start);
        for (int i = start + 1; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\') {
                i++;
            } else if (c == quote) {
                return i + 1;
            }
        }
        return s.length();
    }

    private static int matchingBracket(String s, int open) {
        int depth = 0;
        for (int i = open; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\'' || c == '"') {
                i = stringEnd(s, i) - 1;
            } else if (c == '(' || c == '[' || c == '{') {
                depth++;
            } else if (c == ')' || c == ']' || c == '}') {
                if (--depth == 0) {
                    return i;
                }
            }
        }
        return -1;
    }
}
