package io.kvstash.engine.chat;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.filter.Filter;

import java.lang.reflect.Array;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The {@code tojson} filter as Hugging Face defines it for chat templates: Python's
 * {@code json.dumps(value, ensure_ascii=False, indent=indent, separators=separators,
 * sort_keys=sort_keys)}, so {@code {"a": 1, "b": [1, 2]}} with Python's spacing, where jinja2's
 * and Jinjava's own {@code tojson} would write {@code {"a":1,...}} or escape HTML characters.
 * Keyword arguments: {@code indent} (a number of spaces or a string), {@code separators} (a
 * pair), {@code sort_keys}, {@code ensure_ascii}.
 */
final class PythonJson implements Filter {

    @Override
    public String getName() {
        return "tojson";
    }

    @Override
    public Object filter(Object value, JinjavaInterpreter interpreter, String... args) {
        return filter(value, interpreter, args, Map.of());
    }

    @Override
    public Object filter(Object value, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
        Object indentArg = kwargs.getOrDefault("indent", args.length > 0 ? args[0] : null);
        String indent = switch (indentArg) {
            case null -> null;
            case Number n -> " ".repeat(Math.max(0, n.intValue()));
            default -> indentArg.toString();
        };
        String itemSeparator = indent == null ? ", " : ",";
        String keySeparator = ": ";
        if (kwargs.get("separators") instanceof Collection<?> pair && pair.size() == 2) {
            List<?> both = new ArrayList<>(pair);
            itemSeparator = String.valueOf(both.get(0));
            keySeparator = String.valueOf(both.get(1));
        }
        boolean sortKeys = Boolean.TRUE.equals(kwargs.get("sort_keys"));
        boolean ensureAscii = Boolean.TRUE.equals(kwargs.get("ensure_ascii"));
        StringBuilder out = new StringBuilder();
        new Writer(indent, itemSeparator, keySeparator, sortKeys, ensureAscii, out).write(value, 0);
        return out.toString();
    }

    static String dumps(Object value) {
        StringBuilder out = new StringBuilder();
        new Writer(null, ", ", ": ", false, false, out).write(value, 0);
        return out.toString();
    }

    private record Writer(String indent, String itemSeparator, String keySeparator, boolean sortKeys, boolean ensureAscii,
                          StringBuilder out) {

        void write(Object value, int depth) {
            switch (value) {
                case null -> out.append("null");
                case Optional<?> optional -> write(optional.orElse(null), depth);
                case Boolean b -> out.append(b ? "true" : "false");
                case Double d -> out.append(pythonFloat(d));
                case Float f -> out.append(pythonFloat(f.doubleValue()));
                case BigDecimal d -> out.append(pythonFloat(d.doubleValue()));
                case Number n -> out.append(n);
                case CharSequence s -> string(s.toString());
                case Character c -> string(c.toString());
                case Map<?, ?> map -> object(map, depth);
                case Iterable<?> items -> {
                    List<Object> list = new ArrayList<>();
                    items.forEach(list::add);
                    array(list, depth);
                }
                default -> {
                    if (value.getClass().isArray()) {
                        List<Object> list = new ArrayList<>();
                        for (int i = 0; i < Array.getLength(value); i++) {
                            list.add(Array.get(value, i));
                        }
                        array(list, depth);
                    } else {
                        string(value.toString());
                    }
                }
            }
        }

        private void object(Map<?, ?> map, int depth) {
            if (map.isEmpty()) {
                out.append("{}");
                return;
            }
            List<Map.Entry<?, ?>> entries = new ArrayList<>(map.entrySet());
            if (sortKeys) {
                entries.sort((a, b) -> key(a.getKey()).compareTo(key(b.getKey())));
            }
            out.append('{');
            for (int i = 0; i < entries.size(); i++) {
                out.append(i > 0 ? itemSeparator : "");
                newline(depth + 1);
                string(key(entries.get(i).getKey()));
                out.append(keySeparator);
                write(entries.get(i).getValue(), depth + 1);
            }
            newline(depth);
            out.append('}');
        }

        private void array(List<Object> items, int depth) {
            if (items.isEmpty()) {
                out.append("[]");
                return;
            }
            out.append('[');
            for (int i = 0; i < items.size(); i++) {
                out.append(i > 0 ? itemSeparator : "");
                newline(depth + 1);
                write(items.get(i), depth + 1);
            }
            newline(depth);
            out.append(']');
        }

        private static String key(Object key) {
            return switch (key) {
                case null -> "null";
                case Boolean b -> b ? "true" : "false";
                default -> key.toString();
            };
        }

        private void newline(int depth) {
            if (indent != null) {
                out.append('\n').append(indent.repeat(depth));
            }
        }

        private void string(String s) {
            out.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"' -> out.append("\\\"");
                    case '\\' -> out.append("\\\\");
                    case '\n' -> out.append("\\n");
                    case '\r' -> out.append("\\r");
                    case '\t' -> out.append("\\t");
                    case '\b' -> out.append("\\b");
                    case '\f' -> out.append("\\f");
                    default -> {
                        if (c < 0x20 || (ensureAscii && c > 0x7e)) {
                            out.append(String.format("\\u%04x", (int) c));
                        } else {
                            out.append(c);
                        }
                    }
                }
            }
            out.append('"');
        }
    }

    /** Python's {@code repr} of a float: shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
    static String pythonFloat(double d) {
        if (Double.isNaN(d)) {
            return "NaN";
        }
        if (Double.isInfinite(d)) {
            return d > 0 ? "Infinity" : "-Infinity";
        }
        if (d == 0) {
            return 1 / d < 0 ? "-0.0" : "0.0";
        }
        BigDecimal shortest = new BigDecimal(Double.toString(d)).stripTrailingZeros();
        int exponent = shortest.precision() - shortest.scale() - 1;
        if (exponent >= -4 && exponent < 16) {
            String plain = shortest.toPlainString();
            return plain.contains(".") ? plain : plain + ".0";
        }
        String digits = shortest.unscaledValue().abs().toString();
        String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
        return (d < 0 ? "-" : "") + mantissa + "e" + (exponent < 0 ? "-" : "+") + String.format("%02d", Math.abs(exponent));
    }
}
