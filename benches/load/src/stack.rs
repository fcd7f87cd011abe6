//! The scene: deploy/local/stack.sh (Redis, php-fpm pods, nginx on
//! loopback) in a state directory of its own, stopped on drop.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::handlers::Handler;

/// Where the pods reach Redis when it is not directly.
#[derive(Debug, Clone, Copy)]
pub struct Detour {
    /// The port Redis listens on.
    pub redis_port: u16,
    /// The port the pods connect to instead.
    pub proxy_port: u16,
}

/// A running stack.
pub struct Stack {
    script: PathBuf,
    dir: PathBuf,
    /// nginx's loopback port.
    pub port: u16,
    /// Redis's loopback port.
    pub redis_port: u16,
}

impl Stack {
    /// Starts the stack for `handler` with `pods` pods of `workers` workers.
    /// With `via`, Redis listens on `via.redis_port` and the pods reach it
    /// through `via.proxy_port` (the delay proxy).
    pub fn up(
        root: &Path,
        dir: &Path,
        handler: &Handler,
        pods: u32,
        workers: u32,
        via: Option<Detour>,
    ) -> Result<Self> {
        let script = root.join("deploy/local/stack.sh");
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut env = handler.env.clone();
        if let Some(via) = via {
            for (key, value) in &mut env {
                if *key == "SESSION_SAVE_PATH" {
                    *value = value.replace("{redis_port}", &via.proxy_port.to_string());
                }
            }
            env.push(("REDIS_PORT", via.redis_port.to_string()));
        }
        let out = Command::new("bash")
            .arg(&script)
            .arg("up")
            .env("STACK_DIR", dir)
            .env("PODS", pods.to_string())
            .env("FPM_WORKERS", workers.to_string())
            .env("SESSION_PREFIX", "bench:")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .context("running deploy/local/stack.sh")?;
        let mut stack = Self {
            script,
            dir: dir.to_path_buf(),
            port: 0,
            redis_port: 0,
        };
        if !out.status.success() {
            bail!(
                "stack.sh up failed for {}:\n{}",
                handler.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let env = stack.state()?;
        stack.port = port(&env, "NGINX_PORT")?;
        stack.redis_port = port(&env, "REDIS_PORT")?;
        Ok(stack)
    }

    fn state(&self) -> Result<HashMap<String, String>> {
        let text = fs::read_to_string(self.dir.join("stack.env")).context("reading stack.env")?;
        Ok(text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
            .collect())
    }

    /// PIDs of every php-fpm worker (the masters' children).
    pub fn fpm_workers(&self) -> Vec<u32> {
        let masters: Vec<u32> = fs::read_dir(self.dir.join("pods"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|pod| fs::read_to_string(pod.path().join("php-fpm.pid")).ok())
            .filter_map(|pid| pid.trim().parse().ok())
            .collect();
        crate::metrics::children_of(&masters)
    }
}

fn port(env: &HashMap<String, String>, key: &str) -> Result<u16> {
    env.get(key)
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("stack.env has no {key}"))
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("down")
            .env("STACK_DIR", &self.dir)
            .output();
    }
}
