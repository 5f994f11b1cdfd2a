package io.kvstash.api.demo;

import org.springframework.boot.diagnostics.AbstractFailureAnalyzer;
import org.springframework.boot.diagnostics.FailureAnalysis;

/** A failed demo-model fetch ends start-up with its message and what to do, not with a stack trace of bean creation. */
public final class DemoModelFailureAnalyzer extends AbstractFailureAnalyzer<DemoModelException> {
    @Override
    protected FailureAnalysis analyze(Throwable rootFailure, DemoModelException cause) {
        return new FailureAnalysis(cause.getMessage(),
                "Point kvstash.engine.model at a GGUF file (./kvstash serve --model FILE, --kvstash.engine.model=FILE or"
                        + " KVSTASH_ENGINE_MODEL=FILE), or make npm available so the demo model can be fetched.", cause);
    }
}
