//! Laravel and a Rust service on the very same sessions: a real php process
//! plays Laravel's part with Laravel's own `Illuminate\Session\Store` (from
//! Debian's php-illuminate-* packages, see `laravel_source`) on the
//! extension's `Stickless\SessionHandler`, driven as Laravel's StartSession
//! middleware drives it (`start()` at the beginning of a request, `save()`
//! at its end: the handler's read and write, never open or close); the Rust
//! side is `aio::Store` with `SerializeHandler::LaravelPhp` and
//! `LaravelJson`. Laravel writes and Rust reads, Rust writes and Laravel
//! reads, for both of Laravel's `session.serialization` settings; and
//! Laravel requests and Rust tasks incrementing one session at once lose
//! nothing.
//!
//! Laravel's source is loaded from `STICKLESS_LARAVEL_SRC` (a directory
//! holding `Illuminate/Session/Store.php`, Debian's `/usr/share/php`), else
//! from `<target>/laravel/php`, which the first run fills: `apt-get
//! download` of the packages from Debian's `trixie` suite (bookworm ships
//! no Laravel) with a private apt configuration under `<target>/laravel/`
//! and the host's mirror, unpacked with `dpkg-deb -x`. Nothing is installed
//! on the host; apt checks the packages against the signed Release file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stickless::aio::Store;
use stickless::php::{SerializeHandler, Value};
use stickless::{Config, SessionId};
use stickless_e2e::{RedisServer, php, target_dir};

/// Laravel's `session.serialization` settings and the layouts that read them.
const SERIALIZATIONS: [(&str, SerializeHandler); 2] = [
    ("php", SerializeHandler::LaravelPhp),
    ("json", SerializeHandler::LaravelJson),
];

/// What Laravel's SessionGuard names the `web` guard's user entry:
/// `'login_web_' . sha1(Illuminate\Auth\SessionGuard::class)`.
const LOGIN_WEB: &str = "login_web_59ba36addc2b2f9401580f014c7f58ea4e30989d";

/// Laravel's packages the request script loads: the session store and what
/// it uses (Arr, Str, collect(), the Macroable and Conditionable traits,
/// the contracts, MessageBag and ViewErrorBag).
const PACKAGES: [&str; 6] = [
    "php-illuminate-session",
    "php-illuminate-support",
    "php-illuminate-collections",
    "php-illuminate-contracts",
    "php-illuminate-macroable",
    "php-illuminate-conditionable",
];
const SUITE: &str = "trixie";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// One Laravel request per run: `php request.php SRC URL SERIALIZATION
/// ACTION [SID [ROUNDS]]`. The session goes through Laravel's Store exactly
/// as StartSession uses it: a new handler and Store per request, `start()`,
/// the application's work, `save()`.
const REQUEST_PHP: &str = r#"<?php
declare(strict_types=1);

use Illuminate\Session\Store;
use Illuminate\Support\MessageBag;
use Illuminate\Support\ViewErrorBag;

[, $src, $url, $serialization, $action] = $argv;
$sid = $argv[5] ?? null;

// Composer's job, for the packages unpacked from Debian's archive: their
// classes live in one directory per package.
spl_autoload_register(function (string $class) use ($src): void {
    $homes = [
        'Illuminate\\Support\\' => ['Support', 'Collections', 'Macroable', 'Conditionable'],
        'Illuminate\\Contracts\\' => ['Contracts'],
        'Illuminate\\Session\\' => ['Session'],
    ];
    foreach ($homes as $prefix => $dirs) {
        if (!str_starts_with($class, $prefix)) {
            continue;
        }
        $file = str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        foreach ($dirs as $dir) {
            if (is_file("$src/Illuminate/$dir/$file")) {
                require "$src/Illuminate/$dir/$file";
                return;
            }
        }
    }
});
require "$src/Illuminate/Collections/helpers.php";
require "$src/Illuminate/Support/helpers.php";

const LOGIN_WEB = 'login_web_' . 'LOGIN_SHA1';

function request(string $url, ?string $sid, string $serialization, callable $work): Store
{
    $session = new Store('laravel_session', new Stickless\SessionHandler($url), $sid, $serialization);
    $session->start();
    $work($session);
    $session->save();
    return $session;
}

