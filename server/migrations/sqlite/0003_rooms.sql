-- Rooms. Every message belongs to one; those from before rooms were in the lobby.
ALTER TABLE messages ADD COLUMN room TEXT NOT NULL DEFAULT 'lobby';
-- A room's history, page by page.
CREATE INDEX messages_room_id ON messages (room, id);

-- Every room with messages, and its newest id: the room list without
-- scanning the messages.
CREATE TABLE rooms (
    name TEXT PRIMARY KEY NOT NULL,
    last_id INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO rooms (name, last_id) SELECT room, MAX(id) FROM messages GROUP BY room;
CREATE INDEX rooms_last_id ON rooms (last_id);

-- The rooms a session has opened, and the newest message id it has read
-- in each (unread counts start after it); they go with the session.
CREATE TABLE visits (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    room TEXT NOT NULL,
    last_read INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, room)
) WITHOUT ROWID;
