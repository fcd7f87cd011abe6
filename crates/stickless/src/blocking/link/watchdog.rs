//! A hard deadline for everything one exchange does on a connection.
//!
//! Why this exists: the blocking `redis::Connection` has only per-syscall
//! socket timeouts, and one exchange is several syscalls. A pipeline reads
//! one reply per command and goes on reading after the first read timed
//! out, the NOSCRIPT fallback is three round trips, a large reply or
//! request is many reads or writes. Against a hung server each of them
//! waits out the full timeout: a two-command pipeline under
//! `timeout_ms=1000` took 2,052 ms. redis-rs exposes neither the socket nor
//! a deadline, so the watchdog finds the socket itself (below) and, when an
//! exchange outlives its deadline, shuts it down: the read or write blocked
//! on it, and every later one, returns at once.
//!
//! One thread per process, started on first use (so after php-fpm's fork)
//! and asleep unless a deadline is due. A descriptor is only ever shut
//! down while its exchange is armed, and disarming takes the same lock as
//! firing, so the watchdog can never touch a descriptor that was closed
//! and reused.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// A connection's socket, found by [`identify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Socket(i32);

/// Finds the socket that `mark(read, write)` sets the timeouts of: marks it
/// with two random timeouts nothing else uses (days long, in whole seconds,
/// which every kernel stores exactly) and looks for the one descriptor of
/// this process that carries both. `None` when it cannot tell (another
/// platform, an ambiguous match): the exchange then relies on its socket
/// timeouts alone. The caller sets the real timeouts afterwards.
pub(super) fn identify(
    mark: impl FnOnce(Duration, Duration) -> std::io::Result<()>,
) -> Option<Socket> {
    let random = getrandom::u64().ok()?;
    let read = MARK_BASE + (random & 0xf_ffff);
    let write = MARK_BASE + ((random >> 20) & 0xf_ffff);
    mark(Duration::from_secs(read), Duration::from_secs(write)).ok()?;
    sys::find_marked(read, write).map(Socket)
}

/// Markers start here (about 12 days): far above any timeout in use.
const MARK_BASE: u64 = 1_000_000;

/// An exchange under watch; [`disarm`](Self::disarm) it when it returns.
pub(super) struct Armed {
    id: Option<u64>,
}

/// Watches `socket` until `deadline`; a no-op without a socket.
pub(super) fn arm(socket: Option<Socket>, deadline: Instant) -> Armed {
    let Some(socket) = socket else {
        return Armed { id: None };
    };
    let mut watch = lock();
    let pid = std::process::id();
    if watch.pid != pid {
        // Inherited across fork: the parent's thread and exchanges are not
        // in this process.
        *watch = Watch::empty(pid);
    }
    if !watch.running {
        let spawned = thread::Builder::new()
            .name("stickless-deadline".into())
            .stack_size(64 * 1024)
            .spawn(run);
        if spawned.is_err() {
            // No thread, no hard deadline: the socket timeouts still bound
            // each syscall.
            return Armed { id: None };
        }
        watch.running = true;
    }
    watch.next_id += 1;
    let id = watch.next_id;
    watch.arms.push(Arm {
        id,
        socket,
        deadline,
        fired: false,
    });
    // Wake the thread only when it would sleep past this deadline: most
    // exchanges end long before theirs, so the thread mostly sleeps on.
    if watch.wakes_at.is_none_or(|at| deadline < at) {
        DUE.notify_one();
    }
    Armed { id: Some(id) }
}

impl Armed {
    /// Ends the watch; true when the deadline passed and the socket was
    /// shut down (the connection is then of no further use).
    pub fn disarm(mut self) -> bool {
        self.take()
    }

    fn take(&mut self) -> bool {
        let Some(id) = self.id.take() else {
            return false;
        };
        let mut watch = lock();
        match watch.arms.iter().position(|a| a.id == id) {
            Some(i) => watch.arms.swap_remove(i).fired,
            None => false,
        }
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        // A step that panicked must not leave its socket armed.
        self.take();
    }
}

struct Arm {
    id: u64,
    socket: Socket,
    deadline: Instant,
    fired: bool,
}

struct Watch {
    pid: u32,
    running: bool,
    next_id: u64,
    arms: Vec<Arm>,
    /// When the thread wakes next by itself (`None`: only when woken).
    wakes_at: Option<Instant>,
}

