-- History pages and unread counts read messages only (kind 0): an index of
-- those alone keeps them from stepping over edit and deletion rows, however
-- many there are.
CREATE INDEX messages_room_message_id ON messages (room, id) WHERE kind = 0;
