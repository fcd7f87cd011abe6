//! PHP's own session tests (php-src ext/session/tests, fetched by
//! scripts/php-src-tests.sh from Debian's source package of the installed
//! PHP) run four ways with run-tests.php, each on a copy of its own:
//!
//! - `files`: PHP's files handler, the tests unmodified (the baseline);
//! - `stickless-nonstrict`: stickless with `stickless.strict_mode=0`;
//! - `stickless`: stickless with its defaults (strict mode on);
//! - `redis`: phpredis's handler, for comparison only (nothing asserted).
//!
//! Every run has `session.save_path=` (upstream's default; Debian's PHP has
//! /var/lib/php/sessions) and TMPDIR in its own copy. For the last three
//! each test's --INI-- names the handler and the test Redis, under a prefix
//! of its own (see `rewrite_phpt`), skipif.inc checks the save path only for
//! the files handler (`rewrite_skipif`), and the tests in
//! tests/php-src/<php>/skip.txt (about the files handler itself) are left out;
//! those it lists as "host:" (they reach outside their own directories) are
//! left out of the baseline too.
//!
//! Asserted: a test that passes with `files` passes with `stickless-nonstrict`
//! unless tests/php-src/<php>/deviations-nonstrict.txt lists it, and with
//! `stickless` unless deviations-strict.txt does; a listed test that passes
//! fails this test too, so the lists stay true. Counts of every configuration
//! go to stdout and to target/php-src/results.txt.
//!
//! `STICKLESS_PHP_SRC_KEEP=1` keeps the copies (with run-tests.php's .out and
//! .diff files) and prints where they are (seen with `-- --nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use stickless_e2e::{RedisServer, ext, run_tests_php, workspace};

/// Where the tests sit inside the fetched tree, and inside each copy.
const SUITE: &str = "ext/session/tests";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Handler {
    Files,
    SticklessNonStrict,
    Stickless,
    Redis,
}

impl Handler {
    const ALL: [Handler; 4] = [
        Handler::Files,
        Handler::SticklessNonStrict,
        Handler::Stickless,
        Handler::Redis,
    ];

    fn name(self) -> &'static str {
        match self {
            Handler::Files => "files",
            Handler::SticklessNonStrict => "stickless-nonstrict",
            Handler::Stickless => "stickless",
            Handler::Redis => "redis",
        }
    }

    /// `session.save_handler` in the rewritten tests.
    fn module(self) -> &'static str {
        match self {
            Handler::Files => "files",
            Handler::SticklessNonStrict | Handler::Stickless => "stickless",
            Handler::Redis => "redis",
        }
    }

    /// `session.save_path` of one test: the test Redis, under a prefix of
    /// the configuration and the test, so that no two tests (run-tests.php
    /// runs two at a time) see each other's sessions.
    fn save_path(self, port: u16, test: &str) -> String {
        let prefix = format!("php-src:{}:{test}:", self.name());
        match self {
            Handler::Files => String::new(),
            Handler::SticklessNonStrict | Handler::Stickless => {
                format!("redis://127.0.0.1:{port}/0?prefix={prefix}")
            }
            Handler::Redis => format!("tcp://127.0.0.1:{port}?prefix={prefix}"),
        }
    }

    /// `-d` settings for every test of the run.
    fn ini(self) -> Vec<String> {
        // Debian's PHP defaults session.save_path to /var/lib/php/sessions
        // (debian/patches/0010); upstream's tests expect upstream's "" (the
        // temporary directory, TMPDIR: the copy's own).
        let mut ini = vec!["session.save_path=".to_owned()];
        match self {
            Handler::Files => {}
            Handler::SticklessNonStrict => {
                ini.push(format!("extension={}", ext().display()));
                ini.push("stickless.strict_mode=0".to_owned());
            }
            Handler::Stickless => ini.push(format!("extension={}", ext().display())),
            // Debian's phpredis needs its serializers loaded first: igbinary
            // and msgpack on bookworm (5.3), igbinary alone on trixie (6.2).
            Handler::Redis => {
                let dir = PathBuf::from(php_said("echo ini_get('extension_dir');"));
                for e in ["igbinary", "msgpack", "redis"] {
                    if dir.join(format!("{e}.so")).is_file() {
                        ini.push(format!("extension={e}"));
                    }
                }
            }
        }
        if self != Handler::Files {
            ini.push(format!("session.save_handler={}", self.module()));
        }
        ini
    }
}

/// A test's outcome as run-tests.php reports it: PASS, FAIL, SKIP, XFAIL, BORK, ...
type Results = BTreeMap<String, String>;

/// One list under tests/php-src/<php>/: `<name>.phpt <reason>` per line, `#` comments.
struct List {
    path: PathBuf,
    entries: BTreeMap<String, String>,
}

