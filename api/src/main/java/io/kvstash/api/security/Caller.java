package io.kvstash.api.security;

import org.springframework.web.server.ServerWebExchange;

/** Who is calling: the tenant its API key is bound to, and whether it may administer. */
public record Caller(String tenant, boolean admin) {
    /** Exchange attribute under which {@link ApiKeyFilter} puts the caller. */
    public static final String ATTRIBUTE = Caller.class.getName();

    public static Caller of(ServerWebExchange exchange) {
        Caller c = exchange.getAttribute(ATTRIBUTE);
        if (c == null) {
            throw new IllegalStateException("no caller: the request did not pass the API key filter");
        }
        return c;
    }
}
