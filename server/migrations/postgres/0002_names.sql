-- The names held now, shared by every server. A name is unique among the
-- holds that have not lapsed; the server serving a session renews its
-- hold, so a server that dies lets its users' names go when their holds
-- lapse.
CREATE TABLE held_names (
    name_key   TEXT PRIMARY KEY,   -- the name folded to lower case
    session_id TEXT NOT NULL,
    token      BIGINT NOT NULL,    -- which claim of the session holds it
    held_until BIGINT NOT NULL     -- milliseconds since the Unix epoch
);
CREATE INDEX held_names_session ON held_names (session_id);
