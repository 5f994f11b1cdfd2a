package io.kvstash.api.openai;

import io.kvstash.api.problem.ProblemBodies;
import io.kvstash.api.problem.ProblemException;
import io.kvstash.api.problem.Problems;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.RestControllerAdvice;

/** OpenAI's {@code {"error": {"message", "type", "param", "code"}}} envelope on the OpenAI-compatible endpoints. */
@RestControllerAdvice(assignableTypes = {ChatCompletionsController.class, ModelsController.class})
public class OpenAiErrorHandler {
    private static final System.Logger LOG = System.getLogger(OpenAiErrorHandler.class.getName());

    @ExceptionHandler(Throwable.class)
    ResponseEntity<Object> handle(Throwable error) {
        ProblemException e = Problems.of(error);
        if (e.problem().status.is5xxServerError()) {
            LOG.log(System.Logger.Level.ERROR, e.getMessage(), error);
        }
        return ProblemBodies.response(e, ProblemBodies.openAiError(e), MediaType.APPLICATION_JSON);
    }
}
