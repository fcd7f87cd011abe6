//! The HTTP API: routes, the session-cookie extractor and the handlers.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde::Serialize;
use stickless::SessionId;
use stickless::aio::Store;

use crate::cart::{self, Item, NewItem, User};
use crate::cookie::{self, CookieName};
use crate::error::ApiError;

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    /// The session store, configured as the PHP pods are.
    pub store: Store,
    /// PHP's `session.name`.
    pub cookie: Arc<CookieName>,
}

/// The routes, under `/api` as nginx forwards them.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/api/healthz", get(healthz))
        .route("/api/me", get(me))
        // An item is a few dozen bytes; axum's default 2 MB is far more
        // than this endpoint ever needs to buffer.
        .route(
            "/api/cart",
            post(add_to_cart).layer(DefaultBodyLimit::max(4096)),
        )
        .layer(middleware::map_response(common_headers))
        .with_state(app)
}

/// Names this service in every reply, as the PHP pods' `X-Pod` does, and
/// keeps per-user answers out of shared caches.
async fn common_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-pod", HeaderValue::from_static("axum-gateway"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The session ID from the request's session cookie; rejects the request
/// before any Redis traffic when there is none or it is malformed.
pub struct SessionCookie(pub SessionId);

impl FromRequestParts<App> for SessionCookie {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        match cookie::session_id(&parts.headers, &app.cookie)? {
            Some(id) => Ok(Self(id)),
            None => Err(ApiError::NoSession),
        }
    }
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
}

/// Liveness only: a Redis outage shows as 503 on the session routes, and
/// taking the gateway out of rotation would not bring Redis back.
async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

#[derive(Serialize)]
struct Me {
    user: User,
    cart: Vec<Item>,
}

/// `GET /api/me`: the logged-in user and their cart, read without the lock.
///
/// A read-only request does not queue behind the user's PHP requests: it
/// sees the session as last committed, which is all a display needs.
async fn me(
    State(app): State<App>,
    SessionCookie(id): SessionCookie,
) -> Result<Json<Me>, ApiError> {
    let session = app.store.read(&id).await?.ok_or(ApiError::NoSession)?;
    // PHP's logout may leave `user` set to null: that is logged out too.
    let user = session
        .get::<Option<User>>(cart::USER)?
        .flatten()
        .ok_or(ApiError::NotLoggedIn)?;
    let cart = session.get::<Vec<Item>>(cart::CART)?.unwrap_or_default();
    Ok(Json(Me { user, cart }))
}

#[derive(Serialize)]
struct Cart {
    cart: Vec<Item>,
}

/// `POST /api/cart` with `{"sku": "tea", "qty": 2}`: appends to the cart
/// under the session's lock and returns the new cart.
///
/// The lock is what makes read-modify-write safe: a PHP request of the same
/// user waits until this commit (and this waits for it), so neither side
/// overwrites the other's changes.
async fn add_to_cart(
    State(app): State<App>,
    SessionCookie(id): SessionCookie,
    body: Result<Json<NewItem>, JsonRejection>,
) -> Result<Json<Cart>, ApiError> {
    // Everything that can be refused without Redis is, before taking the lock.
    let Json(new) = body?;
    let item = new.validate()?;

    let mut session = app.store.open(&id).await?.ok_or(ApiError::NoSession)?;
    // An early return below drops the guard, which releases the lock from a
    // spawned task; the refusals that are part of the API release it here,
    // so the user's next request never finds it still held.
    if session.get::<Option<User>>(cart::USER)?.flatten().is_none() {
        release(session).await;
        return Err(ApiError::NotLoggedIn);
    }
    let mut cart = session.get::<Vec<Item>>(cart::CART)?.unwrap_or_default();
    if let Err(full) = cart::add(&mut cart, item) {
        release(session).await;
        return Err(full);
    }
    session.set(cart::CART, &cart)?;
    session.commit().await?;
    Ok(Json(Cart { cart }))
}

/// Releases a lock without writing. A failure is only logged: the request
/// has its answer already, and the lock lapses after `lock_ttl_ms` anyway.
async fn release(session: stickless::aio::SessionGuard) {
    if let Err(e) = session.release().await {
        tracing::warn!("releasing a session lock: {e}");
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use stickless::Config;
    use tower::ServiceExt;

    use super::*;

    const ID: &str = "q3e1cmd7fqq2c3cl1v2qktm3ht";

    /// An app whose Redis is a loopback port nobody listens on: requests that
    /// reach the store fail fast, and those that must not reach it pass.
    fn app_without_redis() -> Router {
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("its address").port()
        };
        let url = format!("redis://127.0.0.1:{port}/0?connect_timeout_ms=300&timeout_ms=300");
        let config = Config::parse(&url).expect("a valid save_path");
        router(App {
            store: Store::new(config),
            cookie: Arc::new(CookieName::default()),
        })
    }

    async fn send(request: Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = app_without_redis()
            .oneshot(request)
            .await
            .expect("a response");
        let status = response.status();
        assert_eq!(response.headers()["x-pod"], "axum-gateway");
        let body = to_bytes(response.into_body(), 64 * 1024)
            .await
            .expect("a body");
        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    fn get(uri: &str, cookie: Option<&str>) -> Request<Body> {
        let mut request = Request::get(uri);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.body(Body::empty()).expect("a request")
    }

    fn post_json(cookie: &str, body: &str) -> Request<Body> {
        Request::post("/api/cart")
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .expect("a request")
    }

    #[tokio::test]
    async fn healthz_answers_without_redis() {
        let (status, json) = send(get("/api/healthz", None)).await;
        assert_eq!(
            (status, json["status"].as_str()),
            (StatusCode::OK, Some("ok"))
        );
    }

    #[tokio::test]
    async fn no_cookie_is_401_and_a_bad_one_400() {
        let (status, json) = send(get("/api/me", None)).await;
        assert_eq!(
            (status, json["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("no_session"))
        );
        let (status, json) = send(get("/api/me", Some("PHPSESSID=../../x"))).await;
        assert_eq!(
            (status, json["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_session_cookie"))
        );
    }

    #[tokio::test]
    async fn redis_down_is_503() {
        let cookie = format!("PHPSESSID={ID}");
        let (status, json) = send(get("/api/me", Some(&cookie))).await;
        assert_eq!(
            (status, json["error"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("store_unavailable"))
        );
        let (status, _) = send(post_json(&cookie, r#"{"sku":"tea","qty":1}"#)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn a_bad_body_is_refused_before_redis_is_asked() {
        let cookie = format!("PHPSESSID={ID}");
        for (body, want) in [
            ("{", StatusCode::BAD_REQUEST),
            (r#"{"sku":"tea"}"#, StatusCode::UNPROCESSABLE_ENTITY),
            (
                r#"{"sku":"tea","qty":-1}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (r#"{"sku":"tea","qty":0}"#, StatusCode::UNPROCESSABLE_ENTITY),
            (
                r#"{"sku":"tea","qty":1,"price":0}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ] {
            let (status, json) = send(post_json(&cookie, body)).await;
            assert_eq!(status, want, "{body}");
            assert!(json["message"].is_string(), "{body}: {json}");
        }
        let no_type = Request::post("/api/cart")
            .header(header::COOKIE, &cookie)
            .body(Body::from(r#"{"sku":"tea","qty":1}"#))
            .expect("a request");
        let (status, _) = send(no_type).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let huge = format!(r#"{{"sku":"{}","qty":1}}"#, "x".repeat(8192));
        let (status, _) = send(post_json(&cookie, &huge)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