impl Watch {
    const fn empty(pid: u32) -> Self {
        Self {
            pid,
            running: false,
            next_id: 0,
            arms: Vec::new(),
            wakes_at: None,
        }
    }
}

static WATCH: Mutex<Watch> = Mutex::new(Watch::empty(0));
static DUE: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, Watch> {
    // The state stays consistent at every await point; a panic elsewhere
    // must not disable deadlines.
    WATCH.lock().unwrap_or_else(PoisonError::into_inner)
}

fn run() {
    let mut watch = lock();
    loop {
        let now = Instant::now();
        for arm in watch.arms.iter_mut() {
            if !arm.fired && arm.deadline <= now {
                sys::shut_down(arm.socket.0);
                arm.fired = true;
            }
        }
        let next = watch
            .arms
            .iter()
            .filter(|a| !a.fired)
            .map(|a| a.deadline)
            .min();
        watch.wakes_at = next;
        watch = match next {
            Some(due) => {
                DUE.wait_timeout(watch, due.saturating_duration_since(now))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => DUE.wait(watch).unwrap_or_else(PoisonError::into_inner),
        };
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::mem;

    /// The one descriptor whose receive and send timeouts are `read` and
    /// `write` seconds.
    pub fn find_marked(read: u64, write: u64) -> Option<i32> {
        let mut found = None;
        for entry in std::fs::read_dir("/proc/self/fd").ok()? {
            let Some(fd) = entry
                .ok()
                .and_then(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
            else {
                continue;
            };
            if timeout_secs(fd, libc::SO_RCVTIMEO) == Some(read)
                && timeout_secs(fd, libc::SO_SNDTIMEO) == Some(write)
            {
                if found.is_some() {
                    return None;
                }
                found = Some(fd);
            }
        }
        found
    }

    /// A socket timeout in whole seconds; `None` for anything else
    /// (not a socket, closed meanwhile, a fraction of a second).
    fn timeout_secs(fd: i32, option: libc::c_int) -> Option<u64> {
        let mut tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        let mut len = libc::socklen_t::try_from(mem::size_of::<libc::timeval>()).ok()?;
        // SAFETY: `tv` and `len` are valid for writes of the sizes given;
        // getsockopt only reads the option, and on a descriptor that is not
        // a socket (or no longer open) it fails without side effects.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&raw mut tv).cast(),
                &raw mut len,
            )
        };
        (rc == 0 && tv.tv_usec == 0)
            .then(|| u64::try_from(tv.tv_sec).ok())
            .flatten()
    }

    pub fn shut_down(fd: i32) {
        // SAFETY: called only while the exchange owning `fd` is armed, so
        // the descriptor is open and is that connection's socket (see the
        // module comment). shutdown(2) closes nothing; the connection
        // sees end-of-file and is dropped by its owner.
        unsafe {
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub fn find_marked(_read: u64, _write: u64) -> Option<i32> {
        None
    }

    pub fn shut_down(_fd: i32) {}
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use super::*;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    fn identified(stream: &TcpStream) -> Option<Socket> {
        identify(|read, write| {
            stream.set_read_timeout(Some(read))?;
            stream.set_write_timeout(Some(write))
        })
    }

    #[test]
    fn finds_the_socket_among_others() {
        let (client, _server) = pair();
        let (_other, _its_server) = pair();
        let socket = identified(&client).expect("found");
        assert_eq!(socket, Socket(std::os::fd::AsRawFd::as_raw_fd(&client)));
    }

    #[test]
    fn a_read_past_its_deadline_returns_at_the_deadline() {
        let (mut client, _server) = pair();
        let socket = identified(&client);
        assert!(socket.is_some());
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let started = Instant::now();
        let armed = arm(socket, started + Duration::from_millis(100));
        let read = client.read(&mut [0; 16]);
        let fired = armed.disarm();
        let took = started.elapsed();
        assert!(fired);
        assert!(matches!(read, Ok(0)), "{read:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn a_disarmed_socket_is_left_alone() {
        let (mut client, mut server) = pair();
        let socket = identified(&client);
        let armed = arm(socket, Instant::now() + Duration::from_millis(50));
        assert!(!armed.disarm());
        thread::sleep(Duration::from_millis(100));
        server.write_all(b"+OK\r\n").expect("write");
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut buf = [0; 5];
        client.read_exact(&mut buf).expect("still open");
        assert_eq!(&buf, b"+OK\r\n");
    }
}
