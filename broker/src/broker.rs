//! The state every request handler shares: config, partition logs, the group coordinator, and who this
//! node is. Handlers receive an `Arc<Broker>`; tests build one over a temp dir without any socket.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use logpipe_config::Valid;

use crate::config::BrokerConfig;
use crate::error::Result;
use crate::group::GroupCoordinator;
use crate::group_retention::RetentionWatch;
use crate::security::acl::{Authorizer, Operation, Requester, ResourceType};
use crate::security::credentials::CredentialStore;
use crate::security::sasl::FailureLog;
use crate::storage::{LogConfig, LogManager};

/// Where clients reach this node, as advertised in Metadata and FindCoordinator.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// Who sent a request: the connection's peer, its principal (`User:name`, `User:ANONYMOUS` before or
/// without authentication), and this node as the connection's listener advertises it.
#[derive(Debug, Clone)]
pub struct Session {
    pub peer: std::net::SocketAddr,
    pub principal: String,
    pub node: NodeInfo,
    /// The connection sends Fetch record sets from their segment files with `sendfile` (plain TCP), so
    /// Fetch leaves them there instead of reading them into memory.
    pub sendfile: bool,
}

impl Session {
    pub fn requester(&self) -> Requester<'_> {
        Requester { principal: &self.principal, host: self.peer.ip() }
    }
}

pub struct Broker {
    pub config: BrokerConfig,
    pub node: NodeInfo,
    pub logs: Arc<LogManager>,
    pub groups: Arc<GroupCoordinator>,
    /// SCRAM credentials (`credentials.json` under `log_dirs`), reread when the file changes.
    pub credentials: Arc<CredentialStore>,
    /// ACLs, `super_users` and `allow_everyone_if_no_acl_found`.
    pub acls: Authorizer,
    /// Failed authentications, logged rate-limited.
    pub auth_failures: FailureLog,
    /// What retention deleted before groups consumed it (totals kept across restarts), and which groups
    /// are at risk.
    pub retention_watch: RetentionWatch,
    next_producer_id: AtomicI64,
}

impl Broker {
    /// Opens (and if needed recovers) the storage under `config.log_dirs`.
    pub(crate) fn open(config: Valid<BrokerConfig>, node: NodeInfo) -> Result<Arc<Self>> {
        let config = config.into_inner();
        let logs = LogManager::open(LogConfig::from_broker(&config))?;
        let groups = GroupCoordinator::open(&config, logs.clone())?;
        let credentials = Arc::new(CredentialStore::open(&config.log_dirs)?);
        let retention_watch = RetentionWatch::open(&config.log_dirs)?;
        let allow_everyone = crate::security::allow_everyone_if_no_acl_found(&config);
        let acls = Authorizer::open(
            &config.log_dirs,
            crate::security::acl_bindings(&config)?,
            config.super_users.clone(),
            allow_everyone,
        )?;
        if !acls.allows_everyone() {
            tracing::info!(
                allow_everyone_if_no_acl_found = allow_everyone,
                super_users = ?config.super_users,
                "authorization is on: requests need ACLs (or a super user)"
            );
        }
        // Producer ids must never repeat across restarts, or a restarted broker could accept a new
        // producer's batches as duplicates of an old one's. Seeding from the wall clock (microseconds)
        // gives a fresh, larger range on every start without persisting a counter.
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(1);
        Ok(Arc::new(Self {
            config,
            node,
            logs,
            groups,
            credentials,
            acls,
            auth_failures: FailureLog::default(),
            retention_watch,
            next_producer_id: AtomicI64::new(seed),
        }))
    }

    /// Whether the session may do `operation` on the named resource (ACLs, super users).
    pub fn authorize(&self, session: &Session, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        self.acls.authorize(&session.requester(), operation, resource_type, name)
    }

    pub fn allocate_producer_id(&self) -> i64 {
        self.next_producer_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Flushes and closes storage so the next start needs no recovery scan.
    /// Both parts are always closed, even if the first fails, so no partition is left unflushed.
    pub fn close(&self) -> Result<()> {
        let groups = self.groups.close();
        let logs = self.logs.close();
        groups.and(logs)
    }
}

/// Milliseconds since the Unix epoch: the `now` that time-dependent code takes as an argument.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The group coordinator's and log retention's `now`: the wall clock at the first call plus the monotonic
/// time since. Session, rebalance, offset-retention and log-retention timeouts measured with it are immune
/// to wall-clock steps (NTP, a resumed VM, `date -s`): a step forward must not expire every member at once
/// nor delete segments an hour early, and a step back must not keep a dead member, or stall retention, for
/// an hour. It still reads as a wall-clock time (commit timestamps) and is
/// anchored again at each start.
pub fn steady_clock_ms() -> i64 {
    static ANCHOR: OnceLock<(i64, Instant)> = OnceLock::new();
    let (wall, start) = ANCHOR.get_or_init(|| (now_ms(), Instant::now()));
    wall.saturating_add(start.elapsed().as_millis() as i64)
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[test]
    fn the_group_clock_starts_at_the_wall_clock_and_never_goes_back() {
        let first = steady_clock_ms();
        assert!((first - now_ms()).abs() < 60_000, "anchored at the wall clock");
        let mut last = first;
        for _ in 0..1000 {
            let t = steady_clock_ms();
            assert!(t >= last);
            last = t;
        }
    }
}
