package io.kvstash.deploy;

import static io.kvstash.deploy.RenderedChart.named;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The chart in helm/kvstash, linted and rendered with helm's own code (helm-java bundles it): the
 * objects a default install and a customised one create, and the values that must be refused.
 */
class HelmChartTest {
    private static final Path CHART = Path.of(System.getProperty("kvstash.repo.root", ".."), "helm", "kvstash").toAbsolutePath().normalize();

    @TempDir
    Path tmp;

    @Test
    void shouldPassStrictLint() {
        LintResult lint = new Helm(CHART).lint().strict().call();
        assertFalse(lint.isFailed(), () -> "helm lint --strict: " + lint.getMessages());
    }

    @Test
    void shouldRenderAStatefulSetWithProbesVolumesAndMemoryFromTheDefaults() throws IOException {
        RenderedChart chart = render(null);

        JsonNode sts = chart.get("StatefulSet", "kv-kvstash");
        assertEquals("kv-kvstash-headless", sts.at("/spec/serviceName").asText());
        assertEquals(1, sts.at("/spec/replicas").asInt());
        JsonNode pod = sts.at("/spec/template/spec");
        assertEquals(45, pod.path("terminationGracePeriodSeconds").asInt());
        assertTrue(pod.path("initContainers").isMissingNode(), "no download without model.url");
        JsonNode c = named(pod.path("containers"), "kvstash");
        assertEquals("kvstash:0.1.0", c.path("image").asText());

        // Probes on the actuator's health groups.
        assertEquals("/actuator/health/liveness", c.at("/livenessProbe/httpGet/path").asText());
        assertEquals("/actuator/health/readiness", c.at("/readinessProbe/httpGet/path").asText());
        assertEquals("/actuator/health/liveness", c.at("/startupProbe/httpGet/path").asText());
        assertEquals("http", c.at("/readinessProbe/httpGet/port").asText());
        assertEquals(8080, named(c.path("ports"), "http").path("containerPort").asInt());

        // Memory: heap 512 + hot tier 512 + direct 128 + RocksDB 256 + overhead 384 MiB.
        assertEquals("1792Mi", c.at("/resources/limits/memory").asText());
        assertEquals("1792Mi", c.at("/resources/requests/memory").asText());
        assertEquals("1", c.at("/resources/requests/cpu").asText());
        assertTrue(c.at("/resources/limits/cpu").isMissingNode());
        JsonNode env = c.path("env");
        assertEquals("-Xmx512m -XX:MaxDirectMemorySize=640m", named(env, "JDK_JAVA_OPTIONS").path("value").asText());
        assertEquals("512MB", named(env, "KVSTASH_KV_HOTCAPACITY").path("value").asText());

        // The model from the default claim, read-only; the warm tier on the replica's own claim.
        assertEquals("/models/model.gguf", named(env, "KVSTASH_ENGINE_MODEL").path("value").asText());
        assertEquals("false", named(env, "KVSTASH_ENGINE_DEMOMODEL").path("value").asText());
        assertEquals("/var/lib/kvstash/data", named(env, "KVSTASH_STORE_DATADIR").path("value").asText());
        assertEquals("optional:file:/etc/kvstash/application.yml", named(env, "SPRING_CONFIG_ADDITIONALLOCATION").path("value").asText());
        assertTrue(named(env, "KVSTASH_REMOTE_REDIS_URL").isMissingNode());
        assertTrue(c.path("envFrom").isMissingNode(), "no API-key secret by default");
        JsonNode modelMount = named(c.path("volumeMounts"), "model");
        assertEquals("/models", modelMount.path("mountPath").asText());
        assertTrue(modelMount.path("readOnly").asBoolean());
        assertEquals("kvstash-model", named(pod.path("volumes"), "model").at("/persistentVolumeClaim/claimName").asText());
        assertEquals("/var/lib/kvstash", named(c.path("volumeMounts"), "data").path("mountPath").asText());
        assertEquals("/tmp", named(c.path("volumeMounts"), "tmp").path("mountPath").asText());
        assertEquals("256Mi", named(pod.path("volumes"), "tmp").at("/emptyDir/sizeLimit").asText());
        JsonNode claim = sts.at("/spec/volumeClaimTemplates/0");
        assertEquals("data", claim.at("/metadata/name").asText());
        assertEquals("10Gi", claim.at("/spec/resources/requests/storage").asText());
        assertEquals("ReadWriteOnce", claim.at("/spec/accessModes/0").asText());

        // Non-root, read-only root filesystem.
        assertTrue(pod.at("/securityContext/runAsNonRoot").asBoolean());
        assertEquals(10001, pod.at("/securityContext/runAsUser").asInt());
        assertEquals(10001, pod.at("/securityContext/fsGroup").asInt());
        assertTrue(c.at("/securityContext/readOnlyRootFilesystem").asBoolean());
        assertFalse(c.at("/securityContext/allowPrivilegeEscalation").asBoolean(true));
        assertEquals("ALL", c.at("/securityContext/capabilities/drop/0").asText());

        // The ConfigMap is the application.yml the service reads; the pod rolls when it changes.
        JsonNode config = RenderedChart.yaml(chart.get("ConfigMap", "kv-kvstash").at("/data/application.yml").asText());
        assertEquals("Q8", config.at("/kvstash/engine/kv-format").asText());
        assertEquals("8GB", config.at("/kvstash/store/warm-budget").asText());
        assertTrue(sts.at("/spec/template/metadata/annotations/checksum~1config").asText().matches("[0-9a-f]{64}"));

        assertEquals("ClusterIP", chart.get("Service", "kv-kvstash").at("/spec/type").asText());
        assertEquals("None", chart.get("Service", "kv-kvstash-headless").at("/spec/clusterIP").asText());
        assertEquals(1, chart.get("PodDisruptionBudget", "kv-kvstash").at("/spec/maxUnavailable").asInt());
        assertTrue(chart.ofKind("ServiceMonitor").isEmpty());
        assertTrue(chart.ofKind("Secret").isEmpty());
    }

