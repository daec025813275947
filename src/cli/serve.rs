//! `roster serve` and `roster token`.

use super::Out;
use super::apply::actor;
use super::plan::{StoreArg, store_error};
use crate::store::{
    self,
    directory::{Scope, Token},
};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Address to listen on.
    #[arg(
        long,
        default_value = "127.0.0.1:8080",
        env = "ROSTER_LISTEN",
        hide_env_values = true
    )]
    pub listen: String,
    /// Seconds a write waits for another writer holding the store's lock.
    #[arg(long, default_value = "10", env = "ROSTER_LOCK_TIMEOUT", hide_env_values = true, value_parser = super::apply::seconds)]
    pub lock_timeout: f64,
    /// Milliseconds the queries of one listing (its filter) may run before
    /// the store cancels them and the client is told to narrow the filter.
    #[arg(long, default_value = "5000", env = "ROSTER_STATEMENT_TIMEOUT", hide_env_values = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub statement_timeout: u64,
    /// Roster files or directories whose `policy` block user-manager grants
    /// made through the server obey (`user_manager_roles`); without it, the
    /// default policy.
    #[arg(long = "roster", env = "ROSTER_SERVE_ROSTER", hide_env_values = true)]
    pub roster: Vec<std::path::PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// The account store the tokens are for.
    #[arg(long = "store", env = "ROSTER_STORE", hide_env_values = true, default_value = store::DEFAULT_URL, global = true)]
    pub store: String,
    #[command(subcommand)]
    pub command: TokenCommand,
    /// Who is acting, for the audit log (default: the user running roster).
    #[arg(long, env = "ROSTER_ACTOR", hide_env_values = true, global = true)]
    pub actor: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a token; it is printed once and only its digest is kept.
    Create {
        /// A unique name: recorded as the actor of every write made with the token.
        #[arg(long)]
        name: String,
        /// Limit the token to the memberships of a group (`group:NAME`; repeatable).
        /// Without it the token is an admin token.
        #[arg(long = "scope")]
        scope: Vec<String>,
    },
    /// List tokens (names, scopes, dates; never the tokens).
    List,
    /// Revoke a token by name.
    Revoke { name: String },
}

/// The policy grants through the server obey: the roster's, else the default.
fn policy(args: &ServeArgs, out: &mut Out) -> Result<crate::roster::model::Policy, u8> {
    if args.roster.is_empty() {
        return Ok(Default::default());
    }
    let (checked, _) = crate::check::check_paths_while(&args.roster, &out.cwd, |_| ());
    if checked.has_errors() {
        let style = crate::report::Style {
            color: out.color,
            show_pii: false,
        };
        let text = crate::report::human(&checked.findings, &checked.roster.files, style);
        let _ = out.stderr.write_all(text.as_bytes());
        let _ = writeln!(
            out.stderr,
            "error: the roster given with --roster has errors; fix them (`roster check`) before serving"
        );
        return Err(1);
    }
    Ok(checked.roster.policy)
}

pub fn serve(args: ServeArgs, out: &mut Out) -> u8 {
    let url = args.store.url.clone();
    let policy = match policy(&args, out) {
        Ok(p) => p,
        Err(code) => return code,
    };
    // Create or migrate the store before accepting requests.
    let ready = store::begin(
        &url,
        "roster serve",
        &store::now(),
        std::time::Duration::from_secs_f64(args.lock_timeout),
    );
    // Committed, not dropped: on PostgreSQL the migration is part of the
    // session's transaction.
    if let Err(e) = ready.and_then(|s| s.commit()) {
        return store_error(out, &e);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(out.stderr, "error: cannot start the server: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| {
                format!(
                    "cannot listen on {}: {e}; pick another address with --listen",
                    args.listen
                )
            })?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        // The first line says where the service is, for scripts and tests.
        eprintln!(
            "roster serve: http://{addr}{} (store {})",
            crate::serve::PREFIX,
            store::display_url(&url)
        );
        crate::serve::run(
            crate::serve::Config {
                url: url.clone(),
                lock_timeout: std::time::Duration::from_secs_f64(args.lock_timeout),
                statement_timeout: std::time::Duration::from_millis(args.statement_timeout),
                policy,
            },
            listener,
        )
        .await
        .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(out.stderr, "error: {e}");
            1
        }
    }
}

