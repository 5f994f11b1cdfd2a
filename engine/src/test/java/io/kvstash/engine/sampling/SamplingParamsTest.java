package io.kvstash.engine.sampling;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class SamplingParamsTest {

    private static final SamplingParams VALID = SamplingParams.defaults(7L);

    static Stream<Arguments> invalidValues() {
        return Stream.of(
                Arguments.of("temperature", "-0.1", (Executable) () -> VALID.withTemperature(-0.1f)),
                Arguments.of("temperature", "NaN", (Executable) () -> VALID.withTemperature(Float.NaN)),
                Arguments.of("temperature", "Infinity", (Executable) () -> VALID.withTemperature(Float.POSITIVE_INFINITY)),
                Arguments.of("topK", "-1", (Executable) () -> VALID.withTopK(-1)),
                Arguments.of("topP", "0.0", (Executable) () -> VALID.withTopP(0f)),
                Arguments.of("topP", "1.01", (Executable) () -> VALID.withTopP(1.01f)),
                Arguments.of("topP", "NaN", (Executable) () -> VALID.withTopP(Float.NaN)),
                Arguments.of("minP", "-0.01", (Executable) () -> VALID.withMinP(-0.01f)),
                Arguments.of("minP", "1.0", (Executable) () -> VALID.withMinP(1f)),
                Arguments.of("minP", "NaN", (Executable) () -> VALID.withMinP(Float.NaN)),
                Arguments.of("repetitionPenalty", "0.0", (Executable) () -> VALID.withRepetitionPenalty(0f)),
                Arguments.of("repetitionPenalty", "-1.1", (Executable) () -> VALID.withRepetitionPenalty(-1.1f)),
                Arguments.of("repetitionPenalty", "NaN", (Executable) () -> VALID.withRepetitionPenalty(Float.NaN)),
                Arguments.of("repetitionPenalty", "Infinity",
                        (Executable) () -> VALID.withRepetitionPenalty(Float.POSITIVE_INFINITY)),
                Arguments.of("repetitionWindow", "-1", (Executable) () -> VALID.withRepetitionWindow(-1)));
    }

    @ParameterizedTest(name = "{0} = {1}")
    @MethodSource("invalidValues")
    void shouldRejectParamsWhenValueIsOutOfRange(String parameter, String value, Executable construction) {
        IllegalArgumentException rejection = assertThrows(IllegalArgumentException.class, construction);

        assertTrue(rejection.getMessage().startsWith(parameter + " must be"),
                () -> "message should name " + parameter + ": " + rejection.getMessage());
        assertTrue(rejection.getMessage().endsWith("was " + value),
                () -> "message should quote the value " + value + ": " + rejection.getMessage());
    }

    @Test
    void shouldAcceptParamsWhenValuesSitOnTheInclusiveBounds() {
        assertDoesNotThrow(() -> new SamplingParams(0f, 0, 1f, 0f, Float.MIN_VALUE, 0, Long.MIN_VALUE));
    }

    @Test
    void shouldUseLlamaCppValuesWhenDefaultsAreAskedFor() {
        assertEquals(new SamplingParams(0.8f, 40, 0.95f, 0.05f, 1f, 64, 123L), SamplingParams.defaults(123L));
        assertFalse(SamplingParams.defaults(123L).isGreedy());
    }

    @Test
    void shouldSwitchEveryFilterOffWhenGreedy() {
        SamplingParams greedy = SamplingParams.greedy();

        assertTrue(greedy.isGreedy());
        assertEquals(0f, greedy.temperature());
        assertEquals(0, greedy.topK());
        assertEquals(1f, greedy.topP());
        assertEquals(0f, greedy.minP());
        assertEquals(1f, greedy.repetitionPenalty());
    }

    @Test
    void shouldChangeOnlyThatFieldWhenCopiedWithAValue() {
        SamplingParams base = new SamplingParams(0.7f, 20, 0.9f, 0.1f, 1.1f, 32, 5L);

        assertEquals(new SamplingParams(1.3f, 20, 0.9f, 0.1f, 1.1f, 32, 5L), base.withTemperature(1.3f));
        assertEquals(new SamplingParams(0.7f, 3, 0.9f, 0.1f, 1.1f, 32, 5L), base.withTopK(3));
        assertEquals(new SamplingParams(0.7f, 20, 0.5f, 0.1f, 1.1f, 32, 5L), base.withTopP(0.5f));
        assertEquals(new SamplingParams(0.7f, 20, 0.9f, 0.2f, 1.1f, 32, 5L), base.withMinP(0.2f));
        assertEquals(new SamplingParams(0.7f, 20, 0.9f, 0.1f, 1.5f, 32, 5L), base.withRepetitionPenalty(1.5f));
        assertEquals(new SamplingParams(0.7f, 20, 0.9f, 0.1f, 1.1f, 8, 5L), base.withRepetitionWindow(8));
        assertEquals(new SamplingParams(0.7f, 20, 0.9f, 0.1f, 1.1f, 32, 9L), base.withSeed(9L));
    }
}
