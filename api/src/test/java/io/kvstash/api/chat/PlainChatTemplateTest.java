package io.kvstash.api.chat;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.kvstash.offload.SessionRecord.Message;
import java.util.List;
import org.junit.jupiter.api.Test;

class PlainChatTemplateTest {
    @Test
    void shouldRenderAConversationAsTheSumOfItsContinuations() {
        Message sys = new Message("system", "Be brief.");
        Message u1 = new Message("user", "Hi");
        Message a1 = new Message("assistant", " Hello!");
        Message u2 = new Message("user", "Bye");
        assertEquals("System: Be brief.\n\nUser: Hi\n\nAssistant: Hello!\n\nUser: Bye\n\nAssistant:",
                PlainChatTemplate.prompt(List.of(sys, u1, new Message("assistant", "Hello!"), u2)));
        // A session: the system prompt, then a turn, then the reply as generated (after the cue), then a turn.
        String opening = PlainChatTemplate.continuation(0, List.of(sys), false);
        String turn1 = PlainChatTemplate.continuation(1, List.of(u1), true);
        String turn2 = PlainChatTemplate.continuation(3, List.of(u2), true);
        assertEquals(PlainChatTemplate.prompt(List.of(sys, u1, new Message("assistant", "Hello!"), u2)),
                opening + turn1 + a1.content() + turn2);
        assertEquals("User: Hi\n\nAssistant:", PlainChatTemplate.continuation(0, List.of(u1), true));
    }
}
