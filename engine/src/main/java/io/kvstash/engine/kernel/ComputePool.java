package io.kvstash.engine.kernel;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A fixed set of compute threads that split one range of work at a time. The calling thread works
 * too; workers spin briefly between dispatches (a decode step dispatches dozens of small kernels,
 * and waking a parked thread costs more than the kernel), then park. Threads claim pieces of the
 * range as they go (guided self-scheduling: big pieces first, smaller towards the end), so a
 * thread that starts late or runs slower — on two cores the OS, the JIT or GC always take one
 * for a while — does not hold the others at the barrier. Which thread computes a piece must not
 * change its result; tasks get the worker index only to pick their scratch buffers.
 * Dispatching allocates nothing: the task is a long-lived object whose fields carry its inputs.
 */
public final class ComputePool implements AutoCloseable {
    /** A share of a range: {@code [start, end)} of the whole, done by thread {@code worker}. */
    @FunctionalInterface
    public interface RangeTask {
        void run(int start, int end, int worker);
    }

    /**
     * How long an idle worker spins before it parks. Between two decode steps the scheduler samples
     * every sequence's next token on its own thread; with 16 sequences that outlasted a 200 µs spin,
     * and the first kernel of each step then waited tens of microseconds for a parked worker to wake.
     */
    private static final long SPIN_NANOS = 1_000_000;

    private final int threads;
    private final Thread[] workers;
    private final ReentrantLock dispatchLock = new ReentrantLock();
    private final AtomicInteger pending = new AtomicInteger();
    private final AtomicInteger nextUnit = new AtomicInteger();
    private volatile int generation;
    private volatile boolean closed;
    private volatile RangeTask task;
    private volatile int total;
    private volatile int grainSize = 1;
    private volatile Throwable failure;

    public ComputePool(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        }
        this.threads = threads;
        this.workers = new Thread[threads - 1];
        for (int i = 0; i < workers.length; i++) {
            int id = i + 1;
            workers[i] = Thread.ofPlatform().daemon().name("kvstash-compute-" + id).unstarted(() -> workLoop(id));
            workers[i].start();
        }
    }

    public int threads() {
        return threads;
    }

    /** Runs {@code task} over {@code [0, n)} split across the pool; returns when every piece is done. */
    public void run(RangeTask task, int n) {
        run(task, n, 1);
    }

    /**
     * As {@link #run(RangeTask, int)}, with pieces a multiple of {@code grain} (except the last), so
     * that e.g. blocks of rows stay together.
     */
    public void run(RangeTask task, int n, int grain) {
        if (n <= 0) {
            return;
        }
        if (threads == 1 || n <= grain) {
            task.run(0, n, 0);
            return;
        }
        dispatchLock.lock();
        try {
            if (closed) {
                throw new IllegalStateException("compute pool is closed");
            }
            this.task = task;
            this.total = n;
            this.grainSize = grain;
            pending.set(threads - 1);
            nextUnit.set(0);
            generation = generation + 1;
            // Unparking a spinning thread only leaves it a permit, so wake everyone unconditionally.
            for (Thread w : workers) {
                LockSupport.unpark(w);
            }
            runShare(task, n, grain, 0);
            while (pending.get() != 0) {
                Thread.onSpinWait();
            }
            Throwable f = failure;
            if (f != null) {
                failure = null;
                if (f instanceof RuntimeException re) {
                    throw re;
                }
                if (f instanceof Error err) {
                    throw err;
                }
                throw new IllegalStateException(f);
            }
        } finally {
            this.task = null;
            dispatchLock.unlock();
        }
    }

    private void runShare(RangeTask task, int n, int grain, int id) {
        int units = (n + grain - 1) / grain;
                int u = nextUnit.get();
        while (u < units) {
            int take = Math.max(1, (units - u) / (2 * threads));
            if (nextUnit.compareAndSet(u, u + take)) {
                task.run(u * grain, Math.min(n, (u + take) * grain), id);
            }
            u = nextUnit.get();
        }
    }

    private void workLoop(int id) {
        int seen = 0;
        while (true) {
            long spinStart = System.nanoTime();
            while (generation == seen && !closed) {
                if (System.nanoTime() - spinStart < SPIN_NANOS) {
                    Thread.onSpinWait();
                } else {
                    LockSupport.park(this);
                }
            }
            if (closed) {
                return;
            }
            seen = generation;
            try {
                runShare(task, total, grainSize, id);
            } catch (Throwable t) {
                failure = t;
            } finally {
                pending.decrementAndGet();
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Thread w : workers) {
            LockSupport.unpark(w);
        }
    }
}
