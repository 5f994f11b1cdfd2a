package io.kvstash.engine.scheduler;

/**
 * What a scheduled generation produced.
 *
 * @param promptTokens length of the prompt
 * @param tokens       the generated token ids (prompt excluded, end-of-generation token excluded)
 * @param text         their decoded text, including what the decoder flushed at the end
 * @param reason       why it ended
 * @param error        the cause when {@code reason} is {@link StopReason#ERROR}, else null
 * @param kvBytes      bytes of KV the sequence held just before its cache was closed
 * @param kvPositions  positions its cache held then
 */
public record GenerationResult(int promptTokens, int[] tokens, String text, StopReason reason, Throwable error,
                               long kvBytes, int kvPositions) {
}
