package io.kvstash.offload;

/** An exported session that does not fit together or with this model; {@link #field()} names the part at fault. */
public final class InvalidImportException extends IllegalArgumentException {
    private final String field;

    public InvalidImportException(String field, String message) {
        super(message);
        this.field = field;
    }

    /** The export's field at fault, as the export document names it (e.g. {@code tokens}, {@code tail}). */
    public String field() {
        return field;
    }
}
