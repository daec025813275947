//! Mail to people: invitations, reminders and password resets rendered
//! from templates ([`templates`]) and delivered through a relay
//! ([`smtp`]). What is sent when is the outbox's, in the store.

pub mod smtp;
pub mod templates;