    @Test
    void shouldRenderDownloadKeysRedisMonitorAndSizesFromOtherValues() throws IOException {
        RenderedChart chart = render("""
                replicaCount: 3
                image: {repository: registry.example/kvstash, tag: "1.2.3"}
                model:
                  existingClaim: ""
                  url: https://models.example/stories15M-q8_0.gguf
                  sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
                  fileName: stories15M-q8_0.gguf
                  name: stories
                memory: {heap: 1024, hotTier: 2048, directExtra: 128, rocksdb: 512, overhead: 512}
                cpu: {request: "2", limit: "4"}
                jvmOptions: -XX:+UseZGC
                config:
                  kvstash:
                    engine: {kv-format: KIVI4}
                apiKeys:
                  keys:
                    - {key: k-admin, tenant: ops, admin: true}
                    - {key: k-user, tenant: acme}
                redis: {url: "redis://redis:6379/0"}
                persistence: {size: 50Gi, storageClassName: fast-ssd}
                podDisruptionBudget: {minAvailable: 2}
                serviceMonitor:
                  enabled: true
                  bearerTokenSecret: {name: scrape, key: token}
                """);

        JsonNode sts = chart.get("StatefulSet", "kv-kvstash");
        assertEquals(3, sts.at("/spec/replicas").asInt());
        JsonNode pod = sts.at("/spec/template/spec");
        JsonNode c = named(pod.path("containers"), "kvstash");
        assertEquals("registry.example/kvstash:1.2.3", c.path("image").asText());
        JsonNode env = c.path("env");

        // The download goes to the replica's data volume; the service reads it there.
        JsonNode init = named(pod.path("initContainers"), "model-download");
        assertEquals("https://models.example/stories15M-q8_0.gguf", named(init.path("env"), "MODEL_URL").path("value").asText());
        assertEquals("/var/lib/kvstash/models/stories15M-q8_0.gguf", named(init.path("env"), "MODEL_FILE").path("value").asText());
        assertTrue(named(init.path("env"), "MODEL_SHA256").path("value").asText().startsWith("0123"));
        assertTrue(init.at("/command/2").asText().contains("sha256sum -c"));
        assertEquals("/var/lib/kvstash", named(init.path("volumeMounts"), "data").path("mountPath").asText());
        assertTrue(init.at("/securityContext/readOnlyRootFilesystem").asBoolean());
        assertEquals("/var/lib/kvstash/models/stories15M-q8_0.gguf", named(env, "KVSTASH_ENGINE_MODEL").path("value").asText());
        assertEquals("stories", named(env, "KVSTASH_ENGINE_MODELNAME").path("value").asText());
        assertTrue(named(c.path("volumeMounts"), "model").isMissingNode());
        assertTrue(named(pod.path("volumes"), "model").isMissingNode());

        // 1024 + 2048 + 128 + 512 + 512 MiB; direct memory = hot tier + the rest of direct.
        assertEquals("4224Mi", c.at("/resources/limits/memory").asText());
        assertEquals("4", c.at("/resources/limits/cpu").asText());
        assertEquals("2", c.at("/resources/requests/cpu").asText());
        assertEquals("-Xmx1024m -XX:MaxDirectMemorySize=2176m -XX:+UseZGC", named(env, "JDK_JAVA_OPTIONS").path("value").asText());
        assertEquals("2048MB", named(env, "KVSTASH_KV_HOTCAPACITY").path("value").asText());

        assertEquals("redis://redis:6379/0", named(env, "KVSTASH_REMOTE_REDIS_URL").path("value").asText());
        assertEquals("kv-kvstash-api-keys", c.at("/envFrom/0/secretRef/name").asText());
        JsonNode keys = chart.get("Secret", "kv-kvstash-api-keys").path("stringData");
        assertEquals("k-admin", keys.path("KVSTASH_SECURITY_APIKEYS_0_KEY").asText());
        assertEquals("ops", keys.path("KVSTASH_SECURITY_APIKEYS_0_TENANT").asText());
        assertEquals("true", keys.path("KVSTASH_SECURITY_APIKEYS_0_ADMIN").asText());
        assertEquals("acme", keys.path("KVSTASH_SECURITY_APIKEYS_1_TENANT").asText());
        assertEquals("false", keys.path("KVSTASH_SECURITY_APIKEYS_1_ADMIN").asText());

        JsonNode config = RenderedChart.yaml(chart.get("ConfigMap", "kv-kvstash").at("/data/application.yml").asText());
        assertEquals("KIVI4", config.at("/kvstash/engine/kv-format").asText());
        JsonNode claim = sts.at("/spec/volumeClaimTemplates/0/spec");
        assertEquals("50Gi", claim.at("/resources/requests/storage").asText());
        assertEquals("fast-ssd", claim.path("storageClassName").asText());
        JsonNode pdb = chart.get("PodDisruptionBudget", "kv-kvstash").path("spec");
        assertEquals(2, pdb.path("minAvailable").asInt());
        assertTrue(pdb.path("maxUnavailable").isMissingNode());
        JsonNode monitor = chart.get("ServiceMonitor", "kv-kvstash").at("/spec/endpoints/0");
        assertEquals("/actuator/prometheus", monitor.path("path").asText());
        assertEquals("http", monitor.path("port").asText());
        assertEquals("scrape", monitor.at("/bearerTokenSecret/name").asText());
    }

