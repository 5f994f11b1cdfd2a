package io.kvstash.api.openai;

import io.kvstash.api.config.EngineProperties;
import io.kvstash.api.problem.Problem;
import io.kvstash.api.problem.ProblemException;
import java.time.Instant;
import java.util.List;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.RestController;

/** {@code GET /v1/models}: the one model this server runs. */
@RestController
public class ModelsController {
    public record Model(String id, String object, long created, String ownedBy) {}

    public record ModelList(String object, List<Model> data) {}

    private final Model model;

    public ModelsController(EngineProperties engine) {
        this.model = new Model(engine.modelId(), "model", Instant.now().getEpochSecond(), "kvstash");
    }

    @GetMapping("/v1/models")
    public ModelList list() {
        return new ModelList("list", List.of(model));
    }

    @GetMapping("/v1/models/{id}")
    public Model get(@PathVariable String id) {
        if (!model.id().equals(id)) {
            throw new ProblemException(Problem.UNKNOWN_MODEL, "the model '" + id + "' does not exist", null, "model");
        }
        return model;
    }
}
