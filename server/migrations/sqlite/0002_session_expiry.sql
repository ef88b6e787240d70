-- When a session was last used, in milliseconds since the Unix epoch: one
-- idle for longer than SESSION_IDLE_MS ends.
ALTER TABLE sessions ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;

-- 1 once a socket of the session has opened: a login that never connects is
-- purged after the unclaimed-name time.
ALTER TABLE sessions ADD COLUMN connected INTEGER NOT NULL DEFAULT 0;

-- Sessions from before these columns count as used now and connected, so an
-- upgrade ends none of them.
UPDATE sessions
SET last_seen = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
    connected = 1;

CREATE INDEX sessions_last_seen ON sessions (last_seen);
CREATE INDEX sessions_unclaimed ON sessions (created_at) WHERE connected = 0;
