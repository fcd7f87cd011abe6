//! What a request can fail with, as an HTTP status and a small JSON body.
//!
//! Bodies carry a stable `error` code for programs and a `message` for
//! people. Neither ever holds the session ID, nor details of the Redis
//! deployment: those go to the service's log (with the session named only by
//! its hashed key, as stickless reports it).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stickless::php::ValueError;
use stickless::{Error, InvalidSessionId};

/// Why a request failed.
#[derive(Debug)]
pub enum ApiError {
    /// No session cookie, or no such session in Redis.
    NoSession,
    /// The session exists but nobody is logged in to it.
    NotLoggedIn,
    /// The session cookie cannot be a PHP session ID.
    InvalidCookie(InvalidSessionId),
    /// The request body is not what the endpoint takes.
    InvalidBody {
        /// 400, 413, 415 or 422, as the body was wrong.
        status: StatusCode,
        /// What was wrong with it.
        message: String,
    },
    /// A limit of this service, such as the number of items in a cart.
    Refused(String),
    /// The session store failed.
    Store(Error),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidId(e) => Self::InvalidCookie(e),
            other => Self::Store(other),
        }
    }
}

impl From<ValueError> for ApiError {
    fn from(e: ValueError) -> Self {
        Self::Store(Error::Value(e))
    }
}

