//! `roster serve` and `roster token`.

use super::apply::actor;
use super::plan::StoreArg;
use super::{Done, Error, Out, Outcome};
use crate::report::printable;
use crate::store::{
    self, Store,
    directory::{Scope, Token},
};
use std::sync::Arc;
use std::time::Duration;

/// How long a request waits for a free store connection before 503.
const STORE_WAIT: Duration = Duration::from_secs(5);

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
    /// Seconds the queries of one listing (its filter) may run, together,
    /// on every store, before they are cancelled and the client is told to
    /// narrow the filter.
    #[arg(long, default_value = "5", env = "ROSTER_FILTER_TIMEOUT", hide_env_values = true, value_parser = positive_seconds)]
    pub filter_timeout: f64,
    /// Roster files or directories whose `policy` block writes through the
    /// server obey: user-manager grants (`user_manager_roles`), the roles
    /// and entitlements a User may be given (`roles`, `default_roles`,
    /// `entitlements`). Without it, the default policy, whose catalog also
    /// takes the roles and entitlement kinds the store already holds.
    #[arg(long = "roster", env = "ROSTER_SERVE_ROSTER", hide_env_values = true)]
    pub roster: Vec<std::path::PathBuf>,
    /// Seconds a client has to send a request's headers (and the TLS
    /// handshake); an idle keep-alive connection is closed after it too.
    #[arg(long, default_value = "10", hide_env_values = true, env = "ROSTER_HEADER_TIMEOUT", value_parser = positive_seconds)]
    pub header_timeout: f64,
    /// Seconds a client has to send a request's body.
    #[arg(long, default_value = "30", hide_env_values = true, env = "ROSTER_BODY_TIMEOUT", value_parser = positive_seconds)]
    pub body_timeout: f64,
    /// Seconds a client may read nothing of a response before the
    /// connection is dropped.
    #[arg(long, default_value = "30", hide_env_values = true, env = "ROSTER_WRITE_TIMEOUT", value_parser = positive_seconds)]
    pub write_timeout: f64,
    /// Connections served at once; more wait until one closes.
    #[arg(long, default_value = "256", hide_env_values = true, env = "ROSTER_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connections: u32,
    /// Store connections kept for requests (the most a server opens for
    /// reads; writes take one more). A request that finds none free for 5 s
    /// gets 503.
    #[arg(long, default_value = "8", hide_env_values = true, env = "ROSTER_STORE_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub store_connections: u32,
    /// PostgreSQL: seconds any one statement may run (0: no limit).
    #[arg(long, default_value = "10", hide_env_values = true, env = "ROSTER_STATEMENT_TIMEOUT", value_parser = super::apply::seconds)]
    pub statement_timeout: f64,
    /// On SIGTERM or Ctrl-C, seconds requests in flight have to finish
    /// before their connections are dropped and roster exits.
    #[arg(long, default_value = "5", hide_env_values = true, env = "ROSTER_SHUTDOWN_TIMEOUT", value_parser = super::apply::seconds)]
    pub shutdown_timeout: f64,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(
        long,
        hide_env_values = true,
        env = "ROSTER_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        hide_env_values = true,
        env = "ROSTER_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<std::path::PathBuf>,
    /// Behind a reverse proxy that terminates TLS: take the scheme of
    /// `location` and `$ref` URLs from its `X-Forwarded-Proto` header.
    #[arg(long, hide_env_values = true, env = "ROSTER_TRUST_PROXY")]
    pub trust_proxy: bool,
    /// The activation page (`GET`/`POST /activate`), where invited people
    /// and password resets set a password from the mailed link: on or off.
    #[arg(
        long,
        value_enum,
        default_value = "on",
        hide_env_values = true,
        env = "ROSTER_ACTIVATION_PAGE"
    )]
    pub activation_page: Switch,
    /// How long an invitation, reminder or reset link works after it was
    /// mailed: a number and a unit, `m`, `h` or `d` (e.g. `14d`, `36h`).
    #[arg(long, default_value = "14d", hide_env_values = true, env = "ROSTER_INVITE_TTL", value_parser = ttl)]
    pub invite_ttl: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// A token lifetime: `N` followed by `m`, `h` or `d`, from 1 minute to 365 days.
