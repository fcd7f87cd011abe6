//! A TCP proxy on loopback that delays each direction by half a round trip,
//! standing in for the network between a pod and Redis (this machine has no
//! `netem`). PHP connects to the proxy; the proxy connects to Redis.
//!
//! Bytes read from one side are written to the other no earlier than
//! `rtt / 2` after they were read, in order, so a request and its reply
//! cross it in at least `rtt`. It models latency, not bandwidth: chunks read
//! back to back leave back to back.
//!
//! tokio's timers tick in whole milliseconds, which would turn a 0.25 ms
//! delay into up to 1.25 ms; deadlines are therefore kept by a thread of
//! their own that sleeps on the OS's high-resolution timer and wakes each
//! waiting chunk when its time has come (never before).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};

/// Connections served at once; more are refused. A stack opens a few per
/// php-fpm worker, so this is far above what the benchmark needs.
const MAX_CONNECTIONS: usize = 512;
/// Chunks in flight per direction before the reader waits: bounds the
/// memory a fast sender can tie up to this many times `CHUNK`.
const IN_FLIGHT: usize = 64;
const CHUNK: usize = 16 * 1024;

/// A running proxy; stopped (and its threads joined) on drop.
pub struct DelayProxy {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DelayProxy {
    /// Listens on a free loopback port and forwards every connection to
    /// `upstream`, which must be on loopback too, delaying each direction
    /// by `rtt / 2`. Connections that come before `upstream` listens are
    /// closed, as a refused connect would be.
    pub fn start(upstream: SocketAddr, rtt: Duration) -> Result<Self> {
        if !upstream.ip().is_loopback() {
            bail!("the delay proxy forwards to loopback only, not {upstream}");
        }
        let listener = StdListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("binding the delay proxy on loopback")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let timer = Timer::start()?;
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("delay-proxy".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        eprintln!("delay proxy: no runtime: {e}");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        eprintln!("delay proxy: cannot register its listener");
                        return;
                    };
                    tokio::select! {
                        () = serve(listener, upstream, rtt / 2, timer) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime cancels every connection's tasks;
                // their timer handles go with them, which ends the timer.
            })
            .context("starting the delay proxy's thread")?;
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: TcpListener, upstream: SocketAddr, delay: Duration, timer: Timer) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of descriptors, say: let connections close first.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(client);
            continue;
        };
        let timer = timer.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            // Redis's replies are small and latency is the point.
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_rx, client_tx) = client.into_split();
            let (server_rx, server_tx) = server.into_split();
            tokio::join!(
                pipe(client_rx, server_tx, delay, timer.clone()),
                pipe(server_rx, client_tx, delay, timer),
            );
        });
    }
}

