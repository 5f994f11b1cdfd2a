package io.kvstash.offload;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * What the warm tier stores for a session, written atomically with the chunks it refers to. The
 * token ids (and the messages they came from) are the truth; the KV is a cache of them: the chunk
 * keys name the session's full chunks, {@code kvLength} says how many positions have KV (the full
 * chunks plus the tail), and {@code tail} holds the F32 residual window's filled positions (see
 * {@link TailCodec}). A session whose chunks were dropped keeps its tokens and recomputes.
 *
 * @param tokens   every token of the conversation so far, the last one possibly not yet in the KV
 * @param kvLength positions with KV: {@code chunkKeys.size() × C + tail positions}, at most {@code kvTokens().length}
 * @param messages the conversation as the caller sent it (roles and texts), for the API layer: every
 *                 message ever sent or replied, also those the tokens no longer hold
 * @param droppedMessages how many messages right after the leading system messages the tokens no
 *                 longer hold: a session past the context length that dropped its oldest turns
 *                 ({@code truncate} policy); 0 when the tokens stand for every message
 * @param sinkTokens    with {@code shiftedTokens}: the first tokens, kept in the KV by every context shift (attention sinks)
 * @param shiftedTokens how many tokens right after the sinks context shifts have dropped from the KV
 *                 ({@code shift} policy): the KV stands for {@link #kvTokens()}, and a moved chunk's key says
 *                 it was moved ({@link ChunkKey#shifted}); 0 when never shifted
 */
public record SessionRecord(String id, String tenant, long createdMillis, long updatedMillis, long version, int[] tokens,
                            int kvLength, List<ChunkKey> chunkKeys, byte[] tail, List<Message> messages, int droppedMessages,
                            int sinkTokens, int shiftedTokens) {
    private static final int MAGIC = 0x4b565352; // "KVSR"
    /** 2 adds droppedMessages, sinkTokens and shiftedTokens; records of format 1 are read with none dropped or shifted. */
    private static final int FORMAT = 2;

    /** One message of the conversation. */
    public record Message(String role, String content) {
        public Message {
            Objects.requireNonNull(role, "role");
            Objects.requireNonNull(content, "content");
        }
    }

    public SessionRecord {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(tenant, "tenant");
        tokens = tokens.clone();
        chunkKeys = List.copyOf(chunkKeys);
        tail = tail == null ? new byte[0] : tail;
        messages = List.copyOf(messages);
        if (sinkTokens < 0 || shiftedTokens < 0 || (long) sinkTokens + shiftedTokens > tokens.length) {
            throw new IllegalArgumentException(sinkTokens + " sink and " + shiftedTokens + " shifted tokens do not fit " + tokens.length);
        }
        if (kvLength < 0 || kvLength > tokens.length - shiftedTokens) {
            throw new IllegalArgumentException("kvLength " + kvLength + " outside [0, " + (tokens.length - shiftedTokens) + "]");
        }
        if (droppedMessages < 0 || droppedMessages > messages.size()) {
            throw new IllegalArgumentException("droppedMessages " + droppedMessages + " outside [0, " + messages.size() + "]");
        }
    }

    /** A record whose tokens stand for every message. */
    public SessionRecord(String id, String tenant, long createdMillis, long updatedMillis, long version, int[] tokens, int kvLength,
                         List<ChunkKey> chunkKeys, byte[] tail, List<Message> messages) {
        this(id, tenant, createdMillis, updatedMillis, version, tokens, kvLength, chunkKeys, tail, messages, 0, 0, 0);
    }

    /** The tokens the KV stands for: all but the {@link #shiftedTokens} after the {@link #sinkTokens}. */
    public int[] kvTokens() {
        return kvView(tokens, sinkTokens, shiftedTokens);
    }

    /** {@code tokens} without the {@code shifted} tokens after the first {@code sink}. */
    public static int[] kvView(int[] tokens, int sink, int shifted) {
        if (shifted == 0) {
            return tokens.clone();
        }
        int[] out = new int[tokens.length - shifted];
        System.arraycopy(tokens, 0, out, 0, sink);
        System.arraycopy(tokens, sink + shifted, out, sink, out.length - sink);
        return out;
    }

    /** The messages the tokens stand for: all but the {@link #droppedMessages} after the leading system messages. */
    public List<Message> heldMessages() {
        if (droppedMessages == 0) {
            return messages;
        }
        int from = leadingSystemMessages(messages);
        List<Message> held = new ArrayList<>(messages.subList(0, from));
        held.addAll(messages.subList(from + droppedMessages, messages.size()));
        return List.copyOf(held);
    }

    /** How many messages at the start of {@code messages} are system messages (never dropped). */
    public static int leadingSystemMessages(List<Message> messages) {
        int n = 0;
        while (n < messages.size() && messages.get(n).role().equals("system")) {
            n++;
        }
        return n;
    }

    public static SessionRecord empty(String id, String tenant, long now) {
        return new SessionRecord(id, tenant, now, now, 0, new int[0], 0, List.of(), null, List.of());
    }

    @Override
    public int[] tokens() {
        return tokens.clone();
    }

    int tokenCount() {
        return tokens.length;
    }

    public byte[] encode() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(64 + 4 * tokens.length + 16 * chunkKeys.size() + tail.length);
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            out.writeInt(MAGIC);
            out.writeInt(FORMAT);
            out.writeUTF(id);
            out.writeUTF(tenant);
            out.writeLong(createdMillis);
            out.writeLong(updatedMillis);
            out.writeLong(version);
            out.writeInt(kvLength);
            out.writeInt(chunkKeys.size());
            for (ChunkKey k : chunkKeys) {
                out.writeLong(k.high());
                out.writeLong(k.low());
            }
            out.writeInt(tokens.length);
            for (int t : tokens) {
                out.writeInt(t);
            }
            out.writeInt(messages.size());
            for (Message m : messages) {
                out.writeUTF(m.role());
                byte[] content = m.content().getBytes(java.nio.charset.StandardCharsets.UTF_8);
                out.writeInt(content.length);
                out.write(content);
            }
            out.writeInt(tail.length);
            out.write(tail);
            out.writeInt(droppedMessages);
            out.writeInt(sinkTokens);
            out.writeInt(shiftedTokens);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return bytes.toByteArray();
    }

    /** Reads a record; a value that is not one (or is damaged) is an {@link IllegalArgumentException}. */
    public static SessionRecord decode(byte[] value) {
        try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(value))) {
            if (in.readInt() != MAGIC) {
                throw new IllegalArgumentException("not a session record");
            }
            int format = in.readInt();
            if (format != FORMAT && format != 1) {
                throw new IllegalArgumentException("session record format " + format + ", this build reads " + FORMAT);
            }
            String id = in.readUTF();
            String tenant = in.readUTF();
            long created = in.readLong();
            long updated = in.readLong();
            long version = in.readLong();
            int kvLength = in.readInt();
            int keys = count(in.readInt(), value.length / 16);
            List<ChunkKey> chunkKeys = new ArrayList<>(keys);
            for (int i = 0; i < keys; i++) {
                chunkKeys.add(new ChunkKey(in.readLong(), in.readLong()));
            }
            int[] tokens = new int[count(in.readInt(), value.length / 4)];
            for (int i = 0; i < tokens.length; i++) {
                tokens[i] = in.readInt();
            }
            int messageCount = count(in.readInt(), value.length);
            List<Message> messages = new ArrayList<>(messageCount);
            for (int i = 0; i < messageCount; i++) {
                String role = in.readUTF();
                byte[] content = new byte[count(in.readInt(), value.length)];
                in.readFully(content);
                messages.add(new Message(role, new String(content, java.nio.charset.StandardCharsets.UTF_8)));
            }
            byte[] tail = new byte[count(in.readInt(), value.length)];
            in.readFully(tail);
            int dropped = format >= 2 ? in.readInt() : 0;
            int sink = format >= 2 ? in.readInt() : 0;
            int shifted = format >= 2 ? in.readInt() : 0;
            if (in.available() != 0) {
                throw new IllegalArgumentException("session record has " + in.available() + " trailing bytes");
            }
            return new SessionRecord(id, tenant, created, updated, version, tokens, kvLength, chunkKeys, tail, messages, dropped, sink, shifted);
        } catch (IOException e) {
            throw new IllegalArgumentException("truncated session record", e);
        }
    }

    private static int count(int n, int bound) {
        if (n < 0 || n > bound) {
            throw new IllegalArgumentException("damaged session record: count " + n);
        }
        return n;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SessionRecord r && id.equals(r.id) && tenant.equals(r.tenant) && createdMillis == r.createdMillis
                && updatedMillis == r.updatedMillis && version == r.version && Arrays.equals(tokens, r.tokens) && kvLength == r.kvLength
                && chunkKeys.equals(r.chunkKeys) && Arrays.equals(tail, r.tail) && messages.equals(r.messages)
                && droppedMessages == r.droppedMessages && sinkTokens == r.sinkTokens && shiftedTokens == r.shiftedTokens;
    }

    @Override
    public int hashCode() {
        return Objects.hash(id, version);
    }

    @Override
    public String toString() {
        return "SessionRecord[" + id + ", tenant " + tenant + ", v" + version + ", " + tokens.length + " tokens, kv " + kvLength
                + ", " + chunkKeys.size() + " chunks, tail " + tail.length + " B, " + messages.size() + " messages ("
                + droppedMessages + " dropped from the tokens), " + shiftedTokens + " tokens shifted out after " + sinkTokens + "]";
    }
}
