pub mod composer;
pub mod message_list;
pub mod online_users;
