package io.kvstash.engine.chat;

import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELException;
import jinjava.javax.el.ELResolver;

import java.beans.FeatureDescriptor;
import java.lang.reflect.Array;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Python's methods on the values chat templates handle, put in front of Jinjava's own resolvers:
 * in jinja2 (and so in Hugging Face's renderer) {@code message.content.startswith('<tool_response>')}
 * calls Python's {@code str.startswith}, while Jinjava would look for a Java method and find
 * none, or, worse, find Java's {@code String.split}, which takes a regular expression and drops
 * trailing empty strings.
 *
 * <p>Strings: {@code startswith}, {@code endswith} (a prefix or a tuple of them), {@code strip},
 * {@code lstrip}, {@code rstrip} (whitespace or the given characters), {@code split} and
 * {@code rsplit} (on whitespace runs or a separator, with {@code maxsplit}), {@code lower},
 * {@code upper}, {@code title}, {@code capitalize}, {@code replace}, {@code find}, {@code rfind},
 * {@code count}, {@code join}, {@code isdigit}, {@code isalpha}, {@code isalnum}, {@code isspace},
 * {@code islower}, {@code isupper}. Mappings: {@code get(key, default)}, {@code items},
 * {@code keys}, {@code values}. Strings, lists and arrays: {@code py_slice(start, stop, step)},
 * which {@link Jinja2Syntax} writes for {@code x[start:stop:step]}. Any other call goes on to
 * Jinjava.
 */
final class PythonMethods extends ELResolver {
    private static final Object NOT_HANDLED = new Object();

    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
        if (base == null || method == null) {
            return null;
        }
        Object[] args = params == null ? new Object[0] : params;
        String name = method.toString();
        Object result;
        if (name.equals(Jinja2Syntax.SLICE_METHOD)) {
            result = slice(base, args);
        } else if (base instanceof String s) {
            result = stringMethod(s, name, args);
        } else if (base instanceof Map<?, ?> map) {
            result = mapMethod(map, name, args);
        } else {
            result = NOT_HANDLED;
        }
        if (result == NOT_HANDLED) {
            return null;
        }
        context.setPropertyResolved(true);
        return result;
    }

    private static Object stringMethod(String s, String name, Object[] args) {
        return switch (name) {
            case "startswith" -> anyAffix(s, arg(args, 0, name), true);
            case "endswith" -> anyAffix(s, arg(args, 0, name), false);
            case "strip" -> strip(s, optionalString(args, 0), true, true);
            case "lstrip" -> strip(s, optionalString(args, 0), true, false);
            case "rstrip" -> strip(s, optionalString(args, 0), false, true);
            case "split" -> split(s, optionalString(args, 0), optionalInt(args, 1, -1), false);
            case "rsplit" -> split(s, optionalString(args, 0), optionalInt(args, 1, -1), true);
            case "lower" -> s.toLowerCase(Locale.ROOT);
            case "upper" -> s.toUpperCase(Locale.ROOT);
            case "title" -> title(s);
            case "capitalize" -> s.isEmpty() ? s : s.substring(0, 1).toUpperCase(Locale.ROOT) + s.substring(1).toLowerCase(Locale.ROOT);
            case "replace" -> replace(s, string(arg(args, 0, name), name), string(arg(args, 1, name), name), optionalInt(args, 2, -1));
            case "find" -> (long) s.indexOf(string(arg(args, 0, name), name));
            case "rfind" -> (long) s.lastIndexOf(string(arg(args, 0, name), name));
            case "count" -> count(s, string(arg(args, 0, name), name));
            case "join" -> join(s, arg(args, 0, name));
            case "isdigit" -> !s.isEmpty() && s.chars().allMatch(Character::isDigit);
            case "isalpha" -> !s.isEmpty() && s.chars().allMatch(Character::isLetter);
            case "isalnum" -> !s.isEmpty() && s.chars().allMatch(Character::isLetterOrDigit);
            case "isspace" -> !s.isEmpty() && s.chars().allMatch(PythonMethods::isPythonWhitespace);
            case "islower" -> s.chars().anyMatch(Character::isLetter) && s.equals(s.toLowerCase(Locale.ROOT));
            case "isupper" -> s.chars().anyMatch(Character::isLetter) && s.equals(s.toUpperCase(Locale.ROOT));
            default -> NOT_HANDLED;
        };
    }

    private static Object mapMethod(Map<?, ?> map, String name, Object[] args) {
        return switch (name) {
            case "get" -> args.length == 2 ? (map.containsKey(args[0]) ? map.get(args[0]) : args[1]) : NOT_HANDLED;
            case "items" -> map.entrySet().stream().map(e -> List.of(e.getKey(), e.getValue())).toList();
            case "keys" -> List.copyOf(map.keySet());
            case "values" -> new ArrayList<>(map.values());
            default -> NOT_HANDLED;
        };
    }

    private static boolean anyAffix(String s, Object affixes, boolean prefix) {
        if (affixes instanceof Collection<?> several) {
            for (Object affix : several) {
                if (anyAffix(s, affix, prefix)) {
                    return true;
                }
            }
            return false;
        }
        String affix = string(affixes, prefix ? "startswith" : "endswith");
        return prefix ? s.startsWith(affix) : s.endsWith(affix);
    }

    /** Python's {@code str.strip}: whitespace when {@code chars} is null, else any of {@code chars}. */
    static String strip(String s, String chars, boolean left, boolean right) {
        int start = 0;
        int end = s.length();
        while (left && start < end && stripped(s.charAt(start), chars)) {
            start++;
        }
        while (right && end > start && stripped(s.charAt(end - 1), chars)) {
            end--;
        }
        return s.substring(start, end);
    }

    private static boolean stripped(char c, String chars) {
        return chars == null ? isPythonWhitespace(c) : chars.indexOf(c) >= 0;
    }

    /** Python's {@code str.isspace} for one character (Java's {@code isWhitespace} misses the no-break spaces). */
    private static boolean isPythonWhitespace(int c) {
        return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == 0x85;
    }

    /** Python's {@code str.split} and {@code str.rsplit}. */
    private static List<String> split(String s, String separator, int maxSplit, boolean fromRight) {
        List<String> parts = new ArrayList<>();
        if (separator == null) {
            // Runs of whitespace separate; none at either end yields an empty string.
            String rest = fromRight ? strip(s, null, false, true) : strip(s, null, true, false);
            while (!rest.isEmpty()) {
                if (maxSplit >= 0 && parts.size() == maxSplit) {
                    parts.add(fromRight ? strip(rest, null, false, true) : strip(rest, null, true, false));
                    break;
                }
                int cut = fromRight ? lastWhitespace(rest) : firstWhitespace(rest);
                if (cut < 0) {
                    parts.add(rest);
                    break;
                }
                parts.add(fromRight ? rest.substring(cut + 1) : rest.substring(0, cut));
                rest = fromRight ? strip(rest.substring(0, cut), null, false, true) : strip(rest.substring(cut), null, true, false);
            }
            if (fromRight) {
                Collections.reverse(parts);
            }
            return parts;
        }
        if (separator.isEmpty()) {
            throw new ELException("empty separator");
        }
        if (!fromRight) {
            int from = 0;
            for (int at = s.indexOf(separator); at >= 0 && (maxSplit < 0 || parts.size() < maxSplit); at = s.indexOf(separator, from)) {
                parts.add(s.substring(from, at));
                from = at + separator.length();
            }
            parts.add(s.substring(from));
            return parts;
        }
        int to = s.length();
        for (int at = s.lastIndexOf(separator, to - separator.length()); at >= 0 && (maxSplit < 0 || parts.size() < maxSplit);
             at = s.lastIndexOf(separator, to - separator.length())) {
            parts.add(s.substring(at + separator.length(), to));
            to = at;
        }
        parts.add(s.substring(0, to));
        Collections.reverse(parts);
        return parts;
    }

    private static int firstWhitespace(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (isPythonWhitespace(s.charAt(i))) {
                return i;
            }
        }
        return -1;
    }

    private static int lastWhitespace(String s) {
        for (int i = s.length() - 1; i >= 0; i--) {
            if (isPythonWhitespace(s.charAt(i))) {
                return i;
            }
        }
        return -1;
    }

    private static String title(String s) {
        StringBuilder out = new StringBuilder(s.length());
        boolean previousCased = false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            out.append(previousCased ? Character.toLowerCase(c) : Character.toTitleCase(c));
            previousCased = Character.isLetter(c);
        }
        return out.toString();
    }

    private static String replace(String s, String old, String replacement, int count) {
        if (count < 0) {
            return s.replace(old, replacement);
        }
        StringBuilder out = new StringBuilder();
        int from = 0;
        for (int n = 0; n < count; n++) {
            int at = s.indexOf(old, from);
            if (at < 0) {
                break;
            }
            out.append(s, from, at).append(replacement);
            from = at + old.length();
            if (old.isEmpty()) {
                if (from >= s.length()) {
                    from = s.length() + 1;
                    break;
                }
                out.append(s.charAt(from++));
            }
        }
        return from > s.length() ? out.toString() : out.append(s, from, s.length()).toString();
    }

    private static long count(String s, String sub) {
        if (sub.isEmpty()) {
            return s.length() + 1L;
        }
        long n = 0;
        for (int at = s.indexOf(sub); at >= 0; at = s.indexOf(sub, at + sub.length())) {
            n++;
        }
        return n;
    }

    private static String join(String separator, Object items) {
        StringBuilder out = new StringBuilder();
        boolean first = true;
        for (Object item : iterable(items, "join")) {
            out.append(first ? "" : separator).append(string(item, "join"));
            first = false;
        }
        return out.toString();
    }

    /** Python's {@code sequence[start:stop:step]} of a string, list or array. */
    private static Object slice(Object base, Object[] args) {
        List<?> items;
        if (base instanceof String s) {
            items = s.codePoints().mapToObj(Character::toString).toList(); // Python indexes code points
        } else if (base instanceof List<?> list) {
            items = list;
        } else if (base.getClass().isArray()) {
            List<Object> copy = new ArrayList<>();
            for (int i = 0; i < Array.getLength(base); i++) {
                copy.add(Array.get(base, i));
            }
            items = copy;
        } else {
            throw new ELException("cannot slice a " + base.getClass().getSimpleName());
        }
        int length = items.size();
        long step = optionalLong(args, 2, 1);
        if (step == 0) {
            throw new ELException("slice step cannot be zero");
        }
        // Python's slice.indices(length)
        long lower = step > 0 ? 0 : -1;
        long upper = step > 0 ? length : length - 1;
        long start = args.length > 0 && args[0] != null ? bound(number(args[0]), length, lower, upper) : (step > 0 ? lower : upper);
        long stop = args.length > 1 && args[1] != null ? bound(number(args[1]), length, lower, upper) : (step > 0 ? upper : lower);
        List<Object> picked = new ArrayList<>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step) {
            picked.add(items.get((int) i));
        }
        if (base instanceof String) {
            StringBuilder out = new StringBuilder(picked.size());
            picked.forEach(out::append);
            return out.toString();
        }
        return picked;
    }

    private static long bound(long index, int length, long lower, long upper) {
        return index < 0 ? Math.max(index + length, lower) : Math.min(index, upper);
    }

    private static Object arg(Object[] args, int i, String method) {
        if (i >= args.length) {
            throw new ELException(method + "() takes at least " + (i + 1) + " argument(s)");
        }
        return args[i];
    }

    private static String optionalString(Object[] args, int i) {
        return i < args.length && args[i] != null ? string(args[i], "argument") : null;
    }

    private static int optionalInt(Object[] args, int i, int fallback) {
        return (int) optionalLong(args, i, fallback);
    }

    private static long optionalLong(Object[] args, int i, long fallback) {
        return i < args.length && args[i] != null ? number(args[i]) : fallback;
    }

    private static long number(Object value) {
        if (value instanceof Number n) {
            return n.longValue();
        }
        throw new ELException("expected an integer, got " + value);
    }

    private static String string(Object value, String what) {
        if (value instanceof CharSequence cs) {
            return cs.toString();
        }
        throw new ELException(what + ": expected a string, got " + (value == null ? "none" : value));
    }

    private static Iterable<?> iterable(Object value, String what) {
        if (value instanceof Iterable<?> it) {
            return it;
        }
        if (value != null && value.getClass().isArray()) {
            List<Object> copy = new ArrayList<>();
            for (int i = 0; i < Array.getLength(value); i++) {
                copy.add(Array.get(value, i));
            }
            return copy;
        }
        throw new ELException(what + ": expected a list, got " + value);
    }

    // The rest of ELResolver: this resolver only answers method calls.

    @Override
    public Object getValue(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public Class<?> getType(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public void setValue(ELContext context, Object base, Object property, Object value) {
    }

    @Override
    public boolean isReadOnly(ELContext context, Object base, Object property) {
        return true;
    }

    @Override
    public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
        return null;
    }

    @Override
    public Class<?> getCommonPropertyType(ELContext context, Object base) {
        return null;
    }
}