/// Copies `from` to `to`, each chunk no earlier than `delay` after it was
/// read. Ends when `from` ends (then shuts `to` down) or either side fails.
async fn pipe(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    delay: Duration,
    timer: Timer,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Bytes)>(IN_FLIGHT);
    let reader = async move {
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            buf.reserve(CHUNK);
            match from.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let due = Instant::now() + delay;
                    if tx.send((due, buf.split().freeze())).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            timer.until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Wakes futures at precise instants (see the module's comment).
#[derive(Clone)]
struct Timer {
    requests: std_mpsc::Sender<(Instant, oneshot::Sender<()>)>,
}

impl Timer {
    /// The timer's thread ends when the last handle is dropped.
    fn start() -> Result<Self> {
        let (requests, incoming) = std_mpsc::channel::<(Instant, oneshot::Sender<()>)>();
        std::thread::Builder::new()
            .name("delay-proxy-timer".into())
            .spawn(move || run_timer(&incoming))
            .context("starting the delay proxy's timer thread")?;
        Ok(Self { requests })
    }

    /// Returns at `due` or later; at once if the timer is gone (the proxy
    /// is stopping, and nothing will be written any more).
    async fn until(&self, due: Instant) {
        if Instant::now() >= due {
            return;
        }
        let (wake, woken) = oneshot::channel();
        if self.requests.send((due, wake)).is_ok() {
            let _ = woken.await;
        }
    }
}

/// Entries ordered by deadline only.
struct Due(Instant, oneshot::Sender<()>);

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

fn run_timer(incoming: &std_mpsc::Receiver<(Instant, oneshot::Sender<()>)>) {
    let mut heap: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|Reverse(d)| d.0 <= now) {
            if let Some(Reverse(Due(_, wake))) = heap.pop() {
                let _ = wake.send(());
            }
        }
        let next = match heap.peek() {
            // The condition variable behind recv_timeout sleeps on a
            // high-resolution timer, unlike tokio's millisecond wheel.
            Some(Reverse(d)) => incoming.recv_timeout(d.0.saturating_duration_since(now)),
            None => incoming
                .recv()
                .map_err(|_| std_mpsc::RecvTimeoutError::Disconnected),
        };
        match next {
            Ok((due, wake)) => heap.push(Reverse(Due(due, wake))),
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            // Every Timer handle is gone: the proxy stopped.
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream as StdStream;
    use std::process::{Child, Command, Stdio};

    /// A throw-away redis-server on a free port, killed by its PID on drop.
    struct Redis {
        child: Child,
        port: u16,
    }

    impl Redis {
        /// A free port can be taken again before redis-server binds it (by
        /// another test's proxy, say): the server is ours only once it says
        /// it listens on that port; otherwise another port is tried.
        fn start() -> Self {
            for _ in 0..5 {
                let port = StdListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .and_then(|l| l.local_addr())
                    .expect("a free port")
                    .port();
                assert_ne!(port, 6379);
                let child = Command::new("redis-server")
                    .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--save", "", "--appendonly", "no"])
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("redis-server starts");
                let mut redis = Self { child, port };
                if redis.listens() {
                    return redis;
                }
            }
            panic!("redis-server did not start on any of 5 free ports");
        }

        /// Whether this child, still running, answers on its own port.
        fn listens(&mut self) -> bool {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return false;
                }
                if let Ok(mut con) = StdStream::connect(("127.0.0.1", self.port)) {
                    let mut reply = [0; 64];
                    let said = con
                        .write_all(b"CONFIG GET port\r\n")
                        .and_then(|()| con.read(&mut reply));
                    let port = self.port.to_string();
                    return said.is_ok_and(|n| {
                        String::from_utf8_lossy(&reply[..n]).ends_with(&format!("{port}\r\n"))
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        }

        fn addr(&self) -> SocketAddr {
            SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
        }
    }

    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Round trips of inline PINGs on one connection.
    fn pings(addr: SocketAddr, n: usize) -> Vec<Duration> {
        let stream = StdStream::connect(addr).expect("connects");
        stream.set_nodelay(true).expect("nodelay");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut writer = stream;
        (0..n)
            .map(|_| {
                let start = Instant::now();
                writer.write_all(b"PING\r\n").expect("sends");
                let mut line = String::new();
                reader.read_line(&mut line).expect("reads");
                assert_eq!(line, "+PONG\r\n");
                start.elapsed()
            })
            .collect()
    }

    #[test]
    fn a_ping_through_the_proxy_takes_at_least_the_round_trip() {
        let redis = Redis::start();
        let rtt = Duration::from_millis(20);
        let proxy = DelayProxy::start(redis.addr(), rtt).expect("proxy starts");
        let direct = pings(redis.addr(), 20);
        let delayed = pings(proxy.addr(), 20);
        assert!(
            delayed.iter().all(|d| *d >= rtt),
            "a PING beat the round trip: {delayed:?}"
        );
        // The machine alone is faster: the delay is the proxy's.
        assert!(direct.iter().min().is_some_and(|d| *d < rtt), "{direct:?}");
    }

    #[test]
    fn big_values_cross_intact_and_in_order() {
        let redis = Redis::start();
        let proxy = DelayProxy::start(redis.addr(), Duration::from_micros(500)).expect("starts");
        let mut con = StdStream::connect(proxy.addr()).expect("connects");
        // 2 MB: many chunks, more than IN_FLIGHT of them, so the reader
        // waits for the writer along the way.
        let value: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut set = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", value.len()).into_bytes();
        set.extend_from_slice(&value);
        set.extend_from_slice(b"\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        con.write_all(&set).expect("sends");
        let header = format!("+OK\r\n${}\r\n", value.len());
        let mut reply = vec![0; header.len() + value.len() + 2];
        con.read_exact(&mut reply).expect("reads both replies");
        assert_eq!(&reply[..header.len()], header.as_bytes());
        assert!(reply[header.len()..header.len() + value.len()] == value[..]);
    }

    #[test]
    fn only_loopback_upstreams_are_accepted() {
        let far = SocketAddr::from(([192, 0, 2, 1], 6380));
        let err = DelayProxy::start(far, Duration::from_millis(1))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}
