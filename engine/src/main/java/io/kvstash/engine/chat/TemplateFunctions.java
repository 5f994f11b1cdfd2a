package io.kvstash.engine.chat;

import com.hubspot.jinjava.objects.date.StrftimeFormatter;

import java.time.ZonedDateTime;
import java.util.Locale;

/**
 * The functions Hugging Face gives chat templates. Public only because Jinjava calls them by
 * reflection; not part of the engine's API.
 */
public final class TemplateFunctions {
    private TemplateFunctions() {
    }

    /** {@code raise_exception(message)}: the template refuses the conversation. */
    public static Object raiseException(Object message) {
        throw new RaisedByTemplate(String.valueOf(message));
    }

    /** {@code strftime_now(format)}: the local time now, formatted as Python's {@code strftime} does. */
    public static String strftimeNow(String format) {
        return StrftimeFormatter.format(ZonedDateTime.now(), format, Locale.US);
    }

    static final class RaisedByTemplate extends RuntimeException {
        RaisedByTemplate(String message) {
            super(message);
        }
    }
}
