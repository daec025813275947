//! What roster does with an opened store: plan, apply, export and import
//! as functions over `&dyn Store` (and the roster read from disk) that
//! return values. Nothing here prints, exits or knows the command line;
//! `cli` renders what these return.

pub mod accounts;
pub mod apply;
pub mod export;
pub mod import;
pub mod init;
pub mod invitations;
pub mod plan;
pub mod report;
#[cfg(test)]
mod tests;