switch ($action) {
    case 'login':
        // A first request that logs the user in, as Auth::login() and a
        // controller would: a fresh ID (migrate), the guard's entry, and a
        // flash for the next page.
        $session = request($url, null, $serialization, function (Store $s): void {
            $s->migrate(true);
            $s->put(LOGIN_WEB, 42);
            $s->put('password_hash_web', '$2y$12$Qm1y2uQ7eX9pL0aZ3bC5dO6fG8hJ0kL2nP4qS6uW8yA0cE2gI4kMa');
            $s->put('cart', [['sku' => 'tea', 'qty' => 2]]);
            $s->put('prefs', ['theme' => 'dark', 'ratio' => 0.1, 'big' => 1e25, 'greeting' => "Gr\u{fc}\u{df}e \u{1F600} a/b"]);
            $s->flash('status', 'Welcome back, Ada!');
            $s->flash('errors', (new ViewErrorBag())->put('default', new MessageBag([
                'email' => ['The email field must be a valid email address.'],
            ])));
            $s->setPreviousUrl('https://shop.test/account');
        });
        echo $session->getId();
        break;
    case 'show':
        request($url, $sid, $serialization, function (Store $s): void {
            $errors = $s->get('errors');
            echo json_encode([
                'user' => $s->get(LOGIN_WEB),
                'token' => $s->token(),
                'cart' => $s->get('cart'),
                'status' => $s->get('status'),
                'notice' => $s->get('notice'),
                'email_error' => $errors instanceof ViewErrorBag ? $errors->getBag('default')->first('email') : null,
                'from_rust' => $s->get('from_rust'),
            ], JSON_THROW_ON_ERROR);
        });
        break;
    case 'count':
        for ($i = 0; $i < (int) $argv[6]; $i++) {
            request($url, $sid, $serialization, fn (Store $s) => $s->increment('n'));
        }
        break;
    default:
        throw new ValueError("no action $action");
}
"#;

struct Laravel {
    script: PathBuf,
    src: PathBuf,
    /// `-d extension=...` for what Laravel needs and `php -n` lacks where
    /// it is built shared (Debian's ctype).
    extensions: Vec<String>,
    _dir: tempfile::TempDir,
}

/// The extensions among `names` that `php -n` does not have loaded.
fn missing_extensions(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|name| {
            let out = Command::new("php")
                .args(["-n", "-r"])
                .arg(format!("exit(extension_loaded('{name}') ? 0 : 1);"))
                .status()
                .expect("php runs");
            !out.success()
        })
        .map(|name| format!("extension={name}"))
        .collect()
}

fn laravel() -> &'static Laravel {
    static LARAVEL: OnceLock<Laravel> = OnceLock::new();
    LARAVEL.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let script = dir.path().join("request.php");
        let login_sha1 = LOGIN_WEB.trim_start_matches("login_web_");
        fs::write(&script, REQUEST_PHP.replace("LOGIN_SHA1", login_sha1)).expect("script written");
        Laravel {
            script,
            src: laravel_source(),
            extensions: missing_extensions(&["ctype"]),
            _dir: dir,
        }
    })
}

fn store_php(src: &Path) -> PathBuf {
    src.join("Illuminate/Session/Store.php")
}

/// Laravel's source: `STICKLESS_LARAVEL_SRC`, else `<target>/laravel/php`,
/// fetched on first use.
fn laravel_source() -> PathBuf {
    if let Some(dir) = std::env::var_os("STICKLESS_LARAVEL_SRC") {
        let dir = PathBuf::from(dir);
        assert!(
            store_php(&dir).is_file(),
            "STICKLESS_LARAVEL_SRC={} holds no Illuminate/Session/Store.php",
            dir.display()
        );
        return dir;
    }
    let root = target_dir().join("laravel");
    let src = root.join("php");
    if !store_php(&src).is_file() {
        fetch_laravel(&root, &src);
    }
    src
}

/// The Debian mirror the host's apt uses (its first `.../debian` URI), or
/// `STICKLESS_DEBIAN_MIRROR`.
fn debian_mirror() -> String {
    if let Ok(mirror) = std::env::var("STICKLESS_DEBIAN_MIRROR") {
        return mirror;
    }
    let mut sources = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        sources.extend(dir.flatten().map(|entry| entry.path()));
    }
    sources
        .iter()
        .filter(|path| path.extension().is_none_or(|ext| ext == "list" || ext == "sources"))
        .filter_map(|path| fs::read_to_string(path).ok())
        .flat_map(|text| {
            text.lines()
                .filter(|line| !line.trim_start().starts_with('#'))
                .flat_map(|line| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        })
        .map(|word| word.trim_end_matches('/').to_owned())
        .find(|word| word.starts_with("http") && word.ends_with("/debian"))
        .unwrap_or_else(|| {
            panic!("no Debian mirror in /etc/apt's sources; set STICKLESS_DEBIAN_MIRROR or STICKLESS_LARAVEL_SRC")
        })
}

