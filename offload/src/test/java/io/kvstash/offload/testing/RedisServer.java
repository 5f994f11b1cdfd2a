package io.kvstash.offload.testing;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * A real {@code redis-server} for tests: the one named by {@code KVSTASH_TEST_REDIS}
 * ({@code redis://127.0.0.1:PORT}, flushed first), else a process of {@code /usr/bin/redis-server}
 * started on a free port without persistence and stopped by {@link #close()}. Tests are skipped,
 * with a message, when neither is there. Shared with the api module's tests through this module's test jar.
 */
public final class RedisServer implements AutoCloseable {
    public final String url;
    private final Process process;

    private RedisServer(String url, Process process) {
        this.url = url;
        this.process = process;
    }

    public static RedisServer start() throws IOException, InterruptedException {
        String external = System.getenv("KVSTASH_TEST_REDIS");
        if (external != null && !external.isBlank()) {
            RedisServer s = new RedisServer(external, null);
            s.command("FLUSHALL");
            return s;
        }
        return startOn(freePort());
    }

    /** A redis-server process on {@code port} (never the external one). */
    public static RedisServer startOn(int port) throws IOException, InterruptedException {
        Path binary = Path.of("/usr/bin/redis-server");
        assumeTrue(Files.isExecutable(binary),
                "no /usr/bin/redis-server and KVSTASH_TEST_REDIS unset: skipping the Redis tests (apt-get install redis-server)");
        Process p = new ProcessBuilder(binary.toString(), "--port", Integer.toString(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--protected-mode", "no")
                .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        RedisServer s = new RedisServer("redis://127.0.0.1:" + port, p);
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (true) {
            try {
                if (s.command("PING").contains("PONG")) {
                    return s;
                }
            } catch (IOException notYet) {
                if (!p.isAlive() || System.nanoTime() > deadline) {
                    s.close();
                    throw new IOException("redis-server did not start on port " + port, notYet);
                }
                Thread.sleep(20);
            }
        }
    }

    public static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    public int port() {
        return Integer.parseInt(url.substring(url.lastIndexOf(':') + 1).replaceAll("/.*", ""));
    }

    /** Sends one command in RESP and returns the first reply line (enough for PING, FLUSHALL, PTTL, SET). */
    public String command(String... args) throws IOException {
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port())) {
            socket.setSoTimeout(2000);
            StringBuilder req = new StringBuilder("*" + args.length + "\r\n");
            for (String a : args) {
                req.append('$').append(a.getBytes(StandardCharsets.UTF_8).length).append("\r\n").append(a).append("\r\n");
            }
            OutputStream out = socket.getOutputStream();
            out.write(req.toString().getBytes(StandardCharsets.UTF_8));
            out.flush();
            InputStream in = socket.getInputStream();
            StringBuilder line = new StringBuilder();
            int c;
            while ((c = in.read()) != -1 && c != '\n') {
                if (c != '\r') {
                    line.append((char) c);
                }
            }
            return line.toString();
        }
    }

    @Override
    public void close() {
        if (process != null) {
            process.destroy();
            try {
                process.waitFor();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** A server that accepts connections and never answers (a hung Redis). */
    public static final class Silent implements AutoCloseable {
        public final ServerSocket socket;
        private final Thread acceptor;
        private final List<Socket> accepted = new java.util.concurrent.CopyOnWriteArrayList<>();

        public Silent() throws IOException {
            socket = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
            acceptor = Thread.ofPlatform().daemon().start(() -> {
                while (!socket.isClosed()) {
                    try {
                        accepted.add(socket.accept());
                    } catch (IOException closed) {
                        return;
                    }
                }
            });
        }

        public String url() {
            return "redis://127.0.0.1:" + socket.getLocalPort();
        }

        public int connections() {
            return accepted.size();
        }

        @Override
        public void close() throws IOException {
            socket.close();
            for (Socket s : accepted) {
                s.close();
            }
            try {
                acceptor.join(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
