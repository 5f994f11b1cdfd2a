package io.kvstash.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.core.http.StreamResponse;
import com.openai.helpers.ChatCompletionAccumulator;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionStreamOptions;
import com.openai.models.completions.CompletionUsage;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.MediaType;

/**
 * The OpenAI-compatible endpoints as the official OpenAI Java SDK sees them: it parses (and, with
 * response validation on, checks) our responses and stream chunks, and reaches kvstash's session
 * continuation through its escape hatches (an additional body property, an additional header).
 */
class OpenAiSdkTest extends ServerTest {
    static final ParameterizedTypeReference<Map<String, Object>> JSON = new ParameterizedTypeReference<>() {};
    static final String MODEL_ID = "stories15M-q8_0";
    /**
     * Longer than a 64-token chunk, and not {@link #STORY}: the test classes share one data
     * directory and tenant, and chunks are content-addressed, so reusing another class's prompt
     * would hand that class cached chunks it does not expect (and this one chunks it did not make).
     */
    static final String TALE = "Tom had a little red boat. Every morning he took it to the pond behind his house and watched it "
            + "sail across the water. One windy day the boat sailed too far and got stuck in the tall reeds. Tom could not "
            + "reach it. A friendly duck swam over, pushed the boat with its beak and brought it back to the shore. Tom "
            + "laughed, thanked the duck and shared his bread with it. From then on, the duck came to play every morning.";

    OpenAIClient openAi;

    @BeforeEach
    void sdk() {
        openAi = OpenAIOkHttpClient.builder()
                .baseUrl("http://localhost:" + port + "/v1")
                .apiKey(ACME)
                .responseValidation(true) // every field the SDK requires must be there, in the right type
                .maxRetries(0) // a failure is a failure, not a retry
                .timeout(Duration.ofMinutes(1))
                .build();
    }

    @AfterEach
    void closeSdk() {
        openAi.close();
    }

    static ChatCompletionCreateParams.Builder story(String question, long maxTokens) {
        return ChatCompletionCreateParams.builder().model(MODEL_ID).addSystemMessage(TALE).addUserMessage(question)
                .maxCompletionTokens(maxTokens).temperature(0.0);
    }

    static long cachedTokens(CompletionUsage usage) {
        return usage.promptTokensDetails().flatMap(CompletionUsage.PromptTokensDetails::cachedTokens).orElseThrow();
    }

    static String sessionIdOf(ChatCompletion c) {
        JsonValue v = c._additionalProperties().get("session_id");
        return v == null ? null : v.asStringOrThrow();
    }

    @Test
    void shouldAnswerAChatCompletionThatTheSdkParses() {
        ChatCompletion c = openAi.chat().completions().create(story("What did Tom do next?", 8).build());
        assertTrue(c.id().startsWith("chatcmpl-"), c.id());
        assertEquals(MODEL_ID, c.model());
        assertEquals(1, c.choices().size());
        ChatCompletion.Choice choice = c.choices().getFirst();
        assertEquals(ChatCompletion.Choice.FinishReason.LENGTH, choice.finishReason());
        assertFalse(choice.message().content().orElseThrow().isBlank(), c.toString());
        CompletionUsage usage = c.usage().orElseThrow();
        assertEquals(8, usage.completionTokens());
        assertTrue(usage.promptTokens() > 64, "the story is more than a chunk: " + usage);
        assertEquals(usage.promptTokens() + 8, usage.totalTokens());
    }

