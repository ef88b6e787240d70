-- The whole schema of the SQLite store's migrations 0001 to 0006, for
-- PostgreSQL: sessions, the message log (messages, edits and deletions in
-- one id sequence), rooms, read marks, and the search index.
--
-- The extensions `pg_trgm` and `unaccent` are created by the server before
-- it migrates (in the schema `public`, where every schema of the database
-- finds them).

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    -- The name the session holds (or held last, if it was freed).
    username TEXT NOT NULL,
    -- What the user typed at login: the base for a new suffix if that name is taken.
    base_name TEXT NOT NULL,
    -- RFC 3339 UTC with milliseconds (text order is time order).
    created_at TEXT NOT NULL,
    -- Milliseconds since the Unix epoch.
    last_seen BIGINT NOT NULL DEFAULT 0,
    -- A socket of the session has opened.
    connected BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX sessions_last_seen ON sessions (last_seen);
CREATE INDEX sessions_unclaimed ON sessions (created_at) WHERE NOT connected;

-- kind: 0 a message, 1 an edit, 2 a deletion, 3 a deleted message (its row
-- kept, without text, so that its client_id is still known). An edit or a
-- deletion names the message it changed in `target`.
CREATE TABLE messages (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    author TEXT NOT NULL,
    room TEXT NOT NULL,
    username TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    client_id TEXT,
    kind BIGINT NOT NULL DEFAULT 0,
    target BIGINT,
    edited_at TEXT
);
CREATE UNIQUE INDEX messages_author_client_id ON messages (author, client_id);
CREATE INDEX messages_room_id ON messages (room, id);
CREATE INDEX messages_room_message_id ON messages (room, id) WHERE kind = 0;

CREATE TABLE rooms (
    name TEXT PRIMARY KEY,
    last_id BIGINT NOT NULL
);
CREATE INDEX rooms_last_id ON rooms (last_id);

CREATE TABLE visits (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    room TEXT NOT NULL,
    last_read BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, room)
);

-- Search folds case and accents ("cafe" finds "café") and finds a term
-- anywhere in a message by trigrams. `unaccent` is only STABLE (its
-- dictionary could change); pinned to one dictionary it can index.
CREATE FUNCTION chat_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, $1)) $$;
CREATE INDEX messages_search ON messages USING gin (chat_fold(body) public.gin_trgm_ops)
    WHERE kind = 0;
