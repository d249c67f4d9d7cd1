//! The network side: bind listeners, accept connections (with a limit and backoff), run background
//! tasks (retention, group timers), and shut down in order.
//!
//! Shutdown follows tansu and mini-redis: a `CancellationToken` stops the accept loop and every
//! connection's reader; connections get a grace period to write the responses they owe; then storage is
//! flushed and marked clean so the next start needs no recovery scan.

mod connection;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::broker::{now_ms, Broker, NodeInfo};
use crate::config::BrokerConfig;
use crate::error::{Error, Result};

/// How long connections may take to finish in-flight requests after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub struct Server {
    broker: Arc<Broker>,
    listeners: Vec<TcpListener>,
}

impl Server {
    /// Binds every listener, then opens (and if needed recovers) storage.
    pub async fn bind(config: BrokerConfig) -> Result<Self> {
        config.validate()?;
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for addr in &config.listeners {
            let listener =
                TcpListener::bind(addr).await.map_err(|reason| Error::Bind { addr: addr.clone(), reason })?;
            listeners.push(listener);
        }
        let node = advertised_node(&config, listeners[0].local_addr()?)?;
        let broker = tokio::task::spawn_blocking(move || Broker::open(config, node))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        Ok(Self { broker, listeners })
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Serves until `shutdown` is cancelled, then closes connections and storage cleanly.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let broker = self.broker;
        let limit = Arc::new(Semaphore::new(broker.config.max_connections));
        let mut tasks = JoinSet::new();
        for listener in self.listeners {
            tracing::info!(addr = %listener.local_addr()?, "broker listening");
            tasks.spawn(accept_loop(listener, broker.clone(), limit.clone(), shutdown.clone()));
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

fn advertised_node(config: &BrokerConfig, bound: SocketAddr) -> Result<NodeInfo> {
    let (host, port) = match &config.advertised_listener {
        Some(listener) => {
            let (host, port) = listener.rsplit_once(':').ok_or_else(|| {
                Error::Config(format!("broker.advertised_listener: `{listener}` is not host:port"))
            })?;
            let port = port
                .parse::<u16>()
                .map_err(|_| Error::Config(format!("broker.advertised_listener: bad port in `{listener}`")))?;
            (host.to_owned(), port)
        }
        None if bound.ip().is_unspecified() => {
            return Err(Error::Config(format!(
                "broker.listeners: listening on {bound} needs broker.advertised_listener (the host:port clients should use)"
            )))
        }
        None => (bound.ip().to_string(), bound.port()),
    };
    Ok(NodeInfo { node_id: config.node_id, host, port: port as i32 })
}

async fn accept_loop(listener: TcpListener, broker: Arc<Broker>, limit: Arc<Semaphore>, shutdown: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        // Wait for a free connection slot first, so over-limit clients queue in the kernel's backlog.
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => permit.expect("semaphore never closed"),
            _ = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = accept_with_backoff(&listener) => accepted,
            _ = shutdown.cancelled() => break,
        };
        let (socket, peer) = accepted;
        let _ = socket.set_nodelay(true);
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            connection::serve(socket, peer, broker, shutdown).await;
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

async fn retention_loop(broker: Arc<Broker>, shutdown: CancellationToken) {
    let period = Duration::from_millis(broker.config.log_retention_check_interval_ms.max(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.cancelled() => return,
        }
        let logs = broker.logs.clone();
        match tokio::task::spawn_blocking(move || logs.enforce_retention(now_ms())).await {
            Ok(Ok(0)) => {}
            Ok(Ok(deleted)) => tracing::info!(deleted, "retention deleted old segments"),
            Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
            Err(e) => tracing::error!(error = %e, "retention task panicked"),
        }
    }
}
