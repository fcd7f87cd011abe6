//! `stickless user-sessions <user-id>` and `stickless logout-user <user-id>`:
//! the index of sessions per user, through the blocking driver that PHP's
//! requests use, so the scripts, the routing and the budgets are theirs.
//! A session is named by its hashed tag (what `show` and the warnings
//! print), never by its ID.

use serde_json::json;
use stickless::{Config, SessionId, Store, UserId};

use crate::error::CliError;
use crate::output::{Output, Table};
use crate::render::time;

pub fn list(config: Config, user: &str, out: Output) -> Result<(), CliError> {
    let user = UserId::parse(user)?;
    let mut store = Store::new(config);
    let sessions = store.user_sessions(&user, None)?;
    if out.json {
        let rows: Vec<_> = sessions
            .iter()
            .map(|s| {
                json!({
                    "session": s.session,
                    "created_ms": s.created_ms,
                    "last_seen_ms": s.last_seen_ms,
                    "expires_ms": s.expires_ms,
                    "label": s.label,
                })
            })
            .collect();
        return out.json(
            &json!({ "user": store.user_keys(&user).tag(), "sessions": rows }),
            false,
        );
    }
    if sessions.is_empty() {
        return out.text("no live sessions for this user\n");
    }
    let mut text = String::new();
    for s in &sessions {
        let mut table = Table::default();
        table.row("session", s.session.as_str());
        table.row("label", s.label.as_deref().unwrap_or("-"));
        table.row("created", time::utc(s.created_ms));
        table.row("last seen", time::utc(s.last_seen_ms));
        table.row("expires", time::utc(s.expires_ms));
        text.push_str(&table.render());
        text.push('\n');
    }
    out.text(&text)
}

pub fn logout(
    config: Config,
    user: &str,
    except: Option<&str>,
    out: Output,
) -> Result<(), CliError> {
    let user = UserId::parse(user)?;
    let except = except.map(SessionId::parse).transpose()?;
    let mut store = Store::new(config);
    let ended = store.logout_user(&user, except.as_ref())?;
    if out.json {
        out.json(
            &json!({ "user": store.user_keys(&user).tag(), "destroyed": ended }),
            false,
        )
    } else {
        let kept = if except.is_some() {
            " (the one given with --except is kept)"
        } else {
            ""
        };
        out.text(&format!("destroyed {ended} session(s){kept}\n"))
    }
}
