//! `roster`: a declarative roster reconciler.
pub mod check;
pub mod cli;
pub mod report;
pub mod roster;
