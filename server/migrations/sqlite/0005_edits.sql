-- Edits and deletions are rows of the same log as the messages, so they
-- take ids from the same sequence and a resume after an id replays them.
-- kind: 0 a message, 1 an edit of `target`, 2 the deletion of `target`,
-- 3 a message that was deleted (its text is gone; the row stays so its
-- client_id is still known and a late resend is not stored again).
-- An edit or deletion row has an empty body: the message row holds the
-- text as it now is.
ALTER TABLE messages ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN target INTEGER;
-- When a message's text was last replaced.
ALTER TABLE messages ADD COLUMN edited_at TEXT;

-- Only messages are searched: a deleted message leaves both indexes.
DROP TRIGGER messages_search_insert;
DROP TRIGGER messages_search_delete;
DROP TRIGGER messages_search_update;

CREATE TRIGGER messages_search_insert AFTER INSERT ON messages WHEN new.kind = 0 BEGIN
    INSERT INTO message_words (rowid, body) VALUES (new.id, new.body);
    INSERT INTO message_trigrams (rowid, body) VALUES (new.id, new.body);
END;

CREATE TRIGGER messages_search_delete AFTER DELETE ON messages WHEN old.kind = 0 BEGIN
    INSERT INTO message_words (message_words, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO message_trigrams (message_trigrams, rowid, body) VALUES ('delete', old.id, old.body);
END;

CREATE TRIGGER messages_search_update AFTER UPDATE OF body, kind ON messages BEGIN
    INSERT INTO message_words (message_words, rowid, body)
        SELECT 'delete', old.id, old.body WHERE old.kind = 0;
    INSERT INTO message_trigrams (message_trigrams, rowid, body)
        SELECT 'delete', old.id, old.body WHERE old.kind = 0;
    INSERT INTO message_words (rowid, body) SELECT new.id, new.body WHERE new.kind = 0;
    INSERT INTO message_trigrams (rowid, body) SELECT new.id, new.body WHERE new.kind = 0;
END;
