package io.kvstash.offload;

import io.kvstash.engine.kv.KvFormat;
import io.kvstash.engine.sampling.SamplingParams;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * The process {@link CrashSafetyTest} kills: runs turns on new and earlier sessions as fast as it
 * can and prints {@code ACK id tokens version} once a turn's future has completed (the point at
 * which a client would be told the turn happened).
 */
public final class CrashChild {
    private CrashChild() {
    }

    public static void main(String[] args) throws Exception {
        Path model = Path.of(args[0]);
        Path dir = Path.of(args[1]);
        Random random = new Random(Long.parseLong(args[2]));
        try (Tiers t = new Tiers(model, KvFormat.KIVI4, dir, 16L << 20, SessionStore.Config.defaults())) {
            int vocab = t.engine.config().vocabularySize();
            List<String> mine = new ArrayList<>();
            System.out.println("READY");
            System.out.flush();
            while (true) {
                String id;
                int[] tokens;
                if (!mine.isEmpty() && random.nextInt(3) == 0) {
                    id = mine.get(random.nextInt(mine.size()));
                    tokens = new int[1 + random.nextInt(40)];
                } else {
                    id = t.sessions.create("crash").id();
                    mine.add(id);
                    tokens = new int[20 + random.nextInt(180)];
                    tokens[0] = t.engine.tokenizer().bos();
                }
                for (int i = tokens[0] == 0 ? 0 : 1; i < tokens.length; i++) {
                    tokens[i] = 3 + random.nextInt(vocab - 3);
                }
                SessionStore.TurnResult r = t.sessions.turn("crash", id, tokens, List.of(new SessionRecord.Message("user", "turn")),
                        SamplingParams.greedy(), 1 + random.nextInt(8), true, null).get();
                System.out.println("ACK " + id + " " + r.record().tokens().length + " " + r.record().version());
                System.out.flush();
            }
        }
    }
}