pub fn ttl(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let per = match unit {
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => 0,
    };
    match n.parse::<u64>() {
        Ok(n) if per > 0 && n > 0 && n.checked_mul(per).is_some_and(|s| s <= 365 * 86_400) => {
            Ok(Duration::from_secs(n * per))
        }
        _ => Err(format!(
            "`{s}` is not a lifetime: write a number and m, h or d (e.g. 14d, 36h), at most 365d"
        )),
    }
}

/// A number of seconds above 0.
fn positive_seconds(s: &str) -> Result<f64, String> {
    match super::apply::seconds(s) {
        Ok(v) if v > 0.0 => Ok(v),
        _ => Err(format!(
            "`{s}` is not a number of seconds above 0 and at most 86400"
        )),
    }
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
fn policy(args: &ServeArgs, out: &mut Out) -> Result<crate::roster::model::Policy, Error> {
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
        return Err(Error::Text(format!(
            "{text}error: the roster given with --roster has errors; fix them (`roster check`) before serving"
        )));
    }
    Ok(checked.roster.policy)
}

pub fn serve(args: ServeArgs, out: &mut Out) -> Outcome {
    let url = args.store.url.clone();
    let policy = policy(&args, out)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            Some(crate::serve::net::tls_config(cert, key).map_err(Error::msg)?)
        }
        _ => None,
    };
    // No request holds the database for long (a migration is not capped).
    store::sql::postgres::set_statement_timeout(Duration::from_secs_f64(args.statement_timeout));
    // The store, opened once and kept by the server. Created or migrated
    // before accepting requests; committed, not dropped: on PostgreSQL the
    // migration is part of the session's transaction.
    let store: Arc<dyn store::Store> = Arc::from(store::open(
        &url,
        crate::serve::store_options(
            Duration::from_secs_f64(args.lock_timeout),
            args.store_connections as usize,
        ),
    )?);
    store.begin("roster serve", &store::now())?.commit()?;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Err(Error::msg(format!("cannot start the server: {e}"))),
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
            "roster serve: {}://{addr}{} (store {})",
            if tls.is_some() { "https" } else { "http" },
            crate::serve::PREFIX,
            store::display_url(&url)
        );
        // Request logs follow, on stderr.
        match log_sink() {
            Ok(sink) => {
                let _ = tracing_subscriber::fmt()
                    .with_writer(Arc::new(sink))
                    .with_ansi(false)
                    .with_target(false)
                    .with_max_level(tracing::Level::INFO)
                    // A log line that cannot be written (stderr closed) is
                    // dropped: the fallback, eprintln!, would wait for ever
                    // on the stderr lock `out` holds, and the request with it.
                    .log_internal_errors(false)
                    .try_init();
            }
            Err(e) => eprintln!("roster serve: no request log: {e}"),
        }
        crate::serve::run(
            crate::serve::Config {
                url: url.clone(),
                body_timeout: Duration::from_secs_f64(args.body_timeout),
                store_connections: args.store_connections as usize,
                store_wait: STORE_WAIT,
                activation: (args.activation_page == Switch::On).then_some(args.invite_ttl),
                filter_timeout: Duration::from_secs_f64(args.filter_timeout),
                catalog: crate::serve::catalog::Catalog::of(&policy, !args.roster.is_empty()),
                policy,
            },
            store,
            crate::serve::net::Net {
                header_timeout: Duration::from_secs_f64(args.header_timeout),
                write_timeout: Duration::from_secs_f64(args.write_timeout),
                max_connections: args.max_connections as usize,
                shutdown_timeout: Duration::from_secs_f64(args.shutdown_timeout),
                tls,
                trust_proxy: args.trust_proxy,
            },
            listener,
        )
        .await;
        Ok::<(), String>(())
    });
    // Store work still running (a slow query of a dropped request) does not
    // hold the process: its connection closes with it.
    runtime.shutdown_background();
    result.map(|()| Done::Ok).map_err(Error::Message)
}

/// Stderr for the request log, written from the server's threads: its own
/// handle, since this thread holds the lock of `std::io::stderr` for `out`.
fn log_sink() -> std::io::Result<std::fs::File> {
    #[cfg(unix)]
    use std::os::fd::AsFd as AsOwned;
    #[cfg(windows)]
    use std::os::windows::io::AsHandle as AsOwned;
    #[cfg(unix)]
    let handle = std::io::stderr().as_fd().try_clone_to_owned();
    #[cfg(windows)]
    let handle = std::io::stderr().as_handle().try_clone_to_owned();
    handle.map(std::fs::File::from)
}

