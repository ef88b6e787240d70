pub mod composer;
pub mod linkify;
pub mod message_list;
pub mod online_users;
pub mod open_room;
pub mod room_list;
pub mod timestamp;
pub mod typing_indicator;
