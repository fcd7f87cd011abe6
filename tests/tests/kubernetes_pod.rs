//! The pod of deploy/kubernetes/, run outside Kubernetes: php-fpm with the
//! ConfigMap's php.ini and pool file, nginx with the ConfigMap's server
//! block, the save_path and the password in the environment as the
//! Deployment sets them, and a Redis that requires that password.
//!
//! What a user would have seen without the pool's `env[STICKLESS_PASSWORD]`
//! line: no session at all, since php-fpm clears its workers' environment
//! and stickless reads the password there (`env:STICKLESS_PASSWORD`). The
//! second test proves that line is what makes it work.

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use stickless_e2e::{RedisServer, ext, free_port, http_get, php_fpm, workspace};

const PASSWORD: &str = "k8s-s3cret";

/// The block scalar `key: |` of a ConfigMap's `data`, unindented.
fn config_map_entry(file: &str, key: &str) -> String {
    let path = workspace().join("deploy/kubernetes").join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let head = format!("  {key}: |\n");
    let start = text
        .find(&head)
        .unwrap_or_else(|| panic!("{file} has no `{key}: |` entry"))
        + head.len();
    text[start..]
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect()
}

/// `text` with `from` replaced, insisting that `from` is there: a changed
/// manifest must fail here rather than run with the wrong settings.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "expected `{from}` in:\n{text}");
    text.replace(from, to)
}

/// A process stopped with SIGQUIT, the graceful stop of php-fpm and nginx
/// (each master reaps its workers before it exits), and reaped when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-QUIT")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

/// nginx and php-fpm as the pod runs them, in `dir`.
struct Pod {
    port: u16,
    _nginx: Proc,
    _fpm: Proc,
}

impl Pod {
    fn start(dir: &Path, redis: &RedisServer, pool_edit: impl Fn(String) -> String) -> Self {
        let (fpm_port, port) = (free_port(), free_port());
        let www = dir.join("www");
        fs::create_dir_all(&www).unwrap();
        fs::create_dir_all(dir.join("tmp")).unwrap();
        fs::write(
            www.join("index.php"),
            "<?php session_start(); $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1; echo 'n=', $_SESSION['n'];",
        )
        .unwrap();
        // The image's endpoint, as deploy/docker/Dockerfile copies it.
        fs::copy(
            workspace().join("deploy/local/www/metrics.php"),
            www.join("metrics.php"),
        )
        .unwrap();

        let ini = format!(
            "extension={}\nlog_errors=1\nerror_log={}\n{}",
            ext().display(),
            dir.join("php-error.log").display(),
            config_map_entry("app/php-config.yaml", "zz-sessions.ini")
        );
        fs::write(dir.join("php.ini"), ini).unwrap();
        let pool = format!(
            "[global]\nerror_log = {log}\ndaemonize = no\n[www]\nlisten = 127.0.0.1:{fpm_port}\n{pool}",
            log = dir.join("php-fpm.log").display(),
            pool = pool_edit(config_map_entry("app/php-config.yaml", "zz-pool.conf")),
        );
        fs::write(dir.join("php-fpm.conf"), pool).unwrap();
        let fpm = Command::new(php_fpm())
            .arg("-F")
            .arg("-R")
            .arg("-c")
            .arg(dir.join("php.ini"))
            .arg("-y")
            .arg(dir.join("php-fpm.conf"))
            // No distribution conf.d: only what the ConfigMap says.
            .env("PHP_INI_SCAN_DIR", "")
            .env(
                "STICKLESS_SAVE_PATH",
                format!("redis://127.0.0.1:{}/0?prefix=k8s:", redis.port()),
            )
            .env("STICKLESS_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start php-fpm");
        let fpm = Proc(fpm);

        let server = config_map_entry("app/nginx-config.yaml", "default.conf");
        let server = replaced(
            &server,
            "listen 8080;",
            &format!("listen 127.0.0.1:{port};"),
        );
        let server = replaced(&server, "127.0.0.1:9000", &format!("127.0.0.1:{fpm_port}"));
        let server = replaced(&server, "/var/www/html", &www.display().to_string());
        fs::copy("/etc/nginx/fastcgi_params", dir.join("fastcgi_params"))
            .expect("nginx's fastcgi_params (apt-get install nginx)");
        let tmp = dir.join("tmp").display().to_string();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n access_log off;\n client_body_temp_path {tmp}/cb;\n proxy_temp_path {tmp}/p;\n\
             fastcgi_temp_path {tmp}/f;\n uwsgi_temp_path {tmp}/u;\n scgi_temp_path {tmp}/s;\n{server}}}\n",
            d = dir.display()
        );
        fs::write(dir.join("nginx.conf"), conf).unwrap();
        let nginx = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let pod = Pod {
            port,
            _nginx: Proc(nginx),
            _fpm: fpm,
        };
        pod.await_ready(dir);
        pod
    }

    /// Waits (bounded) until the readiness probe's path answers 200.
    fn await_ready(&self, dir: &Path) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && http_get(self.port, "/fpm-ping", None).0 == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the pod never became ready; php-fpm log:\n{}\nnginx log:\n{}",
                fs::read_to_string(dir.join("php-fpm.log")).unwrap_or_default(),
                fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn session_cookie(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie in:\n{head}"))
        .to_owned()
}

#[test]
fn the_pods_configuration_serves_sessions_with_the_password_from_its_secret() {
    let redis = RedisServer::start_with_password(Some(PASSWORD));
    let dir = tempfile::tempdir().unwrap();
    let pod = Pod::start(dir.path(), &redis, |pool| pool);

    let (status, _, body) = http_get(pod.port, "/nginx-health", None);
    assert_eq!((status, body.as_str()), (200, "ok\n"), "liveness path");
    let (status, _, body) = http_get(pod.port, "/fpm-ping", None);
    assert_eq!((status, body.trim()), (200, "pong"), "readiness path");

    let (status, head, body) = http_get(pod.port, "/", None);
    let errors = fs::read_to_string(dir.path().join("php-error.log")).unwrap_or_default();
    assert_eq!((status, body.as_str()), (200, "n=1"), "{head}\n{errors}");
    let cookie = session_cookie(&head);
    let (_, _, body) = http_get(pod.port, "/some/route", Some(&cookie));
    assert_eq!(body, "n=2", "the front controller keeps the session");

    // The session sits under the save_path's prefix, behind the password.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("k8s:{*}:data")
        .query(&mut redis.client())
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    // /metrics.php reaches php-fpm and counts both requests.
    let (status, _, body) = http_get(pod.port, "/metrics.php", None);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.lines()
            .any(|l| l == "stickless_requests_total{outcome=\"locked\"} 2"),
        "{body}"
    );
}

#[test]
fn without_the_pools_env_line_the_workers_have_no_password() {
    let redis = RedisServer::start_with_password(Some(PASSWORD));
    let dir = tempfile::tempdir().unwrap();
    let pod = Pod::start(dir.path(), &redis, |pool| {
        replaced(&pool, "env[STICKLESS_PASSWORD] = $STICKLESS_PASSWORD\n", "")
    });
    let (_, _, body) = http_get(pod.port, "/", None);
    assert_ne!(body, "n=1", "a session without the password?");
    let errors = fs::read_to_string(dir.path().join("php-error.log")).unwrap_or_default();
    assert!(
        errors.contains("STICKLESS_PASSWORD"),
        "the warning names the missing variable:\n{errors}"
    );
}
