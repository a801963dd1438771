//! Trove's own HTTP/1 accept loop, in place of `axum::serve`, which has no timeouts: a
//! client that sends half a request head and then nothing held its socket forever, and
//! enough of them exhausted the file table. Here every connection has
//! - a header-read timeout (a request head must arrive whole within it);
//! - an idle timeout: a kept-alive connection with no request in flight that moves no byte
//!   for that long is closed;
//! - a cap on the request head's size;
//! - a cap on open connections per client address (trusted proxies exempt: behind one, every
//!   connection comes from it), over which a new connection is closed at once.
//!
//! A full file table does not leave clients queued in the backlog: one descriptor is kept
//! in reserve, given up to accept the waiting connection and close it at once, then taken
//! back, so clients see a refusal instead of a hang while idle sockets are reaped.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower_service::Service;

use super::addresses::PerAddress;

/// The connection limits (`TROVE_HEADER_READ_TIMEOUT_MS`, `TROVE_MAX_HEADER_BYTES`,
/// `TROVE_MAX_CONNECTIONS_PER_IP`, `TROVE_TRUSTED_PROXIES`).
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    /// Close a kept-alive connection that has had no request and no traffic this long.
    pub keep_alive_idle: Duration,
    pub max_header_bytes: usize,
    /// Open connections one client address may hold (0: no cap).
    pub per_address: usize,
    pub trusted_proxies: Vec<Cidr>,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits
/// for the requests in flight (the caller bounds the wait). `tap` sets socket options.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    tap: impl Fn(&TcpStream) + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_header_size(limits.max_header_bytes);
    let open = Arc::new(PerAddress::default());
    // Shutdown: `stop` tells every connection to finish its request in flight and close;
    // each holds a clone of `done`, so `finished` ends when the last one has.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (done, mut finished) = tokio::sync::mpsc::channel::<()>(1);
    let mut reserve = std::fs::File::open("/dev/null").ok();
    let mut last_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    if is_out_of_files(&e) {
                        // Give the reserve up, take the waiting client and close it at once.
                        drop(reserve.take());
                        if let Ok((tcp, _)) = listener.accept().await {
                            drop(tcp);
                        }
                        reserve = std::fs::File::open("/dev/null").ok();
                    }
                    if last_warning.map_or(true, |at| at.elapsed() > Duration::from_secs(1)) {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        last_warning = Some(Instant::now());
                    }
                    // A full file table stays full for a moment: do not spin on it.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let ip = peer.ip().to_canonical();
        let cap = if limits.trusted_proxies.iter().any(|r| r.contains(ip)) {
            0
        } else {
            limits.per_address
        };
        let Some(counted) = open.admit(ip, cap) else {
            // Over the per-address cap: closed before a byte is read.
            continue;
        };
        tap(&tcp);
        let router = router.clone();
        let activity = Arc::new(Activity::new());
        let in_service = Arc::clone(&activity);
        let service = hyper::service::service_fn(move |mut req| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            let busy = InFlight::new(&in_service);
            async move {
                let response = router.call(req).await;
                drop(busy);
                response
            }
        });
        let io = Tracked {
            inner: tcp,
            activity: Arc::clone(&activity),
        };
        let conn = http
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let (mut stopping, done) = (stopping.clone(), done.clone());
        let idle = limits.keep_alive_idle;
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            // Errors here are the client's (a reset, a timeout): nothing to report.
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { stopping.wait_for(|s| *s).await.is_ok() } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
                _ = activity.idled(idle) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop((counted, done));
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(done);
    let _ = finished.recv().await;
    Ok(())
}

/// When a connection last moved a byte, and how many of its requests are being handled.
struct Activity {
    since: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            since: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once no request is in flight and no byte has moved for `idle`.
    async fn idled(&self, idle: Duration) {
        loop {
            let last = self.since + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = last.elapsed();
            if quiet >= idle && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            tokio::time::sleep(idle.saturating_sub(quiet).max(idle / 8)).await;
        }
    }
}

/// One request being handled (a long handler moves no bytes and is not idle).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// The socket, stamping its activity on every read and write.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_ready() {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if polled.is_ready() {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if polled.is_ready() {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn is_out_of_files(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// An address range: an address and how many leading bits of it a member shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let shared = |a: u128, b: u128, width: u8| {
            let keep = u32::from(self.bits.min(width));
            keep == 0 || (a ^ b) >> (u32::from(width) - keep) == 0
        };
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(i)) => shared(u32::from(n).into(), u32::from(i).into(), 32),
            (IpAddr::V6(n), IpAddr::V6(i)) => shared(n.into(), i.into(), 128),
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an address or a CIDR range (10.0.0.0/8)");
        let (addr, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().map_err(|_| bad())?)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let width = if net.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(width);
        if bits > width {
            return Err(bad());
        }
        Ok(Cidr { net, bits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hold_their_members_and_only_those() {
        let r: Cidr = "172.16.0.0/12".parse().expect("cidr");
        assert!(r.contains("172.31.255.1".parse().expect("ip")));
        assert!(!r.contains("172.32.0.1".parse().expect("ip")));
        let one: Cidr = "10.0.0.5".parse().expect("addr");
        assert!(one.contains("10.0.0.5".parse().expect("ip")));
        assert!(!one.contains("10.0.0.6".parse().expect("ip")));
        // An IPv4 client seen on a dual-stack socket is still itself.
        assert!(one.contains("::ffff:10.0.0.5".parse().expect("ip")));
        let all: Cidr = "0.0.0.0/0".parse().expect("all");
        assert!(all.contains("8.8.8.8".parse().expect("ip")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::1/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
