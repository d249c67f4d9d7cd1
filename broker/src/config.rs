//! The `[broker]` section of a pipeline file.
//!
//! Names are Kafka's `server.properties` names in snake_case (`log.dirs` → `log_dirs`), and every default
//! is Kafka's unless the field's doc says why it differs. Unknown keys are rejected by serde, so a typo is
//! an error that names the key instead of a silently ignored setting.

use std::collections::BTreeMap;
use std::path::PathBuf;

use logpipe_config::Validate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::group_retention::GroupRetention;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Addresses to listen on, `NAME://ip:port` (Kafka's form: `SASL_SSL://0.0.0.0:9093`) or a bare
    /// `ip:port` (PLAINTEXT). Default `["127.0.0.1:9092"]`. Port 0 picks a free port.
    pub listeners: Vec<String>,
    /// Host and port given to clients of the first listener in Metadata, when `advertised_listeners` does
    /// not name it. Default: the listener's bound address.
    pub advertised_listener: Option<String>,
    /// `NAME://host:port` per listener name (Kafka's `advertised.listeners`): what clients connected to
    /// that listener are told to use. Listeners not named here advertise their bound address.
    pub advertised_listeners: Vec<String>,
    /// Listener name → security protocol (Kafka's `listener.security.protocol.map`). The four protocol
    /// names always map to themselves unless given here.
    pub listener_security_protocol_map: BTreeMap<String, String>,
    /// Allow a PLAINTEXT listener on a non-loopback address. Default false: the broker refuses to start.
    pub allow_plaintext_remote: bool,
    /// PEM file with this broker's certificate chain, for SSL and SASL_SSL listeners.
    pub ssl_certificate_location: Option<PathBuf>,
    /// PEM file with the private key of `ssl_certificate_location` (PKCS#8, PKCS#1 or SEC1).
    pub ssl_key_location: Option<PathBuf>,
    /// PEM file with the CA certificates client certificates are checked against.
    pub ssl_ca_location: Option<PathBuf>,
    /// Client certificates (Kafka's `ssl.client.auth`): `required`, `requested` or `none` (default).
    pub ssl_client_auth: String,
    /// SASL mechanisms offered on SASL listeners (Kafka's `sasl.enabled.mechanisms`).
    /// Default `["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]`.
    pub sasl_enabled_mechanisms: Vec<String>,
    /// Lifetime of a SASL session (KIP-368): clients re-authenticate before it ends, and a connection that
    /// did not is closed. Default 0: sessions do not expire.
    pub connections_max_reauth_ms: i64,
    /// Principals that bypass ACLs (Kafka's `super.users`), e.g. `["User:admin"]`: they may do anything,
    /// including managing users and ACLs through the Kafka protocol. Default none.
    pub super_users: Vec<String>,
    /// ACLs in Kafka's model (`[[broker.acls]]`): principal, resource_type (`topic`, `group`, `cluster`,
    /// `transactional_id`), resource_name (a name, a prefix, or `*`), pattern_type (`literal`, the
    /// default, or `prefixed`), operations, permission (`allow`, the default, or `deny`), host (default
    /// `*`). ACLs created with `kafka-acls` are kept in `acls.json` under `log_dirs`.
    pub acls: Vec<crate::security::acl::AclConfig>,
    /// Whether a resource no ACL names is open to everyone (Kafka's `allow.everyone.if.no.acl.found`).
    /// Default: true only when every listener is PLAINTEXT on a loopback address; otherwise false, so a
    /// broker reachable from other hosts or asking for authentication grants nothing but what ACLs and
    /// `super_users` say.
    pub allow_everyone_if_no_acl_found: Option<bool>,
    /// This broker's id (`node.id`). Default 0.
    pub node_id: i32,
    /// Directory holding partition logs, topic metadata and committed offsets. Default `data/broker`.
    pub log_dirs: PathBuf,
    /// Partitions of an auto-created topic, and of `topics create` without `--partitions`. Default 1.
    pub num_partitions: i32,
    /// Create a topic when a client asks for an unknown one in Metadata or Produce. Default true.
    pub auto_create_topics_enable: bool,
    /// Delete whole segments older than this. Default 168 (7 days). -1 keeps them forever.
    pub log_retention_hours: i64,
    /// Delete oldest segments while a partition is larger than this. Default -1 (no size limit).
    pub log_retention_bytes: i64,
    /// How often retention runs. Default 300000 (5 minutes).
    pub log_retention_check_interval_ms: u64,
    /// Roll to a new segment once the active one reaches this size. Default 1073741824 (1 GiB).
    pub log_segment_bytes: u64,
    /// Roll to a new segment once the active one is this old. Default 168.
    pub log_roll_hours: i64,
    /// Bytes of log between two entries of the sparse offset index. Default 4096.
    pub log_index_interval_bytes: u64,
    /// Longest time an `acks=0|1` write may stay unsynced. Kafka's default is "never, rely on
    /// replication"; a single node has no replicas, so logpipe syncs within this bound. Default 1000.
    /// `acks=-1` produces never wait for it: they are synced at once, sharing one fsync (group commit).
    pub log_flush_interval_ms: u64,
    /// Largest record batch a producer may send. Default 1048588.
    pub message_max_bytes: i32,
    /// Largest request frame; bigger frames are refused before anything is allocated. Default 104857600.
    pub socket_request_max_bytes: i32,
    /// Close connections idle this long. Default 600000 (10 minutes).
    pub connections_max_idle_ms: u64,
    /// Most connections open at once; further ones wait in the accept queue. Default 10000.
    pub max_connections: usize,
    /// Committed offsets of a group that has been empty this long are deleted. Default 10080 (7 days).
    /// Not those of `[broker.retention] protect_groups`, which never expire.
    pub offsets_retention_minutes: i64,
    /// How long the first rebalance of an empty group waits for more members. Default 3000.
    pub group_initial_rebalance_delay_ms: u64,
    /// Smallest session timeout a consumer may ask for. Default 6000.
    pub group_min_session_timeout_ms: i32,
    /// Largest session timeout a consumer may ask for. Default 1800000.
    pub group_max_session_timeout_ms: i32,
    /// `[broker.retention]`: retention that waits for consumer groups, and when lag is at risk.
    pub retention: GroupRetention,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listeners: vec!["127.0.0.1:9092".to_owned()],
            advertised_listener: None,
            advertised_listeners: Vec::new(),
            listener_security_protocol_map: BTreeMap::new(),
            allow_plaintext_remote: false,
            ssl_certificate_location: None,
            ssl_key_location: None,
            ssl_ca_location: None,
            ssl_client_auth: "none".to_owned(),
            sasl_enabled_mechanisms: vec!["SCRAM-SHA-512".to_owned(), "SCRAM-SHA-256".to_owned(), "PLAIN".to_owned()],
            connections_max_reauth_ms: 0,
            super_users: Vec::new(),
            acls: Vec::new(),
            allow_everyone_if_no_acl_found: None,
            node_id: 0,
            log_dirs: PathBuf::from("data/broker"),
            num_partitions: 1,
            auto_create_topics_enable: true,
            log_retention_hours: 168,
            log_retention_bytes: -1,
            log_retention_check_interval_ms: 300_000,
            log_segment_bytes: 1 << 30,
            log_roll_hours: 168,
            log_index_interval_bytes: 4096,
            log_flush_interval_ms: 1000,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            connections_max_idle_ms: 600_000,
            max_connections: 10_000,
            offsets_retention_minutes: 10_080,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            retention: GroupRetention::default(),
        }
    }
}

impl Validate for BrokerConfig {
    type Error = Error;

    /// Checks values serde cannot, once, when [`Valid::new`](logpipe_config::Valid::new) makes the
    /// config that [`Server::bind`](crate::Server::bind) takes: a bad value never reaches a running broker.
    fn validate(&self) -> Result<()> {
        let bad = |key: &str, reason: &str| Err(Error::Config(format!("broker.{key}: {reason}")));
        crate::security::validate(self)?;
        if self.num_partitions < 1 {
            return bad("num_partitions", "must be at least 1");
        }
        if self.log_segment_bytes < 1024 {
            return bad("log_segment_bytes", "must be at least 1024");
        }
        if self.message_max_bytes < 64 {
            return bad("message_max_bytes", "must be at least 64");
        }
        if self.socket_request_max_bytes < self.message_max_bytes {
            return bad("socket_request_max_bytes", "must be at least message_max_bytes");
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return bad("group_min_session_timeout_ms", "must not exceed group_max_session_timeout_ms");
        }
        Ok(())
    }
}

impl BrokerConfig {
    pub fn log_retention_ms(&self) -> i64 {
        if self.log_retention_hours < 0 {
            -1
        } else {
            self.log_retention_hours * 3_600_000
        }
    }
}
