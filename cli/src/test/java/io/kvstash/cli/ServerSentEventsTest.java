package io.kvstash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The event-stream format as the HTML standard interprets it, on the cases a hand-written reader gets wrong. */
class ServerSentEventsTest {
    static List<ServerSentEvents.Event> read(String stream) throws IOException {
        List<ServerSentEvents.Event> out = new ArrayList<>();
        try (ServerSentEvents events = new ServerSentEvents(new ByteArrayInputStream(stream.getBytes(StandardCharsets.UTF_8)))) {
            for (ServerSentEvents.Event e; (e = events.next()) != null; ) {
                out.add(e);
            }
        }
        return out;
    }

    static ServerSentEvents.Event event(String type, String data) {
        return new ServerSentEvents.Event(type, data);
    }

    @Test
    void shouldReadTypedEventsAndDefaultTheTypeToMessage() throws IOException {
        assertEquals(List.of(event("delta", "{\"content\":\"Once\"}"), event("message", "[DONE]")),
                read("event:delta\ndata:{\"content\":\"Once\"}\n\ndata: [DONE]\n\n"));
    }

    @Test
    void shouldAcceptCrLfAndLoneCrLineEnds() throws IOException {
        assertEquals(List.of(event("a", "1"), event("b", "2"), event("c", "3")),
                read("event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\revent: c\ndata: 3\n\n"));
    }

    @Test
    void shouldJoinDataLinesWithLineFeedsAndStripOnlyOneSpace() throws IOException {
        assertEquals(List.of(event("message", "first\n  second\nthird:with colon")),
                read("data: first\ndata:   second\ndata: third:with colon\n\n"));
    }

    @Test
    void shouldIgnoreCommentsIdsRetriesAndUnknownFields() throws IOException {
        assertEquals(List.of(event("delta", "x")), read(": keep-alive\nid: 7\nretry: 100\nfoo: bar\nevent: delta\ndata: x\n\n"));
    }

    @Test
    void shouldDispatchAnEmptyDataFieldButNotAnEventWithoutData() throws IOException {
        assertEquals(List.of(event("message", ""), event("message", "after")),
                read("event: lonely\n\ndata\n\ndata: after\n\n"), "the first event has no data: not dispatched, and its type is forgotten");
    }

    @Test
    void shouldDropAnEventCutOffByTheEndOfTheStream() throws IOException {
        assertEquals(List.of(event("delta", "whole")), read("event: delta\ndata: whole\n\nevent: done\ndata: {\"cut\":"));
        assertNull(new ServerSentEvents(new ByteArrayInputStream(new byte[0])).next());
    }

    @Test
    void shouldSkipAByteOrderMarkAndKeepMultiByteText() throws IOException {
        assertEquals(List.of(event("delta", "Lily sagte: „Schön“ 🐶")), read("\uFEFFevent: delta\ndata: Lily sagte: „Schön“ 🐶\n\n"));
    }
}
