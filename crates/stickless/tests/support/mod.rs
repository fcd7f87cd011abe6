//! A throw-away `redis-server` per test: its own loopback port, its own
//! temporary directory, no persistence, killed by PID when dropped.
//!
//! Nothing here ever talks to a server it did not start: the helper checks
//! that the server answering on its port reports the PID it spawned.

#![allow(dead_code)] // Each test binary uses a different subset.

pub mod cluster;
pub mod deployment;
pub mod sentinel;
pub mod tls;

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The binary under test; override with `STICKLESS_REDIS_SERVER`
/// (e.g. /usr/bin/valkey-server).
pub(crate) fn redis_server_binary() -> String {
    std::env::var("STICKLESS_REDIS_SERVER").unwrap_or_else(|_| "/usr/bin/redis-server".into())
}

/// The CLI that forms clusters: `STICKLESS_REDIS_CLI`, else the server's
/// sibling (`valkey-cli` next to `valkey-server`), else `redis-cli`.
pub(crate) fn redis_cli_binary() -> String {
    if let Ok(cli) = std::env::var("STICKLESS_REDIS_CLI") {
        return cli;
    }
    let server = PathBuf::from(redis_server_binary());
    server
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_suffix("-server"))
        .map(|stem| server.with_file_name(format!("{stem}-cli")))
        .filter(|cli| cli.is_file())
        .map(|cli| cli.display().to_string())
        .unwrap_or_else(|| "redis-cli".into())
}

/// How long a freshly spawned server may take to answer PING.
const STARTUP_BUDGET: Duration = Duration::from_secs(10);
/// Pause between readiness probes (a bounded poll, not a guess at start-up time).
const POLL: Duration = Duration::from_millis(5);
/// Ports tried before giving up (another process may grab a port between
/// our probe and redis binding it).
const PORT_ATTEMPTS: usize = 8;

/// A running `redis-server` owned by the test.
pub struct RedisServer {
    child: Child,
    port: u16,
    password: Option<String>,
    /// Extra command-line arguments it was started with (kept for restarts).
    args: Vec<String>,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers.
    pub fn start() -> Self {
        Self::start_with_password(None)
    }

    /// Like [`start`](Self::start), with `requirepass` set when `password` is given.
    pub fn start_with_password(password: Option<&str>) -> Self {
        Self::start_with(password, &[])
    }

    /// Like [`start_with_password`](Self::start_with_password), with extra
    /// `redis-server` arguments (cluster mode, replication, ...).
    pub fn start_with(password: Option<&str>, args: &[String]) -> Self {
        Self::start_with_ports(password, 0, |_| args.to_vec()).0
    }

    /// Like [`start_with`](Self::start_with) for a server that listens on
    /// `extra` more ports (TLS): each attempt picks them afresh with its own
    /// port and builds the arguments from them, so a port taken meanwhile by
    /// another test's server costs one attempt, not the start. Returns the
    /// extra ports that worked.
    pub fn start_with_ports(
        password: Option<&str>,
        extra: usize,
        args: impl Fn(&[u16]) -> Vec<String>,
    ) -> (Self, Vec<u16>) {
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let ports: Vec<u16> = (0..extra).map(|_| free_port()).collect();
            match Self::try_start(port, password, &args(&ports)) {
                Ok(server) => return (server, ports),
                Err(why) => failures.push(format!("port {port} (and {ports:?}): {why}")),
            }
        }
        panic!(
            "redis-server did not start after {PORT_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// Kills this server and starts a fresh, empty one on the same port (as
    /// a restarted or failed-over Redis behind a stable address looks).
    pub fn restart(self) -> Self {
        let (port, password, args) = (self.port, self.password.clone(), self.args.clone());
        drop(self);
        // The port was ours a moment ago; retry briefly while the kernel
        // releases it.
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            match Self::try_start(port, password.as_deref(), &args) {
                Ok(server) => return server,
                Err(why) => failures.push(why),
            }
        }
        panic!(
            "redis-server did not restart on port {port}:\n{}",
            failures.join("\n")
        );
    }

