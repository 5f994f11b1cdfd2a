package io.kvstash.api.problem;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvstash.engine.kv.ChunkUnavailableException;
import java.util.concurrent.CompletionException;
import org.junit.jupiter.api.Test;

class ProblemsTest {
    @Test
    void shouldNameTheChunkWhenAParkedChunkCannotBeReadBack() {
        ProblemException p = Problems.of(new CompletionException(new ChunkUnavailableException("parked chunk 0a1b is not in the warm tier")));
        assertEquals(Problem.GENERATION_FAILED, p.problem());
        assertTrue(p.getMessage().contains("parked chunk 0a1b is not in the warm tier") && p.getMessage().contains("session is unchanged"),
                p.getMessage());
    }
}
