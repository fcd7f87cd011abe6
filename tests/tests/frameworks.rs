//! Symfony and Laravel, as Debian packages them, on stickless: each test
//! application under tests/frameworks/ runs with the framework's own session
//! classes and wiring in 3 php-fpm pods behind round-robin nginx (the local
//! stack, deploy/local/stack.sh, with DOC_ROOT and FRONT_CONTROLLER), and
//! one browser (a cookie jar) goes through a user's life:
//!
//! 1. an anonymous page, then a login that stores the user's ID and gives
//!    the session a new ID (Symfony `$session->migrate(true)`, Laravel
//!    `$request->session()->regenerate()`); the old cookie, replayed, is an
//!    anonymous session; in Redis the old ID is gone (Symfony) or holds what
//!    it held before the login (Laravel's `regenerate()` destroys nothing),
//!    and the session lives as long as the framework is configured to keep
//!    it (Symfony's `gc_maxlifetime`, Laravel's `session.lifetime`);
//! 2. the user is seen on every pod;
//! 3. a new ID mid-session (Symfony `migrate(true)`, Laravel
//!    `regenerate(true)`): the old session is gone from Redis, its cookie
//!    anonymous;
//! 4. two flash messages, shown by the next page only (and gone from Redis);
//! 5. 4 requests of the user in flight at once, ROUNDS times, each
//!    incrementing a counter: every increment is seen exactly once;
//! 6. logout (Symfony `$session->invalidate()`, Laravel `invalidate()` and
//!    `regenerateToken()`): the session is gone from Redis, its cookie
//!    anonymous, and what the framework keeps afterwards holds nothing of
//!    the user;
//!
//! and at the end no lock is left in Redis and no pod logged a warning.
//!
//! The set-ups, one test each:
//! - Symfony (6.4 on trixie, 7.4 on sid; MicroKernelTrait, FrameworkBundle's
//!   `framework.session`): `handler_id: null` with `session.save_handler =
//!   stickless` from the pools' ini, set as php.ini sets it (php_value:
//!   Symfony's StrictSessionHandler wraps PHP's handler, and PHP calls
//!   stickless through it) and with php_admin_value (PHP keeps calling
//!   stickless itself); and `handler_id` a `Stickless\SessionHandler`
//!   service on `%env(STICKLESS_URL)%`, the pools' handler left to php.ini
//!   (POD_SESSION_INI=none);
//! - Laravel (10 on trixie, 13 on sid; Illuminate\Foundation's HTTP kernel,
//!   EncryptCookies and StartSession, a `stickless` driver from
//!   `Session::extend`): `session.serialization` `php` and `json`.
//!
//! And each in merge mode (`concurrency=merge` on the pods' save path):
//! Symfony, whose pages PHP's session module serves (the native handler
//! from php_admin_value, and the handler object service), runs step 5 side
//! by side: 4 pages that only read take about one hold time together, and
//! each increment in flight is either stored or named in a warning (all of
//! Symfony's attributes live in one session variable, `_sf2_attributes`);
//! with `metadata_update_threshold` set, since Symfony otherwise stamps
//! `_sf2_meta` on every request. Laravel, which calls the handler object
//! itself, takes the lock and runs step 5 as above.
//!
//! The frameworks come from Debian's packages under /usr/share/php
//! (php-symfony-framework-bundle, composer, php-laravel-framework; see
//! scripts/platform.sh): `make test-trixie` and `make test-sid` run this
//! file. Where they are not installed (the host) each test says so on
//! stderr and passes without running.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde_json::Value;
use stickless::{Config, Loaded, SessionId};
use stickless_e2e::{Stack, http_get, workspace};

const PODS: usize = 3;
/// Requests of one user in flight at once, and how many times.
const IN_FLIGHT: usize = 4;
const ROUNDS: usize = 8;
/// How long each of them holds the session after incrementing.
const HOLD_MS: u64 = 25;
/// How long each of the pages that only read holds the session (merge mode).
const READ_HOLD_MS: u64 = 400;
const USER: i64 = 42;
const FLASHES: [&str; 2] = ["Saved.", "Welcome back!"];

