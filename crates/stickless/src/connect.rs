//! How to reach one node: TCP or Unix, TLS with the configured files, ACL
//! credentials, database. Shared by both drivers; the blocking one also
//! opens the connection here.

use std::net::SocketAddr;
use std::time::Duration;

use redis::{
    Client, ClientTlsConfig, Connection, ConnectionAddr, ErrorKind, IntoConnectionInfo,
    RedisConnectionInfo, RedisError, RedisResult, TlsCertificates,
};

use crate::config::{Endpoint, Secret, Server, TlsFiles};

/// Whose credentials a connection presents.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Role {
    /// A node holding sessions: the server's user, password and database.
    Data,
    /// A sentinel: its own credentials, database 0.
    Sentinel,
}

/// Connects to `endpoint` within `connect_timeout`, with `io_timeout` on
/// every later read and write. `addr`, for plain TCP, is the resolved
/// address to use instead of looking the host name up again (its port is
/// the endpoint's); TLS needs the name, to verify the certificate, and
/// ignores it.
pub(crate) fn open(
    server: &Server,
    endpoint: &Endpoint,
    addr: Option<SocketAddr>,
    role: Role,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> RedisResult<Connection> {
    let con =
        client_at(server, endpoint, addr, role)?.get_connection_with_timeout(connect_timeout)?;
    con.set_read_timeout(Some(io_timeout))?;
    con.set_write_timeout(Some(io_timeout))?;
    Ok(con)
}

/// A client for `endpoint` (no I/O), with TLS files read afresh.
#[cfg(feature = "tokio")]
pub(crate) fn client(server: &Server, endpoint: &Endpoint, role: Role) -> RedisResult<Client> {
    client_at(server, endpoint, None, role)
}

fn client_at(
    server: &Server,
    endpoint: &Endpoint,
    addr: Option<SocketAddr>,
    role: Role,
) -> RedisResult<Client> {
    let (user, password, db) = match role {
        Role::Data => (&server.username, &server.password, server.db),
        Role::Sentinel => (&server.sentinel_username, &server.sentinel_password, 0),
    };
    let addr = match (endpoint, &server.tls) {
        (Endpoint::Tcp(hp), Some(tls)) => {
            install_crypto_provider();
            ConnectionAddr::TcpTls {
                host: hp.host.clone(),
                port: hp.port,
                insecure: tls.insecure,
                tls_params: None,
            }
        }
        (Endpoint::Tcp(hp), None) => {
            let host = addr.map_or_else(|| hp.host.clone(), numeric_host);
            ConnectionAddr::Tcp(host, hp.port)
        }
        (Endpoint::Unix(path), _) => ConnectionAddr::Unix(path.clone()),
    };
    let mut redis = RedisConnectionInfo::default()
        .set_db(db)
        .set_skip_set_lib_name();
    if let Some(user) = user {
        redis = redis.set_username(user);
    }
    if let Some(password) = password.as_ref().map(Secret::expose) {
        redis = redis.set_password(password);
    }
    let info = addr.into_connection_info()?.set_redis_settings(redis);
    match &server.tls {
        Some(tls) if tls.ca.is_some() || tls.cert.is_some() => {
            Client::build_with_tls(info, certificates(tls)?)
        }
        _ => Client::open(info),
    }
}

/// An address as a host that needs no lookup; an IPv6 link-local one keeps
/// its scope (`fe80::1%2`), which the system resolver reads numerically.
fn numeric_host(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V6(v6) if v6.scope_id() != 0 => format!("{}%{}", v6.ip(), v6.scope_id()),
        other => other.ip().to_string(),
    }
}

/// Reads the TLS files afresh (they may have been rotated since the last
/// connection).
fn certificates(tls: &TlsFiles) -> RedisResult<TlsCertificates> {
    let read = |what: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            RedisError::from((
                ErrorKind::InvalidClientConfig,
                what,
                format!("cannot read `{}`: {e}", path.display()),
            ))
        })
    };
    let root_cert = tls.ca.as_deref().map(|p| read("tls_ca", p)).transpose()?;
    let client_tls = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read("tls_cert", cert)?,
            client_key: read("tls_key", key)?,
        }),
        (None, None) => None,
        _ => {
            return Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "tls_cert and tls_key",
                "must be set together".to_owned(),
            )));
        }
    };
    Ok(TlsCertificates {
        client_tls,
        root_cert,
    })
}

/// True when a `ROLE` reply says "master".
pub(crate) fn is_primary(role: &[redis::Value]) -> bool {
    matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master")
}

fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv6Addr, SocketAddrV6};

    use super::*;

    #[test]
    fn a_resolved_address_is_passed_on_as_a_numeric_host() {
        assert_eq!(
            numeric_host(SocketAddr::from(([10, 0, 0, 5], 0))),
            "10.0.0.5"
        );
        let v6 = |scope| SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, scope));
        assert_eq!(numeric_host(v6(0)), "::1");
        // Without its scope a link-local address is unreachable.
        assert_eq!(numeric_host(v6(2)), "::1%2");
    }
}
