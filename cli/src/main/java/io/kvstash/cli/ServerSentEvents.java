package io.kvstash.cli;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

/**
 * A reader of a {@code text/event-stream} body as the HTML standard's event-stream interpretation
 * describes it: lines end with CR LF, LF or CR; a line starting with a colon is a comment;
 * {@code field: value} loses one space after the colon; {@code data} lines of one event are joined
 * with LF; an empty line dispatches the event (an event with no data is not dispatched); the
 * event type defaults to {@code message}; an event cut off by the end of the stream is dropped.
 * {@code id} and {@code retry} are read and ignored: a benchmark never reconnects.
 */
final class ServerSentEvents implements AutoCloseable {
    /** One dispatched event. */
    record Event(String type, String data) {}

    private final BufferedReader lines;
    private boolean started;

    ServerSentEvents(InputStream body) {
        // BufferedReader.readLine ends a line at LF, CR or CR LF: the three line ends the format allows.
        this.lines = new BufferedReader(new InputStreamReader(body, StandardCharsets.UTF_8));
    }

    /** The next event, or null at the end of the stream. Blocks until a whole event has arrived. */
    Event next() throws IOException {
        String type = null;
        StringBuilder data = null;
        for (String line; (line = lines.readLine()) != null; ) {
            if (!started) {
                started = true;
                if (!line.isEmpty() && line.charAt(0) == '\uFEFF') {
                    line = line.substring(1); // a byte-order mark may open the stream
                }
            }
            if (line.isEmpty()) {
                if (data != null) {
                    return new Event(type == null || type.isEmpty() ? "message" : type, data.toString());
                }
                type = null;
                continue;
            }
            if (line.charAt(0) == ':') {
                continue;
            }
            int colon = line.indexOf(':');
            String field = colon < 0 ? line : line.substring(0, colon);
            String value = colon < 0 ? "" : line.substring(colon + 1 < line.length() && line.charAt(colon + 1) == ' ' ? colon + 2 : colon + 1);
            switch (field) {
                case "event" -> type = value;
                case "data" -> {
                    if (data == null) {
                        data = new StringBuilder(value);
                    } else {
                        data.append('\n').append(value);
                    }
                }
                default -> {
                    // id, retry and unknown fields: nothing a benchmark needs
                }
            }
        }
        return null;
    }

    @Override
    public void close() throws IOException {
        lines.close();
    }
}