/// Files each framework's test application loads (see their front controllers).
const SYMFONY_FILES: [&str; 3] = [
    "/usr/share/php/Symfony/Bundle/FrameworkBundle/autoload.php",
    "/usr/share/php/Symfony/Bundle/FrameworkBundle/Kernel/MicroKernelTrait.php",
    "/usr/share/php/Composer/InstalledVersions.php",
];
const LARAVEL_FILES: [&str; 2] = [
    "/usr/share/php/Illuminate/autoload.php",
    "/usr/share/php/Illuminate/Foundation/Application.php",
];

/// A line on the test process's own stderr, past the test harness's capture.
fn note(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "frameworks: {message}");
}

/// True when every one of `files` exists; otherwise says why the test does
/// not run.
fn installed(test: &str, files: &[&str]) -> bool {
    let missing: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| !Path::new(f).is_file())
        .collect();
    if missing.is_empty() {
        return true;
    }
    note(&format!(
        "{test}: NOT RUN, the framework is not installed here (no {}); \
         it runs in the Debian roots: make test-trixie, make test-sid",
        missing.join(", ")
    ));
    false
}

/// How a framework treats the old ID at login.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum AtLogin {
    /// `migrate(true)`: the old session is destroyed.
    Destroyed,
    /// Laravel's `regenerate()` (no destroy): the old session stays, as it
    /// was before the login; it never holds the user.
    KeptAnonymous,
}

struct App {
    name: String,
    doc_root: &'static str,
    env: Vec<(&'static str, String)>,
    at_login: AtLogin,
    /// What the pages say handles the session: PHP's session.save_handler
    /// (Symfony), the driver's class (Laravel).
    handler: &'static str,
    /// The TTL stored sessions get: Symfony's `gc_maxlifetime` option,
    /// Laravel's `session.lifetime` (minutes) as AppServiceProvider gives
    /// it to session.gc_maxlifetime.
    lifetime: Duration,
    /// How the user's requests in flight at once go.
    parallel: Parallel,
}

/// How requests of one user in flight at once go.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Parallel {
    /// One after another (concurrency=lock, or merge mode taking the lock):
    /// every increment is seen exactly once.
    Serialised,
    /// Side by side (concurrency=merge through PHP's session module): pages
    /// that only read take about one hold time together, and an increment
    /// overtaken by another request's is never lost silently: it is named
    /// in a warning.
    Merged,
}

/// The stack's default save path, in merge mode.
const MERGE_SAVE_PATH: &str = "redis://127.0.0.1:{redis_port}/0?prefix=demo:&concurrency=merge";
/// What a merge-mode write that lost a variable to another request says.
const CONFLICT: &str = "was changed by another request since this one read it";

impl App {
    /// Symfony's `setup` (FW_SESSION, see its Kernel.php) in pools with
    /// POD_SESSION_INI=`pool_ini`.
    fn symfony(setup: &'static str, pool_ini: &'static str) -> Self {
        Self {
            name: format!("symfony/{setup}/{pool_ini}"),
            doc_root: "tests/frameworks/symfony/public",
            env: vec![
                ("FW_SESSION", setup.to_owned()),
                ("POD_SESSION_INI", pool_ini.to_owned()),
            ],
            at_login: AtLogin::Destroyed,
            // A php_admin_value keeps PHP's handler whatever Symfony registers.
            handler: if pool_ini == "admin" {
                "stickless"
            } else {
                "user"
            },
            lifetime: Duration::from_secs(3600),
            parallel: Parallel::Serialised,
        }
    }

    /// `self` with `concurrency=merge` on the pods' save path.
    fn in_merge_mode(mut self, parallel: Parallel) -> Self {
        self.name.push_str("/merge");
        self.env
            .push(("SESSION_SAVE_PATH", MERGE_SAVE_PATH.to_owned()));
        self.parallel = parallel;
        self
    }

