package io.kvstash.api.chat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class StopMatcherTest {
    @Test
    void shouldReleaseTextUpToAStopSequenceSplitAcrossPieces() {
        StopMatcher m = new StopMatcher(List.of("END"));
        assertEquals("Hello ", m.accept("Hello E"));
        assertEquals("", m.accept("N"), "EN could still become END: held back");
        assertEquals("", m.accept("D and more"));
        assertTrue(m.stopped());
        assertEquals("", m.flush());
        assertEquals("Hello ", m.text());
    }

    @Test
    void shouldReleaseHeldBackTextWhenItTurnsOutNotToStop() {
        StopMatcher m = new StopMatcher(List.of("END", "\n\nUser:"));
        assertEquals("a", m.accept("aE"));
        assertEquals("EX", m.accept("X"));
        assertEquals("b", m.accept("b\n"));
        assertEquals("\nc", m.accept("c"));
        assertEquals("", m.accept("\n\nUs"));
        assertEquals("\n\nUs", m.flush());
        assertFalse(m.stopped());
        assertEquals("aEXb\nc\n\nUs", m.text());
    }

    @Test
    void shouldPassEverythingWithoutStops() {
        StopMatcher m = new StopMatcher(List.of());
        assertEquals("abc", m.accept("abc"));
        assertEquals("", m.flush());
    }
}
