//! One result of `check`: what was found, on which node, and the fix.

use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// As stickless needs it.
    Ok,
    /// Works, but worth changing; does not fail the check.
    Warning,
    /// Sessions will fail or be lost: `check` exits 1.
    Problem,
}

/// A finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// How bad.
    pub level: Level,
    /// The node it concerns (`host:port`), or none for the whole store.
    pub node: Option<String>,
    /// What was checked: `reachable`, `version`, `acl`, ...
    pub check: &'static str,
    /// What was found.
    pub message: String,
    /// What to do about it (warnings and problems).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The findings of one run, in the order they were made.
#[derive(Debug, Default)]
pub struct Findings {
    /// All of them.
    pub all: Vec<Finding>,
}

impl Findings {
    /// A passed check.
    pub fn ok(&mut self, node: Option<&str>, check: &'static str, message: impl Into<String>) {
        self.push(Level::Ok, node, check, message.into(), None);
    }

    /// A warning and its fix.
    pub fn warn(
        &mut self,
        node: Option<&str>,
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(
            Level::Warning,
            node,
            check,
            message.into(),
            Some(fix.into()),
        );
    }

    /// A problem and its fix.
    pub fn problem(
        &mut self,
        node: Option<&str>,
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(
            Level::Problem,
            node,
            check,
            message.into(),
            Some(fix.into()),
        );
    }

    fn push(
        &mut self,
        level: Level,
        node: Option<&str>,
        check: &'static str,
        message: String,
        fix: Option<String>,
    ) {
        self.all.push(Finding {
            level,
            node: node.map(str::to_owned),
            check,
            message,
            fix,
        });
    }

    /// How many findings have `level`.
    pub fn count(&self, level: Level) -> usize {
        self.all.iter().filter(|f| f.level == level).count()
    }

    /// One line per finding, the fix indented under it.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for f in &self.all {
            let tag = match f.level {
                Level::Ok => "ok  ",
                Level::Warning => "WARN",
                Level::Problem => "FAIL",
            };
            let node = f
                .node
                .as_deref()
                .map(|n| format!("{n} "))
                .unwrap_or_default();
            out.push_str(&format!("{tag} {node}{}: {}\n", f.check, f.message));
            if let Some(fix) = &f.fix {
                out.push_str(&format!("     fix: {fix}\n"));
            }
        }
        let (problems, warnings) = (self.count(Level::Problem), self.count(Level::Warning));
        out.push_str(&format!("\n{problems} problem(s), {warnings} warning(s)\n"));
        out
    }
}
