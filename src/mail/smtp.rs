//! The mail relay: `smtp://HOST:PORT` (STARTTLS when the relay offers it)
//! or `smtps://HOST:PORT` (TLS from the first byte), a user name from the
//! URL and the password only from `ROSTER_SMTP_PASSWORD`. One connection
//! is kept and reused for every message of a run.

use super::templates::Rendered;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{PoolConfig, SmtpTransport};
use lettre::{Message, Transport};
use std::path::Path;
use std::time::Duration;

/// Where the relay's password comes from.
pub const PASSWORD_VAR: &str = "ROSTER_SMTP_PASSWORD";

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The relay accepted the message.
    Sent,
    /// Try again later: a 4xx answer or a timeout.
    Temporary(String),
    /// The relay could not be reached or spoken to (refused, TLS): this
    /// message and all after it wait for another run.
    Unreachable(String),
    /// Refused for good: a 5xx answer, or an address no relay takes.
    Permanent(String),
}

/// A relay to deliver through.
pub struct Relay {
    transport: SmtpTransport,
    from: Mailbox,
    /// The URL as given (no password can be in it).
    pub url: String,
}

impl Relay {
    /// The relay of `url`, sending as `from`; `password` is
    /// `ROSTER_SMTP_PASSWORD`'s value, `ca` a PEM file of certificates to
    /// trust beside the system's.
    pub fn new(
        url: &str,
        from: &str,
        password: Option<String>,
        ca: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| {
            format!("--smtp `{url}`: {e}; use smtp://HOST:PORT or smtps://HOST:PORT")
        })?;
        if parsed.password().is_some() {
            // The URL itself is not repeated: it holds the password.
            return Err(format!(
                "--smtp: a password in the URL is refused (it would show in process lists and shell history); set {PASSWORD_VAR} instead"
            ));
        }
        let implicit = match parsed.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => {
                return Err(format!(
                    "--smtp `{url}`: unknown scheme `{other}`; use smtp://HOST:PORT (STARTTLS when offered) or smtps://HOST:PORT"
                ));
            }
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("--smtp `{url}`: give a host: smtp://HOST:PORT"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if parsed.path().len() > 1 || parsed.query().is_some() {
            return Err(format!(
                "--smtp `{url}`: a relay URL is smtp://[USER@]HOST:PORT, with nothing after the port"
            ));
        }
        let port = parsed.port().unwrap_or(if implicit { 465 } else { 587 });
        let mut tls = TlsParameters::builder(host.clone());
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).map_err(|e| format!("--smtp-ca {}: {e}", ca.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("--smtp-ca {}: not a PEM certificate ({e})", ca.display()))?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = tls.build_rustls().map_err(|e| format!("TLS: {e}"))?;
        let mut b = SmtpTransport::builder_dangerous(host)
            .port(port)
            .tls(if implicit {
                Tls::Wrapper(tls)
            } else {
                Tls::Opportunistic(tls)
            })
            .timeout(Some(timeout))
            // One connection, kept open and reused for the whole run.
            .pool_config(PoolConfig::new().max_size(1).min_idle(0));
        let user = percent_encoding::percent_decode_str(parsed.username())
            .decode_utf8_lossy()
            .to_string();
        match (user.is_empty(), password) {
            (false, Some(p)) => b = b.credentials(Credentials::new(user, p)),
            (false, None) => {
                return Err(format!(
                    "--smtp names the user `{user}`: set {PASSWORD_VAR} to its password"
                ));
            }
            (true, Some(_)) => {
                return Err(format!(
                    "{PASSWORD_VAR} is set but --smtp names no user: use smtp://USER@HOST:PORT"
                ));
            }
            (true, None) => {}
        }
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("--from `{from}`: not a mail address ({e})"))?;
        Ok(Relay {
            transport: b.build(),
            from,
            url: url.to_string(),
        })
    }

    /// The message for `to` (a name and an address).
    pub fn message(&self, name: &str, to: &str, mail: &Rendered) -> Result<Message, String> {
        let address = to
            .parse()
            .map_err(|e| format!("`{to}` is not a mail address ({e})"))?;
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(Some(name.to_string()), address))
            .subject(mail.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))
            .map_err(|e| e.to_string())
    }

    /// Deliver one message.
    pub fn send(&self, message: &Message) -> Delivery {
        match self.transport.send(message) {
            Ok(_) => Delivery::Sent,
            // Refused credentials (530, 534, 535) are the run's, not the
            // message's: nothing more goes out until they are fixed.
            Err(e) if e.status().is_some_and(|c| c.to_string().starts_with("53")) => {
                Delivery::Unreachable(e.to_string())
            }
            Err(e) if e.is_permanent() => Delivery::Permanent(e.to_string()),
            Err(e) if e.is_transient() || e.is_timeout() => Delivery::Temporary(e.to_string()),
            Err(e) => Delivery::Unreachable(e.to_string()),
        }
    }
}
