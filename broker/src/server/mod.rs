//! The network side: bind listeners, accept connections (with a limit and backoff), run background
//! tasks (retention, group timers), and shut down in order.
//!
//! Shutdown follows tansu and mini-redis: a `CancellationToken` stops the accept loop and every
//! connection's reader; connections get a grace period to write the responses they owe; then storage is
//! flushed and marked clean so the next start needs no recovery scan.

mod connection;
mod listener;
mod sendfile;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use logpipe_config::Valid;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::broker::{steady_clock_ms, Broker};
use crate::config::BrokerConfig;
use crate::error::{Error, Result};
use crate::security::tls::TlsContext;
use listener::Listener;

/// How long connections may take to finish in-flight requests after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub struct Server {
    broker: Arc<Broker>,
    listeners: Vec<(TcpListener, Arc<Listener>)>,
    tls: Option<Arc<TlsContext>>,
}

impl Server {
    /// Binds every listener, then opens (and if needed recovers) storage. TLS files are read here: a
    /// listener that asks for TLS never starts without them.
    pub async fn bind(config: Valid<BrokerConfig>) -> Result<Self> {
        let specs = crate::security::resolve_listeners(&config)?;
        let tls = match specs.iter().any(|s| s.protocol.uses_tls()) {
            true => Some(Arc::new(TlsContext::load(&config)?)),
            false => None,
        };
        let mut listeners = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            let socket = TcpListener::bind(spec.addr)
                .await
                .map_err(|reason| Error::Bind { addr: format!("{}://{}", spec.name, spec.addr), reason })?;
            let legacy_advertised = if i == 0 { config.advertised_listener.as_deref() } else { None };
            let listener = Listener::new(&config, spec, socket.local_addr()?, legacy_advertised, tls.clone())?;
            listeners.push((socket, Arc::new(listener)));
        }
        let node = listeners[0].1.node.clone();
        let broker = tokio::task::spawn_blocking(move || Broker::open(config, node))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        Ok(Self { broker, listeners, tls })
    }

    /// The bound address of each listener, in the order of `listeners`.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|(l, _)| l.local_addr().ok()).collect()
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Serves until `shutdown` is cancelled, then closes connections and storage cleanly.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let broker = self.broker;
        let limit = Arc::new(Semaphore::new(broker.config.max_connections));
        let mut tasks = JoinSet::new();
        for (socket, listener) in self.listeners {
            tracing::info!(addr = %socket.local_addr()?, listener = %listener.name, protocol = listener.protocol.name(), "broker listening");
            tasks.spawn(accept_loop(socket, listener, broker.clone(), limit.clone(), shutdown.clone()));
        }
        if let Some(tls) = self.tls {
            tasks.spawn(tls_reload_loop(tls, shutdown.clone()));
        }
        tasks.spawn(retention_loop(broker.clone(), shutdown.clone()));
        tasks.spawn(broker.groups.clone().run_timers(shutdown.clone()));

        shutdown.cancelled().await;
        tracing::info!("broker shutting down");
        if tokio::time::timeout(SHUTDOWN_GRACE, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
            tracing::warn!("connections still busy after {SHUTDOWN_GRACE:?}; closing them");
            tasks.shutdown().await;
        }
        tokio::task::spawn_blocking(move || broker.close())
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        tracing::info!("broker stopped cleanly");
        Ok(())
    }
}

async fn accept_loop(
    socket: TcpListener,
    listener: Arc<Listener>,
    broker: Arc<Broker>,
    limit: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        // Wait for a free connection slot first, so over-limit clients queue in the kernel's backlog.
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => permit.expect("semaphore never closed"),
            _ = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = accept_with_backoff(&socket) => accepted,
            _ = shutdown.cancelled() => break,
        };
        let (socket, peer) = accepted;
        let _ = socket.set_nodelay(true);
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        let listener = listener.clone();
        connections.spawn(async move {
            listener.serve(socket, peer, broker, shutdown).await;
            drop(permit);
        });
        // Reap finished connection tasks so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}

/// Accepts one connection, backing off on errors such as EMFILE instead of spinning (mini-redis).
async fn accept_with_backoff(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    let mut backoff = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// How often the TLS files are checked for changes.
const TLS_RELOAD_CHECK: Duration = Duration::from_secs(1);

async fn tls_reload_loop(tls: Arc<TlsContext>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TLS_RELOAD_CHECK) => {}
            _ = shutdown.cancelled() => return,
        }
        let tls = tls.clone();
        let _ = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
    }
}

async fn retention_loop(broker: Arc<Broker>, shutdown: CancellationToken) {
    let period = Duration::from_millis(broker.config.log_retention_check_interval_ms.max(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.cancelled() => return,
        }
        let broker = broker.clone();
        match tokio::task::spawn_blocking(move || broker.enforce_retention(steady_clock_ms())).await {
            Ok(Ok(0)) => {}
            Ok(Ok(deleted)) => tracing::info!(deleted, "retention deleted old segments"),
            Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
            Err(e) => tracing::error!(error = %e, "retention task panicked"),
        }
    }
}