    fn try_start(port: u16, password: Option<&str>, args: &[String]) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("stickless-redis-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let log = dir.path().join("redis.log");
        let mut cmd = Command::new(redis_server_binary());
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
        if let Some(password) = password {
            // masterauth too: replicas of a protected primary log in with it.
            cmd.args(["--requirepass", password, "--masterauth", password]);
        }
        cmd.args(args);
        // Every server also listens on a Unix socket in its own directory.
        cmd.arg("--unixsocket")
            .arg(dir.path().join("redis.sock"))
            .args(["--unixsocketperm", "700"]);
        let child = cmd
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", redis_server_binary()))?;
        // From here on, Drop kills the child whatever happens.
        let mut server = Self {
            child,
            port,
            password: password.map(str::to_owned),
            args: args.to_vec(),
            dir,
        };
        let deadline = Instant::now() + STARTUP_BUDGET;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("exited with {status}; log:\n{}", server.log()));
            }
            if server.answers_as_ours() {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no PING reply within {STARTUP_BUDGET:?}; log:\n{}",
                    server.log()
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// True once the server on our port answers PING and reports our PID.
    fn answers_as_ours(&self) -> bool {
        let Ok(mut con) = self.try_client(Duration::from_millis(200)) else {
            return false;
        };
        let pong: redis::RedisResult<String> = redis::cmd("PING").query(&mut con);
        if pong.as_deref() != Ok("PONG") {
            return false;
        }
        let info: redis::RedisResult<String> = redis::cmd("INFO").arg("server").query(&mut con);
        info.is_ok_and(|info| {
            info.lines()
                .any(|l| l.trim() == format!("process_id:{}", self.pid()))
        })
    }

    /// A direct connection with the given reply budget, or the error.
    pub fn try_client_pub(&self, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        self.try_client(timeout)
    }

    fn try_client(&self, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        let con = redis::Client::open(self.url())?.get_connection_with_timeout(timeout)?;
        con.set_read_timeout(Some(timeout))?;
        con.set_write_timeout(Some(timeout))?;
        Ok(con)
    }

    /// `unix:///<dir>/redis.sock`, the same server over its Unix socket.
    pub fn unix_url(&self) -> String {
        format!("unix://{}", self.dir.path().join("redis.sock").display())
    }

    /// `redis://[:password@]127.0.0.1:<port>/0`, without options.
    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its private directory (sockets, logs, cluster state).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The password it requires, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The server's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A direct connection for assertions (2 s reply budget).
    pub fn client(&self) -> redis::Connection {
        self.try_client(Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("test client for {}: {e}", self.url()))
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("<no log: {e}>"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Kills the server outright (SIGKILL) and reaps it, as a crashed node.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a server killed by [`kill`](Self::kill) again on the same
    /// port, directory and arguments, as a restarted pod with its volume:
    /// a cluster node finds its `nodes.conf` and rejoins.
    pub fn respawn(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = self.log_path();
        let mut cmd = Command::new(redis_server_binary());
        cmd.args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
        if let Some(password) = &self.password {
            cmd.args(["--requirepass", password, "--masterauth", password]);
        }
        cmd.args(&self.args)
            .arg("--unixsocket")
            .arg(self.dir.path().join("redis.sock"))
            .args(["--unixsocketperm", "700"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = cmd.spawn().expect("respawn redis-server");
        let deadline = Instant::now() + STARTUP_BUDGET;
        while !self.answers_as_ours() {
            assert!(
                Instant::now() < deadline,
                "respawned server never answered; log:\n{}",
                self.log()
            );
            thread::sleep(POLL);
        }
    }

    /// Freezes the server (SIGSTOP): its sockets stay open but nothing answers.
    pub fn stop(&self) {
        self.signal("-STOP");
        self.await_state(|s| s == 'T' || s == 't', "stopped");
    }

    /// Resumes a server frozen by [`stop`](Self::stop) (SIGCONT).
    pub fn cont(&self) {
        self.signal("-CONT");
        self.await_state(|s| s != 'T' && s != 't', "running");
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(sig)
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {} failed", self.pid());
    }

    /// Waits (bounded) until /proc shows the process in a matching state.
    fn await_state(&self, want: impl Fn(char) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(state) = proc_state(self.pid())
                && want(state)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server {} never showed as {what}",
                self.pid()
            );
            thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL to our own child's PID (also ends a SIGSTOPped one), then
        // reap it. std never signals a child it has already reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The state letter of `/proc/<pid>/stat` (R, S, T, ...).
fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": comm may hold spaces or parentheses; the state
    // follows the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.trim_start().chars().next()
}

/// A loopback port nobody listens on right now (never 6379).
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if port != 6379 {
            return port;
        }
    }
}

impl deployment::Deployment for RedisServer {
    fn url(&self) -> String {
        RedisServer::url(self)
    }

    fn url_with_password(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}/0", self.port)
    }

    fn client(&self) -> deployment::Client {
        deployment::Client::Single(RedisServer::client(self))
    }

    fn stop_owner(&self, _key: &str) {
        self.stop();
    }

    fn cont_owner(&self, _key: &str) {
        self.cont();
    }

    fn kill_clients(&self) -> i64 {
        kill_clients(&mut RedisServer::client(self))
    }

    fn blocked_clients(&self, _key: &str) -> i64 {
        blocked_clients(&mut RedisServer::client(self))
    }

    fn name(&self) -> &'static str {
        "standalone"
    }
}

/// `CLIENT KILL` of every normal client but the caller's own.
/// `blocked_clients` from `INFO clients`.
pub fn blocked_clients(con: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO").arg("clients").query(con).expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO clients reports blocked_clients")
}

pub fn kill_clients(con: &mut redis::Connection) -> i64 {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(con)
        .expect("CLIENT KILL")
}
