package io.kvstash.persistence;

import java.util.List;
import java.util.Optional;

/**
 * One page of session ids in key order (unsigned bytewise).
 *
 * @param sessionIds the ids on this page
 * @param more       whether ids follow; pass the last id as {@code startAfter} to get them
 */
public record SessionPage(List<byte[]> sessionIds, boolean more) {
    public SessionPage {
        sessionIds = List.copyOf(sessionIds);
    }

    /** The cursor for the next page, if there is one. */
    public Optional<byte[]> nextStartAfter() {
        return more ? Optional.of(sessionIds.getLast().clone()) : Optional.empty();
    }
}
