//! `roster import csv`: partners from a CSV file in the career-services
//! template (read by [`crate::app::import`]), printed as a roster file.
//! Every bad row is reported as `FILE:LINE: message` and nothing is printed
//! on stdout.

use super::{Done, Error, Out, Outcome, print};
use crate::app::import;
use crate::roster::emit::{self, EmitOptions};
use crate::roster::load::MAX_FILE_BYTES;
use std::io::Read;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Partners from a CSV file (first name, last name, email, …); `--template` prints its header.
    Csv(CsvArgs),
}

#[derive(clap::Args, Debug)]
pub struct CsvArgs {
    /// The CSV file: a header line, then one partner per line.
    #[arg(required_unless_present = "template")]
    pub file: Option<PathBuf>,
    /// Also declare this group (an organization) with every imported partner as a member.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// Print the template's header line and exit.
    #[arg(long, conflicts_with_all = ["file", "group"])]
    pub template: bool,
}

pub fn run(args: Args, out: &mut Out) -> Outcome {
    match args.what {
        What::Csv(a) => csv(a, out),
    }
}

fn csv(args: CsvArgs, out: &mut Out) -> Outcome {
    if args.template {
        return print(out, &format!("{}\n", import::template()));
    }
    let Some(file) = args.file else {
        return Err(Error::msg("name a CSV file, or give --template"));
    };
    let group = match args.group.as_deref().map(str::trim) {
        Some("") => return Err(Error::msg("--group needs a group name")),
        g => g,
    };
    let name = file.display().to_string();
    let bytes = read(&out.cwd.join(&file))
        .map_err(|reason| Error::Text(format!("{name}: cannot read: {reason}")))?;
    match import::import(&bytes, group) {
        Ok(roster) => {
            let text = emit::roster_file(&roster, &EmitOptions { show_pii: true });
            let _ = out.stdout.write_all(text.as_bytes());
            Ok(Done::Ok)
        }
        Err(errors) => Err(Error::Text(
            errors
                .iter()
                .map(|(line, message)| format!("{name}:{line}: {message}"))
                .collect::<Vec<_>>()
                .join("\n"),
        )),
    }
}

/// The file's bytes, refusing one over the roster size limit before reading it.
fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let too_big = |n: u64| {
        format!("file is {n} bytes; at most {MAX_FILE_BYTES} bytes (64 MiB) can be imported")
    };
    let meta = std::fs::metadata(path).map_err(|e| io_reason(&e))?;
    if meta.is_dir() {
        return Err("it is a directory, not a CSV file".into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| io_reason(&e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
