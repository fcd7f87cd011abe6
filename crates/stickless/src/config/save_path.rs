//! Splitting a save_path into its parts, and redacting one for display.
//!
//! The `url` crate parses one `host:port` per URL; cluster and sentinel save
//! paths list several (`redis+cluster://h1:7000,h2:7001`). The authority is
//! therefore split here, by hand, and each host goes through `url` on its
//! own; everything else (userinfo, path, query) is parsed by `url` too.

use url::Url;

use super::{ConfigError, HostPort};

/// A save_path taken apart; borrowed from the input.
#[derive(Debug)]
pub(super) struct Parts<'a> {
    pub scheme: &'a str,
    /// Everything before the last `@` of the authority, if any.
    pub userinfo: Option<&'a str>,
    /// Comma-separated host list, unparsed; empty for `unix://`.
    pub hosts: &'a str,
    /// From the first `/` after the authority up to `?` (may be empty).
    pub path: &'a str,
    /// After `?`, without `#fragment`.
    pub query: Option<&'a str>,
}

impl<'a> Parts<'a> {
    pub fn split(save_path: &'a str) -> Result<Self, ConfigError> {
        let (scheme, rest) = save_path
            .split_once("://")
            .ok_or_else(|| ConfigError::Url("no `scheme://`".into()))?;
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return Err(ConfigError::Url(format!("`{scheme}` is not a URL scheme")));
        }
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.find('/') {
            Some(i) => before_query.split_at(i),
            None => (before_query, ""),
        };
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        Ok(Self {
            scheme,
            userinfo,
            hosts,
            path,
            query,
        })
    }

    /// The host list, each with `default_port` where none is given.
    pub fn host_ports(&self, default_port: u16) -> Result<Vec<HostPort>, ConfigError> {
        if self.hosts.is_empty() {
            return Err(part("host", "missing"));
        }
        self.hosts
            .split(',')
            .map(|h| host_port(h.trim(), default_port))
            .collect()
    }

    /// A URL `url` can parse: the first host only, for userinfo and query.
    pub fn single_host_url(&self) -> Result<Url, ConfigError> {
        let host = self.hosts.split(',').next().unwrap_or("");
        let host = if host.is_empty() { "localhost" } else { host };
        let userinfo = self.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        let query = self.query.map(|q| format!("?{q}")).unwrap_or_default();
        Url::parse(&format!("redis://{userinfo}{host}{}{query}", self.path))
            .map_err(|e| ConfigError::Url(e.to_string()))
    }
}

fn host_port(s: &str, default_port: u16) -> Result<HostPort, ConfigError> {
    if s.is_empty() {
        return Err(part("host", "empty entry in the host list"));
    }
    let url =
        Url::parse(&format!("redis://{s}")).map_err(|e| part("host", format!("`{s}`: {e}")))?;
    if !url.username().is_empty() || url.path() != "" && url.path() != "/" {
        return Err(part("host", format!("`{s}` is not host[:port]")));
    }
    let host = match url.host() {
        Some(url::Host::Ipv6(a)) => a.to_string(),
        Some(h) => h.to_string(),
        None => return Err(part("host", format!("`{s}` has no host"))),
    };
    Ok(HostPort {
        host,
        port: url.port().unwrap_or(default_port),
    })
}

pub(super) fn part(part: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Part {
        part,
        reason: reason.into(),
    }
}

/// Options whose values are secrets.
pub const SECRET_OPTIONS: &[&str] = &["password", "encryption_keys", "sentinel_password"];

/// An option value as it may be shown: inline secrets become `***`.
pub fn redact_option(value: &str) -> String {
    if value.is_empty() || value.starts_with("env:") || value.starts_with("file:") {
        value.to_owned()
    } else {
        "***".to_owned()
    }
}

/// A save_path as it may be shown (phpinfo, logs): the URL's password and
/// inline secret options replaced by `***`; `env:` and `file:` references,
/// which are not secrets, kept. Works on every topology's host list.
///
/// ```
/// use stickless::config::redact;
/// assert_eq!(redact("redis://:hunter2@h:6379/0"), "redis://:***@h:6379/0");
/// assert_eq!(redact("redis://h?password=hunter2&prefix=a:"), "redis://h?password=***&prefix=a:");
/// assert_eq!(redact("redis://h?password=env:REDIS_PW"), "redis://h?password=env:REDIS_PW");
/// assert_eq!(
///     redact("redis+cluster://app:hunter2@h1:7000,h2:7001"),
///     "redis+cluster://app:***@h1:7000,h2:7001"
/// );
/// ```
pub fn redact(save_path: &str) -> String {
    let trimmed = save_path.trim();
    let Ok(parts) = Parts::split(trimmed) else {
        // Not a URL (a directory of the files handler, say): nothing to hide,
        // unless it looks like userinfo anyway.
        return if trimmed.contains('@') {
            "***".to_owned()
        } else {
            save_path.to_owned()
        };
    };
    let mut shown = format!("{}://", parts.scheme);
    if let Some(userinfo) = parts.userinfo {
        match userinfo.split_once(':') {
            Some((user, _)) => shown.push_str(&format!("{user}:***@")),
            None => shown.push_str(&format!("{userinfo}@")),
        }
    }
    shown.push_str(parts.hosts);
    shown.push_str(parts.path);
    if let Some(query) = parts.query {
        let pairs: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| {
                // `auth` is phpredis's spelling, for save paths shown while
                // migrating.
                let v = if SECRET_OPTIONS.contains(&k.as_ref()) || k == "auth" {
                    redact_option(&v)
                } else {
                    v.into_owned()
                };
                format!("{k}={v}")
            })
            .collect();
        shown.push('?');
        shown.push_str(&pairs.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_multi_host_authority() {
        let p = Parts::split("rediss+cluster://u:p@a:1,[::1]:2,b/x?y=z#f").unwrap();
        assert_eq!(p.scheme, "rediss+cluster");
        assert_eq!(p.userinfo, Some("u:p"));
        assert_eq!(p.path, "/x");
        assert_eq!(p.query, Some("y=z"));
        let hosts = p.host_ports(7).unwrap();
        assert_eq!(
            hosts,
            vec![
                HostPort::new("a", 1),
                HostPort::new("::1", 2),
                HostPort::new("b", 7)
            ]
        );
    }

    #[test]
    fn a_password_holding_at_signs_is_cut_at_the_last_one() {
        let p = Parts::split("redis://u:p@ss@h:1").unwrap();
        assert_eq!(p.userinfo, Some("u:p@ss"));
        assert_eq!(p.hosts, "h:1");
        assert_eq!(redact("redis://u:p@ss@h:1"), "redis://u:***@h:1");
    }

    #[test]
    fn redacts_sentinel_passwords_and_keeps_references() {
        assert_eq!(
            redact("redis+sentinel://s1,s2/m?sentinel_password=x&password=file:/run/pw"),
            "redis+sentinel://s1,s2/m?sentinel_password=***&password=file:/run/pw"
        );
        assert_eq!(redact("not a url with a:secret@inside"), "***");
        assert_eq!(redact("/var/lib/php/sessions"), "/var/lib/php/sessions");
    }
}
