package io.kvstash.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/** {@code truncate}: a long conversation keeps going by dropping its oldest turns from the tokens, never from the record. */
class ContextPolicyTruncateTest extends ContextPolicyTest {
    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry r) {
        properties(r, "truncate");
    }

    @Test
    void shouldDropTheOldestTurnsButKeepTheSystemPromptAndEveryMessage() {
        String id = createSession();
        int sent = 0;
        for (String q : QUESTIONS) {
            Map<String, Object> turn = say(id, q, 30).expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
            sent++;
            assertTrue(usage(turn, "prompt_tokens") + usage(turn, "completion_tokens") <= CONTEXT, String.valueOf(turn));
        }
        Map<String, Object> view = view(id);
        List<Map<String, Object>> messages = messages(view);
        assertEquals(1 + 2 * sent, messages.size(), "every message survives");
        assertEquals(Map.of("role", "system", "content", SYSTEM), messages.get(0));
        for (int i = 0; i < sent; i++) {
            assertEquals(QUESTIONS.get(i), messages.get(1 + 2 * i).get("content"));
            assertEquals("assistant", messages.get(2 + 2 * i).get("role"));
        }
        int dropped = number(view, "dropped_messages");
        assertTrue(dropped >= 2 && dropped % 2 == 0, "whole turns dropped: " + dropped);
        assertTrue(number(view, "token_count") <= CONTEXT, "the tokens are the kept conversation: " + view);
        assertEquals(0, number(view, "shifted_tokens"));
        Map<String, Object> copy = exportImportAndContinue(id);
        assertTrue(number(copy, "dropped_messages") >= dropped, "the import keeps what was dropped: " + copy);

        // The new message alone past the context: nothing left to drop, so a 400 naming the limit.
        String huge = String.join(" ", java.util.Collections.nCopies(40, "The cat sat on the mat."));
        Map<String, Object> problem = say(id, huge, 10).expectStatus().isBadRequest().expectBody(JSON).returnResult().getResponseBody();
        assertEquals("kvstash.engine.context-length", problem.get("limit"), String.valueOf(problem));
        assertEquals(messages, messages(view(id)), "the refused turn changed nothing");
    }
}
