package io.kvstash.api.chat;

/** What a running turn reports: pieces of the reply's text, then how it ended. */
public sealed interface TurnEvent {
    /** Newly generated text (never empty). */
    record Delta(String text) implements TurnEvent {}

    /** The turn is done and stored. */
    record Done(TurnOutcome outcome) implements TurnEvent {}
}
