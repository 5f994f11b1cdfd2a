package io.kvstash.cli;

import static io.kvstash.cli.BenchStats.hundredths;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "bench-serve", mixinStandardHelpOptions = true,
        description = {"Load a running kvstash server: --sessions concurrent sessions (one virtual thread each) of --turns turns"
                + " each, through the sessions API (POST /v1/sessions, then POST /v1/sessions/{id}/messages with \"stream\": true)."
                + " Every session opens with a message of its own, so that no two share a cached prefix; later turns resume"
                + " the session's KV from the tiers. Prints one JSON object; exits 1 when any request failed.",
                "ttft: from sending the request to the first delta event, measured here (client side), for first turns"
                        + " and for resumed turns (turn 2 on); median and p99 (nearest rank). turns_per_s: completed turns"
                        + " / wall time from the first request to the last reply. errors: session creations and turns that"
                        + " failed (HTTP status, an error event, no done event, I/O); a session stops at its first error."})
final class BenchServeCommand implements Callable<Integer> {
    static final List<String> NAMES = List.of("Lily", "Tom", "Mia", "Ben", "Sue", "Max", "Anna", "Sam");
    static final List<String> THINGS = List.of("a red ball", "a little boat", "a big tree", "a shiny key", "a lost puppy",
            "a blue kite", "a magic hat", "a tiny bird");
    static final List<String> FOLLOW_UPS = List.of("What happened next?", "Why did that happen?", "How did they feel about it?",
            "What did they do after that?", "How did the story end?");

    @Option(names = "--url", paramLabel = "URL", description = "The server (default http://localhost:8080).")
    URI url = URI.create("http://localhost:8080");

    @Option(names = "--sessions", paramLabel = "N", description = "Concurrent sessions (default 64).")
    int sessions = 64;

    @Option(names = "--turns", paramLabel = "N", description = "Turns per session (default 5).")
    int turns = 5;

    @Option(names = "--api-key", paramLabel = "KEY", description = "Sent as 'Authorization: Bearer KEY' (default: none, for a server without keys).")
    String apiKey;

    @Option(names = "--max-tokens", paramLabel = "N", description = "Reply length of every turn (default 64).")
    int maxTokens = 64;

    @Option(names = "--temperature", paramLabel = "T", description = "Sampling temperature (default 0.8; seeded per session, so a run is repeatable).")
    double temperature = 0.8;

    @Option(names = "--timeout", paramLabel = "SECONDS", description = "Longest wait for one whole turn (default 600).")
    int timeoutSeconds = 600;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    private final ObjectMapper json = new ObjectMapper();
    private ScheduledExecutorService watchdog;

    /** What one turn measured. {@code ttftNanos} is -1 when no delta came before the reply ended. */
    record TurnTiming(int turn, long ttftNanos, long totalNanos, int promptTokens, int completionTokens, int cachedTokens, int hotChunks,
                      int warmChunks) {}

    /** What one session did: its turns until the first failure, and that failure (or null). */
    record SessionRun(List<TurnTiming> turns, String error) {}

