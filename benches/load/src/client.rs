//! One keep-alive HTTP/1.1 connection to nginx that carries one session
//! cookie, like a browser tab.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{COOKIE, HOST, SET_COOKIE};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What one request gave back.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The `X-Pod` header.
    pub pod: String,
    /// The JSON body.
    pub body: serde_json::Value,
    /// Time from sending to the last body byte.
    pub latency: Duration,
}

/// A connection with its cookie.
pub struct Client {
    port: u16,
    sender: SendRequest<Empty<Bytes>>,
    /// `PHPSESSID=...`, once the server set one.
    pub cookie: Option<String>,
}

impl Client {
    /// Opens a connection to nginx on `port`, sharing `cookie` if given.
    pub async fn connect(port: u16, cookie: Option<String>) -> Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .with_context(|| format!("connecting to nginx on 127.0.0.1:{port}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Self {
            port,
            sender,
            cookie,
        })
    }

    /// GETs `path`, keeping any session cookie the server sets.
    pub async fn get(&mut self, path: &str) -> Result<Reply> {
        if self.sender.ready().await.is_err() {
            // nginx closed the keep-alive connection: open another one.
            *self = Self::connect(self.port, self.cookie.take()).await?;
        }
        let mut req = Request::get(path).header(HOST, "127.0.0.1");
        if let Some(cookie) = &self.cookie {
            req = req.header(COOKIE, cookie);
        }
        let started = Instant::now();
        let res = self.sender.send_request(req.body(Empty::new())?).await?;
        let status = res.status().as_u16();
        let pod = header(&res, "x-pod");
        if let Some(cookie) = res
            .headers()
            .get(SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
        {
            self.cookie = Some(cookie.to_owned());
        }
        let bytes = res.into_body().collect().await?.to_bytes();
        let latency = started.elapsed();
        let body = if status == 200 {
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
        } else {
            serde_json::Value::Null
        };
        if status == 0 {
            bail!("no status");
        }
        Ok(Reply {
            status,
            pod,
            body,
            latency,
        })
    }
}

fn header<B>(res: &hyper::Response<B>, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}
