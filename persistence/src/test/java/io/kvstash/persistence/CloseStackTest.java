package io.kvstash.persistence;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Unwinding order and failure handling of {@link CloseStack}. */
class CloseStackTest {
    @Test
    void shouldCloseNewestFirstWhenClosed() throws Exception {
        List<String> closed = new ArrayList<>();
        CloseStack stack = new CloseStack();
        stack.pushCloser(() -> { closed.add("cache"); });
        stack.pushCloser(() -> { closed.add("options"); });
        stack.pushCloser(() -> { closed.add("db"); });
        stack.pushCloser(() -> { closed.add("handle"); });
        stack.close();
        assertEquals(List.of("handle", "db", "options", "cache"), closed);
        stack.close();
        assertEquals(4, closed.size(), "a second close closes nothing again");
    }

    @Test
    void shouldCloseTheRestAndReportAllFailuresWhenSomeCloseFails() {
        List<String> closed = new ArrayList<>();
        CloseStack stack = new CloseStack();
        stack.pushCloser(() -> { closed.add("first"); });
        stack.pushCloser(() -> {
            throw new IllegalStateException("second failed");
        });
        stack.pushCloser(() -> {
            throw new IllegalStateException("third failed");
        });
        IllegalStateException thrown = assertThrows(IllegalStateException.class, stack::close);
        assertEquals("third failed", thrown.getMessage());
        assertEquals("second failed", thrown.getSuppressed()[0].getMessage());
        assertEquals(List.of("first"), closed);
    }

    @Test
    void shouldKeepOriginalFailureWhenUnwindingAfterIt() {
        CloseStack stack = new CloseStack();
        stack.pushCloser(() -> {
            throw new IllegalStateException("close failed");
        });
        RuntimeException failure = new RuntimeException("open failed");
        stack.closeAfter(failure);
        assertSame(IllegalStateException.class, failure.getSuppressed()[0].getClass());
    }
}