fn scopes(given: &[String]) -> Result<Option<Vec<String>>, String> {
    if given.is_empty() {
        return Ok(None);
    }
    let mut groups = Vec::new();
    for s in given {
        match s.strip_prefix("group:") {
            Some(g) if !g.trim().is_empty() => groups.push(g.to_string()),
            _ => {
                return Err(format!(
                    "--scope `{}`: write it as group:NAME",
                    printable(s)
                ));
            }
        }
    }
    groups.sort();
    groups.dedup();
    Ok(Some(groups))
}

pub fn token(args: TokenArgs, out: &mut Out) -> Outcome {
    let url = &args.store;
    let open = || store::open(url, store::Options::default());
    match args.command {
        TokenCommand::Create { name, scope } => {
            // A name is printed by `token list` and in request logs: no
            // control, escape or bidi character may hide in it.
            if name.trim().is_empty() || printable(&name) != name.as_str() {
                return Err(Error::msg(format!(
                    "--name `{}` must be a non-empty name without control, escape or bidi characters",
                    printable(&name)
                )));
            }
            let scope = scopes(&scope).map_err(Error::Message)?;
            let opened = open()?;
            let opened = opened.as_ref();
            if let Some(groups) = &scope {
                let found = opened.reader()?.groups(Some(groups))?;
                if let Some(g) = groups.iter().find(|g| !found.iter().any(|f| &f.name == *g)) {
                    return Err(Error::msg(format!(
                        "group `{}` does not exist in store {}",
                        printable(g),
                        store::display_url(url)
                    )));
                }
            }
            let token = format!("rst_{}", crate::secrets::token());
            let digest = crate::secrets::sha256(token.as_bytes());
            in_session(opened, args.actor, |s| {
                s.create_token(&name, &digest, scope.as_deref())
            })?;
            let _ = writeln!(out.stdout, "{token}");
            let _ = writeln!(
                out.stderr,
                "token `{}` created ({}); it is shown only now: keep it in a secret store",
                printable(&name),
                match &scope {
                    None => "admin".to_string(),
                    Some(g) => format!(
                        "groups: {}",
                        g.iter()
                            .map(|g| printable(g))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            );
            Ok(Done::Ok)
        }
        TokenCommand::List => {
            for t in open()?.served()?.tokens()? {
                let _ = writeln!(out.stdout, "{}", describe(&t));
            }
            Ok(Done::Ok)
        }
        TokenCommand::Revoke { name } => {
            in_session(open()?.as_ref(), args.actor, |s| s.revoke_token(&name))?;
            let _ = writeln!(out.stderr, "token `{}` revoked", printable(&name));
            Ok(Done::Ok)
        }
    }
}

/// One audited write to the store, committed.
fn in_session(
    opened: &dyn Store,
    actor_name: Option<String>,
    write: impl FnOnce(&mut dyn store::Session) -> Result<(), store::StoreError>,
) -> Result<i64, store::StoreError> {
    let mut s = opened.begin(&actor(actor_name), &store::now())?;
    write(s.as_mut())?;
    s.commit()
}

fn describe(t: &Token) -> String {
    let scope = match &t.scope {
        Scope::Admin => "admin".to_string(),
        Scope::Groups(g) => g
            .iter()
            .map(|g| format!("group:{}", printable(&g.name)))
            .collect::<Vec<_>>()
            .join(","),
        Scope::Broken(why) => format!("unusable ({}; revoke it)", printable(why)),
    };
    let state = match &t.revoked_at {
        Some(at) => format!("revoked {at}"),
        None => "live".to_string(),
    };
    format!(
        "{}\t{scope}\tcreated {}\t{state}",
        printable(&t.name),
        printable(&t.created_at)
    )
}

#[cfg(test)]
mod tests {
    use super::ttl;
    use std::time::Duration;

    #[test]
    fn lifetimes_take_a_unit_and_stay_within_a_year() {
        assert_eq!(ttl("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(ttl("36h"), Ok(Duration::from_secs(36 * 3_600)));
        assert_eq!(ttl("90m"), Ok(Duration::from_secs(90 * 60)));
        for bad in [
            "",
            "14",
            "0d",
            "d",
            "1.5d",
            "366d",
            "-1d",
            "14 days",
            "99999999999999999d",
        ] {
            assert!(ttl(bad).is_err(), "{bad}");
        }
    }
}
