-- Search: two full-text indexes over the messages, kept in step by triggers.
-- Words (any script) for short terms; trigrams for parts of words, URLs,
-- identifiers like tokio::spawn and text without spaces (CJK). Both fold
-- case and accents.
CREATE VIRTUAL TABLE message_words USING fts5 (
    body, content = 'messages', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE message_trigrams USING fts5 (
    body, content = 'messages', content_rowid = 'id',
    tokenize = 'trigram remove_diacritics 1'
);
INSERT INTO message_words (message_words) VALUES ('rebuild');
INSERT INTO message_trigrams (message_trigrams) VALUES ('rebuild');

CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
    INSERT INTO message_words (rowid, body) VALUES (new.id, new.body);
    INSERT INTO message_trigrams (rowid, body) VALUES (new.id, new.body);
END;

CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
    INSERT INTO message_words (message_words, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO message_trigrams (message_trigrams, rowid, body) VALUES ('delete', old.id, old.body);
END;

CREATE TRIGGER messages_search_update AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO message_words (message_words, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO message_trigrams (message_trigrams, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO message_words (rowid, body) VALUES (new.id, new.body);
    INSERT INTO message_trigrams (rowid, body) VALUES (new.id, new.body);
END;
