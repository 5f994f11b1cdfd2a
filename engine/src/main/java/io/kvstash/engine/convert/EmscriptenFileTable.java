package io.kvstash.engine.convert;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.OptionalLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The file table of an emscripten {@code file_packager} bundle: the loader script ({@code llama2.js})
 * calls {@code loadPackage({"files":[{"filename":"/model.bin","start":0,"end":…},…],
 * "remote_package_size":…})}, and each file is the byte range {@code [start, end)} of the
 * {@code .data} file beside it.
 *
 * @param files       each packed file's range, by its name in the package (e.g. {@code /model.bin})
 * @param packageSize the size the loader expects the {@code .data} file to have, when it says
 */
public record EmscriptenFileTable(Map<String, Range> files, OptionalLong packageSize) {
    private static final Pattern LOAD_PACKAGE_CALL = Pattern.compile("loadPackage\\s*\\(\\s*\\{");
    private static final ObjectMapper JSON = new ObjectMapper();

    public record Range(long start, long end) {}

    public EmscriptenFileTable {
        files = Map.copyOf(files);
    }

    /** Reads the file table from the loader script {@code loaderJs}. */
    public static EmscriptenFileTable read(Path loaderJs) throws IOException {
        if (!Files.isRegularFile(loaderJs)) {
            throw new Llama2cFormatException(loaderJs + ": no such file");
        }
        return parse(Files.readString(loaderJs), loaderJs.toString());
    }

    /** Reads the file table from the text of a loader script; {@code source} names it in errors. */
    public static EmscriptenFileTable parse(String script, String source) {
        Matcher m = LOAD_PACKAGE_CALL.matcher(script);
        while (m.find()) {
            int objectStart = m.end() - 1;
            JsonNode metadata;
            try (JsonParser p = JSON.getFactory().createParser(script.substring(objectStart))) {
                metadata = JSON.readTree(p);
            } catch (JsonProcessingException e) {
                throw new Llama2cFormatException(source + ": the argument of loadPackage at character " + objectStart
                        + " is not a JSON object: " + e.getOriginalMessage());
            } catch (IOException e) {
                throw new IllegalStateException("reading a string cannot fail", e);
            }
            if (metadata.has("files")) {
                return fromMetadata(metadata, source);
            }
        }
        throw new Llama2cFormatException(source + ": no emscripten file table (a call loadPackage({\"files\": [...]})) in it;"
                + " is it the loader script generated with the .data file?");
    }

    private static EmscriptenFileTable fromMetadata(JsonNode metadata, String source) {
        JsonNode list = metadata.get("files");
        if (!list.isArray()) {
            throw new Llama2cFormatException(source + ": loadPackage's \"files\" is not an array");
        }
        Map<String, Range> files = new LinkedHashMap<>();
        for (int i = 0; i < list.size(); i++) {
            JsonNode f = list.get(i);
            JsonNode name = f.get("filename");
            JsonNode start = f.get("start");
            JsonNode end = f.get("end");
            if (name == null || !name.isTextual() || !isCount(start) || !isCount(end)) {
                throw new Llama2cFormatException(source + ": file table entry " + i + " needs a \"filename\" and non-negative"
                        + " integer \"start\" and \"end\", got " + f);
            }
            if (start.asLong() > end.asLong()) {
                throw new Llama2cFormatException(source + ": file table entry '" + name.asText() + "' starts at " + start.asLong()
                        + " after its end " + end.asLong());
            }
            if (files.put(name.asText(), new Range(start.asLong(), end.asLong())) != null) {
                throw new Llama2cFormatException(source + ": file table lists '" + name.asText() + "' twice");
            }
        }
        JsonNode size = metadata.get("remote_package_size");
        if (size != null && !isCount(size)) {
            throw new Llama2cFormatException(source + ": remote_package_size is not a non-negative integer: " + size);
        }
        return new EmscriptenFileTable(files, size == null ? OptionalLong.empty() : OptionalLong.of(size.asLong()));
    }

    private static boolean isCount(JsonNode n) {
        return n != null && n.isIntegralNumber() && n.canConvertToLong() && n.asLong() >= 0;
    }

    /**
     * The bytes of packed file {@code name} within {@code dataFile}, after checking that the data
     * file has the size the loader expects and holds the whole range.
     */
    public FileSlice slice(Path dataFile, String name) throws IOException {
        Range r = files.get(name);
        if (r == null) {
            throw new Llama2cFormatException("the emscripten file table has no '" + name + "' (it lists " + files.keySet() + ")");
        }
        FileSlice whole = FileSlice.whole(dataFile);
        if (packageSize.isPresent() && packageSize.getAsLong() != whole.length()) {
            throw new Llama2cFormatException(dataFile + " has " + whole.length() + " bytes but its loader expects "
                    + packageSize.getAsLong() + ": the .data and .js files are not from the same build");
        }
        FileSlice slice = new FileSlice(dataFile, r.start(), r.end() - r.start());
        slice.requireWithinFile();
        return slice;
    }
}
