//! An axum service that shares its users' sessions with PHP pods.
//!
//! It reads the logged-in user that PHP put in `$_SESSION['user']`, and adds
//! items to `$_SESSION['cart']` under the same lock PHP takes, so PHP's next
//! request sees them. See docs/RUST.md for a walk-through.

mod api;
mod cart;
mod cli;
mod cookie;
mod error;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::net::TcpListener;

use crate::api::App;
use crate::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Colour codes only help a person at a terminal; in a log file they are noise.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();

    let store = match cli.store() {
        Ok(store) => store,
        Err(e) => {
            tracing::error!("--save-path: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(cli.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("cannot listen on {}: {e}", cli.listen);
            return ExitCode::FAILURE;
        }
    };
    // `server` prints without credentials.
    tracing::info!(
        "listening on {}; sessions in {} (serialize_handler {}, cookie {})",
        cli.listen,
        store.config().server,
        cli.serialize_handler,
        cli.cookie,
    );
    let app = api::router(App {
        store,
        cookie: Arc::new(cli.cookie),
    });
    // Finishing the requests in flight lets their guards commit or release,
    // instead of leaving locks for PHP to wait out.
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
    {
        tracing::error!("server failed: {e}");
        return ExitCode::FAILURE;
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Resolves on SIGINT or SIGTERM (what a process supervisor sends).
async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
