package io.kvstash.api.chat;

import java.util.List;

/**
 * Finds stop sequences in streamed text. Text that could be the start of a stop sequence is held
 * back until the next piece shows whether it is; text after a stop sequence is never released.
 * Not thread-safe: one per generation, fed from the scheduler's thread.
 */
public final class StopMatcher {
    private final List<String> stops;
    private final StringBuilder pending = new StringBuilder();
    private final StringBuilder released = new StringBuilder();
    private boolean stopped;

    public StopMatcher(List<String> stops) {
        this.stops = stops.stream().filter(s -> !s.isEmpty()).toList();
    }

    /** Adds a piece of generated text; returns the text that is now safe to show (may be empty). */
    public String accept(String text) {
        if (stopped) {
            return "";
        }
        pending.append(text);
        int at = -1;
        for (String s : stops) {
            int i = pending.indexOf(s);
            if (i >= 0 && (at < 0 || i < at)) {
                at = i;
            }
        }
        if (at >= 0) {
            stopped = true;
            return release(at);
        }
        return release(pending.length() - heldBack());
    }

    /** The rest of the held-back text at the end of the generation (nothing after a stop). */
    public String flush() {
        return stopped ? "" : release(pending.length());
    }

    public boolean stopped() {
        return stopped;
    }

    /** Everything released so far: the reply as the client sees it. */
    public String text() {
        return released.toString();
    }

    /** Length of the longest suffix of the pending text that is a proper prefix of a stop sequence. */
    private int heldBack() {
        String p = pending.toString();
        int best = 0;
        for (String s : stops) {
            for (int n = Math.min(s.length() - 1, p.length()); n > best; n--) {
                if (p.regionMatches(p.length() - n, s, 0, n)) {
                    best = n;
                    break;
                }
            }
        }
        return best;
    }

    private String release(int n) {
        String out = pending.substring(0, n);
        if (stopped) {
            pending.setLength(0);
        } else {
            pending.delete(0, n);
        }
        released.append(out);
        return out;
    }
}
