package io.kvstash.api.admin;

import io.kvstash.api.ServingStack;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.stereotype.Component;

/** Ready when the model is loaded and the warm store is open (health contributor {@code kvstash}, in the readiness group). */
@Component("kvstash")
public class KvstashHealthIndicator implements HealthIndicator {
    private final ServingStack stack;

    public KvstashHealthIndicator(ServingStack stack) {
        this.stack = stack;
    }

    @Override
    public Health health() {
        boolean open = stack.isOpen() && !stack.warm().isClosed();
        Health.Builder b = open ? Health.up() : Health.down();
        return b.withDetail("model", stack.engine().config().toString().length() > 0 ? "loaded" : "missing")
                .withDetail("kvFormat", stack.hotTier().geometry().format().name())
                .withDetail("store", stack.warm().isClosed() ? "closed" : "open")
                .withDetail("dataDir", stack.warm().path().toString())
                .build();
    }
}
