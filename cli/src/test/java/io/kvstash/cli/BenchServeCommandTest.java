package io.kvstash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * bench-serve against a stand-in server on the loopback interface that speaks the sessions API:
 * what it sends, how it reads the streams, what it counts, and that failures are counted, not hidden.
 */
class BenchServeCommandTest {
    static final ObjectMapper JSON = new ObjectMapper();

    HttpServer server;
    final AtomicInteger created = new AtomicInteger();
    final Map<String, Integer> turnsBySession = new ConcurrentHashMap<>();
    final List<JsonNode> bodies = new CopyOnWriteArrayList<>();
    final List<String> keys = new CopyOnWriteArrayList<>();
    /** The session whose second turn ends in an error event, and the creation (1-based) answered with a 503. */
    volatile String failingSession = "";
    volatile int refusedCreation = -1;

    @BeforeEach
    void start() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.setExecutor(Executors.newVirtualThreadPerTaskExecutor());
        server.createContext("/v1/sessions", this::handle);
        server.start();
    }

    @AfterEach
    void stop() {
        server.stop(0);
    }

    private void handle(HttpExchange x) throws IOException {
        keys.add(String.valueOf(x.getRequestHeaders().getFirst("Authorization")));
        String path = x.getRequestURI().getPath();
        byte[] body = x.getRequestBody().readAllBytes();
        if (path.equals("/v1/sessions")) {
            int n = created.incrementAndGet();
            if (n == refusedCreation) {
                send(x, 503, "application/problem+json", "{\"title\": \"busy\"}");
                return;
            }
            send(x, 201, "application/json", "{\"id\": \"s" + n + "\", \"messages\": []}");
            return;
        }
        String id = path.split("/")[3];
        bodies.add(JSON.readTree(body));
        int turn = turnsBySession.merge(id, 1, Integer::sum);
        x.getResponseHeaders().add("Content-Type", "text/event-stream");
        x.sendResponseHeaders(200, 0);
        try (OutputStream out = x.getResponseBody()) {
            // A comment, a delta in CR LF lines, another delta, then the end of the turn.
            write(out, ": hello\r\nevent:delta\r\ndata:{\"content\":\"Once\"}\r\n\r\n");
            write(out, "event: delta\ndata: {\"content\":\" upon\"}\n\n");
            if (id.equals(failingSession) && turn == 2) {
                write(out, "event: error\ndata: {\"type\":\"https://kvstash.io/problems/internal\",\"status\":500}\n\n");
                return;
            }
            int prompt = 20 * turn;
            int cached = turn == 1 ? 0 : prompt - 12;
            write(out, "event: done\ndata: {\"session_id\":\"" + id + "\",\"message\":{\"role\":\"assistant\",\"content\":\"Once upon\"},"
                    + "\"finish_reason\":\"length\",\"usage\":{\"prompt_tokens\":" + prompt + ",\"completion_tokens\":2,\"cached_tokens\":"
                    + cached + ",\"hot_chunks\":0,\"warm_chunks\":0}}\n\n");
        }
    }

    private static void write(OutputStream out, String s) throws IOException {
        out.write(s.getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private static void send(HttpExchange x, int status, String type, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        x.getResponseHeaders().add("Content-Type", type);
        x.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = x.getResponseBody()) {
            out.write(bytes);
        }
    }

    record Run(int code, JsonNode json, String err) {}

    Run bench(String... extra) throws IOException {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        String[] args = new String[extra.length + 3];
        args[0] = "bench-serve";
        args[1] = "--url";
        args[2] = "http://127.0.0.1:" + server.getAddress().getPort() + "/";
        System.arraycopy(extra, 0, args, 3, extra.length);
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(code, out.toString().isBlank() ? null : JSON.readTree(out.toString()), err.toString());
    }

    @Test
    void shouldRunEveryTurnOfEverySessionAndReportTheirTimings() throws IOException {
        Run r = bench("--sessions", "4", "--turns", "3", "--api-key", "k1", "--max-tokens", "7");
        assertEquals(0, r.code(), r.err() + r.json());
        JsonNode j = r.json();
        assertEquals(12, j.get("turns").asInt());
        assertEquals(0, j.get("errors").asInt());
        assertEquals(24, j.get("generated_tokens").asInt());
        assertEquals(0, j.get("turns_without_delta").asInt(), "every turn's first delta was seen: " + j);
        for (String f : List.of("ttft_first_median_ms", "ttft_first_p99_ms", "ttft_resumed_median_ms", "ttft_resumed_p99_ms")) {
            assertTrue(j.get(f).isNumber() && j.get(f).asDouble() > 0, f + ": " + j);
        }
        assertTrue(j.get("ttft_first_p99_ms").asDouble() >= j.get("ttft_first_median_ms").asDouble());
        // Resumed turns: prompts 40 and 60 in each of the 4 sessions, all but 12 tokens cached.
        assertEquals(4 * (40 + 60), j.get("resumed_prompt_tokens").asInt());
        assertEquals(4 * (28 + 48), j.get("resumed_cached_tokens").asInt());

        assertEquals(Map.of("s1", 3, "s2", 3, "s3", 3, "s4", 3), turnsBySession);
        assertTrue(keys.stream().allMatch("Bearer k1"::equals), keys.toString());
        assertTrue(bodies.stream().allMatch(b -> b.get("stream").asBoolean() && b.get("max_tokens").asInt() == 7), bodies.toString());
        List<String> openings = bodies.stream().map(b -> b.get("content").asText()).filter(c -> c.startsWith("Story ")).distinct().toList();
        assertEquals(4, openings.size(), "each session opens with a message of its own: " + openings);
    }

    @Test
    void shouldCountFailedCreationsAndErrorEventsAndExitWithOne() throws IOException {
        failingSession = "s2";
        refusedCreation = 3;
        Run r = bench("--sessions", "3", "--turns", "2");
        assertEquals(1, r.code(), r.err());
        JsonNode j = r.json();
        assertEquals(2, j.get("errors").asInt(), j.toString());
        // s1: both turns; s2: its first turn, the second failed; the third session was never created.
        assertEquals(3, j.get("turns").asInt(), j.toString());
        String samples = j.get("error_samples").toString();
        assertTrue(samples.contains("HTTP 503") && samples.contains("turn 2: error event"), samples);
        assertTrue(keys.stream().allMatch("null"::equals), "no key given, no Authorization header: " + keys);
    }

    @Test
    void shouldRefuseNonsenseOptionsWithExitCodeTwo() throws IOException {
        assertEquals(2, bench("--sessions", "0").code());
        StringWriter err = new StringWriter();
        assertEquals(2, Main.run(new String[] {"bench-serve", "--url", "ftp://localhost/"}, new PrintWriter(new StringWriter()),
                new PrintWriter(err, true)));
        assertTrue(err.toString().contains("--url"), err.toString());
    }
}
