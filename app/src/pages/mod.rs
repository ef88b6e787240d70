pub mod chat;
pub mod login;
pub mod not_found;
