//! The mail relay: `smtp://HOST:PORT` (STARTTLS when the relay offers it)
//! or `smtps://HOST:PORT` (TLS from the first byte), a user name from the
//! URL and the password only from `ROSTER_SMTP_PASSWORD`. One connection
//! is kept and reused for every message of a run.

use super::templates::Rendered;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Where the relay's password comes from.
pub const PASSWORD_VAR: &str = "ROSTER_SMTP_PASSWORD";

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The relay accepted the message.
    Sent,
    /// Try again later: a 4xx answer.
    Temporary(String),
    /// The relay could not be reached or spoken to (refused, TLS, no
    /// answer within the timeout): this message and all after it wait for
    /// another run.
    Unreachable(String),
    /// Refused for good: a 5xx answer, or an address no relay takes.
    Permanent(String),
}

/// A relay to deliver through.
///
/// lettre's own transports open their sockets with Nagle's algorithm on,
/// so the 5-byte `<CRLF>.<CRLF>` that ends each message, written after the
/// body, waits for the relay's delayed ACK (about 40 ms a message). The
/// relay is therefore spoken to over a socket opened here with
/// `TCP_NODELAY`, handed to lettre's SMTP client; STARTTLS upgrades that
/// socket in lettre, implicit TLS is set up here before it is handed over.
pub struct Relay {
    runtime: tokio::runtime::Runtime,
    host: String,
    port: u16,
    /// STARTTLS parameters (`smtp://`), taken when the relay offers it.
    starttls: TlsParameters,
    /// TLS from the first byte (`smtps://`).
    implicit: Option<tokio_rustls::TlsConnector>,
    credentials: Option<Credentials>,
    timeout: Duration,
    hello: ClientId,
    /// The one connection of the run, opened at the first message and
    /// reused until it breaks, with when it was last used.
    connection: Mutex<Option<(AsyncSmtpConnection, Instant)>>,
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
        let extra = match ca {
            Some(ca) => {
                let pem =
                    std::fs::read(ca).map_err(|e| format!("--smtp-ca {}: {e}", ca.display()))?;
                Some((ca, pem))
            }
            None => None,
        };
        let mut starttls = TlsParameters::builder(host.clone());
        if let Some((ca, pem)) = &extra {
            let cert = Certificate::from_pem(pem)
                .map_err(|e| format!("--smtp-ca {}: not a PEM certificate ({e})", ca.display()))?;
            starttls = starttls.add_root_certificate(cert);
        }
        let starttls = starttls.build_rustls().map_err(|e| format!("TLS: {e}"))?;
        let implicit = if implicit {
            Some(implicit_tls(extra.as_ref().map(|(_, pem)| pem.as_slice()))?)
        } else {
            None
        };
        let user = percent_encoding::percent_decode_str(parsed.username())
            .decode_utf8_lossy()
            .to_string();
        let credentials = match (user.is_empty(), password) {
            (false, Some(p)) => Some(Credentials::new(user, p)),
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
            (true, None) => None,
        };
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("--from `{from}`: not a mail address ({e})"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the mail client: {e}"))?;
        Ok(Relay {
            runtime,
            host,
            port,
            starttls,
            implicit,
            credentials,
            timeout,
            hello: ClientId::default(),
            connection: Mutex::new(None),
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
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = self.runtime.block_on(async {
            let reused = match slot.take() {
                // Idle a while: the relay may have closed it meanwhile.
                Some((mut c, used)) if used.elapsed() > IDLE_CHECK => {
                    let alive = tokio::time::timeout(self.timeout, c.test_connected()).await;
                    alive.unwrap_or(false).then_some(c)
                }
                Some((c, _)) => Some(c),
                None => None,
            };
            let mut connection = match reused {
                Some(c) => c,
                None => match tokio::time::timeout(self.timeout, self.connect()).await {
                    Ok(opened) => opened?,
                    Err(_) => return Err(Failure::TimedOut),
                },
            };
            let sent = tokio::time::timeout(
                self.timeout,
                connection.send(message.envelope(), &message.formatted()),
            )
            .await
            .map_err(|_| Failure::TimedOut)?;
            // Kept for the next message unless the conversation broke; a
            // timed-out one is dropped above, half-way through.
            if !connection.has_broken() {
                *slot = Some((connection, Instant::now()));
            }
            sent.map(drop).map_err(Failure::Smtp)
        });
        match result {
            Ok(()) => Delivery::Sent,
            // A relay that stopped answering gets no more messages this
            // run: each would wait out the timeout again.
            Err(Failure::TimedOut) => Delivery::Unreachable(format!(
                "the relay did not answer within {} s",
                self.timeout.as_secs_f64()
            )),
            Err(Failure::Open(e)) => Delivery::Unreachable(e),
            Err(Failure::Smtp(e)) => classify(&e),
        }
    }

    /// A new connection: TCP with `TCP_NODELAY`, TLS (from the first byte
    /// or by STARTTLS when offered), EHLO, AUTH.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Failure> {
        let refused = |e: io::Error| Failure::Open(format!("{}:{}: {e}", self.host, self.port));
        let stream = nodelay(&self.host, self.port).await.map_err(refused)?;
        let stream: Box<dyn AsyncTokioStream> = match &self.implicit {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| refused(io::Error::other(e)))?;
                let tls = tls.connect(name, stream).await.map_err(refused)?;
                Box::new(Tls(tls))
            }
            None => Box::new(stream),
        };
        let mut c = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(Failure::Smtp)?;
        if self.implicit.is_none() && c.can_starttls() {
            c.starttls(self.starttls.clone(), &self.hello)
                .await
                .map_err(Failure::Smtp)?;
        }
        if let Some(credentials) = &self.credentials {
            c.auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(Failure::Smtp)?;
        }
        Ok(c)
    }
}

