//! The desired state: roster files, their model, loading and normalization.
pub mod emit;
pub mod load;
pub mod model;
pub mod normalize;
pub mod schema;
pub mod yaml;

pub use load::{Entry, Origin, Roster, Section, SourceFile};
