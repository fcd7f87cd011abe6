//! A connection whose every write and reply must be done by one deadline.
//!
//! Why this exists: the blocking `redis::Connection` has only per-syscall
//! socket timeouts, and one exchange makes several reads: a pipeline reads
//! one reply per command (and redis-rs goes on reading after one timed
//! out), the NOSCRIPT fallback is three round trips. Against a hung server
//! each read waited out the whole timeout: a two-command pipeline under
//! `timeout_ms=1000` took 2,052 ms. [`Deadlined`] sends and reads through
//! the connection's public one-command-at-a-time calls instead, and before
//! each of them sets the socket timeouts to what is left until the
//! deadline, so the exchange as a whole ends by it.
//!
//! What stays per syscall: one reply (or one write) may take redis-rs
//! several syscalls, each allowed what was left when the reply began. A
//! server that stops halfway through a reply overruns the deadline by at
//! most the time that reply had already taken; only one trickling a reply
//! out slowly could stretch it further.

use std::io;
use std::time::{Duration, Instant};

use redis::{Cmd, Connection, ConnectionLike, ErrorKind, RedisError, RedisResult, Value};

/// A timeout already set on the socket within this much of what is left is
/// left as it is: the kernel counts socket timeouts in clock ticks (1 to
/// 10 ms) anyway, and it spares the hot path its system calls (a step that
/// starts with the same limit as the last one, and whose replies arrive
/// together, sets nothing).
const SLACK: Duration = Duration::from_millis(1);

/// What the OS reports when a socket timeout runs out (EAGAIN on Unix), so
/// a deadline that passed between two replies is classified exactly like
/// one that passed during a read (`RedisError::is_timeout`).
const TIMED_OUT: io::ErrorKind = if cfg!(windows) {
    io::ErrorKind::TimedOut
} else {
    io::ErrorKind::WouldBlock
};

/// The read and write timeouts set on a connection's socket, as far as
/// known (`None`: unknown, set before the next use).
#[derive(Debug, Default)]
pub(super) struct Timeouts {
    read: Option<Duration>,
    write: Option<Duration>,
}

/// `con`, for one exchange that must end by `deadline`.
///
/// Stickless never subscribes (so there is no pub/sub state to leave first,
/// as `Connection` checks) and never sends `MULTI`/`EXEC` (so a pipeline's
/// replies are its commands' replies, one each).
pub(super) struct Deadlined<'a> {
    con: &'a mut Connection,
    timeouts: &'a mut Timeouts,
    deadline: Instant,
    /// A send or a read failed: the connection may hold part of a request
    /// or a reply, or get a late one, and is of no further use.
    broken: bool,
}

impl<'a> Deadlined<'a> {
    pub fn new(con: &'a mut Connection, timeouts: &'a mut Timeouts, deadline: Instant) -> Self {
        Self {
            con,
            timeouts,
            deadline,
            broken: false,
        }
    }

    /// True when a send or a read failed (a timeout among others): the
    /// caller must drop the connection.
    pub fn broken(&self) -> bool {
        self.broken
    }

    fn send(&mut self, packed: &[u8]) -> RedisResult<()> {
        let sent = self
            .prepare(Io::Write)
            .and_then(|()| self.con.send_packed_command(packed));
        self.note(sent)
    }

    /// The next reply, skipping RESP3 push messages as `Connection` does:
    /// they are not replies. A server error is a reply (`Value::ServerError`).
    fn reply(&mut self) -> RedisResult<Value> {
        loop {
            let read = self
                .prepare(Io::Read)
                .and_then(|()| self.con.recv_response());
            match self.note(read)? {
                Value::Push { .. } => {}
                reply => return Ok(reply),
            }
        }
    }

    /// Sets the socket's timeout for the next send or read to what is left
    /// until the deadline; fails as a socket timeout would when nothing is.
    fn prepare(&mut self, io: Io) -> RedisResult<()> {
        if self.broken {
            // Whatever is in the connection now would be misread.
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection failed earlier in this exchange",
            )
            .into());
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(TIMED_OUT, "the reply's deadline has passed").into());
        }
        let set = match io {
            Io::Read => &mut self.timeouts.read,
            Io::Write => &mut self.timeouts.write,
        };
        if set.is_some_and(|t| t.abs_diff(left) <= SLACK) {
            return Ok(());
        }
        // Forget the old value first: a failed call may have changed it.
        *set = None;
        match io {
            Io::Read => self.con.set_read_timeout(Some(left))?,
            Io::Write => self.con.set_write_timeout(Some(left))?,
        }
        *set = Some(left);
        Ok(())
    }

    fn note<T>(&mut self, result: RedisResult<T>) -> RedisResult<T> {
        if result.is_err() {
            self.broken = true;
        }
        result
    }
}

