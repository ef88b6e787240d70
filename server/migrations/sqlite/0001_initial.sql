-- Sessions: the cookie carries a random token; only its SHA-256 is stored.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    -- The name the session holds (or held last, if it was freed).
    username TEXT NOT NULL,
    -- What the user typed at login: the base for a new suffix if that name is taken.
    base_name TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- The room. `id` is the order of the room.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    author TEXT NOT NULL,
    username TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    client_id TEXT
);

-- A client_id is stored once per sender, for good (NULLs never collide).
CREATE UNIQUE INDEX messages_author_client_id ON messages (author, client_id);
