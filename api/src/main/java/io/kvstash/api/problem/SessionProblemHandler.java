package io.kvstash.api.problem;

import io.kvstash.api.session.SessionController;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.RestControllerAdvice;
import org.springframework.web.server.ServerWebExchange;

/** RFC 9457 problem details for every failure of the sessions and prefixes APIs, bad input included (never a 500 for it). */
@RestControllerAdvice(assignableTypes = {SessionController.class, io.kvstash.api.session.SessionTransferController.class,
        io.kvstash.api.prefix.PrefixController.class})
public class SessionProblemHandler {
    @ExceptionHandler(Throwable.class)
    ResponseEntity<Object> handle(Throwable error, ServerWebExchange exchange) {
        ProblemException e = Problems.of(error);
        ProblemLog.log(e, error);
        return ProblemBodies.response(e, ProblemBodies.problemDetail(e, exchange.getRequest().getPath().value()),
                MediaType.APPLICATION_PROBLEM_JSON);
    }
}