fn scopes(given: &[String]) -> Result<Option<Vec<String>>, String> {
    if given.is_empty() {
        return Ok(None);
    }
    let mut groups = Vec::new();
    for s in given {
        match s.strip_prefix("group:") {
            Some(g) if !g.trim().is_empty() => groups.push(g.to_string()),
            _ => return Err(format!("--scope `{s}`: write it as group:NAME")),
        }
    }
    groups.sort();
    groups.dedup();
    Ok(Some(groups))
}

pub fn token(args: TokenArgs, out: &mut Out) -> u8 {
    let url = &args.store;
    match args.command {
        TokenCommand::Create { name, scope } => {
            if name.trim().is_empty() || name.chars().any(char::is_control) {
                let _ = writeln!(
                    out.stderr,
                    "error: --name must be a non-empty name without control characters"
                );
                return 1;
            }
            let scope = match scopes(&scope) {
                Ok(s) => s,
                Err(e) => {
                    let _ = writeln!(out.stderr, "error: {e}");
                    return 1;
                }
            };
            if let Some(groups) = &scope {
                let known = store::open_reader(url).and_then(|mut r| r.groups(Some(groups)));
                match known {
                    Ok(found) => {
                        if let Some(g) =
                            groups.iter().find(|g| !found.iter().any(|f| &f.name == *g))
                        {
                            let _ = writeln!(
                                out.stderr,
                                "error: group `{g}` does not exist in store {}",
                                store::display_url(url)
                            );
                            return 1;
                        }
                    }
                    Err(e) => return store_error(out, &e),
                }
            }
            let token = format!("rst_{}", crate::secrets::token());
            let digest = crate::secrets::sha256(token.as_bytes());
            let done = in_session(url, args.actor, |s| {
                s.create_token(&name, &digest, scope.as_deref())
            });
            match done {
                Ok(_) => {
                    let _ = writeln!(out.stdout, "{token}");
                    let _ = writeln!(
                        out.stderr,
                        "token `{name}` created ({}); it is shown only now: keep it in a secret store",
                        match &scope {
                            None => "admin".to_string(),
                            Some(g) => format!("groups: {}", g.join(", ")),
                        }
                    );
                    0
                }
                Err(e) => store_error(out, &e),
            }
        }
        TokenCommand::List => match store::open_directory(url).and_then(|mut d| d.tokens()) {
            Ok(list) => {
                for t in list {
                    let _ = writeln!(out.stdout, "{}", describe(&t));
                }
                0
            }
            Err(e) => store_error(out, &e),
        },
        TokenCommand::Revoke { name } => {
            let done = in_session(url, args.actor, |s| s.revoke_token(&name));
            match done {
                Ok(_) => {
                    let _ = writeln!(out.stderr, "token `{name}` revoked");
                    0
                }
                Err(e) => store_error(out, &e),
            }
        }
    }
}

/// One audited write to the store, committed.
fn in_session(
    url: &str,
    actor_name: Option<String>,
    write: impl FnOnce(&mut dyn store::Session) -> Result<(), store::StoreError>,
) -> Result<i64, store::StoreError> {
    let mut s = store::begin(
        url,
        &actor(actor_name),
        &store::now(),
        std::time::Duration::from_secs(10),
    )?;
    write(s.as_mut())?;
    s.commit()
}

fn describe(t: &Token) -> String {
    let scope = match &t.scope {
        Scope::Admin => "admin".to_string(),
        Scope::Groups(g) => g
            .iter()
            .map(|g| format!("group:{}", g.name))
            .collect::<Vec<_>>()
            .join(","),
        Scope::Broken(why) => format!("unusable ({why}; revoke it)"),
    };
    let state = match &t.revoked_at {
        Some(at) => format!("revoked {at}"),
        None => "live".to_string(),
    };
    format!("{}\t{scope}\tcreated {}\t{state}", t.name, t.created_at)
}