impl Drop for Relay {
    /// QUIT on the connection, as a well-behaved client ends a session.
    fn drop(&mut self) {
        let slot = self
            .connection
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((mut c, _)) = slot.take() {
            let timeout = self.timeout;
            // The timer is made inside the runtime, which it needs.
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(timeout, c.quit()).await });
        }
    }
}

/// How long the connection may sit unused before it is checked (NOOP)
/// ahead of the next message.
const IDLE_CHECK: Duration = Duration::from_secs(10);

/// Why a message did not go.
enum Failure {
    /// The relay could not be reached, or TLS from the first byte failed.
    Open(String),
    /// An SMTP answer or a broken conversation.
    Smtp(SmtpError),
    /// No answer within the timeout.
    TimedOut,
}

/// The delivery an SMTP error means.
fn classify(e: &SmtpError) -> Delivery {
    match e {
        // Refused credentials (530, 534, 535) are the run's, not the
        // message's: nothing more goes out until they are fixed.
        e if e.status().is_some_and(|c| c.to_string().starts_with("53")) => {
            Delivery::Unreachable(e.to_string())
        }
        e if e.is_permanent() => Delivery::Permanent(e.to_string()),
        e if e.is_transient() => Delivery::Temporary(e.to_string()),
        e => Delivery::Unreachable(e.to_string()),
    }
}

/// A TCP connection to `host:port` (each address in turn) with Nagle's
/// algorithm off: every SMTP write is a whole command or the end of a
/// message, and none should wait for the relay's delayed ACK.
async fn nodelay(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("the host name resolves to no address")))
}

/// The TLS client of `smtps://`: the system's trusted certificates (the
/// same verifier lettre uses for STARTTLS), plus those of `--smtp-ca`.
fn implicit_tls(ca: Option<&[u8]>) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let extra: Vec<CertificateDer<'static>> = match ca {
        Some(pem) => CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--smtp-ca: not a PEM certificate ({e})"))?,
        None => Vec::new(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, Arc::clone(&provider))
            .map_err(|e| format!("TLS: {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A TLS stream lettre's client can speak SMTP over.
#[derive(Debug)]
struct Tls(TlsStream<TcpStream>);

impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for Tls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relay on 127.0.0.1:`port` and one small message for it.
    fn relay_and_message(port: u16, timeout: Duration) -> (Relay, Message) {
        let relay = Relay::new(
            &format!("smtp://127.0.0.1:{port}"),
            "Roster <noreply@example.org>",
            None,
            None,
            timeout,
        )
        .unwrap();
        let rendered = Rendered {
            subject: "Hi".into(),
            text: "text".into(),
            html: "<p>html</p>".into(),
        };
        let message = relay.message("Pat", "pat@example.org", &rendered).unwrap();
        (relay, message)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Without `TCP_NODELAY` each message's closing `<CRLF>.<CRLF>` waits
    /// for the relay's delayed ACK: the relay's socket must have it on.
    #[test]
    fn relay_connections_have_nagle_off() {
        runtime().block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let s = nodelay("localhost", port).await.unwrap();
            assert!(s.nodelay().unwrap());
            assert_eq!(s.peer_addr().unwrap().port(), port);
        });
    }

    /// A relay nobody listens on: an error naming host and port, and the
    /// run stops sending (the rest waits for the next run).
    #[test]
    fn a_refused_connection_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (relay, message) = relay_and_message(port, Duration::from_secs(5));
        match relay.send(&message) {
            Delivery::Unreachable(e) => assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    /// A relay that takes the connection and never answers: no hang past
    /// the timeout, and the run stops sending.
    #[test]
    fn a_silent_relay_times_out() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let (relay, message) = relay_and_message(port, Duration::from_secs(1));
        match relay.send(&message) {
            Delivery::Unreachable(e) => assert!(e.contains("did not answer within 1 s"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    /// A relay that closed the connection while it sat idle: the next
    /// message goes over a new one, not lost to the stale one.
    #[test]
    fn a_connection_closed_while_idle_is_replaced() {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut per_connection = Vec::new();
            for _ in 0..2 {
                let (stream, _) = listener.accept().unwrap();
                let mut out = stream.try_clone().unwrap();
                let mut lines = BufReader::new(stream);
                out.write_all(b"220 relay\r\n").unwrap();
                let mut got = 0;
                let mut line = String::new();
                while lines.read_line(&mut line).unwrap() > 0 {
                    let answer: &[u8] = match line.trim_end() {
                        "DATA" => b"354 go on\r\n",
                        "." => {
                            got += 1;
                            b"250 queued\r\n"
                        }
                        "QUIT" => b"221 bye\r\n",
                        l if l.starts_with("EHLO")
                            || l.starts_with("MAIL")
                            || l.starts_with("RCPT") =>
                        {
                            b"250 ok\r\n"
                        }
                        _ => b"",
                    };
                    out.write_all(answer).unwrap();
                    line.clear();
                    // The first connection is closed after its message.
                    if got == 1 && per_connection.is_empty() {
                        break;
                    }
                }
                per_connection.push(got);
            }
            per_connection
        });
        let (relay, message) = relay_and_message(port, Duration::from_secs(5));
        assert_eq!(relay.send(&message), Delivery::Sent);
        // As if the connection had sat unused past the check.
        if let Some((_, used)) = relay.connection.lock().unwrap().as_mut() {
            *used = Instant::now() - IDLE_CHECK - Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(relay.send(&message), Delivery::Sent);
        drop(relay);
        assert_eq!(server.join().unwrap(), [1, 1]);
    }
}