fn fetch_laravel(root: &Path, src: &Path) {
    let work = root.join(format!(".fetch-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    for dir in [
        "lists/partial",
        "cache/archives/partial",
        "parts",
        "debs",
        "unpacked",
    ] {
        fs::create_dir_all(work.join(dir)).expect("apt's directories");
    }
    let signed = if Path::new(KEYRING).is_file() {
        format!("[signed-by={KEYRING}] ")
    } else {
        String::new()
    };
    fs::write(
        work.join("sources.list"),
        format!("deb {signed}{} {SUITE} main\n", debian_mirror()),
    )
    .expect("sources.list");
    fs::write(work.join("status"), "").expect("an empty dpkg status");
    let apt = |args: &[&str], dir: &Path| {
        let options = [
            format!(
                "Dir::Etc::SourceList={}",
                work.join("sources.list").display()
            ),
            format!("Dir::Etc::SourceParts={}", work.join("parts").display()),
            format!(
                "Dir::Etc::PreferencesParts={}",
                work.join("parts").display()
            ),
            format!(
                "Dir::Etc::Preferences={}",
                work.join("preferences").display()
            ),
            format!("Dir::State::Lists={}", work.join("lists").display()),
            format!("Dir::State::status={}", work.join("status").display()),
            format!("Dir::Cache={}", work.join("cache").display()),
            "Acquire::Languages=none".to_owned(),
        ];
        let mut cmd = Command::new("apt-get");
        cmd.arg("-q");
        for option in &options {
            cmd.args(["-o", option]);
        }
        let out = cmd
            .args(args)
            .current_dir(dir)
            .output()
            .expect("apt-get runs");
        assert!(
            out.status.success(),
            "apt-get {args:?} failed (set STICKLESS_LARAVEL_SRC to skip the download):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    apt(&["update"], &work);
    let mut download = vec!["download"];
    download.extend(PACKAGES);
    apt(&download, &work.join("debs"));
    let mut debs: Vec<PathBuf> = fs::read_dir(work.join("debs"))
        .expect("downloaded")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .collect();
    debs.sort();
    assert_eq!(debs.len(), PACKAGES.len(), "{debs:?}");
    for deb in &debs {
        let status = Command::new("dpkg-deb")
            .arg("-x")
            .arg(deb)
            .arg(work.join("unpacked"))
            .status()
            .expect("dpkg-deb runs");
        assert!(status.success(), "dpkg-deb -x {}", deb.display());
    }
    let names: Vec<String> = debs
        .iter()
        .filter_map(|deb| deb.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    fs::write(
        root.join("SOURCE"),
        format!(
            "Debian {SUITE}, apt-get download (checked against the signed Release file), dpkg-deb -x:\n{}\n",
            names.join("\n")
        ),
    )
    .expect("SOURCE");
    // Another test binary may have finished first; either copy will do.
    if fs::rename(work.join("unpacked/usr/share/php"), src).is_err() {
        assert!(store_php(src).is_file(), "{} was not filled", src.display());
    }
    let _ = fs::remove_dir_all(&work);
}

fn url(redis: &RedisServer) -> String {
    format!(
        "redis://127.0.0.1:{}/0?prefix=laravel:&lock_wait_ms=20000",
        redis.port()
    )
}

/// One Laravel request (see `REQUEST_PHP`).
fn laravel_request(url: &str, serialization: &str, action: &str, args: &[&str]) -> Command {
    let laravel = laravel();
    let mut cmd = php();
    // Laravel 10's own deprecations on newer PHPs are not under test.
    for extension in &laravel.extensions {
        cmd.arg("-d").arg(extension);
    }
    cmd.args(["-d", "error_reporting=E_ALL & ~E_DEPRECATED"])
        .arg(&laravel.script)
        .arg(&laravel.src)
        .args([url, serialization, action])
        .args(args);
    cmd
}

fn run_laravel(url: &str, serialization: &str, action: &str, args: &[&str]) -> String {
    let out = laravel_request(url, serialization, action, args)
        .output()
        .expect("php runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "laravel {action} ({serialization}) failed: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn store(url: &str, handler: SerializeHandler) -> Store {
    // Laravel's default lifetime, 120 minutes.
    Store::with_php(
        Config::parse(url).expect("valid URL"),
        handler,
        Duration::from_secs(120 * 60),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Default)]
struct Flash {
    old: Vec<String>,
    new: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Clone)]
struct Item {
    sku: String,
    qty: i64,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Prefs {
    theme: String,
    ratio: f64,
    big: f64,
    greeting: String,
}

/// The first `email` message of the flashed `errors`: a ViewErrorBag object
/// with the php serialization, the array Laravel makes of it with json.
fn email_error(errors: &Value) -> Option<&[u8]> {
    let bags = match errors {
        Value::Object { .. } => errors.get("bags")?,
        _ => errors,
    };
    bags.get("default")?
        .get("messages")?
        .get("email")?
        .get(0)?
        .as_bytes()
}

#[test]
fn laravel_writes_and_rust_reads_with_both_serializations() {
    let redis = RedisServer::start();
    let url = url(&redis);
    let rt = runtime();
    for (serialization, handler) in SERIALIZATIONS {
        let sid = run_laravel(&url, serialization, "login", &[]);
        assert_eq!(sid.len(), 40, "a Laravel session ID: {sid}");
        let id = SessionId::parse(&sid).expect("Laravel's IDs are PHP session IDs");
        let store = store(&url, handler);
        let session = rt
            .block_on(store.read(&id))
            .expect("readable")
            .expect("the session Laravel wrote");
        let token: String = session.get("_token").unwrap().expect("a CSRF token");
        assert!(
            token.len() == 40 && token.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{token}"
        );
        assert_eq!(
            session.get::<i64>(LOGIN_WEB).unwrap(),
            Some(42),
            "{serialization}"
        );
        assert_eq!(
            session.get::<Vec<Item>>("cart").unwrap(),
            Some(vec![Item {
                sku: "tea".into(),
                qty: 2
            }])
        );
        assert_eq!(
            session.get::<Prefs>("prefs").unwrap(),
            Some(Prefs {
                theme: "dark".into(),
                ratio: 0.1,
                big: 1e25,
                greeting: "Grüße 😀 a/b".into(),
            })
        );
        // Saving aged the flash: what this request flashed is for the next one.
        assert_eq!(
            session.get::<Flash>("_flash").unwrap(),
            Some(Flash {
                old: vec!["status".into(), "errors".into()],
                new: vec![],
            })
        );
        assert_eq!(
            session.get::<String>("status").unwrap().as_deref(),
            Some("Welcome back, Ada!")
        );
        let errors = session.get_value("errors").expect("flashed errors");
        assert_eq!(
            email_error(errors),
            Some(&b"The email field must be a valid email address."[..]),
            "{serialization}: {errors:?}"
        );
        assert_eq!(
            session
                .get_value("_previous")
                .and_then(|p| p.get("url"))
                .and_then(Value::as_bytes),
            Some(&b"https://shop.test/account"[..])
        );
        // Written back, the attributes are the very bytes Laravel stored.
        let stored = rt.block_on(store.load(&id)).unwrap();
        assert_eq!(
            session.encode(handler).unwrap(),
            stored.payload(),
            "{serialization}"
        );
        // So a session Rust opens and leaves alone is only touched.
        rt.block_on(async {
            store
                .open(&id)
                .await
                .unwrap()
                .unwrap()
                .commit()
                .await
                .unwrap()
        });
        assert_eq!(
            rt.block_on(store.load(&id)).unwrap(),
            stored,
            "{serialization}"
        );
    }
}

#[derive(Debug, Deserialize, PartialEq)]
struct Shown {
    user: Option<i64>,
    token: String,
    cart: Vec<Item>,
    status: Option<String>,
    notice: Option<String>,
    email_error: Option<String>,
    from_rust: Option<String>,
}

#[test]
fn rust_writes_and_laravel_reads_with_both_serializations() {
    let redis = RedisServer::start();
    let url = url(&redis);
    let rt = runtime();
    for (serialization, handler) in SERIALIZATIONS {
        let sid = run_laravel(&url, serialization, "login", &[]);
        let id = SessionId::parse(&sid).unwrap();
        let store = store(&url, handler);
        let token = rt.block_on(async {
            let mut guard = store.open(&id).await.unwrap().expect("exists");
            let mut cart: Vec<Item> = guard.get("cart").unwrap().unwrap_or_default();
            cart.push(Item {
                sku: "cake/2".into(),
                qty: 1,
            });
            guard.set("cart", &cart).unwrap();
            guard.set("from_rust", &"héllo \"world\"").unwrap();
            // A flash for Laravel's next request: the name goes to
            // `_flash.old`, where Laravel's own save() would have put it.
            guard.set("notice", &"Saved by Rust").unwrap();
            let mut flash: Flash = guard.get("_flash").unwrap().unwrap_or_default();
            flash.old.push("notice".into());
            guard.set("_flash", &flash).unwrap();
            let token: String = guard.get("_token").unwrap().expect("set");
            guard.commit().await.unwrap();
            token
        });
        let first: Shown = serde_json::from_str(&run_laravel(&url, serialization, "show", &[&sid]))
            .expect("the request printed JSON");
        assert_eq!(
            first,
            Shown {
                user: Some(42),
                token: token.clone(),
                cart: vec![
                    Item {
                        sku: "tea".into(),
                        qty: 2
                    },
                    Item {
                        sku: "cake/2".into(),
                        qty: 1
                    }
                ],
                status: Some("Welcome back, Ada!".into()),
                notice: Some("Saved by Rust".into()),
                email_error: Some("The email field must be a valid email address.".into()),
                from_rust: Some("héllo \"world\"".into()),
            },
            "{serialization}"
        );
        // Flashed data lives for one request, Rust's as Laravel's.
        let second: Shown =
            serde_json::from_str(&run_laravel(&url, serialization, "show", &[&sid])).unwrap();
        assert_eq!(
            (second.status, second.notice, second.email_error),
            (None, None, None),
            "{serialization}"
        );
        assert_eq!((second.user, second.token), (Some(42), token));
        assert_eq!(second.cart.len(), 2);
        let session = rt.block_on(store.read(&id)).unwrap().unwrap();
        assert_eq!(
            session.get::<Flash>("_flash").unwrap(),
            Some(Flash::default())
        );
    }
}

#[test]
fn laravel_requests_and_rust_tasks_incrementing_one_session_lose_nothing() {
    const PHP_PROCESSES: usize = 4;
    const PHP_ROUNDS: usize = 15;
    const RUST_TASKS: usize = 4;
    const RUST_ROUNDS: usize = 15;
    let redis = RedisServer::start();
    let url = url(&redis);
    let rt = runtime();
    for (serialization, handler) in SERIALIZATIONS {
        let sid = run_laravel(&url, serialization, "login", &[]);
        let id = SessionId::parse(&sid).unwrap();
        let store = store(&url, handler);
        let before = rt.block_on(store.read(&id)).unwrap().unwrap();
        let rounds = PHP_ROUNDS.to_string();
        let children: Vec<_> = (0..PHP_PROCESSES)
            .map(|_| {
                laravel_request(&url, serialization, "count", &[&sid, &rounds])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("php starts")
            })
            .collect();
        rt.block_on(async {
            let tasks: Vec<_> = (0..RUST_TASKS)
                .map(|_| {
                    let store = store.clone();
                    let id = id.clone();
                    tokio::spawn(async move {
                        for _ in 0..RUST_ROUNDS {
                            let mut guard = store.open(&id).await.unwrap().expect("exists");
                            let n: i64 = guard.get("n").unwrap().unwrap_or(0);
                            guard.set("n", &(n + 1)).unwrap();
                            guard.commit().await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("task finished");
            }
        });
        for child in children {
            let out = child.wait_with_output().expect("php exits");
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "php exit {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let after = rt.block_on(store.read(&id)).unwrap().unwrap();
        assert_eq!(
            after.get::<i64>("n").unwrap(),
            Some((PHP_PROCESSES * PHP_ROUNDS + RUST_TASKS * RUST_ROUNDS) as i64),
            "{serialization}"
        );
        // Nobody's write replaced anyone else's attributes either.
        for name in ["_token", LOGIN_WEB, "cart", "prefs"] {
            assert_eq!(
                after.get_value(name),
                before.get_value(name),
                "{serialization}: {name}"
            );
        }
    }
}
