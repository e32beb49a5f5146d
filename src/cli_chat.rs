//! `switchboard chat export VISITOR` and `switchboard chat forget VISITOR`: one visitor's chat
//! data, for a data-subject request — through the running server's admin socket, or straight
//! from the store when no server runs on it.

use crate::admin::client::Client;
use crate::admin::Request;
use crate::cli_user::DataDir;
use crate::store::{Store, DEFAULT_CACHE_BYTES};
use clap::Subcommand;
use std::path::Path;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ChatCommand {
    /// Print one visitor's threads and messages as JSON (the authid, e.g. `visitor:…` or
    /// `user:…`, as the inbox shows it).
    Export {
        visitor: String,
        #[command(flatten)]
        store: DataDir,
    },
    /// Delete one visitor's threads, messages and files for good.
    Forget {
        visitor: String,
        #[command(flatten)]
        store: DataDir,
    },
}

pub fn main(cmd: ChatCommand) -> ExitCode {
    match run(cmd) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard chat: {e}");
            ExitCode::from(2)
        }
    }
}

fn offline<T>(
    dir: &Path,
    f: impl FnOnce(crate::store::chat::ChatStore) -> Result<T, String>,
) -> Result<T, String> {
    if !dir.exists() {
        return Err(format!("no data directory at {}", dir.display()));
    }
    let store = Store::open(dir, DEFAULT_CACHE_BYTES).map_err(|e| e.to_string())?;
    f(store.chat().map_err(|e| e.to_string())?)
}

pub fn run(cmd: ChatCommand) -> Result<String, String> {
    match cmd {
        ChatCommand::Export { visitor, store } => {
            let export = match Client::connect(&store.data_dir) {
                Some(server) => server
                    .request(&Request::ChatExport { visitor })?
                    .get("export")
                    .cloned()
                    .ok_or("the server's answer has no export")?,
                None => offline(&store.data_dir, |chat| {
                    crate::chat::export::visitor(&chat, &visitor).map_err(|e| e.to_string())
                })?,
            };
            serde_json::to_string_pretty(&export).map_err(|e| e.to_string())
        }
        ChatCommand::Forget { visitor, store } => {
            let n = match Client::connect(&store.data_dir) {
                Some(server) => server
                    .request(&Request::ChatForget {
                        visitor: visitor.clone(),
                    })?
                    .get("threads")
                    .and_then(|n| n.as_u64())
                    .unwrap_or(0),
                None => offline(&store.data_dir, |chat| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .map_err(|e| e.to_string())?;
                    rt.block_on(crate::chat::export::forget_offline(&chat, &visitor))
                        .map(|n| n as u64)
                        .map_err(|e| e.to_string())
                })?,
            };
            Ok(format!("deleted {n} thread(s) of '{visitor}'"))
        }
    }
}
