package io.kvstash.api.admin;

import io.kvstash.engine.scheduler.BatchScheduler;
import io.kvstash.offload.HotTier;
import io.kvstash.offload.RemoteTier;
import io.kvstash.offload.SessionStore;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.binder.MeterBinder;
import org.springframework.stereotype.Component;

/** Tier occupancy, hit and eviction counts and the scheduler's queue, read when scraped. */
@Component
public class KvstashMetrics implements MeterBinder {
    private final HotTier hot;
    private final SessionStore sessions;
    private final BatchScheduler scheduler;

    public KvstashMetrics(HotTier hot, SessionStore sessions, BatchScheduler scheduler) {
        this.hot = hot;
        this.sessions = sessions;
        this.scheduler = scheduler;
    }

    @Override
    public void bindTo(MeterRegistry r) {
        Gauge.builder("kvstash.tier.bytes", hot, h -> h.stats().bytesInUse()).tag("tier", "hot").baseUnit("bytes").register(r);
        Gauge.builder("kvstash.tier.capacity", hot, h -> h.stats().capacityBytes()).tag("tier", "hot").baseUnit("bytes").register(r);
        Gauge.builder("kvstash.tier.chunks", hot, h -> h.stats().registeredChunks()).tag("tier", "hot").register(r);
        Gauge.builder("kvstash.tier.bytes", sessions, SessionStore::warmBytes).tag("tier", "warm").baseUnit("bytes").register(r);
        Gauge.builder("kvstash.tier.chunks", sessions, SessionStore::storedChunks).tag("tier", "warm").register(r);
        FunctionCounter.builder("kvstash.tier.lookups", hot, h -> h.stats().hits()).tag("tier", "hot").tag("result", "hit").register(r);
        FunctionCounter.builder("kvstash.tier.lookups", hot, h -> h.stats().misses()).tag("tier", "hot").tag("result", "miss").register(r);
        FunctionCounter.builder("kvstash.tier.lookups", sessions, SessionStore::warmHits).tag("tier", "warm").tag("result", "hit").register(r);
        FunctionCounter.builder("kvstash.tier.lookups", sessions, SessionStore::warmMisses).tag("tier", "warm").tag("result", "miss").register(r);
        Gauge.builder("kvstash.parked.summary.bytes", sessions, SessionStore::parkedSummaryBytes).baseUnit("bytes")
                .description("heap bytes of parked chunks' key summaries kept across turns").register(r);
        FunctionCounter.builder("kvstash.parked.summary.hits", sessions, SessionStore::parkedSummaryHits)
                .description("parked chunks a turn took from the kept summaries instead of reading their bodies").register(r);
        RemoteTier remote = sessions.remoteTier();
        if (remote != null) {
            FunctionCounter.builder("kvstash.tier.lookups", remote, t -> t.stats().hits()).tag("tier", "remote").tag("result", "hit").register(r);
            FunctionCounter.builder("kvstash.tier.lookups", remote, t -> t.stats().misses()).tag("tier", "remote").tag("result", "miss").register(r);
            FunctionCounter.builder("kvstash.tier.lookups", remote, t -> t.stats().errors()).tag("tier", "remote").tag("result", "error")
                    .description("chunks not looked up because the remote tier failed, timed out or was being left alone").register(r);
            FunctionCounter.builder("kvstash.tier.lookups", remote, t -> t.stats().rejected()).tag("tier", "remote").tag("result", "rejected")
                    .description("remote values that did not decode as the expected chunk (treated as missing)").register(r);
            FunctionCounter.builder("kvstash.tier.writes", remote, t -> t.stats().writes()).tag("tier", "remote").tag("result", "written").register(r);
            FunctionCounter.builder("kvstash.tier.writes", remote, t -> t.stats().writeErrors()).tag("tier", "remote").tag("result", "failed").register(r);
            FunctionCounter.builder("kvstash.tier.writes", remote, t -> t.stats().drops()).tag("tier", "remote").tag("result", "dropped")
                    .description("chunks not written: the queue was full or the remote tier was being left alone").register(r);
        }
        if (remote != null) {
            Gauge.builder("kvstash.tier.write.queue", remote, t -> t.stats().queued()).tag("tier", "remote")
                    .description("chunks waiting to be written to the remote tier").register(r);
        }
        FunctionCounter.builder("kvstash.tier.evictions", hot, h -> h.stats().evictions()).tag("tier", "hot").register(r);
        FunctionCounter.builder("kvstash.tier.write.backs", hot, h -> h.stats().writeBacks()).tag("tier", "hot").register(r);
        Gauge.builder("kvstash.scheduler.queue", scheduler, BatchScheduler::waiting).description("sequences waiting for admission").register(r);
        Gauge.builder("kvstash.scheduler.running", scheduler, BatchScheduler::running)
                .description("sequences in flight: the batch each decode step runs").register(r);
    }
}
