package io.kvstash.api;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;

/** The kvstash service: sessions and OpenAI-compatible chat over the engine and the KV tiers. */
@SpringBootApplication
@ConfigurationPropertiesScan
public class KvstashApplication {
    public static void main(String[] args) {
        SpringApplication.run(KvstashApplication.class, args);
    }
}
