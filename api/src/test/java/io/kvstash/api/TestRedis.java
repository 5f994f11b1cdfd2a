package io.kvstash.api;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * A real Redis for the api tests: {@code KVSTASH_TEST_REDIS} if set, else {@code /usr/bin/redis-server}
 * started on a free port (no persistence) and stopped by {@link #close()}; skipped with a message
 * when neither is there. (The offload module's tests have their own, fuller twin.)
 */
final class TestRedis implements AutoCloseable {
    final String url;
    private final Process process;

    private TestRedis(String url, Process process) {
        this.url = url;
        this.process = process;
    }

    static TestRedis start() throws IOException, InterruptedException {
        String external = System.getenv("KVSTASH_TEST_REDIS");
        if (external != null && !external.isBlank()) {
            return new TestRedis(external, null);
        }
        Path binary = Path.of("/usr/bin/redis-server");
        assumeTrue(Files.isExecutable(binary),
                "no /usr/bin/redis-server and KVSTASH_TEST_REDIS unset: skipping the replica tests (apt-get install redis-server)");
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        Process p = new ProcessBuilder(binary.toString(), "--port", Integer.toString(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no").redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        TestRedis r = new TestRedis("redis://127.0.0.1:" + port, p);
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (true) {
            try (Socket s = new Socket(InetAddress.getLoopbackAddress(), port)) {
                s.setSoTimeout(2000);
                s.getOutputStream().write("PING\r\n".getBytes(StandardCharsets.US_ASCII));
                byte[] reply = new byte[5];
                if (s.getInputStream().readNBytes(reply, 0, 5) == 5 && new String(reply, StandardCharsets.US_ASCII).equals("+PONG")) {
                    return r;
                }
            } catch (IOException notYet) {
                if (!p.isAlive() || System.nanoTime() > deadline) {
                    r.close();
                    throw new IOException("redis-server did not start on port " + port, notYet);
                }
                Thread.sleep(20);
            }
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
}