    @Override
    public Integer call() throws Exception {
        if (sessions < 1 || turns < 1 || maxTokens < 1 || timeoutSeconds < 1) {
            throw new IllegalArgumentException("--sessions, --turns, --max-tokens and --timeout must be positive");
        }
        if (!"http".equals(url.getScheme()) && !"https".equals(url.getScheme())) {
            throw new IllegalArgumentException("--url must be an http or https URL, got " + url);
        }
        String base = url.toString().replaceAll("/+$", "");
        List<SessionRun> runs;
        long start;
        long end;
        try (HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
             ScheduledExecutorService watchdog = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().daemon().name("bench-serve-watchdog").unstarted(r));
             ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor()) {
            this.watchdog = watchdog;
            List<java.util.concurrent.Future<SessionRun>> futures = new ArrayList<>();
            start = System.nanoTime();
            for (int s = 0; s < sessions; s++) {
                int index = s;
                futures.add(threads.submit(() -> runSession(http, base, index)));
            }
            runs = new ArrayList<>();
            for (var f : futures) {
                runs.add(f.get());
            }
            end = System.nanoTime();
        }
        ObjectNode out = report(runs, (end - start) / 1e9);
        spec.commandLine().getOut().println(out);
        return out.get("errors").asInt() == 0 ? 0 : 1;
    }

    private SessionRun runSession(HttpClient http, String base, int index) {
        List<TurnTiming> done = new ArrayList<>();
        String id;
        try {
            HttpResponse<String> created = http.send(request(base + "/v1/sessions", "{}").build(),
                    HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
            if (created.statusCode() != 201) {
                return new SessionRun(done, "POST /v1/sessions: HTTP " + created.statusCode() + " " + brief(created.body()));
            }
            id = json.readTree(created.body()).path("id").asText("");
            if (id.isEmpty()) {
                return new SessionRun(done, "POST /v1/sessions: no id in " + brief(created.body()));
            }
        } catch (IOException e) {
            return new SessionRun(done, "POST /v1/sessions: " + e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new SessionRun(done, "interrupted");
        }
        for (int t = 0; t < turns; t++) {
            ObjectNode body = json.createObjectNode();
            body.put("content", message(index, t));
            body.put("stream", true);
            body.put("max_tokens", maxTokens);
            body.put("temperature", temperature);
            body.put("seed", 1000L * index + t);
            try {
                done.add(turn(http, base + "/v1/sessions/" + id + "/messages", body.toString(), t));
            } catch (TurnFailed e) {
                return new SessionRun(done, "turn " + (t + 1) + ": " + e.getMessage());
            } catch (IOException e) {
                return new SessionRun(done, "turn " + (t + 1) + ": " + e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return new SessionRun(done, "interrupted");
            }
        }
        return new SessionRun(done, null);
    }

    /** A session's turn {@code t}: the first opens with the session's own subject, the later ones ask how it goes on. */
    static String message(int session, int t) {
        if (t == 0) {
            return "Story " + (session + 1) + ": tell me a story about " + NAMES.get(session % NAMES.size()) + " and "
                    + THINGS.get(session / NAMES.size() % THINGS.size()) + ".";
        }
        return FOLLOW_UPS.get((t - 1) % FOLLOW_UPS.size());
    }

    private static final class TurnFailed extends Exception {
        TurnFailed(String message) {
            super(message);
        }
    }

    private TurnTiming turn(HttpClient http, String uri, String body, int t) throws IOException, InterruptedException, TurnFailed {
        HttpRequest req = request(uri, body).header("Accept", "text/event-stream").timeout(Duration.ofSeconds(timeoutSeconds)).build();
        long sent = System.nanoTime();
        HttpResponse<InputStream> response = http.send(req, HttpResponse.BodyHandlers.ofInputStream());
        // The request timeout covers the wait for the headers only; closing the body ends a stream that stalls after them.
        AtomicBoolean timedOut = new AtomicBoolean();
        long left = Math.max(1, TimeUnit.SECONDS.toNanos(timeoutSeconds) - (System.nanoTime() - sent));
        ScheduledFuture<?> alarm = watchdog.schedule(() -> {
            timedOut.set(true);
            try {
                response.body().close();
            } catch (IOException ignored) {
                // closing is all we can do
            }
        }, left, TimeUnit.NANOSECONDS);
        try (ServerSentEvents events = new ServerSentEvents(response.body())) {
            if (response.statusCode() != 200) {
                throw new TurnFailed("HTTP " + response.statusCode() + " " + brief(new String(response.body().readAllBytes(), StandardCharsets.UTF_8)));
            }
            long firstDelta = -1;
            for (ServerSentEvents.Event e; (e = events.next()) != null; ) {
                switch (e.type()) {
                    case "delta" -> {
                        if (firstDelta < 0) {
                            firstDelta = System.nanoTime();
                        }
                    }
                    case "done" -> {
                        long finished = System.nanoTime();
                        JsonNode usage = json.readTree(e.data()).path("usage");
                        return new TurnTiming(t, firstDelta < 0 ? -1 : firstDelta - sent, finished - sent, usage.path("prompt_tokens").asInt(),
                                usage.path("completion_tokens").asInt(), usage.path("cached_tokens").asInt(), usage.path("hot_chunks").asInt(),
                                usage.path("warm_chunks").asInt());
                    }
                    case "error" -> throw new TurnFailed("error event " + brief(e.data()));
                    default -> throw new TurnFailed("unexpected event '" + e.type() + "': " + brief(e.data()));
                }
            }
            throw new TurnFailed(timedOut.get() ? "no done event within --timeout " + timeoutSeconds + " s" : "the stream ended without a done event");
        } catch (IOException e) {
            if (timedOut.get()) {
                throw new TurnFailed("no done event within --timeout " + timeoutSeconds + " s (" + e + ")");
            }
            throw e;
        } finally {
            alarm.cancel(false);
        }
    }

    private HttpRequest.Builder request(String uri, String body) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(uri)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8));
        if (apiKey != null && !apiKey.isEmpty()) {
            b.header("Authorization", "Bearer " + apiKey);
        }
        return b;
    }

    private ObjectNode report(List<SessionRun> runs, double seconds) {
        List<TurnTiming> all = runs.stream().flatMap(r -> r.turns().stream()).toList();
        long errors = runs.stream().filter(r -> r.error() != null).count();
        ObjectNode out = json.createObjectNode();
        out.put("url", url.toString());
        out.put("sessions", sessions);
        out.put("turns_per_session", turns);
        out.put("max_tokens", maxTokens);
        out.put("temperature", temperature);
        out.put("turns", all.size());
        out.put("errors", errors);
        out.put("seconds", hundredths(seconds));
        out.put("turns_per_s", hundredths(all.size() / seconds));
        long generated = all.stream().mapToLong(TurnTiming::completionTokens).sum();
        out.put("generated_tokens", generated);
        out.put("generated_tokens_per_s", hundredths(generated / seconds));
        double[] firstTtft = ttftMillis(all, true);
        double[] resumedTtft = ttftMillis(all, false);
        putMillis(out, "ttft_first_median_ms", percentile(firstTtft, 0.5));
        putMillis(out, "ttft_first_p99_ms", percentile(firstTtft, 0.99));
        putMillis(out, "ttft_resumed_median_ms", percentile(resumedTtft, 0.5));
        putMillis(out, "ttft_resumed_p99_ms", percentile(resumedTtft, 0.99));
        double[] total = all.stream().mapToDouble(t -> t.totalNanos() / 1e6).toArray();
        putMillis(out, "turn_median_ms", percentile(total, 0.5));
        putMillis(out, "turn_p99_ms", percentile(total, 0.99));
        out.put("turns_without_delta", all.stream().filter(t -> t.ttftNanos() < 0).count());
        List<TurnTiming> resumed = all.stream().filter(t -> t.turn() > 0).toList();
        long resumedPrompt = resumed.stream().mapToLong(TurnTiming::promptTokens).sum();
        long resumedCached = resumed.stream().mapToLong(TurnTiming::cachedTokens).sum();
        out.put("resumed_prompt_tokens", resumedPrompt);
        out.put("resumed_cached_tokens", resumedCached);
        out.put("resumed_cached_share", resumedPrompt == 0 ? 0 : hundredths((double) resumedCached / resumedPrompt));
        out.put("hot_chunks", all.stream().mapToLong(TurnTiming::hotChunks).sum());
        out.put("warm_chunks", all.stream().mapToLong(TurnTiming::warmChunks).sum());
        Set<String> samples = new LinkedHashSet<>();
        runs.stream().map(SessionRun::error).filter(e -> e != null).limit(5).forEach(samples::add);
        ArrayNode errorSamples = out.putArray("error_samples");
        samples.forEach(errorSamples::add);
        return out;
    }

    private static double[] ttftMillis(List<TurnTiming> turns, boolean first) {
        return turns.stream().filter(t -> (t.turn() == 0) == first && t.ttftNanos() >= 0).mapToDouble(t -> t.ttftNanos() / 1e6).toArray();
    }

    /** Nearest rank: the smallest value with at least {@code p} of the values at or below it; NaN for none. */
    static double percentile(double[] values, double p) {
        if (values.length == 0) {
            return Double.NaN;
        }
        double[] s = values.clone();
        Arrays.sort(s);
        int rank = (int) Math.ceil(p * s.length);
        return s[Math.max(0, rank - 1)];
    }


    /** Milliseconds rounded to 0.01, or null when there was nothing to measure. */
    private static void putMillis(ObjectNode out, String field, double ms) {
        if (Double.isNaN(ms)) {
            out.putNull(field);
        } else {
            out.put(field, hundredths(ms));
        }
    }

    private static String brief(String s) {
        String one = s.replaceAll("\\s+", " ").strip();
        return one.length() > 300 ? one.substring(0, 300) + "..." : one;
    }
}
