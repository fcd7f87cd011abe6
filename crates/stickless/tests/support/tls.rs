//! A throw-away certificate authority (openssl CLI): a CA, a server
//! certificate for 127.0.0.1/localhost and a client certificate, all signed
//! by it, plus an unrelated CA that must not be trusted.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::RedisServer;

pub struct TestCa {
    dir: TempDir,
}

impl TestCa {
    pub fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("stickless-ca-")
            .tempdir()
            .expect("temp dir");
        let ca = Self { dir };
        ca.self_signed("ca");
        ca.self_signed("other-ca");
        ca.signed("server", "subjectAltName=IP:127.0.0.1,DNS:localhost");
        ca.signed("client", "extendedKeyUsage=clientAuth");
        ca
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn self_signed(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=stickless test {name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    fn signed(&self, name: &str, ext: &str) {
        self.openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        std::fs::write(self.path(&format!("{name}.ext")), format!("{ext}\n")).expect("write ext");
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }
    pub fn other_ca(&self) -> PathBuf {
        self.path("other-ca.pem")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.path("client.pem")
    }
    pub fn client_key(&self) -> PathBuf {
        self.path("client.key")
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `redis-server` arguments for a TLS port next to the plain one
    /// (which the harness keeps for readiness checks and assertions).
    /// `require_client_cert` turns on `tls-auth-clients`.
    pub fn server_args(&self, tls_port: u16, require_client_cert: bool) -> Vec<String> {
        let p = |n: &str| self.path(n).display().to_string();
        vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            p("server.pem"),
            "--tls-key-file".into(),
            p("server.key"),
            "--tls-ca-cert-file".into(),
            p("ca.pem"),
            "--tls-auth-clients".into(),
            if require_client_cert { "yes" } else { "no" }.into(),
        ]
    }
}

/// A server with a TLS port; `.1` is that port.
pub fn tls_server(ca: &TestCa, require_client_cert: bool) -> (RedisServer, u16) {
    let (server, ports) = RedisServer::start_with_ports(None, 1, |ports| {
        ca.server_args(ports[0], require_client_cert)
    });
    (server, ports[0])
}
