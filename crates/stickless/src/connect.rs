//! How to reach one node: TCP or Unix, TLS with the configured files, ACL
//! credentials, database. Shared by both drivers; the blocking one also
//! opens the connection here.

use std::time::Duration;

use redis::{
    Client, ClientTlsConfig, Connection, ConnectionAddr, ErrorKind, IntoConnectionInfo,
    RedisConnectionInfo, RedisError, RedisResult, TlsCertificates,
};

use crate::config::{Endpoint, Secret, Server, TlsFiles};

/// Whose credentials a connection presents.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A node holding sessions: the server's user, password and database.
    Data,
    /// A sentinel: its own credentials, database 0.
    Sentinel,
}

/// Connects to `endpoint` within `connect_timeout`, with `io_timeout` on
/// every later read and write.
pub(crate) fn open(
    server: &Server,
    endpoint: &Endpoint,
    role: Role,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> RedisResult<Connection> {
    let con = client(server, endpoint, role)?.get_connection_with_timeout(connect_timeout)?;
    con.set_read_timeout(Some(io_timeout))?;
    con.set_write_timeout(Some(io_timeout))?;
    Ok(con)
}

/// A client for `endpoint` (no I/O), with TLS files read afresh.
pub(crate) fn client(server: &Server, endpoint: &Endpoint, role: Role) -> RedisResult<Client> {
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
        (Endpoint::Tcp(hp), None) => ConnectionAddr::Tcp(hp.host.clone(), hp.port),
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
