//! Finding PHP's session cookie in a request, the way PHP finds it.

use std::fmt;
use std::str::FromStr;

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use stickless::{InvalidSessionId, SessionId};

/// The name of the session cookie (PHP's `session.name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieName(String);

impl CookieName {
    /// The name as sent in `Cookie` headers.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for CookieName {
    fn default() -> Self {
        Self("PHPSESSID".to_owned())
    }
}

impl fmt::Display for CookieName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A cookie name that could never match what a browser sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidCookieName;

impl fmt::Display for InvalidCookieName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a cookie name is 1 to 64 characters from A-Z a-z 0-9 and !#$%&'*+-.^_`|~")
    }
}

impl std::error::Error for InvalidCookieName {}

impl FromStr for CookieName {
    type Err = InvalidCookieName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        // RFC 6265's token characters; anything else is either refused by
        // browsers or would let the name run into the separators we split on.
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if (1..=64).contains(&name.len()) && name.bytes().all(token) {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidCookieName)
        }
    }
}

/// The session ID the request carries in cookie `name`: `Ok(None)` when there
/// is none (or it is empty, which PHP treats as no session either), an error
/// when the value cannot be a PHP session ID.
///
/// PHP keeps the first of several cookies with the same name, across all
/// `Cookie` headers, so this does too: otherwise a client could make PHP and
/// this service act on two different sessions with one request.
pub fn session_id(
    headers: &HeaderMap,
    name: &CookieName,
) -> Result<Option<SessionId>, InvalidSessionId> {
    match find(headers, name.as_str()) {
        None | Some(b"") => Ok(None),
        // PHP percent-decodes cookie values; none of the characters of a
        // session ID needs it, so an encoded value is refused here rather
        // than decoded into an ID no browser was ever given.
        Some(value) => SessionId::from_bytes(value).map(Some),
    }
}

/// The raw value of the first cookie called `name`.
fn find<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|header| header.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (key, value) = (&pair[..eq], &pair[eq + 1..]);
            (key.trim_ascii() == name.as_bytes()).then(|| value.trim_ascii())
        })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const ID: &str = "q3e1cmd7fqq2c3cl1v2qktm3ht";
    const OTHER: &str = "0123456789abcdefghijklmnop";

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(
                COOKIE,
                HeaderValue::from_str(v).expect("a valid header value"),
            );
        }
        map
    }

    fn id_in(values: &[&str]) -> Result<Option<SessionId>, InvalidSessionId> {
        session_id(&headers(values), &CookieName::default())
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let want = SessionId::parse(ID).ok();
        assert_eq!(id_in(&[&format!("PHPSESSID={ID}")]), Ok(want.clone()));
        assert_eq!(
            id_in(&[&format!("theme=dark; PHPSESSID={ID}; lang=en")]),
            Ok(want.clone())
        );
        assert_eq!(
            id_in(&[&format!("theme=dark;PHPSESSID = {ID} ;lang=en")]),
            Ok(want)
        );
    }

    #[test]
    fn the_first_cookie_of_that_name_wins_across_headers() {
        let first = SessionId::parse(ID).ok();
        assert_eq!(
            id_in(&[&format!("PHPSESSID={ID}; PHPSESSID={OTHER}")]),
            Ok(first.clone())
        );
        assert_eq!(
            id_in(&[
                "a=b",
                &format!("PHPSESSID={ID}"),
                &format!("PHPSESSID={OTHER}")
            ]),
            Ok(first)
        );
    }

    #[test]
    fn no_cookie_or_an_empty_one_is_no_session() {
        assert_eq!(id_in(&[]), Ok(None));
        assert_eq!(id_in(&["theme=dark"]), Ok(None));
        assert_eq!(id_in(&["PHPSESSID="]), Ok(None));
        assert_eq!(id_in(&["PHPSESSID"]), Ok(None));
        // Names are case-sensitive and matched whole.
        assert_eq!(
            id_in(&[&format!("phpsessid={ID}; XPHPSESSID={ID}; PHPSESSID2={ID}")]),
            Ok(None)
        );
    }

    #[test]
    fn a_value_that_is_no_session_id_is_refused() {
        assert_eq!(
            id_in(&[&format!("PHPSESSID={}", "a".repeat(257))]),
            Err(InvalidSessionId::Length { len: 257 })
        );
        assert!(matches!(
            id_in(&["PHPSESSID=../../../../etc/passwd%00aaaaaa"]),
            Err(InvalidSessionId::Charset { .. })
        ));
        assert!(matches!(
            id_in(&[&format!("PHPSESSID=\"{ID}\"")]),
            Err(InvalidSessionId::Charset { position: 0 })
        ));
    }

    #[test]
    fn a_configured_name_is_used() {
        let name: CookieName = "app_session".parse().expect("a valid name");
        let want = SessionId::parse(ID).ok();
        let map = headers(&[&format!("PHPSESSID={OTHER}; app_session={ID}")]);
        assert_eq!(session_id(&map, &name), Ok(want));
    }

    #[test]
    fn cookie_names_must_be_tokens() {
        assert_eq!(
            "PHPSESSID".parse::<CookieName>().map(|n| n.to_string()),
            Ok("PHPSESSID".into())
        );
        for bad in ["", "a b", "a;b", "a=b", "sess\u{e9}", &"x".repeat(65)] {
            assert_eq!(bad.parse::<CookieName>(), Err(InvalidCookieName), "{bad:?}");
        }
    }
}