    @Test
    void shouldTakeTheRedisUrlAndApiKeysFromExistingSecrets() throws IOException {
        RenderedChart chart = render("""
                redis: {url: "redis://ignored", existingSecret: redis-conn, existingSecretKey: uri}
                apiKeys: {existingSecret: my-keys, keys: [{key: ignored}]}
                model: {existingClaim: "", volume: {hostPath: {path: /srv/models, type: Directory}}}
                """);
        JsonNode pod = chart.get("StatefulSet", "kv-kvstash").at("/spec/template/spec");
        JsonNode c = named(pod.path("containers"), "kvstash");
        JsonNode redis = named(c.path("env"), "KVSTASH_REMOTE_REDIS_URL");
        assertEquals("redis-conn", redis.at("/valueFrom/secretKeyRef/name").asText());
        assertEquals("uri", redis.at("/valueFrom/secretKeyRef/key").asText());
        assertTrue(redis.path("value").isMissingNode());
        assertEquals("my-keys", c.at("/envFrom/0/secretRef/name").asText());
        assertTrue(chart.ofKind("Secret").isEmpty(), "an existing secret replaces the chart's");
        assertEquals("/srv/models", named(pod.path("volumes"), "model").at("/hostPath/path").asText());
        assertEquals("/models/model.gguf", named(c.path("env"), "KVSTASH_ENGINE_MODEL").path("value").asText());
    }

    @Test
    void shouldRefuseValuesWithNoModelOrTwoModels() throws IOException {
        Exception none = assertThrows(Exception.class, () -> render("model: {existingClaim: \"\"}"));
        assertTrue(none.getMessage().contains("set exactly one of model.existingClaim, model.url and model.volume"), none.getMessage());
        Exception two = assertThrows(Exception.class, () -> render("model: {existingClaim: m, url: https://x/m.gguf}"));
        assertTrue(two.getMessage().contains("set exactly one of"), two.getMessage());
    }

    @Test
    void shouldRefuseAnApiKeyWithNoKey() throws IOException {
        Exception e = assertThrows(Exception.class, () -> render("apiKeys: {keys: [{tenant: acme}]}"));
        assertTrue(e.getMessage().contains("apiKeys.keys[0].key is empty"), e.getMessage());
    }

    private RenderedChart render(String values) throws IOException {
        var template = new Helm(CHART).template().withName("kv");
        if (values != null) {
            Path file = Files.writeString(Files.createTempFile(tmp, "values", ".yaml"), values);
            template = template.withValuesFile(file);
        }
        return RenderedChart.parse(template.call());
    }
}
