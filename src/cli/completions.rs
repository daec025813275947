//! `roster completions SHELL` and `roster man [-o DIR]`, generated from the
//! command line's own definitions so they never drift from it.

use super::{Cli, Done, Error, Out, Outcome, print};
use clap::CommandFactory;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for; the script goes to stdout.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn completions(args: CompletionsArgs, out: &mut Out) -> Outcome {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "roster", &mut script);
    print(out, &String::from_utf8_lossy(&script))
}

#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write roster.1 and one page per verb (roster-plan.1, …) into this
    /// directory (made if missing) instead of printing roster.1.
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn man(args: ManArgs, out: &mut Out) -> Outcome {
    let cmd = Cli::command();
    match args.out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .map_err(|e| Error::msg(format!("cannot render the man page: {e}")))?;
            print(out, &String::from_utf8_lossy(&page))
        }
        Some(dir) => {
            let fail = |e: std::io::Error| {
                Error::msg(format!(
                    "{}: cannot write the man pages: {e}; give -o a directory you can write",
                    dir.display()
                ))
            };
            std::fs::create_dir_all(&dir).map_err(fail)?;
            clap_mangen::generate_to(cmd, &dir).map_err(fail)?;
            let mut pages: Vec<String> = std::fs::read_dir(&dir)
                .map_err(fail)?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("roster") && n.ends_with(".1"))
                .collect();
            pages.sort();
            let _ = writeln!(
                out.stderr,
                "Wrote {} to {}: {}",
                crate::report::plural(pages.len(), "man page"),
                dir.display(),
                pages.join(", ")
            );
            Ok(Done::Ok)
        }
    }
}