    @Test
    void shouldStreamDeltasThatConcatenateToTheGreedyReplyWithUsageLast() {
        int maxTokens = 12;
        ChatCompletionCreateParams streamed = story("Where did the duck go?", maxTokens)
                .streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build();
        List<ChatCompletionChunk> chunks = new ArrayList<>();
        ChatCompletionAccumulator accumulator = ChatCompletionAccumulator.create();
        try (StreamResponse<ChatCompletionChunk> stream = openAi.chat().completions().createStreaming(streamed)) {
            stream.stream().forEach(chunk -> chunks.add(accumulator.accumulate(chunk)));
        }
        assertTrue(chunks.size() >= 4, "a role chunk, deltas, a finish chunk and a usage chunk: " + chunks);
        StringBuilder deltas = new StringBuilder();
        int withContent = 0;
        for (ChatCompletionChunk c : chunks) {
            for (ChatCompletionChunk.Choice choice : c.choices()) {
                String piece = choice.delta().content().orElse("");
                if (!piece.isEmpty()) {
                    withContent++;
                }
                deltas.append(piece);
            }
        }
        assertTrue(withContent >= 2, "the reply arrives in pieces, not at once: " + chunks);
        ChatCompletionChunk last = chunks.getLast();
        assertTrue(last.choices().isEmpty(), "the usage chunk has no choices: " + last);
        CompletionUsage usage = last.usage().orElseThrow(() -> new AssertionError("include_usage gave no usage: " + last));
        assertEquals(maxTokens, usage.completionTokens());
        assertTrue(chunks.subList(0, chunks.size() - 1).stream().allMatch(c -> c.usage().isEmpty()), "usage only in the last chunk");
        assertEquals(ChatCompletionChunk.Choice.FinishReason.LENGTH,
                chunks.get(chunks.size() - 2).choices().getFirst().finishReason().orElseThrow());

        ChatCompletion whole = openAi.chat().completions().create(story("Where did the duck go?", maxTokens).build());
        String expected = whole.choices().getFirst().message().content().orElseThrow();
        assertEquals(expected, deltas.toString(), "greedy: the same text streamed or not");
        assertEquals(expected, accumulator.chatCompletion().choices().getFirst().message().content().orElseThrow(),
                "the SDK's own accumulator rebuilds the same reply");
        assertEquals(usage.promptTokens(), whole.usage().orElseThrow().promptTokens());
    }

    @Test
    void shouldContinueASessionNamedInABodyPropertyThenInAHeader() {
        Map<String, Object> created = post("/v1/sessions", ACME).contentType(MediaType.APPLICATION_JSON)
                .bodyValue(Map.of("system_prompt", TALE, "defaults", Map.of("temperature", 0)))
                .exchange().expectStatus().isCreated().expectBody(JSON).returnResult().getResponseBody();
        String id = (String) created.get("id");

        // Turn 1: only the new message, the session named by kvstash's body field.
        ChatCompletion first = openAi.chat().completions().create(ChatCompletionCreateParams.builder().model(MODEL_ID)
                .addUserMessage("What did Tom find?").maxCompletionTokens(10)
                .putAdditionalBodyProperty("session_id", JsonValue.from(id)).build());
        assertEquals(id, sessionIdOf(first));
        String reply = first.choices().getFirst().message().content().orElseThrow();
        CompletionUsage u1 = first.usage().orElseThrow();
        assertEquals(10, u1.completionTokens());

        // Turn 2: the whole conversation, as an OpenAI client keeps it; the server skips the part it stored.
        ChatCompletion second = openAi.chat().completions().create(ChatCompletionCreateParams.builder().model(MODEL_ID)
                .addSystemMessage(TALE).addUserMessage("What did Tom find?").addAssistantMessage(reply)
                .addUserMessage("And then?").maxCompletionTokens(5)
                .putAdditionalHeader("X-Session-Id", id).build());
        assertEquals(id, sessionIdOf(second));
        CompletionUsage u2 = second.usage().orElseThrow();
        long before = u1.promptTokens() + u1.completionTokens();
        assertTrue(u2.promptTokens() > before, "the second prompt is the first turn and the new message: " + u2);
        long cached = cachedTokens(u2);
        assertTrue(cached > 0, "the second turn reuses the session's KV: " + u2);
        // Every position of the first turn but the last sampled token (never fed) was in the tiers.
        assertEquals(before - 1, cached, "cached tokens: " + u2);

        Map<String, Object> session = get("/v1/sessions/" + id, ACME).exchange().expectStatus().isOk().expectBody(JSON).returnResult()
                .getResponseBody();
        List<?> messages = (List<?>) session.get("messages");
        assertEquals(5, messages.size(), "system, then two user/assistant pairs, the repeated part not stored twice: " + messages);
        assertEquals(reply, ((Map<?, ?>) messages.get(2)).get("content"));
        assertEquals(second.choices().getFirst().message().content().orElseThrow(), ((Map<?, ?>) messages.get(4)).get("content"));
    }
}
