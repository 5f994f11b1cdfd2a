package io.kvstash.engine.chat;

/**
 * A chat template that cannot be used or that refused a conversation: a syntax error, an error
 * while rendering, or the template's own {@code raise_exception(...)} (for instance "roles must
 * alternate"). The message names the template and the problem.
 */
public class ChatTemplateException extends RuntimeException {
    private final boolean raisedByTemplate;

    ChatTemplateException(String message, boolean raisedByTemplate, Throwable cause) {
        super(message, cause);
        this.raisedByTemplate = raisedByTemplate;
    }

    /**
     * Whether the template itself refused the conversation through {@code raise_exception}: the
     * messages are at fault (a client error), not the template.
     */
    public boolean raisedByTemplate() {
        return raisedByTemplate;
    }
}