#[derive(Clone, Copy)]
enum Io {
    Read,
    Write,
}

impl ConnectionLike for Deadlined<'_> {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.send(cmd)?;
        self.reply()
    }

    /// A pipeline: `count` replies, read one by one, each within what is
    /// left. A reply that is a server error stays in the vector, as with
    /// `Connection`, so `Pipeline::query` reports it the same way; a failed
    /// read ends the exchange at once (`Connection` would read on).
    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        if offset != 0 {
            // Only a transaction skips replies (MULTI's and the QUEUED ones).
            return Err(RedisError::from((
                ErrorKind::Client,
                "transactions are not supported on this connection",
            )));
        }
        self.send(cmd)?;
        let mut replies = Vec::with_capacity(count);
        for _ in 0..count {
            replies.push(self.reply()?);
        }
        Ok(replies)
    }

    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        self.send(&cmd.get_packed_command())?;
        if cmd.is_no_response() {
            return Ok(Value::Nil);
        }
        self.reply()
    }

    fn get_db(&self) -> i64 {
        self.con.get_db()
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        !self.broken && self.con.is_open()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::thread;

    use super::*;
    use crate::config::{Config, Endpoint, HostPort};
    use crate::connect::{self, Role};

    /// A server that answers each command it reads with the next of
    /// `answers` (after a pause), reporting the command's name; then
    /// answers nothing more, like a hung server, until the client leaves.
    fn fake_server(answers: Vec<(Duration, &'static [u8])>) -> (u16, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut writer = stream.try_clone().expect("clone");
            let mut reader = BufReader::new(stream);
            let mut answers = answers.into_iter();
            while let Some(name) = read_command(&mut reader) {
                let _ = tx.send(name);
                if let Some((after, bytes)) = answers.next() {
                    thread::sleep(after);
                    writer.write_all(bytes).expect("answer");
                }
            }
        });
        (port, rx)
    }

    /// One RESP command's name; `None` at end of file.
    fn read_command(reader: &mut BufReader<TcpStream>) -> Option<String> {
        let mut line = String::new();
        let mut args = Vec::new();
        reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
        let count: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
        for _ in 0..count {
            line.clear();
            reader.read_line(&mut line).ok()?;
            line.clear();
            reader.read_line(&mut line).ok()?;
            args.push(line.trim_end().to_owned());
        }
        args.into_iter().next()
    }

    fn connection(port: u16) -> Connection {
        let config = Config::parse(&format!("redis://127.0.0.1:{port}/0")).expect("config");
        let endpoint = Endpoint::Tcp(HostPort::new("127.0.0.1", port));
        let timeout = Duration::from_secs(5);
        connect::open(
            &config.server,
            &endpoint,
            None,
            Role::Data,
            timeout,
            timeout,
        )
        .expect("connect")
    }

    fn pipe_of_two() -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg("k").arg("v").cmd("GET").arg("k");
        pipe
    }

    #[test]
    fn a_pipeline_ends_at_its_deadline_though_each_reply_came_within_it() {
        // The first reply takes 300 ms of the 500; a hung server then
        // costs the second only the 200 left, not another 500.
        let (port, _commands) = fake_server(vec![(Duration::from_millis(300), b"+OK\r\n")]);
        let mut con = connection(port);
        let mut timeouts = Timeouts::default();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(500);
        let mut deadlined = Deadlined::new(&mut con, &mut timeouts, deadline);
        let sent = redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query::<()>(&mut deadlined);
        assert!(sent.is_ok(), "{sent:?}");
        let err = redis::cmd("GET")
            .arg("k")
            .query::<Value>(&mut deadlined)
            .expect_err("no reply");
        let took = started.elapsed();
        assert!(err.is_timeout(), "{err:?}");
        assert!(deadlined.broken());
        assert!(took >= Duration::from_millis(490), "{took:?}");
        assert!(took < Duration::from_millis(650), "{took:?}");
    }

    #[test]
    fn the_replies_of_a_pipeline_share_one_deadline() {
        // The second reply begins, and is never completed.
        let (port, _commands) = fake_server(vec![
            (Duration::from_millis(300), b"+OK\r\n"),
            (Duration::ZERO, b"$1\r\n"),
        ]);
        let mut con = connection(port);
        let mut timeouts = Timeouts::default();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(500);
        let mut deadlined = Deadlined::new(&mut con, &mut timeouts, deadline);
        let err = pipe_of_two()
            .query::<Vec<Value>>(&mut deadlined)
            .expect_err("no second reply");
        let took = started.elapsed();
        assert!(err.is_timeout(), "{err:?}");
        assert!(took < Duration::from_millis(650), "{took:?}");
    }

    #[test]
    fn a_passed_deadline_sends_nothing_and_reads_as_a_timeout() {
        let (port, commands) = fake_server(vec![(Duration::ZERO, b"+PONG\r\n")]);
        let mut con = connection(port);
        let mut timeouts = Timeouts::default();
        let mut deadlined = Deadlined::new(&mut con, &mut timeouts, Instant::now());
        let err = redis::cmd("PING")
            .query::<String>(&mut deadlined)
            .expect_err("too late");
        assert!(err.is_timeout(), "{err:?}");
        assert!(deadlined.broken());
        // Nothing further goes out on a broken connection.
        let again = redis::cmd("PING").query::<String>(&mut deadlined);
        assert!(again.is_err_and(|e| !e.is_timeout()));
        drop(con);
        assert!(commands.recv_timeout(Duration::from_secs(2)).is_err());
    }

    /// What a step sees of a pipeline whose first reply is a server error
    /// and whose second comes after a RESP3 push, of the same pipeline
    /// through `Pipeline::query`, and of a single command's error.
    fn exercise(con: &mut dyn ConnectionLike) -> [String; 3] {
        let pipe = pipe_of_two();
        let raw = con.req_packed_commands(&pipe.get_packed_pipeline(), 0, 2);
        let queried = pipe.query::<Vec<Value>>(con);
        let one = redis::cmd("EVALSHA").arg("0").arg(0).query::<Value>(con);
        [
            format!("{raw:?}"),
            format!("{queried:?}"),
            format!("{one:?}"),
        ]
    }

    #[test]
    fn server_errors_and_pushes_read_as_on_a_plain_connection() {
        const SET: &[u8] = b"-WRONGTYPE not a string\r\n>2\r\n+message\r\n+x\r\n";
        const GET: &[u8] = b"$1\r\nv\r\n";
        let run = |deadlined: bool| {
            let (port, _commands) = fake_server(vec![
                (Duration::ZERO, SET),
                (Duration::ZERO, GET),
                (Duration::ZERO, SET),
                (Duration::ZERO, GET),
                (Duration::ZERO, b"-NOSCRIPT No matching script\r\n"),
            ]);
            let mut con = connection(port);
            if deadlined {
                let mut timeouts = Timeouts::default();
                let deadline = Instant::now() + Duration::from_secs(5);
                exercise(&mut Deadlined::new(&mut con, &mut timeouts, deadline))
            } else {
                exercise(&mut con)
            }
        };
        let (plain, ours) = (run(false), run(true));
        assert_eq!(ours, plain);
        let [raw, queried, one] = &ours;
        assert!(raw.starts_with("Ok(") && raw.contains("WRONGTYPE"), "{raw}");
        assert!(raw.contains("\"v\""), "{raw}");
        assert!(queried.contains("WRONGTYPE"), "{queried}");
        assert!(one.contains("NoScript"), "{one}");
    }

    #[test]
    fn an_unchanged_timeout_is_not_set_again() {
        let (port, _commands) = fake_server(vec![(Duration::ZERO, b"+PONG\r\n"); 2]);
        let mut con = connection(port);
        let mut timeouts = Timeouts::default();
        let limit = Duration::from_secs(3);
        for _ in 0..2 {
            let mut deadlined = Deadlined::new(&mut con, &mut timeouts, Instant::now() + limit);
            let pong = redis::cmd("PING").query::<String>(&mut deadlined);
            assert_eq!(pong.ok().as_deref(), Some("PONG"));
        }
        let set = timeouts.read.expect("set");
        assert!(set.abs_diff(limit) <= SLACK, "{set:?}");
        // A later deadline is set afresh: a shorter timeout left from an
        // earlier exchange would end this one early.
        let longer = Duration::from_secs(9);
        let mut deadlined = Deadlined::new(&mut con, &mut timeouts, Instant::now() + longer);
        assert!(deadlined.prepare(Io::Read).is_ok());
        assert!(timeouts.read.is_some_and(|t| t > limit));
    }
}
