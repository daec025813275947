//! `roster schema`.

use super::{Out, Outcome, print};
use crate::roster::schema;
use clap::ValueEnum;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Which schema.
    #[arg(value_enum, default_value = "roster")]
    pub which: Which,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Which {
    /// Roster files.
    Roster,
    /// Saved and printed JSON plans.
    Plan,
}

pub fn run(args: Args, out: &mut Out) -> Outcome {
    let text = match args.which {
        Which::Roster => schema::pretty(&schema::roster_schema()),
        Which::Plan => schema::pretty(&crate::plan::schema()),
    };
    print(out, &text)
}
