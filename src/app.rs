//! The composition root: opens the store, builds the router from its configuration, binds the
//! listener, and runs the documented shutdown order. The only module that knows all others.

use crate::config::RouterConfig;
use crate::http::{serve_connection, HttpState};
use crate::outbox::close_code;
use crate::router::Router;
use crate::store::{Store, StoreError};
use crate::transport::connections::Connections;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How the server is started (from the command line or a test).
#[derive(Clone, Debug)]
pub struct Options {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub router: RouterConfig,
    pub ws_path: String,
    pub echo_path: Option<String>,
    pub echo_max_message: usize,
    pub cache_bytes: u64,
    /// How long shutdown waits for connections to close before giving up on them.
    pub shutdown_grace: Duration,
}

impl Options {
    /// Development defaults on `listen` with data in `data_dir`.
    pub fn development(listen: SocketAddr, data_dir: PathBuf) -> Options {
        Options {
            listen,
            data_dir,
            router: RouterConfig::development(Default::default()),
            ws_path: "/ws".into(),
            echo_path: None,
            echo_max_message: 32 << 20,
            cache_bytes: crate::store::DEFAULT_CACHE_BYTES,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the data store in {dir}: {source}")]
    Store { dir: String, source: StoreError },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    pub router: Arc<Router>,
    pub conns: Arc<Connections>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    store: Arc<Store>,
    grace: Duration,
}

pub async fn start(opts: Options) -> Result<Running, StartError> {
    std::fs::create_dir_all(&opts.data_dir).map_err(|e| StartError::Store {
        dir: opts.data_dir.display().to_string(),
        source: StoreError::Sled(sled::Error::Io(e)),
    })?;
    let store =
        Store::open(&opts.data_dir, opts.cache_bytes).map_err(|source| StartError::Store {
            dir: opts.data_dir.display().to_string(),
            source,
        })?;
    let node = store
        .record_start()
        .await
        .map_err(|source| StartError::Store {
            dir: opts.data_dir.display().to_string(),
            source,
        })?;
    tracing::info!(starts = node.starts, dir = %opts.data_dir.display(), "data store opened");
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: opts.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: opts.listen,
        source,
    })?;
    let conns = Connections::new(opts.router.limits.clone());
    let router = Router::new(opts.router.clone());
    let state = Arc::new(HttpState {
        router: router.clone(),
        conns: conns.clone(),
        started: Instant::now(),
        started_at: SystemTime::now(),
        ws_path: opts.ws_path.clone(),
        echo_path: opts.echo_path.clone(),
        echo_max_message: opts.echo_max_message,
    });
    let (stop, mut stopped) = watch::channel(false);
    let sweeper = conns.spawn_sweeper();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        tokio::spawn(serve_connection(stream, state.clone()));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = stopped.changed() => break,
            }
        }
        sweeper.abort();
    });
    Ok(Running {
        addr,
        router,
        conns,
        stop,
        task,
        store: Arc::new(store),
        grace: opts.shutdown_grace,
    })
}

impl Running {
    /// The shutdown order: stop accepting → ask every connection to close (a WebSocket close
    /// 1001 "going away", not a WAMP GOODBYE, so Autobahn clients reconnect) → wait for them
    /// within the grace period → flush and close the store.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.conns
            .close_all(close_code::GOING_AWAY, "server shutting down");
        if !self.conns.wait_empty(self.grace).await {
            tracing::warn!(
                left = self.conns.count(),
                "connections did not close in time; dropping them"
            );
        }
        self.store.close().await
    }
}
