//! The listener: HTTP/1.1 connections (over TLS when configured) driven by
//! hyper with a header timeout, a limit on open connections, and a shutdown
//! that waits a bounded time for requests in flight, then drops the rest.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// How connections are served.
pub struct Net {
    /// A request's head must arrive within this; an idle keep-alive
    /// connection is closed after it too.
    pub header_timeout: Duration,
    /// A client that reads none of a response for this long is dropped.
    pub write_timeout: Duration,
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// On shutdown, how long requests in flight may still finish.
    pub shutdown_timeout: Duration,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Take the scheme from `X-Forwarded-Proto` (a proxy in front sets it).
    pub trust_proxy: bool,
}

/// The scheme the client used, as the one `X-Forwarded-Proto` the handlers
/// see: `https` over TLS, the proxy's word when trusted, otherwise none.
/// A client's own header never reaches them unless `trust_proxy`.
pub const FORWARDED_PROTO: &str = "x-forwarded-proto";

fn set_scheme(headers: &mut HeaderMap, tls: bool, trust_proxy: bool) {
    let proxied = trust_proxy
        .then(|| headers.get(FORWARDED_PROTO))
        .flatten()
        .and_then(|v| v.to_str().ok())
        // A chain of proxies lists the client's hop first.
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| v == "https" || v == "http");
    headers.remove(FORWARDED_PROTO);
    let scheme = if tls {
        Some("https".to_string())
    } else {
        proxied
    };
    if let Some(s) = scheme
        && let Ok(v) = HeaderValue::from_str(&s)
    {
        headers.insert(FORWARDED_PROTO, v);
    }
}

/// Serve `app` on `listener` until `shutdown` resolves; then stop
/// accepting, let requests in flight finish for `shutdown_timeout`, and
/// drop the connections still open.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    net: Net,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(net.max_connections.max(1)));
    let (stop, stopped) = watch::channel(false);
    let tls = net.tls.clone().map(TlsAcceptor::from);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // A slot first: past the limit, connections wait in the kernel's
        // listen queue and cost nothing here.
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            s = Arc::clone(&slots).acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let (stream, addr) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: pass, then go on.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while conns.try_join_next().is_some() {}
        let conn = Connection {
            app: app.clone(),
            tls: tls.clone(),
            header_timeout: net.header_timeout,
            write_timeout: net.write_timeout,
            trust_proxy: net.trust_proxy,
            stopped: stopped.clone(),
            peer: Peer(addr.ip()),
        };
        conns.spawn(async move {
            conn.run(stream).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(net.shutdown_timeout, drained)
        .await
        .is_err()
    {
        tracing::warn!(
            connections = conns.len(),
            "shutting down: closing connections whose requests did not finish in time"
        );
        conns.abort_all();
    }
}

/// One request being handled, counted while it lives.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Busy(Arc::clone(count))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Connection {
    app: Router,
    tls: Option<TlsAcceptor>,
    header_timeout: Duration,
    write_timeout: Duration,
    trust_proxy: bool,
    stopped: watch::Receiver<bool>,
    peer: Peer,
}

/// The address a request's connection comes from, as a request extension
/// (behind a reverse proxy: the proxy's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer(pub std::net::IpAddr);

impl Connection {
    async fn run(mut self, stream: tokio::net::TcpStream) {
        let _ = stream.set_nodelay(true);
        let stream = Stall::new(stream, self.write_timeout);
        match self.tls.take() {
            None => self.http(TokioIo::new(stream), false).await,
            Some(acceptor) => {
                // The handshake is part of the request's head: same deadline.
                let handshake = tokio::time::timeout(self.header_timeout, acceptor.accept(stream));
                let stream = tokio::select! {
                    r = handshake => match r {
                        Ok(Ok(s)) => s,
                        _ => return,
                    },
                    _ = self.stopped.changed() => return,
                };
                self.http(TokioIo::new(stream), true).await
            }
        }
    }

    async fn http<I>(mut self, io: I, tls: bool)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let app = TowerToHyperService::new(self.app);
        let trust_proxy = self.trust_proxy;
        let peer = self.peer;
        // Requests of this connection being handled now.
        let busy = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&busy);
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            set_scheme(req.headers_mut(), tls, trust_proxy);
            req.extensions_mut().insert(peer);
            let turn = Busy::new(&counted);
            let response = hyper::service::Service::call(&app, req);
            async move {
                let r = response.await;
                drop(turn);
                r
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .keep_alive(true);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = self.stopped.changed() => {
                // Nothing in flight (idle, or a request still arriving):
                // closed at once. Otherwise the request in flight finishes
                // and no other is taken.
                if busy.load(Ordering::SeqCst) == 0 {
                    return;
                }
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
}

/// The TLS configuration of `--tls-cert` and `--tls-key` (PEM files).
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let read = |p: &Path, what: &str| {
        std::fs::read(p).map_err(|e| format!("cannot read the TLS {what} {}: {e}", p.display()))
    };
    let cert_pem = read(cert, "certificate")?;
    let key_pem = read(key, "key")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "{}: no certificate in it; give a PEM file with -----BEGIN CERTIFICATE-----",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "{}: no private key in it ({e}); give a PEM file with -----BEGIN PRIVATE KEY-----",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            format!(
                "{} and {} do not make a usable certificate and key: {e}",
                cert.display(),
                key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A stream whose writes fail once the peer has read nothing for
/// `timeout`: a client that asks and never reads does not keep its
/// connection (and its slot) for ever.
struct Stall<S> {
    inner: S,
    timeout: Duration,
    /// Running while a write waits for the peer.
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Stall<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Stall {
            inner,
            timeout,
            waiting: None,
        }
    }

    /// What a write that returned `poll` amounts to, the deadline counted.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.waiting = None;
            return poll;
        }
        let timeout = self.timeout;
        let deadline = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing of the response in time",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stall<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stall<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, poll)
    }
}
