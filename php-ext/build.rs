//! Compiles the one C file the extension needs (`src/session_globals.c`)
//! against the headers of the PHP it is built for: `php-config --includes`,
//! or `$PHP_CONFIG`, the same one ext-php-rs uses.

use std::env;
use std::process::Command;

fn main() {
    let php_config = env::var("PHP_CONFIG").unwrap_or_else(|_| "php-config".into());
    println!("cargo:rerun-if-env-changed=PHP_CONFIG");
    println!("cargo:rerun-if-changed=src/session_globals.c");
    let out = Command::new(&php_config)
        .arg("--includes")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{php_config} --includes` (install phpX.Y-dev): {e}")
        });
    assert!(
        out.status.success(),
        "`{php_config} --includes` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let includes = String::from_utf8_lossy(&out.stdout);
    let mut build = cc::Build::new();
    for dir in includes
        .split_whitespace()
        .filter_map(|f| f.strip_prefix("-I"))
    {
        build.include(dir);
    }
    build
        .file("src/session_globals.c")
        .warnings(true)
        .compile("stickless_session_globals");
}
