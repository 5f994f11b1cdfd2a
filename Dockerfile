# kvstash service image. Build (from the repository root; the build stage fetches Maven and the
# dependencies from Maven Central):
#   docker build --network host -t kvstash:0.1.0 .
# Run with a GGUF model mounted at /models/model.gguf and a volume for the warm tier:
#   docker run -p 8080:8080 -v /path/to/model.gguf:/models/model.gguf:ro -v kvstash-data:/var/lib/kvstash kvstash:0.1.0
# See README "Deploying".

FROM eclipse-temurin:25-jdk AS build
WORKDIR /src
# Dependency layer: the poms alone, built once with nothing to compile, so every plugin and
# dependency is fetched into a layer that changes only when a pom does. -DskipTests, not
# maven.test.skip: the api module's tests need the engine's test jar, which that would not build.
COPY mvnw pom.xml ./
COPY .mvn .mvn
COPY engine/pom.xml engine/
COPY persistence/pom.xml persistence/
COPY offload/pom.xml offload/
COPY cli/pom.xml cli/
COPY api/pom.xml api/
COPY deploy-tests/pom.xml deploy-tests/
RUN ./mvnw -B -q -pl api -am -DskipTests package && rm -rf */target
COPY engine/src engine/src
COPY persistence/src persistence/src
COPY offload/src offload/src
COPY api/src api/src
RUN ./mvnw -B -q -o -pl api -am -DskipTests package

FROM eclipse-temurin:25-jre
RUN groupadd --system --gid 10001 kvstash \
 && useradd --system --uid 10001 --gid kvstash --home-dir /var/lib/kvstash --no-create-home \
      --shell /usr/sbin/nologin kvstash \
 && mkdir -p /var/lib/kvstash/data /models \
 && chown -R kvstash:kvstash /var/lib/kvstash
COPY docker/entrypoint.sh /opt/kvstash/entrypoint.sh
COPY --from=build /src/api/target/kvstash-api.jar /opt/kvstash/kvstash-api.jar
# No npm in the image: the model comes from a mounted file, never the demo-model download.
ENV KVSTASH_ENGINE_MODEL=/models/model.gguf \
    KVSTASH_ENGINE_DEMOMODEL=false \
    KVSTASH_STORE_DATADIR=/var/lib/kvstash/data \
    SERVER_PORT=8080
USER 10001:10001
WORKDIR /var/lib/kvstash
VOLUME /var/lib/kvstash
EXPOSE 8080
# bash's /dev/tcp: the image needs no curl or wget for its health check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${SERVER_PORT} && printf 'GET /actuator/health/liveness HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && grep -q '\"status\":\"UP\"' <&3"]
# SIGTERM makes Spring Boot shut down gracefully (server.shutdown=graceful): in-flight requests get
# up to 30 s, then the serving stack closes the scheduler, the session layer and RocksDB in order.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/kvstash/entrypoint.sh"]
