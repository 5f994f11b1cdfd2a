package io.kvstash.api.chat;

/**
 * How a turn ended.
 *
 * @param sessionId        the session, or null for a one-off completion
 * @param text             the reply as the client saw it (cut before a stop sequence)
 * @param finishReason     {@code stop} (end of generation or a stop sequence), {@code length} (max tokens or the
 *                         context length), {@code cancelled} (the client went away)
 * @param promptTokens     tokens of the turn's prompt (the whole conversation before the reply)
 * @param completionTokens tokens generated
 * @param cachedTokens     prompt tokens whose KV came from a tier (hot, warm, remote, or the session's stored tail) instead of being computed
 * @param hotChunks        chunks resumed from the hot tier
 * @param warmChunks       chunks resumed from the warm tier
 * @param remoteChunks     chunks resumed from the shared remote tier (Redis)
 */
public record TurnOutcome(String sessionId, String text, String finishReason, int promptTokens, int completionTokens,
                          int cachedTokens, int hotChunks, int warmChunks, int remoteChunks) {}