    fn laravel(serialization: &'static str) -> Self {
        Self {
            name: format!("laravel/{serialization}"),
            doc_root: "tests/frameworks/laravel/public",
            env: vec![("FW_SERIALIZATION", serialization.to_owned())],
            at_login: AtLogin::KeptAnonymous,
            handler: "Stickless\\SessionHandler",
            lifetime: Duration::from_secs(120 * 60),
            parallel: Parallel::Serialised,
        }
    }
}

/// One browser: a cookie jar, and the requests it sends through nginx.
#[derive(Clone)]
struct Browser {
    port: u16,
    jar: BTreeMap<String, String>,
}

/// The name, and the value unless the cookie is being deleted, of every
/// Set-Cookie in a response head.
fn set_cookies(head: &str) -> Vec<(String, Option<String>)> {
    head.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim())
        })
        .filter_map(|cookie| {
            let mut parts = cookie.split(';').map(str::trim);
            let (name, value) = parts.next()?.split_once('=')?;
            let deleted = value.is_empty()
                || value == "deleted"
                || parts.any(|attr| attr.eq_ignore_ascii_case("max-age=0"));
            Some((name.to_owned(), (!deleted).then(|| value.to_owned())))
        })
        .collect()
}

impl Browser {
    fn new(port: u16) -> Self {
        Self {
            port,
            jar: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> Option<String> {
        (!self.jar.is_empty()).then(|| {
            self.jar
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// GET `path`: the page's JSON; the jar takes the response's cookies.
    fn get(&mut self, path: &str) -> Value {
        let (status, head, body) = http_get(self.port, path, self.cookie_header().as_deref());
        assert_eq!(status, 200, "GET {path}:\n{head}\n\n{body}");
        for (name, value) in set_cookies(&head) {
            match value {
                Some(value) => self.jar.insert(name, value),
                None => self.jar.remove(&name),
            };
        }
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }
}

fn sid(page: &Value) -> String {
    let sid = page["sid"].as_str().unwrap_or_default().to_owned();
    assert!(!sid.is_empty(), "no session ID on the page: {page}");
    sid
}

fn pod(page: &Value) -> String {
    page["pod"].as_str().unwrap_or("?").to_owned()
}

/// The stack's Redis, read the way the pods read it.
struct Redis {
    store: stickless::Store,
    con: redis::Connection,
}

fn session_id(sid: &str) -> SessionId {
    SessionId::parse(sid).unwrap_or_else(|e| panic!("session ID {sid:?}: {e}"))
}

impl Redis {
    fn of(stack: &Stack) -> Self {
        let url = stack.state("SESSION_SAVE_PATH");
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", stack.redis_port()))
            .expect("a Redis client");
        Self {
            store: stickless::Store::new(Config::parse(&url).expect("the stack's save path")),
            con: client.get_connection().expect("Redis connects"),
        }
    }

    /// What is stored under `sid`: None when nothing is.
    fn stored(&mut self, sid: &str) -> Option<Vec<u8>> {
        match self.store.load(&session_id(sid)).expect("Redis answers") {
            Loaded::Empty => None,
            Loaded::Data(envelope) => Some(envelope.payload),
            Loaded::Corrupt(kind) => panic!("session {sid} is unreadable: {kind:?}"),
        }
    }

    /// The time to live of what is stored under `sid`.
    fn ttl(&mut self, sid: &str) -> Duration {
        let key = self.store.keys(&session_id(sid)).data();
        let ms: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query(&mut self.con)
            .expect("PTTL");
        Duration::from_millis(u64::try_from(ms).unwrap_or_else(|_| panic!("PTTL {key}: {ms}")))
    }

    /// Lock keys in Redis, waited for until none is left (a Laravel request
    /// that does not write releases its lock when the handler object is
    /// freed, after the response is out) or `timeout`.
    fn locks_left(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let locks: Vec<String> = redis::cmd("KEYS")
                .arg("*:lock")
                .query(&mut self.con)
                .expect("KEYS");
            if locks.is_empty() || Instant::now() >= deadline {
                return locks;
            }
            // A lock's release is not announced anywhere we could wait on.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn holds(payload: &[u8], needle: &str) -> bool {
    payload
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn shown(text: &[u8]) -> String {
    String::from_utf8_lossy(text).into_owned()
}

/// The whole flow for one set-up (see the header).
fn run(app: &App) {
    let var = tempfile::Builder::new()
        .prefix("fwvar")
        .tempdir()
        .expect("a temp dir");
    let doc_root = workspace().join(app.doc_root);
    let mut env: Vec<(&str, &str)> = vec![
        ("DOC_ROOT", doc_root.to_str().expect("a UTF-8 path")),
        ("FRONT_CONTROLLER", "index.php"),
        ("FW_VAR_DIR", var.path().to_str().expect("a UTF-8 path")),
        ("GATEWAY", "0"),
    ];
    env.extend(app.env.iter().map(|(k, v)| (*k, v.as_str())));
    let stack = Stack::up(PODS, &env);
    let mut redis = Redis::of(&stack);
    let name = &app.name;
    let mut user = Browser::new(stack.port());

    // 1. Anonymous, then logged in under a new ID.
    let anonymous = user.get("/visit");
    assert_eq!(anonymous["user"], Value::Null, "{name}: {anonymous}");
    assert_eq!(anonymous["handler"], app.handler, "{name}: {anonymous}");
    let sid_anonymous = sid(&anonymous);
    let cookie_anonymous = user.clone();
    assert!(
        redis.stored(&sid_anonymous).is_some(),
        "{name}: the anonymous session is not in Redis"
    );
    note(&format!(
        "{name}: {} on {}, session.upload_progress.enabled={}",
        anonymous["framework"].as_str().unwrap_or("?"),
        pod(&anonymous),
        anonymous["upload_progress"].as_str().unwrap_or("?")
    ));

    let login = user.get(&format!("/login?user={USER}"));
    assert_eq!(login["user"], USER, "{name}: {login}");
    let sid_login = sid(&login);
    assert_ne!(
        sid_login, sid_anonymous,
        "{name}: the login kept the session ID"
    );
    let old = redis.stored(&sid_anonymous);
    match app.at_login {
        AtLogin::Destroyed => assert!(
            old.is_none(),
            "{name}: the ID before the login is still in Redis: {}",
            shown(old.as_deref().unwrap_or_default())
        ),
        AtLogin::KeptAnonymous => {
            let old = old.unwrap_or_default();
            assert!(
                !holds(&old, "user_id"),
                "{name}: the ID before the login holds the user: {}",
                shown(&old)
            );
        }
    }
    let ttl = redis.ttl(&sid_login);
    assert!(
        ttl <= app.lifetime && ttl + Duration::from_secs(60) > app.lifetime,
        "{name}: the session lives {ttl:?} in Redis, not {:?}",
        app.lifetime
    );
    let replayed = cookie_anonymous.clone().get("/whoami");
    assert_eq!(
        replayed["user"],
        Value::Null,
        "{name}: the cookie from before the login, replayed, is logged in: {replayed}"
    );

    // 2. The user on every pod.
    let pods: BTreeSet<String> = stack
        .state("POD_LIST")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut seen = BTreeSet::new();
    for _ in 0..4 * PODS {
        let page = user.get("/whoami");
        assert_eq!(page["user"], USER, "{name}: {page}");
        assert_eq!(sid(&page), sid_login, "{name}: {page}");
        seen.insert(pod(&page));
        if seen == pods {
            break;
        }
    }
    assert_eq!(seen, pods, "{name}: the user was not seen on every pod");

    // 3. A new ID mid-session.
    let cookie_login = user.clone();
    let rotated = user.get("/rotate");
    assert_eq!(rotated["user"], USER, "{name}: {rotated}");
    let sid_rotated = sid(&rotated);
    assert_ne!(sid_rotated, sid_login, "{name}: rotate kept the session ID");
    let old = redis.stored(&sid_login);
    assert!(
        old.is_none(),
        "{name}: the ID before the rotation is still in Redis: {}",
        shown(old.as_deref().unwrap_or_default())
    );
    let replayed = cookie_login.clone().get("/whoami");
    assert_eq!(
        replayed["user"],
        Value::Null,
        "{name}: the cookie from before the rotation, replayed, is logged in: {replayed}"
    );
    let page = user.get("/whoami");
    assert_eq!(page["user"], USER, "{name}: after the rotation: {page}");

    // 4. Flash messages: the next page shows them, the one after does not.
    let flash = user.get("/flash");
    let next = user.get("/whoami");
    assert_eq!(
        next["notice"],
        serde_json::json!(FLASHES),
        "{name}: the page after the flash (on {}, flashed on {}): {next}",
        pod(&next),
        pod(&flash)
    );
    let after = user.get("/whoami");
    assert_eq!(
        after["notice"],
        serde_json::json!([]),
        "{name}: the flash messages were shown twice (on {}): {after}",
        pod(&after)
    );
    let stored = redis.stored(&sid_rotated).unwrap_or_default();
    assert!(
        !holds(&stored, FLASHES[1]),
        "{name}: the flash messages are still stored after they were shown: {}",
        shown(&stored)
    );

    // 5. Requests of the one user in flight at once lose nothing.
    let conflicts = match app.parallel {
        Parallel::Serialised => counts_one_after_another(name, &user, &sid_rotated),
        Parallel::Merged => counts_side_by_side(name, &user, &sid_rotated, &stack),
    };

    // 6. Logout.
    let cookie_rotated = user.clone();
    let logout = user.get("/logout");
    assert_eq!(logout["user"], Value::Null, "{name}: {logout}");
    assert_eq!(logout["n"], Value::Null, "{name}: {logout}");
    let sid_after = sid(&logout);
    assert_ne!(
        sid_after, sid_rotated,
        "{name}: the logout kept the session ID"
    );
    let old = redis.stored(&sid_rotated);
    assert!(
        old.is_none(),
        "{name}: the session is still in Redis after the logout: {}",
        shown(old.as_deref().unwrap_or_default())
    );
    // What is left under the new ID: Laravel saves its bookkeeping (_token,
    // _previous, _flash); Symfony an empty session, which its own
    // StrictSessionHandler turns into a destroy where it is in the path
    // (php_value), and which stickless stores as PHP's handlers do (an empty
    // record until gc_maxlifetime) where PHP or Symfony's proxy calls it.
    let left = redis.stored(&sid_after);
    if let Some(left) = &left {
        assert!(
            !holds(left, "user_id") && !holds(left, "counter") && !holds(left, "visits"),
            "{name}: the session after the logout holds the user's data: {}",
            shown(left)
        );
        if app.at_login == AtLogin::Destroyed {
            assert!(
                left.is_empty(),
                "{name}: Symfony's session after the logout is not empty: {}",
                shown(left)
            );
        }
    }
    note(&format!(
        "{name}: after the logout, the new ID {}, the browser's cookies: {:?}",
        match &left {
            None => "is not in Redis".to_owned(),
            Some(left) if left.is_empty() => "is in Redis, empty".to_owned(),
            Some(left) => format!("is in Redis with {} bytes", left.len()),
        },
        user.jar.keys().collect::<Vec<_>>()
    ));
    let replayed = cookie_rotated.clone().get("/whoami");
    assert_eq!(
        replayed["user"],
        Value::Null,
        "{name}: the cookie from before the logout: {replayed}"
    );
    assert_eq!(
        replayed["n"],
        Value::Null,
        "{name}: the cookie from before the logout: {replayed}"
    );
    let page = user.get("/whoami");
    assert_eq!(
        page["user"],
        Value::Null,
        "{name}: after the logout: {page}"
    );
    assert_eq!(page["n"], Value::Null, "{name}: after the logout: {page}");

    let locks = redis.locks_left(Duration::from_secs(5));
    assert!(locks.is_empty(), "{name}: locks left in Redis: {locks:?}");
    let errors = stack.php_errors();
    let (named, others): (Vec<&str>, Vec<&str>) = errors
        .lines()
        .filter(|l| !l.trim().is_empty())
        .partition(|l| l.contains(CONFLICT));
    assert!(
        others.is_empty(),
        "{name}: the pods logged:\n{}",
        others.join("\n")
    );
    assert_eq!(
        named.len(),
        conflicts,
        "{name}: conflict warnings logged:\n{}",
        named.join("\n")
    );
}

/// `IN_FLIGHT` requests of `user` for `path` at once; their pages, and how
/// long they took together.
fn in_flight(user: &Browser, path: &str) -> (Vec<Value>, Duration) {
    let barrier = Barrier::new(IN_FLIGHT);
    let started = Instant::now();
    let pages = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                let mut browser = user.clone();
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    browser.get(path)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a request thread"))
            .collect()
    });
    (pages, started.elapsed())
}

/// The counter of each page, after checking it is `sid`'s, the user's.
fn counters(name: &str, pages: &[Value], sid_expected: &str) -> Vec<i64> {
    pages
        .iter()
        .map(|page| {
            assert_eq!(page["user"], USER, "{name}: {page}");
            assert_eq!(sid(page), sid_expected, "{name}: {page}");
            page["n"]
                .as_i64()
                .unwrap_or_else(|| panic!("{name}: no count: {page}"))
        })
        .collect()
}

/// Locked (or merge mode taking the lock): every increment of `IN_FLIGHT`
/// requests at once, `ROUNDS` times, is seen exactly once. No conflicts.
fn counts_one_after_another(name: &str, user: &Browser, sid_expected: &str) -> usize {
    let mut counts = Vec::new();
    let mut count_pods = BTreeSet::new();
    for _ in 0..ROUNDS {
        let (pages, _) = in_flight(user, &format!("/count?hold_ms={HOLD_MS}"));
        counts.extend(counters(name, &pages, sid_expected));
        count_pods.extend(pages.iter().map(pod));
    }
    counts.sort_unstable();
    let expected: Vec<i64> = (1..=i64::try_from(IN_FLIGHT * ROUNDS).expect("small")).collect();
    assert_eq!(
        counts, expected,
        "{name}: {IN_FLIGHT} requests in flight x {ROUNDS}: some increments were lost or seen twice"
    );
    assert!(
        count_pods.len() > 1,
        "{name}: only {count_pods:?} served the counts"
    );
    let page = user.clone().get("/whoami");
    assert_eq!(page["n"], IN_FLIGHT * ROUNDS, "{name}: {page}");
    0
}

/// Merge mode: `IN_FLIGHT` pages that only read run side by side; of
/// `IN_FLIGHT` increments at once, `ROUNDS` times, each is either stored or
/// named in a warning (the counter lives in Symfony's one `_sf2_attributes`
/// variable, which every increment changes). Returns the warnings expected.
fn counts_side_by_side(name: &str, user: &Browser, sid_expected: &str, stack: &Stack) -> usize {
    let (pages, took) = in_flight(user, &format!("/whoami?hold_ms={READ_HOLD_MS}"));
    for page in &pages {
        assert_eq!(page["user"], USER, "{name}: {page}");
        assert_eq!(sid(page), sid_expected, "{name}: {page}");
    }
    let hold = Duration::from_millis(READ_HOLD_MS);
    assert!(
        took < 2 * hold,
        "{name}: {IN_FLIGHT} reading pages holding {hold:?} each took {took:?} together"
    );
    assert!(
        stack.php_errors().trim().is_empty(),
        "{name}: pages that only read logged:\n{}",
        stack.php_errors()
    );

    for _ in 0..ROUNDS {
        let (pages, _) = in_flight(user, &format!("/count?hold_ms={HOLD_MS}"));
        counters(name, &pages, sid_expected);
    }
    let stored = user.clone().get("/whoami")["n"]
        .as_i64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or_else(|| panic!("{name}: no count after the increments"));
    let errors = stack.php_errors();
    let named: Vec<&str> = errors.lines().filter(|l| l.contains(CONFLICT)).collect();
    assert!(
        named.iter().all(|l| l.contains("`_sf2_attributes`")),
        "{name}: a conflict on another variable than the attributes:\n{}",
        named.join("\n")
    );
    assert_eq!(
        stored + named.len(),
        IN_FLIGHT * ROUNDS,
        "{name}: {stored} increments stored and {} reported, of {}",
        named.len(),
        IN_FLIGHT * ROUNDS
    );
    assert!(
        stored >= ROUNDS,
        "{name}: {stored} increments stored in {ROUNDS} rounds"
    );
    note(&format!(
        "{name}: {IN_FLIGHT} reading pages holding {hold:?} took {took:?}; of {} increments \
         in flight, {stored} stored and {} reported",
        IN_FLIGHT * ROUNDS,
        named.len()
    ));
    named.len()
}

#[test]
fn symfony_with_the_native_handler_from_php_ini() {
    if installed(
        "symfony_with_the_native_handler_from_php_ini",
        &SYMFONY_FILES,
    ) {
        run(&App::symfony("native", "value"));
    }
}

#[test]
fn symfony_with_the_native_handler_from_php_admin_value() {
    if installed(
        "symfony_with_the_native_handler_from_php_admin_value",
        &SYMFONY_FILES,
    ) {
        run(&App::symfony("native", "admin"));
    }
}

#[test]
fn symfony_with_a_handler_object_service() {
    if installed("symfony_with_a_handler_object_service", &SYMFONY_FILES) {
        run(&App::symfony("object", "none"));
    }
}

#[test]
fn laravel_with_php_serialization() {
    if installed("laravel_with_php_serialization", &LARAVEL_FILES) {
        run(&App::laravel("php"));
    }
}

#[test]
fn laravel_with_json_serialization() {
    if installed("laravel_with_json_serialization", &LARAVEL_FILES) {
        run(&App::laravel("json"));
    }
}

/// Symfony's `setup` in merge mode.
fn symfony_merged(setup: &'static str, pool_ini: &'static str) -> App {
    let mut app = App::symfony(setup, pool_ini).in_merge_mode(Parallel::Merged);
    // Symfony stamps `_sf2_meta` on every request by default: two requests
    // at once would both change it, a conflict each time.
    app.env
        .push(("FW_METADATA_UPDATE_THRESHOLD", "60".to_owned()));
    app
}

#[test]
fn symfony_in_merge_mode() {
    if installed("symfony_in_merge_mode", &SYMFONY_FILES) {
        run(&symfony_merged("native", "admin"));
    }
}

#[test]
fn symfony_with_a_handler_object_service_in_merge_mode() {
    // The object, wrapped in Symfony's SessionHandlerProxy, is called by
    // PHP's session module: it merges as the native handler does.
    if installed(
        "symfony_with_a_handler_object_service_in_merge_mode",
        &SYMFONY_FILES,
    ) {
        run(&symfony_merged("object", "none"));
    }
}

#[test]
fn laravel_in_merge_mode_takes_the_lock() {
    // Laravel calls the handler object from its own session code, with its
    // own layout: stickless takes the lock for it, and nothing is lost.
    if installed("laravel_in_merge_mode_takes_the_lock", &LARAVEL_FILES) {
        run(&App::laravel("php").in_merge_mode(Parallel::Serialised));
    }
}
