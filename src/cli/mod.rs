//! The command line: parsing, one file per verb, exit codes decided here.

mod accounts;
pub mod apply;
mod check;
mod completions;
mod import;
mod init;
mod invitations;
mod plan;
mod report;
mod schema;
mod serve;
mod store;

use clap::{Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "roster",
    version,
    about = "Declarative roster reconciler: groups, partners and user-manager grants as YAML under Git"
)]
pub struct Cli {
    /// When to color output (NO_COLOR is respected by `auto`).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        env = "ROSTER_COLOR",
        hide_env_values = true
    )]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate roster files: schema, references and policy.
    Check(check::Args),
    /// Plan: resolve every partner against the store and list the changes.
    Plan(plan::Args),
    /// Apply a roster (plan, confirm, apply) or a saved plan.
    Apply(apply::Args),
    /// Unified diff of the live store against the roster, as YAML.
    Diff(store::DiffArgs),
    /// The live store as a roster file.
    Export(store::ExportArgs),
    /// The store's audit log.
    Log(store::LogArgs),
    /// Invitations and password resets: each one's state, and which are due
    /// a reminder; `send` delivers them over SMTP.
    Invitations(invitations::InvitationsArgs),
    /// Queue a password-reset mail for these accounts (sent by `invitations send`).
    ResetPassword(invitations::ResetArgs),
    /// The store's accounts with their groups, roles, entitlements and case
    /// managers, filtered as user screens filter them.
    Accounts(accounts::Args),
    /// Print a JSON Schema.
    Schema(schema::Args),
    /// Partners from a CSV file, printed as roster YAML.
    Import(import::Args),
    /// Publish the store over SCIM 2.0.
    Serve(serve::ServeArgs),
    /// API tokens for `serve` (admin, or scoped to groups).
    Token(serve::TokenArgs),
    /// Shell completions (bash, zsh, fish, powershell, elvish) on stdout.
    Completions(completions::CompletionsArgs),
    /// The man page on stdout, or every page into a directory with -o.
    Man(completions::ManArgs),
    /// An audit report of the store as one self-contained HTML page.
    Report(report::Args),
    /// A new roster repository from a store (or empty): roster files, policy, CODEOWNERS, CI.
    Init(init::Args),
}

/// What a verb writes: stdout and stderr, captured so tests and `run` agree.
pub struct Out<'a> {
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
    pub color: bool,
    pub cwd: PathBuf,
    /// The store the command opened, when `--verbose` asks for its
    /// request count after the command's own output.
    pub verbose_store: Option<std::sync::Arc<dyn crate::store::Store>>,
}

/// Why a command failed: rendered once, by [`run`], on stderr.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `error: …`.
    #[error("error: {0}")]
    Message(String),
    /// A store's error: it quotes names and answers from the store or
    /// provider, so control characters are shown escaped.
    #[error("error: {}", crate::report::printable_text(&.0.to_string()))]
    Store(#[from] StoreError),
    /// Lines that name their own place (`FILE:LINE: …`), or that are not
    /// errors of roster's (`Apply cancelled; nothing changed.`).
    #[error("{0}")]
    Text(String),
    /// What failed is already in the output (findings, a plan with
    /// unresolved partners or violations), or cannot be said (stdout is
    /// closed): only the exit code is left to give.
    #[error("")]
    Reported,
}

use crate::store::StoreError;

impl Error {
    /// The exit code (SPEC §6): 1 for every error, violation or unresolved
    /// partner.
    pub fn code(&self) -> u8 {
        1
    }

    /// An `error: …` line.
    pub fn msg(m: impl std::fmt::Display) -> Self {
        Error::Message(m.to_string())
    }
}

/// How a command that did not fail ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Exit 0.
    Ok,
    /// Exit 2: `plan --detailed-exitcode` found changes.
    Changes,
}

/// What every verb returns.
pub type Outcome = Result<Done, Error>;

/// Stdout written whole, or the command fails quietly (a closed pipe).
pub fn print(out: &mut Out, text: &str) -> Outcome {
    out.stdout
        .write_all(text.as_bytes())
        .map(|()| Done::Ok)
        .map_err(|_| Error::Reported)
}

/// Parse arguments and run. Exit codes: 0 success, 1 error or violation,
/// 2 changes (`plan --detailed-exitcode`).
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let stdout = std::io::stdout();
    let color = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    let mut so = stdout.lock();
    let mut se = std::io::stderr().lock();
    let mut out = Out {
        stdout: &mut so,
        stderr: &mut se,
        color,
        cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        verbose_store: None,
    };
    let outcome = match cli.command {
        Command::Check(a) => check::run(a, &mut out),
        Command::Plan(a) => plan::run(a, &mut out),
        Command::Apply(a) => apply::run(a, &mut out),
        Command::Diff(a) => store::diff(a, &mut out),
        Command::Export(a) => store::export(a, &mut out),
        Command::Log(a) => store::log(a, &mut out),
        Command::Invitations(a) => invitations::run(a, &mut out),
        Command::ResetPassword(a) => invitations::reset_password(a, &mut out),
        Command::Accounts(a) => accounts::run(a, &mut out),
        Command::Schema(a) => schema::run(a, &mut out),
        Command::Import(a) => import::run(a, &mut out),
        Command::Serve(a) => serve::serve(a, &mut out),
        Command::Token(a) => serve::token(a, &mut out),
        Command::Completions(a) => completions::completions(a, &mut out),
        Command::Man(a) => completions::man(a, &mut out),
        Command::Report(a) => report::run(a, &mut out),
        Command::Init(a) => init::run(a, &mut out),
    };
    let code = finish(outcome, &mut out);
    let _ = out.stdout.flush();
    ExitCode::from(code)
}

/// Say what failed (once), then how many requests a remote store took for
/// `--verbose`; the exit code.
fn finish(outcome: Outcome, out: &mut Out) -> u8 {
    let code = match outcome {
        Ok(Done::Ok) => 0,
        Ok(Done::Changes) => 2,
        Err(e) => {
            let text = e.to_string();
            if !text.is_empty() {
                let _ = writeln!(out.stderr, "{text}");
            }
            e.code()
        }
    };
    if let Some(n) = out.verbose_store.take().and_then(|s| s.requests()) {
        let _ = writeln!(
            out.stderr,
            "store: {}",
            crate::report::plural(n as usize, "request")
        );
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Environment values are the user's (store URLs hold passwords):
    /// `--help` names the variable and never shows its value.
    #[test]
    fn help_never_shows_an_environment_value() {
        fn walk(cmd: &clap::Command, path: &str, bare: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.get_env().is_some() && !arg.is_hide_env_values_set() {
                    bare.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), bare);
            }
        }
        let mut bare = Vec::new();
        walk(&Cli::command(), "roster", &mut bare);
        assert!(bare.is_empty(), "add hide_env_values = true: {bare:?}");
    }
}
