package io.kvstash.api.admin;

import io.kvstash.api.config.EngineProperties;
import io.kvstash.engine.InferenceEngine;
import java.util.LinkedHashMap;
import java.util.Map;
import org.springframework.boot.actuate.info.Info;
import org.springframework.boot.actuate.info.InfoContributor;
import org.springframework.stereotype.Component;

/** {@code /actuator/info}: version, model and KV format. */
@Component
public class KvstashInfo implements InfoContributor {
    private final InferenceEngine engine;
    private final EngineProperties properties;

    public KvstashInfo(InferenceEngine engine, EngineProperties properties) {
        this.engine = engine;
        this.properties = properties;
    }

    @Override
    public void contribute(Info.Builder builder) {
        Map<String, Object> m = new LinkedHashMap<>();
        String version = KvstashInfo.class.getPackage().getImplementationVersion();
        m.put("version", version != null ? version : "development");
        m.put("model", properties.modelId());
        m.put("modelFile", properties.model().toString());
        m.put("contextLength", engine.contextLength());
        m.put("kvFormat", engine.options().kvFormat().name());
        m.put("chunkTokens", engine.options().chunkTokens());
        m.put("threads", engine.options().threads());
        builder.withDetail("kvstash", m);
    }
}