impl List {
    fn read(dir: &Path, file: &str, suite: &BTreeSet<String>, reasons: &[&str]) -> Self {
        let path = dir.join(file);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut entries = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let (name, reason) = (name.trim_end_matches(".phpt"), reason.trim());
            let at = format!("{}:{}", path.display(), n + 1);
            assert!(
                suite.contains(name),
                "{at}: no test {name}.phpt in PHP's session tests"
            );
            assert!(
                reasons.iter().any(|r| reason.starts_with(r)),
                "{at}: the reason must start with one of {reasons:?}: {line}"
            );
            assert!(
                entries.insert(name.to_owned(), reason.to_owned()).is_none(),
                "{at}: {name} listed twice"
            );
        }
        Self { path, entries }
    }
}

/// The tests' directory for the installed PHP (fetched once, then cached).
fn fetch() -> PathBuf {
    let out = Command::new("bash")
        .arg(workspace().join("scripts/php-src-tests.sh"))
        .output()
        .expect("bash runs scripts/php-src-tests.sh");
    assert!(
        out.status.success(),
        "scripts/php-src-tests.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = String::from_utf8_lossy(&out.stdout);
    let dir = PathBuf::from(dir.lines().last().expect("the script prints the directory"));
    assert!(dir.join(SUITE).is_dir(), "{} has no {SUITE}", dir.display());
    dir
}

/// The tests under `dir` by name: `<file>` without .phpt, and
/// `<subdirectory>/<file>` for those in subdirectories (PHP 8.4 keeps the
/// session_set_save_handler() tests in user_session_module/), as run-tests.php
/// names them after the suite's directory.
fn collect_tests(dir: &Path, prefix: &str, into: &mut BTreeSet<String>) {
    for entry in fs::read_dir(dir).expect("read the suite") {
        let entry = entry.expect("dir entry");
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if entry.file_type().expect("file type").is_dir() {
            collect_tests(&entry.path(), &format!("{prefix}{name}/"), into);
        } else if let Some(test) = name.strip_suffix(".phpt") {
            into.insert(format!("{prefix}{test}"));
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The rewriting step, for one test's text: in its --INI-- section (added
/// before --FILE-- if it has none), `session.save_handler=files` names
/// `handler` instead, and `session.save_path` (replaced, or added) is
/// `save_path`. Nothing else in the test changes. Bytes, not text: some
/// tests are not UTF-8.
fn rewrite_phpt(text: &[u8], handler: &str, save_path: &str) -> Vec<u8> {
    let ini_lines = |had_handler: bool| {
        let mut s = String::new();
        if !had_handler {
            let _ = writeln!(s, "session.save_handler={handler}");
        }
        let _ = writeln!(s, "session.save_path=\"{save_path}\"");
        s.into_bytes()
    };
    let mut out = Vec::with_capacity(text.len() + 200);
    let (mut in_ini, mut had_ini, mut had_handler) = (false, false, false);
    for line in text.split_inclusive(|&b| b == b'\n') {
        let bare = line.trim_ascii_end();
        // run-tests.php's own section pattern: ^--([_A-Z]+)--
        let section = bare
            .strip_prefix(b"--")
            .map(|s| {
                let n = s
                    .iter()
                    .take_while(|&&b| b == b'_' || b.is_ascii_uppercase())
                    .count();
                (&s[..n], &s[n..])
            })
            .filter(|(name, rest)| !name.is_empty() && rest.starts_with(b"--"))
            .map(|(name, _)| name);
        if let Some(name) = section {
            if in_ini {
                out.extend(ini_lines(had_handler));
            }
            if !had_ini && name.starts_with(b"FILE") {
                out.extend_from_slice(b"--INI--\n");
                out.extend(ini_lines(false));
                had_ini = true;
            }
            in_ini = name == b"INI";
            had_ini |= in_ini;
            out.extend_from_slice(line);
            continue;
        }
        if in_ini {
            let eq = bare.iter().position(|&b| b == b'=').unwrap_or(bare.len());
            let (key, value) = (
                bare[..eq].trim_ascii(),
                bare.get(eq + 1..).unwrap_or_default(),
            );
            if key == b"session.save_path" {
                continue;
            }
            if key == b"session.save_handler" {
                had_handler = true;
                if value.trim_ascii() == b"files" || value.trim_ascii() == b"\"files\"" {
                    out.extend_from_slice(format!("session.save_handler={handler}\n").as_bytes());
                    continue;
                }
            }
        }
        out.extend_from_slice(line);
    }
    assert!(!in_ini, "a test ending in its --INI-- section");
    out
}

/// skipif.inc skips every test whose session.save_path is not a writable
/// directory; for the other handlers it checks nothing.
fn rewrite_skipif(text: &str) -> String {
    let from = r#"$save_path = ini_get("session.save_path");"#;
    assert!(text.contains(from), "skipif.inc changed upstream: {text}");
    text.replace(
        from,
        r#"$save_path = ini_get("session.save_handler") === "files" ? ini_get("session.save_path") : "";"#,
    )
}

struct Run {
    handler: Handler,
    results: Results,
    dir: PathBuf,
    summary: String,
}

fn run(
    handler: Handler,
    fetched: &Path,
    suite: &BTreeSet<String>,
    skip: &List,
    port: u16,
    scratch: &Path,
) -> Run {
    let root = scratch.join(handler.name());
    let (src, tmp) = (root.join("src"), root.join("tmp"));
    copy_tree(fetched, &src);
    fs::create_dir_all(&tmp).expect("mkdir tmp");
    let dir = src.join(SUITE);
    let left_out = |name: &str| {
        skip.entries
            .get(name)
            .is_some_and(|reason| handler != Handler::Files || reason.starts_with("host:"))
    };
    for name in suite.iter().filter(|n| left_out(n)) {
        fs::remove_file(dir.join(format!("{name}.phpt"))).expect("rm");
    }
    if handler != Handler::Files {
        for name in suite.iter().filter(|n| !left_out(n)) {
            let path = dir.join(format!("{name}.phpt"));
            let text = fs::read(&path).expect("read phpt");
            let text = rewrite_phpt(&text, handler.module(), &handler.save_path(port, name));
            fs::write(&path, text).expect("write phpt");
        }
        let inc = dir.join("skipif.inc");
        let text = rewrite_skipif(&fs::read_to_string(&inc).expect("skipif.inc"));
        fs::write(&inc, text).expect("write skipif.inc");
    }

    let php = php_said("echo PHP_BINARY;");
    let version = php_said(r#"echo PHP_MAJOR_VERSION, ".", PHP_MINOR_VERSION;"#);
    let cgi = Path::new(&php).with_file_name(format!("php-cgi{version}"));
    assert!(
        cgi.is_file(),
        "{} is missing (apt-get install php{version}-cgi; scripts/install-deps.sh does): \
         run-tests.php needs it for the tests with --COOKIE--, --GET-- or --POST--",
        cgi.display()
    );
    let mut cmd = Command::new(&php);
    cmd.arg(run_tests_php())
        .args(["-n", "-j2", "--no-color", "--no-progress"]);
    for setting in handler.ini() {
        cmd.arg("-d").arg(setting);
    }
    let out = cmd
        .arg(SUITE)
        .current_dir(&src)
        .env("TEST_PHP_EXECUTABLE", &php)
        .env("TEST_PHP_CGI_EXECUTABLE", &cgi)
        .env("TMPDIR", &tmp)
        .env("NO_INTERACTION", "1")
        .env_remove("TEST_PHP_ARGS")
        .output()
        .expect("run-tests.php runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut results = Results::new();
    let marker = format!("[{SUITE}/");
    for line in stdout.lines() {
        let Some((status, rest)) = line.split_once(' ') else {
            continue;
        };
        if !status.bytes().all(|b| b.is_ascii_uppercase()) {
            continue;
        }
        let Some(at) = rest.rfind(&marker) else {
            continue;
        };
        let tail = &rest[at + marker.len()..];
        let Some(end) = tail.find(".phpt]") else {
            continue;
        };
        results
            .entry(tail[..end].to_owned())
            .or_insert_with(|| status.to_owned());
    }
    let summary: String = stdout
        .lines()
        .filter(|l| l.starts_with("Tests ") || l.starts_with("Number of tests"))
        .map(|l| format!("  {l}\n"))
        .collect();
    let expected = suite.iter().filter(|n| !left_out(n)).count();
    assert_eq!(
        results.len(),
        expected,
        "{}: run-tests.php reported {} of {expected} tests (exit {}):\n{stdout}\n{}",
        handler.name(),
        results.len(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Run {
        handler,
        results,
        dir,
        summary,
    }
}

fn php_said(code: &str) -> String {
    let out = Command::new("php")
        .args(["-n", "-r", code])
        .output()
        .expect("php runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// "pass 231, fail 2, skip 0, xfail 1" and the like.
fn counts(results: &Results) -> String {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for status in results.values() {
        *by.entry(status.as_str()).or_default() += 1;
    }
    let mut parts = vec![];
    for key in ["PASS", "FAIL", "SKIP"] {
        parts.push(format!(
            "{} {}",
            key.to_lowercase(),
            by.remove(key).unwrap_or(0)
        ));
    }
    parts.extend(by.iter().map(|(k, n)| format!("{} {n}", k.to_lowercase())));
    format!("{} of {}", parts.join(", "), results.len())
}

/// A test's .diff (run-tests.php writes one per failure), its first lines.
fn diff_of(run: &Run, test: &str) -> String {
    let diff = fs::read_to_string(run.dir.join(format!("{test}.diff")))
        .unwrap_or_else(|_| format!("(no .diff: {})", run.results[test]));
    let lines: Vec<&str> = diff.lines().take(40).collect();
    lines.join("\n")
}

/// Problems with `list` against `run`: tests that pass with files and not
/// here without being listed, and listed tests that are no deviation.
fn check(baseline: &Run, run: &Run, list: &List, problems: &mut Vec<String>) {
    let deviations: BTreeSet<&String> = baseline
        .results
        .iter()
        .filter(|(test, status)| {
            *status == "PASS" && run.results.get(*test).is_some_and(|s| s != "PASS")
        })
        .map(|(test, _)| test)
        .collect();
    for test in &deviations {
        if !list.entries.contains_key(*test) {
            problems.push(format!(
                "{}: {test}.phpt passes with the files handler, {} here:\n{}",
                run.handler.name(),
                run.results[*test],
                diff_of(run, test)
            ));
        }
    }
    for (test, reason) in &list.entries {
        if !deviations.contains(test) {
            problems.push(format!(
                "{}: {test}.phpt is listed in {} ({reason}) but is no deviation \
                 (files: {}, {}: {}): remove it from the list",
                run.handler.name(),
                list.path.display(),
                baseline.results.get(test).map_or("not run", |s| s),
                run.handler.name(),
                run.results.get(test).map_or("not run", |s| s),
            ));
        }
    }
}

#[test]
fn php_src_session_tests_pass_as_with_the_files_handler() {
    let version = php_said(r#"echo PHP_MAJOR_VERSION, ".", PHP_MINOR_VERSION;"#);
    // Each PHP minor has session tests of its own, so lists of its own.
    let lists = workspace().join("tests/php-src").join(&version);
    assert!(
        lists.is_dir(),
        "no lists for PHP {version}'s session tests: {} (copy the nearest version's, then run with -- --nocapture and fix what it reports)",
        lists.display()
    );
    let started = Instant::now();
    let fetched = fetch();
    let mut suite = BTreeSet::new();
    collect_tests(&fetched.join(SUITE), "", &mut suite);
    assert!(
        suite.len() > 100,
        "only {} tests in {}",
        suite.len(),
        fetched.display()
    );
    let skip = List::read(&lists, "skip.txt", &suite, &["files:", "host:"]);
    let nonstrict = List::read(
        &lists,
        "deviations-nonstrict.txt",
        &suite,
        &["bug:", "entropy:"],
    );
    let strict = List::read(
        &lists,
        "deviations-strict.txt",
        &suite,
        &["strict:", "bug:", "entropy:"],
    );

    let redis = RedisServer::start();
    let scratch = tempfile::Builder::new()
        .prefix("php-src-session")
        .tempdir()
        .expect("tempdir");
    let source = fs::read_to_string(fetched.join("SOURCE")).unwrap_or_default();
    let source = source.lines().next().unwrap_or_default();
    let host = skip.entries.values().filter(|r| r.starts_with("host:"));
    let mut report = format!(
        "PHP's session tests: {} ({} tests; {} left out of the Redis handlers' runs, {} of every run)\n",
        source.trim_start_matches("tests:").trim(),
        suite.len(),
        skip.entries.len(),
        host.count(),
    );
    let mut runs = Vec::new();
    for handler in Handler::ALL {
        let t = Instant::now();
        let run = run(
            handler,
            &fetched,
            &suite,
            &skip,
            redis.port(),
            scratch.path(),
        );
        let _ = writeln!(
            report,
            "{:<20} {} ({:.1} s)\n{}",
            handler.name(),
            counts(&run.results),
            t.elapsed().as_secs_f64(),
            run.summary
        );
        runs.push(run);
    }
    let _ = writeln!(
        report,
        "wall time, fetch included: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        report,
        "\nper test (files, stickless-nonstrict, stickless, redis):"
    );
    for test in &suite {
        let status: Vec<&str> = runs
            .iter()
            .map(|r| r.results.get(test).map_or("-", |s| s.as_str()))
            .collect();
        let _ = writeln!(report, "  {test:<45} {}", status.join(" "));
    }
    let results = workspace().join("target/php-src/results.txt");
    fs::write(&results, &report).expect("write results.txt");
    println!("{report}\n(also in {})", results.display());

    let mut problems = Vec::new();
    check(&runs[0], &runs[1], &nonstrict, &mut problems);
    check(&runs[0], &runs[2], &strict, &mut problems);
    if std::env::var_os("STICKLESS_PHP_SRC_KEEP").is_some() {
        println!("kept: {}", scratch.keep().display());
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}
