package io.kvstash.api.security;

import io.kvstash.api.config.LimitsProperties;
import io.kvstash.api.config.SecurityProperties;
import io.kvstash.api.problem.Problem;
import io.kvstash.api.problem.ProblemBodies;
import io.kvstash.api.problem.ProblemException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;
import org.springframework.core.Ordered;
import org.springframework.core.annotation.Order;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpMethod;
import org.springframework.http.MediaType;
import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.stereotype.Component;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Mono;
import tools.jackson.databind.json.JsonMapper;

/**
 * API keys: {@code Authorization: Bearer KEY} on {@code /v1/**} and the actuator, each key bound to
 * a tenant ({@link Caller}). Health, info and the OpenAPI description stay open (probes, docs);
 * actuator write operations need an admin key. With no keys configured every caller is the admin
 * of tenant {@code default}. Also refuses a declared body larger than {@code kvstash.limits.max-body-size}
 * before reading it (a body without a length is cut at the same size by the codecs).
 */
@Component
@Order(Ordered.HIGHEST_PRECEDENCE + 10)
public class ApiKeyFilter implements WebFilter {
    public static final String OPEN_TENANT = "default";
    private static final System.Logger LOG = System.getLogger(ApiKeyFilter.class.getName());

    /** By SHA-256 of the key: the lookup does not compare key bytes one at a time. */
    private final Map<String, Caller> callers = new HashMap<>();
    private final long maxBodyBytes;
    private final JsonMapper json;

    public ApiKeyFilter(SecurityProperties security, LimitsProperties limits, JsonMapper json) {
        for (SecurityProperties.ApiKey k : security.apiKeys()) {
            callers.put(digest(k.key()), new Caller(k.tenant(), k.admin()));
        }
        this.maxBodyBytes = limits.maxBodySize().toBytes();
        this.json = json;
        if (callers.isEmpty()) {
            LOG.log(System.Logger.Level.WARNING, "no API keys configured (kvstash.security.api-keys): the service is open, "
                    + "every caller is tenant '" + OPEN_TENANT + "' with admin rights");
        }
    }

    @Override
    public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
        String path = exchange.getRequest().getPath().pathWithinApplication().value();
        boolean api = path.startsWith("/v1/") || path.equals("/v1");
        boolean actuator = path.startsWith("/actuator");
        boolean open = path.startsWith("/actuator/health") || path.equals("/actuator/info");
        if ((!api && !actuator) || open) {
            return chain.filter(exchange);
        }
        long length = exchange.getRequest().getHeaders().getContentLength();
        if (length > maxBodyBytes) {
            return reject(exchange, ProblemException.limit(Problem.BODY_TOO_LARGE, "kvstash.limits.max-body-size", null,
                    "request body of " + length + " bytes exceeds kvstash.limits.max-body-size = " + maxBodyBytes + " bytes"));
        }
        Caller caller = authenticate(exchange.getRequest().getHeaders().getFirst(HttpHeaders.AUTHORIZATION));
        if (caller == null) {
            return reject(exchange, new ProblemException(Problem.UNAUTHORIZED,
                    "missing or unknown API key: send 'Authorization: Bearer <key>'", null, null));
        }
        HttpMethod method = exchange.getRequest().getMethod();
        if (actuator && method != HttpMethod.GET && method != HttpMethod.HEAD && !caller.admin()) {
            return reject(exchange, new ProblemException(Problem.FORBIDDEN, "actuator write operations need an admin API key", null, null));
        }
        exchange.getAttributes().put(Caller.ATTRIBUTE, caller);
        return chain.filter(exchange);
    }

    private Caller authenticate(String header) {
        if (callers.isEmpty()) {
            return new Caller(OPEN_TENANT, true);
        }
        if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) {
            return null;
        }
        return callers.get(digest(header.substring(7).trim()));
    }

    private Mono<Void> reject(ServerWebExchange exchange, ProblemException e) {
        String path = exchange.getRequest().getPath().value();
        boolean openAi = path.startsWith("/v1/") && !path.startsWith("/v1/sessions");
        Object body = openAi ? ProblemBodies.openAiError(e) : ProblemBodies.problemMap(e, path);
        ServerHttpResponse response = exchange.getResponse();
        response.setStatusCode(e.problem().status);
        response.getHeaders().setContentType(openAi ? MediaType.APPLICATION_JSON : MediaType.APPLICATION_PROBLEM_JSON);
        ProblemBodies.headers(e).forEach((k, v) -> response.getHeaders().set(k, v));
        byte[] bytes = json.writeValueAsBytes(body);
        return response.writeWith(Mono.just(response.bufferFactory().wrap(bytes)));
    }

    private static String digest(String key) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(key.getBytes(StandardCharsets.UTF_8)));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
