package io.kvstash.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/** {@code reject}: a turn that would not fit the context is a 400 naming the limit, and the session stays as it was. */
class ContextPolicyRejectTest extends ContextPolicyTest {
    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry r) {
        properties(r, "reject");
    }

    @Test
    void shouldAnswer400NamingTheContextLengthAndLeaveTheSessionUnchanged() {
        String id = createSession();
        int turns = 0;
        Map<String, Object> problem = null;
        for (String q : QUESTIONS) {
            Map<String, Object> before = view(id);
            var result = say(id, q, 30).expectBody(JSON).returnResult();
            if (result.getStatus().value() == 400) {
                problem = result.getResponseBody();
                Map<String, Object> after = view(id);
                assertEquals(before.get("version"), after.get("version"), "a refused turn writes nothing");
                assertEquals(messages(before), messages(after));
                assertEquals(1 + 2 * turns, messages(after).size(), "every earlier message is still there");
                break;
            }
            assertEquals(200, result.getStatus().value(), String.valueOf(result.getResponseBody()));
            turns++;
        }
        assertTrue(turns >= 1, "the first turn fits");
        assertTrue(problem != null, "the conversation outgrew the context within " + QUESTIONS.size() + " turns");
        assertEquals("https://kvstash.io/problems/prompt-too-long", problem.get("type"));
        assertEquals("kvstash.engine.context-length", problem.get("limit"), String.valueOf(problem));
        assertTrue(((String) problem.get("detail")).contains("kvstash.engine.context-length = " + CONTEXT), String.valueOf(problem));
    }
}
