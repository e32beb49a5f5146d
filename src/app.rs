//! The composition root: opens the store, builds the router from its configuration, binds the
//! listener, and runs the documented shutdown order. The only module that knows all others.

use crate::config::RouterConfig;
use crate::http::{serve_connection, HttpState};
use crate::outbox::close_code;
use crate::router::Router;
use crate::store::{Store, StoreError};
use crate::transport::connections::Connections;
use crate::transport::rawsocket;
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
    /// WAMP RawSocket over TCP on this address.
    pub rawsocket_tcp: Option<SocketAddr>,
    /// WAMP RawSocket over a Unix-domain socket at this path.
    pub rawsocket_unix: Option<PathBuf>,
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
            rawsocket_tcp: None,
            rawsocket_unix: None,
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
    #[error("cannot listen on the Unix socket {path}: {source}")]
    BindUnix {
        path: String,
        source: std::io::Error,
    },
}

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    /// Where RawSocket over TCP listens, if enabled.
    pub rawsocket_addr: Option<SocketAddr>,
    rawsocket_tasks: Vec<tokio::task::JoinHandle<()>>,
    rawsocket_unix: Option<PathBuf>,
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
    let mut rawsocket_tasks = Vec::new();
    let mut rawsocket_addr = None;
    if let Some(a) = opts.rawsocket_tcp {
        let l = TcpListener::bind(a)
            .await
            .map_err(|source| StartError::Bind { addr: a, source })?;
        rawsocket_addr = Some(
            l.local_addr()
                .map_err(|source| StartError::Bind { addr: a, source })?,
        );
        rawsocket_tasks.push(tokio::spawn(rawsocket::accept_tcp(
            l,
            router.clone(),
            conns.clone(),
        )));
    }
    if let Some(path) = &opts.rawsocket_unix {
        // A socket file left by an earlier run would make bind fail.
        if std::fs::symlink_metadata(path)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        {
            let _ = std::fs::remove_file(path);
        }
        let l = tokio::net::UnixListener::bind(path).map_err(|source| StartError::BindUnix {
            path: path.display().to_string(),
            source,
        })?;
        rawsocket_tasks.push(tokio::spawn(rawsocket::accept_unix(
            l,
            router.clone(),
            conns.clone(),
        )));
    }
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
        rawsocket_addr,
        rawsocket_tasks,
        rawsocket_unix: opts.rawsocket_unix.clone(),
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
        for t in &self.rawsocket_tasks {
            t.abort();
        }
        if let Some(p) = &self.rawsocket_unix {
            let _ = std::fs::remove_file(p);
        }
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
