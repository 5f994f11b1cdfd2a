package io.kvstash.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/** {@code shift}: a long conversation keeps going by shifting the KV behind the sink chunk, even within one reply. */
class ContextPolicyShiftTest extends ContextPolicyTest {
    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry r) {
        properties(r, "shift");
    }

    @Test
    void shouldShiftTheKvAndKeepEveryMessageAndToken() {
        String id = createSession();
        int sent = 0;
        int tokens = number(view(id), "token_count");
        boolean pastInOneTurn = false;
        for (String q : QUESTIONS) {
            Map<String, Object> turn = say(id, q, 100).expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
            sent++;
            pastInOneTurn |= usage(turn, "prompt_tokens") + usage(turn, "completion_tokens") > CONTEXT;
        }
        assertTrue(pastInOneTurn, "some reply went on past the context length");
        Map<String, Object> view = view(id);
        List<Map<String, Object>> messages = messages(view);
        assertEquals(1 + 2 * sent, messages.size(), "every message survives");
        assertEquals(Map.of("role", "system", "content", SYSTEM), messages.get(0));
        assertEquals(0, number(view, "dropped_messages"));
        assertEquals(64, number(view, "sink_tokens"));
        int shifted = number(view, "shifted_tokens");
        assertTrue(shifted > 0 && shifted % 64 == 0, "shifted " + shifted);
        assertTrue(number(view, "token_count") > CONTEXT + tokens, "the record keeps every token: " + view);
        assertTrue(number(view, "kv_tokens") < CONTEXT, view.toString());
        assertEquals(number(view, "token_count") - shifted - 1, number(view, "kv_tokens"), "KV for all but the shifted and the last token");

        // Moved chunks have keys no tokens chain to: the import computes its KV again, and goes on shifting.
        Map<String, Object> copy = exportImportAndContinue(id);
        assertTrue(number(copy, "shifted_tokens") >= shifted, copy.toString());
        assertTrue(number(copy, "kv_tokens") <= CONTEXT, copy.toString());
    }
}
