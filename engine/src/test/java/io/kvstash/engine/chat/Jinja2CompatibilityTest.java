package io.kvstash.engine.chat;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.kvstash.engine.gguf.GgufFile;
import io.kvstash.engine.gguf.TinyModels;
import io.kvstash.engine.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The jinja2 behaviour chat templates rely on, through the same renderer the engine uses. Each
 * expected string is what jinja2 3.1.6 renders in Hugging Face's set-up (sandboxed environment,
 * {@code trim_blocks}, {@code lstrip_blocks}, loop controls, Hugging Face's {@code tojson}) for
 * {@code messages = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]};
 * {@code generation} is Hugging Face's own tag, which renders its content.
 */
class Jinja2CompatibilityTest {
    private static final List<ChatMessage> MESSAGES = List.of(ChatMessage.user("Hi there"), ChatMessage.assistant("Hello!"));

    @TempDir
    static Path dir;
    private static GgufFile file;
    private static Tokenizer tokenizer;

    @BeforeAll
    static void load() {
        file = GgufFile.open(TinyModels.write(dir.resolve("tiny.gguf"), TinyModels.Spec.builder().build()));
        tokenizer = Tokenizer.fromGguf(file);
    }

    @AfterAll
    static void close() {
        file.close();
    }

    static Stream<Arguments> cases() {
        return Stream.of(
                Arguments.of("a\n{% if true %}\n  b\n{% endif %}\nc\n",
                        "a\n  b\nc"),
                Arguments.of("  {%- if true -%}  x  {%- endif -%}  y",
                        "xy"),
                Arguments.of("{% for m in messages %}\n    {{- m.role }}\n{% endfor %}\n",
                        "user\nassistant\n"),
                Arguments.of("a\n  {% if true %}\n  b\n  {% endif %}\nc",
                        "a\n  b\nc"),
                Arguments.of("{% for i in [1, 2] %}\n  {% if i == 1 %}\n  one\n  {% else %}\n  other\n  {% endif %}\n{% endfor %}",
                        "  one\n  other\n"),
                Arguments.of("a {# c #}\nb\n{# d #}\n  c\n    {# e #}  f",
                        "a b\n  c\n  f"),
                Arguments.of("a {% if true %}x{% endif %} b",
                        "a x b"),
                Arguments.of("a {# c #} b\n  {# c #}\nb",
                        "a  b\nb"),
                Arguments.of("a\n  {{ 1 }}\n",
                        "a\n  1"),
                Arguments.of("{%+ if true %}x{% endif +%}\n  y|  {%+ if true %}x\n{%- endif %}|a\n\t {#+ c #}\nb",
                        "x\n  y|  x|a\n\t b"),
                Arguments.of("{% raw %}\nx\n{% endraw %}\ny",
                        "\nx\ny"),
                Arguments.of("{% if true -%}\n  a\n{%- endif %}\nb\n{% if true %}  \nc{% endif %}",
                        "ab\n  \nc"),
                Arguments.of("{%- set x = 1 %}\n\n{{ x }}\n\n{%- if true %}\n   t\n{% endif -%}\n   end\n",
                        "\n1   t\nend"),
                Arguments.of("{{ 'x' + ' y ' | trim + 'z' }}",
                        "xyz"),
                Arguments.of("{{ messages|length - 1 }}",
                        "1"),
                Arguments.of("{% set ns = namespace(n=messages|length - 1, flag=true) %}{% set ns.flag = false %}{{ ns.n }}{% if not ns.flag %} off{% endif %}",
                        "1 off"),
                Arguments.of("{% for x in [1, 2, 3, 4][::-1] %}{{ x }}{% endfor %}",
                        "4321"),
                Arguments.of("{{ 'abcdef'[::2] }}|{{ 'abcdef'[1:-1] }}|{{ [1, 2, 3, 4, 5][4:0:-2]|join(',') }}|{{ 'abc'[::-1] }}",
                        "ace|bcde|5,3|cba"),
                Arguments.of("{{ 'a</think>b</think>'.split('</think>')|length }}|{{ 'a.b.c'.split('.')[-1] }}|{{ '  x  y '.split()|join('|') }}|{{ 'a,b,c'.rsplit(',', 1)|join('|') }}",
                        "3|c|x|y|a,b|c"),
                Arguments.of("[{{ '\\n\\nhi\\n'.lstrip('\\n') }}][{{ 'xxhiyy'.strip('xy') }}][{{ '  hi  '.rstrip() }}][{{ '\\n hi \\n'.strip() }}]",
                        "[hi\n][hi][  hi][hi]"),
                Arguments.of("{% if 'Hello'.startswith(('x', 'He')) and 'Hello'.endswith('lo') and not 'Hello'.startswith('lo') %}ok{% endif %}",
                        "ok"),
                Arguments.of("{{ 'hello world'.title() }}|{{ 'a-b-c'.replace('-', '+') }}|{{ 'a-b-c'.replace('-', '+', 1) }}|{{ ', '.join(['a', 'b']) }}|{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}",
                        "Hello World|a+b+c|a+b-c|a, b|HIhi"),
                Arguments.of("{{ {'a': 1, 'b': [1.5, 'x', none, true, false]}|tojson }}",
                        "{\"a\": 1, \"b\": [1.5, \"x\", null, true, false]}"),
                Arguments.of("{{ '\u00e9\\u001b\"\\\\/'|tojson }}",
                        "\"\u00e9\\u001b\\\"\\\\/\""),
                Arguments.of("{{ {'a': [1, {}], 'b': []}|tojson(indent=2) }}",
                        "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": []\n}"),
                Arguments.of("{{ messages|tojson }}",
                        "[{\"role\": \"user\", \"content\": \"Hi there\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]"),
                Arguments.of("{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}",
                        "13"),
                Arguments.of("{% for m in messages %}{{ loop.index0 }}{{ loop.index }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %}{% endfor %}",
                        "01F12L"),
                Arguments.of("{% if enable_thinking is defined and enable_thinking is false %}off{% else %}on{% endif %}",
                        "on"),
                Arguments.of("{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}|{{ {'a': 1}.get('b', 2) }}|{{ {'a': 1}.get('a', 2) }}",
                        "a=1|2|1"),
                Arguments.of("{{ messages[0]['role'] }}|{{ messages[-1].content }}|{% if messages[0].reasoning_content is defined %}def{% else %}undef{% endif %}",
                        "user|Hello!|undef"),
                Arguments.of("{% if 'x' in 'xyz' and 'q' not in 'xyz' %}in{% endif %}",
                        "in"),
                Arguments.of("{% macro f(x, y='d') %}[{{ x }}{{ y }}]{% endmacro %}{{ f(1) }}{{ f(1, y=2) }}",
                        "[1d][12]"),
                Arguments.of("{% raw %}{{ x[::-1] }}{% endraw %}|{{ 'x[::-1] and n=(1 - 2)' }}",
                        "{{ x[::-1] }}|x[::-1] and n=(1 - 2)"),
                Arguments.of("{{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 3 }} {{ 'a' ~ 1 }}",
                        "3 1 8 a1"),
                Arguments.of("{{ [3, 1, 2]|sort|join(',') }}|{{ messages|selectattr('role', 'equalto', 'user')|list|length }}|{{ messages|map(attribute='role')|join(',') }}",
                        "1,2,3|1|user,assistant"),
                Arguments.of("{{ messages[0].content if messages[0].role == 'user' else 'no' }}",
                        "Hi there"),
                Arguments.of("{%- for message in messages %}{%- if message.role == 'user' %}{{- '<u>' + message.content }}{%- elif message.role == 'assistant' %}{{- '<a>' + message.content }}{%- endif %}{%- endfor %}",
                        "<u>Hi there<a>Hello!"),
                Arguments.of("{% generation %}g{% endgeneration %}",
                        "g"),
                Arguments.of("{{ (messages|first).role }}{{ (messages|last).role }}",
                        "userassistant"),
                Arguments.of("{% set x = 'a' %}{% if x is string and 1 is number and messages is iterable and messages[0] is mapping and none is none %}types{% endif %}",
                        "types"),
                Arguments.of("{{ 10 / 4 }}|{{ 1e-05|tojson }}|{{ 12345678901234567.0|tojson }}|{{ 0.0001|tojson }}",
                        "2.5|1e-05|1.2345678901234568e+16|0.0001"),
                Arguments.of("{{ 'a\\tb\\x41\\u00e9\\101\\/\\q' }}|{{ \"it\\'s \\\"q\\\"\" }}",
                        "a\tbA\u00e9A\\/\\q|it's \"q\""));
    }

    @ParameterizedTest
    @MethodSource("cases")
    void shouldKeepEveryLineWhereItWasWhenRewritingForJinjava(String template, String expected) {
        String withoutLastNewline = template.endsWith("\n") ? template.substring(0, template.length() - 1) : template;
        assertEquals(withoutLastNewline.lines().count(), Jinja2Syntax.toJinjava(template).lines().count(), template);
    }

    @ParameterizedTest
    @MethodSource("cases")
    void shouldRenderAsJinja2InHuggingFaceSetUp(String template, String expected) {
        assertEquals(expected, ChatTemplate.jinja(template, tokenizer, "test").render(MESSAGES, true).text());
    }
}