impl From<InvalidSessionId> for ApiError {
    fn from(e: InvalidSessionId) -> Self {
        Self::InvalidCookie(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self::InvalidBody {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

/// The status, the code and the message the client sees.
struct Reply {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn reply(&self) -> Reply {
        let reply = |status, code, message: &str| Reply {
            status,
            code,
            message: message.to_owned(),
        };
        match self {
            Self::NoSession => reply(
                StatusCode::UNAUTHORIZED,
                "no_session",
                "no session; log in first",
            ),
            Self::NotLoggedIn => reply(StatusCode::UNAUTHORIZED, "not_logged_in", "not logged in"),
            // The reason says which character or what length, never the value.
            Self::InvalidCookie(why) => Reply {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_session_cookie",
                message: why.to_string(),
            },
            Self::InvalidBody { status, message } => Reply {
                status: *status,
                code: "invalid_body",
                message: message.clone(),
            },
            Self::Refused(message) => Reply {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "refused",
                message: message.clone(),
            },
            Self::Store(e) => store_reply(e),
        }
    }
}

fn store_reply(e: &Error) -> Reply {
    let (status, code, message) = match e {
        Error::InvalidId(_) => (
            StatusCode::BAD_REQUEST,
            "invalid_session_cookie",
            "the session cookie is not a session ID",
        ),
        // A PHP request (or another task) holds the session longer than
        // lock_wait_ms: the client may try again once it is done.
        Error::LockTimeout { .. } | Error::TooManyWaiters { .. } => (
            StatusCode::CONFLICT,
            "session_busy",
            "the session is busy with another request; try again",
        ),
        // Our lock expired before the write and nothing was written; the
        // request can be repeated as a whole.
        Error::LockLost { .. } => (
            StatusCode::CONFLICT,
            "session_lock_lost",
            "the session changed under this request; nothing was saved, try again",
        ),
        // A merge-mode write that could not be merged with another request's;
        // nothing was saved, and repeating the request reads the new value.
        Error::MergeRefused { .. } => (
            StatusCode::CONFLICT,
            "session_lock_lost",
            "the session changed under this request; nothing was saved, try again",
        ),
        // The gateway binds no sessions to users; a caller that does
        // passes its own IDs, so a refused one is a bad request.
        Error::InvalidUser(_) => (
            StatusCode::BAD_REQUEST,
            "invalid_user",
            "the user ID is empty or too long",
        ),
        // Saved, but the user's index could not be renewed.
        Error::IndexNotUpdated { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the session was saved but its user's index was not updated",
        ),
        Error::DestroyLocked { .. } => (
            StatusCode::CONFLICT,
            "session_busy",
            "the session is busy with another request; try again",
        ),
        Error::Unavailable { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the session store is unavailable; try again shortly",
        ),
        // The primary has the write, but no replica confirmed it: saved, yet
        // not as durably as configured, so report a failure rather than hide it.
        Error::NotReplicated { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the session was saved but not replicated in time",
        ),
        Error::TooLarge { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "session_too_large",
            "the session would grow past its size limit; nothing was saved",
        ),
        // The session holds data of another shape than this service expects
        // (or data it cannot read at all): a deployment mismatch, not the
        // client's fault.
        Error::Unreadable { .. } | Error::Decode(_) | Error::Value(_) | Error::Encode(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "session_unreadable",
            "the session's data could not be read by this service",
        ),
        Error::Protocol(_) => (
            StatusCode::BAD_GATEWAY,
            "store_protocol",
            "the session store answered unexpectedly",
        ),
        // A Config error cannot come from a running store; listed so that a
        // new variant of stickless::Error has to be placed here on purpose.
        Error::Config(_) | Error::Collision { .. } | Error::Entropy(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        ),
    };
    Reply {
        status,
        code,
        message: message.to_owned(),
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Reply {
            status,
            code,
            message,
        } = self.reply();
        if let Self::Store(e) = &self {
            // stickless names the session by its hashed key and the server
            // without credentials, so its message is safe to log whole.
            if status.is_server_error() {
                tracing::warn!(code, "{e}");
            } else {
                tracing::info!(code, "{e}");
            }
        }
        let mut response = (
            status,
            Json(Body {
                error: code,
                message: &message,
            }),
        )
            .into_response();
        if matches!(
            status,
            StatusCode::CONFLICT | StatusCode::SERVICE_UNAVAILABLE
        ) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::to_bytes;
    use stickless::{CorruptKind, LostReason};

    use super::*;

    const TAG: &str = "3f9a1c";

    fn status_and_code(e: ApiError) -> (StatusCode, &'static str) {
        let r = e.reply();
        (r.status, r.code)
    }

    fn store(e: Error) -> (StatusCode, &'static str) {
        status_and_code(ApiError::from(e))
    }

    #[test]
    fn a_bad_cookie_is_the_clients_fault() {
        let e = InvalidSessionId::Length { len: 3 };
        assert_eq!(
            status_and_code(ApiError::from(e.clone())),
            (StatusCode::BAD_REQUEST, "invalid_session_cookie")
        );
        assert_eq!(
            store(Error::InvalidId(e)),
            (StatusCode::BAD_REQUEST, "invalid_session_cookie")
        );
    }

    #[test]
    fn no_session_and_no_user_are_unauthorized() {
        assert_eq!(
            status_and_code(ApiError::NoSession),
            (StatusCode::UNAUTHORIZED, "no_session")
        );
        assert_eq!(
            status_and_code(ApiError::NotLoggedIn),
            (StatusCode::UNAUTHORIZED, "not_logged_in")
        );
    }

    #[test]
    fn redis_down_is_503_and_a_busy_session_409() {
        let down = Error::Unavailable {
            server: "redis://10.0.0.7:6379/0".into(),
            cause: "connection refused".into(),
            elapsed: Duration::from_millis(3),
        };
        assert_eq!(
            store(down),
            (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
        );
        let busy = Error::LockTimeout {
            session: TAG.into(),
            waited: Duration::from_secs(5),
        };
        assert_eq!(store(busy), (StatusCode::CONFLICT, "session_busy"));
        let crowded = Error::TooManyWaiters {
            session: TAG.into(),
            limit: 32,
        };
        assert_eq!(store(crowded), (StatusCode::CONFLICT, "session_busy"));
        let lost = Error::LockLost {
            session: TAG.into(),
            reason: LostReason::Taken,
        };
        assert_eq!(store(lost), (StatusCode::CONFLICT, "session_lock_lost"));
    }

    #[test]
    fn data_problems_are_the_servers() {
        let unreadable = Error::Unreadable {
            session: TAG.into(),
            kind: CorruptKind::Foreign,
        };
        assert_eq!(
            store(unreadable),
            (StatusCode::INTERNAL_SERVER_ERROR, "session_unreadable")
        );
        let shape = ValueError::Message("invalid type: string, expected i64".into());
        assert_eq!(
            status_and_code(ApiError::from(shape)),
            (StatusCode::INTERNAL_SERVER_ERROR, "session_unreadable")
        );
        let big = Error::TooLarge {
            session: TAG.into(),
            size: 2 << 20,
            limit: 1 << 20,
        };
        assert_eq!(
            store(big),
            (StatusCode::PAYLOAD_TOO_LARGE, "session_too_large")
        );
        assert_eq!(
            store(Error::Protocol("?".into())),
            (StatusCode::BAD_GATEWAY, "store_protocol")
        );
    }

    #[tokio::test]
    async fn the_body_names_no_server_and_no_session() {
        let e = ApiError::from(Error::Unavailable {
            server: "redis://10.0.0.7:6379/0".into(),
            cause: format!("session {TAG}: timed out"),
            elapsed: Duration::from_millis(1500),
        });
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = to_bytes(response.into_body(), 4096).await.expect("a body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(json["error"], "store_unavailable");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("10.0.0.7") && !text.contains(TAG), "{text}");
    }
}
