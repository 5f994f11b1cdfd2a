package io.kvstash.engine.convert;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class EmscriptenFileTableTest {
    /** How emscripten's file_packager output looks: the definition of loadPackage, then the call with the table. */
    static final String LOADER = "var Module=typeof Module!=\"undefined\"?Module:{};(function(){function loadPackage(metadata){"
            + "var files=metadata[\"files\"];}loadPackage( {\"files\":[{\"filename\":\"/model.bin\",\"start\":0,\"end\":10},"
            + "{\"filename\":\"/tokenizer.bin\",\"start\":10,\"end\":16, \"audio\": 0}],\"remote_package_size\":16})})();var x={};";

    @TempDir
    Path dir;

    @Test
    void shouldFindTheTableWhenTheScriptAlsoDefinesLoadPackage() throws IOException {
        EmscriptenFileTable t = EmscriptenFileTable.parse(LOADER, "llama2.js");
        assertEquals(new EmscriptenFileTable.Range(0, 10), t.files().get("/model.bin"));
        assertEquals(new EmscriptenFileTable.Range(10, 16), t.files().get("/tokenizer.bin"));
        assertEquals(OptionalLong.of(16), t.packageSize());
        Path data = Files.write(dir.resolve("llama2.data"), new byte[16]);
        assertEquals(new FileSlice(data, 10, 6), t.slice(data, "/tokenizer.bin"));
    }

    @Test
    void shouldNameTheProblemWhenTheTableIsMissingOrBroken() {
        assertFails("console.log('hello')", "no emscripten file table");
        assertFails("loadPackage({\"files\": [}", "is not a JSON object");
        assertFails("loadPackage({\"files\": 3})", "\"files\" is not an array");
        assertFails("loadPackage({\"files\": [{\"filename\": \"/a\", \"start\": -1, \"end\": 3}]})", "entry 0 needs");
        assertFails("loadPackage({\"files\": [{\"start\": 0, \"end\": 3}]})", "entry 0 needs a \"filename\"");
        assertFails("loadPackage({\"files\": [{\"filename\": \"/a\", \"start\": 1.5, \"end\": 3}]})", "entry 0 needs");
        assertFails("loadPackage({\"files\": [{\"filename\": \"/a\", \"start\": 5, \"end\": 3}]})", "'/a' starts at 5 after its end 3");
        assertFails("loadPackage({\"files\": [{\"filename\": \"/a\", \"start\": 0, \"end\": 3}, {\"filename\": \"/a\", \"start\": 3, \"end\": 4}]})",
                "lists '/a' twice");
        assertFails("loadPackage({\"files\": [], \"remote_package_size\": \"big\"})", "remote_package_size is not");
    }

    @Test
    void shouldRefuseADataFileOfAnotherBuildOrARangeOutsideIt() throws IOException {
        EmscriptenFileTable t = EmscriptenFileTable.parse(LOADER, "llama2.js");
        Path shorter = Files.write(dir.resolve("short.data"), new byte[12]);
        Llama2cFormatException e = assertThrows(Llama2cFormatException.class, () -> t.slice(shorter, "/model.bin"));
        assertTrue(e.getMessage().contains("has 12 bytes but its loader expects 16"), e.getMessage());
        e = assertThrows(Llama2cFormatException.class, () -> t.slice(shorter, "/vocab.bin"));
        assertTrue(e.getMessage().contains("no '/vocab.bin'"), e.getMessage());

        EmscriptenFileTable unsized = EmscriptenFileTable.parse(
                "loadPackage({\"files\":[{\"filename\":\"/model.bin\",\"start\":4,\"end\":20}]})", "x.js");
        e = assertThrows(Llama2cFormatException.class, () -> unsized.slice(shorter, "/model.bin"));
        assertTrue(e.getMessage().contains("bytes [4, 20) lies outside the file, which has 12 bytes"), e.getMessage());
        e = assertThrows(Llama2cFormatException.class, () -> EmscriptenFileTable.read(dir.resolve("none.js")));
        assertTrue(e.getMessage().contains("none.js: no such file"), e.getMessage());
    }

    private static void assertFails(String script, String fragment) {
        Llama2cFormatException e = assertThrows(Llama2cFormatException.class, () -> EmscriptenFileTable.parse(script, "llama2.js"));
        assertTrue(e.getMessage().startsWith("llama2.js: "), e.getMessage());
        assertTrue(e.getMessage().contains(fragment), "message lacks '" + fragment + "': " + e.getMessage());
    }
}
