//! SIGHUP: reload what can be reloaded without a restart. Components register a named hook
//! (`Reload::add`) at start; `listen_sighup` (installed once, by `main`) runs every hook in
//! order on each SIGHUP and logs each outcome. A hook that fails keeps what it had (a bad new
//! certificate is refused, the old one stays). The hooks: the TLS certificate files of each
//! listener (`app::tls_acceptor`) and, with `--config`, the config file (`main`: realms,
//! roles, permissions, transport authentication via `Running::config_reloader`). The admin
//! socket's `reload` (`switchboard reload`, systemd's `ExecReload`) runs the same hooks and
//! answers with each outcome.

use parking_lot::Mutex;
use std::sync::Arc;

/// One reload step: `Ok(what was done)` or `Err(why nothing changed)`.
pub type Hook = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// The hooks run on SIGHUP, in the order they were added.
#[derive(Clone, Default)]
pub struct Reload {
    hooks: Arc<Mutex<Vec<(String, Hook)>>>,
}

impl std::fmt::Debug for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.hooks.lock().iter().map(|(n, _)| n.clone()).collect();
        f.debug_struct("Reload").field("hooks", &names).finish()
    }
}

impl Reload {
    pub fn add(&self, name: impl Into<String>, hook: Hook) {
        self.hooks.lock().push((name.into(), hook));
    }

    /// Runs every hook; returns how many failed.
    pub fn run(&self) -> usize {
        self.run_report().iter().filter(|(_, r)| r.is_err()).count()
    }

    /// Runs every hook, logs each outcome and returns them (for `switchboard reload`).
    pub fn run_report(&self) -> Vec<(String, Result<String, String>)> {
        let hooks: Vec<(String, Hook)> = self.hooks.lock().clone();
        let mut out = Vec::with_capacity(hooks.len());
        for (name, hook) in hooks {
            let r = hook();
            match &r {
                Ok(done) => tracing::info!(hook = %name, "reload: {done}"),
                Err(why) => {
                    tracing::error!(hook = %name, "reload failed, keeping the old state: {why}");
                }
            }
            out.push((name, r));
        }
        out
    }
}

/// Installs the SIGHUP handler (at once, so a SIGHUP right after start-up is not fatal) and
/// runs `reload` on each signal. The one place the signal is handled.
pub fn listen_sighup(reload: Reload) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            // Hooks read files: off the async workers.
            let r = reload.clone();
            let _ = tokio::task::spawn_blocking(move || r.run()).await;
        }
    }))
}
