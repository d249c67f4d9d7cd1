//! The console tools' error type.
//!
//! Every message names the broker, topic or group involved and says what to do next, because these errors
//! end up on an operator's terminal as the only output of a failed command.

use logpipe_producer::ConnectionError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Result of a console command.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a console command failed.
///
/// librdkafka errors are boxed: `KafkaError` is large, and every `Result` in the crate would pay for it.
/// A cause that a message already prints is a plain field (`error`), not a `#[source]`, so an error chain
/// printed with `{:#}` says it once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// librdkafka refused the client configuration (a bad flag value that slipped past parsing).
    #[error("cannot create a Kafka client for broker {broker}: {error}; check the command's flags")]
    Client { broker: String, error: Box<KafkaError> },

    /// A request to the cluster failed or timed out.
    #[error(
        "{action} on broker {broker} failed: {error}; check the address (--bootstrap-server {broker}) \
         and that a broker is running there"
    )]
    Kafka { broker: String, action: String, error: Box<KafkaError> },

    /// The topic is not in the cluster metadata.
    #[error(
        "topic '{topic}' does not exist on broker {broker}; see `logpipe topics list`, or create it \
         with `logpipe topics create {topic}`"
    )]
    UnknownTopic { topic: String, broker: String },

    /// `--partition` names a partition the topic does not have.
    #[error(
        "topic '{topic}' on broker {broker} has no partition {partition} (it has {count}); \
         partitions are numbered 0..{count}"
    )]
    UnknownPartition { topic: String, partition: i32, count: usize, broker: String },

    /// The broker answered a topic admin request (create/delete) with an error code.
    #[error("{operation} topic '{topic}' on broker {broker} failed: {code}{}", hint_suffix(*.code))]
    TopicOperation { operation: &'static str, topic: String, broker: String, code: RDKafkaErrorCode },

    /// The broker refused a change to a topic's config (other than an invalid key or value).
    #[error(
        "altering the configs of topic '{topic}' on broker {broker} failed: {error}; check the keys with \
         `logpipe topics describe {topic}`"
    )]
    ConfigRefused { topic: String, broker: String, error: String },

    /// The group is unknown to the cluster.
    #[error("consumer group '{group}' does not exist on broker {broker}; see `logpipe groups list`")]
    UnknownGroup { group: String, broker: String },

    /// `groups delete` failed for some groups (the others, if any, were deleted and said so on stdout).
    #[error("deleting consumer groups on broker {broker} failed for {reasons}")]
    GroupsNotDeleted { broker: String, reasons: String },

    /// Offsets of a group with live members cannot be reset: its consumers would overwrite them.
    #[error(
        "cannot reset offsets of consumer group '{group}' on broker {broker}: it is {state} with \
         {members} active member(s); stop its consumers and retry once the group is Empty"
    )]
    GroupActive { group: String, broker: String, state: String, members: usize },

    /// Some produced records were not acknowledged.
    #[error(
        "{failed} of {total} record(s) to topic '{topic}' on broker {broker} were not acknowledged \
         ({acknowledged} acknowledged); first error: {first_error}; the unacknowledged lines must be resent"
    )]
    DeliveryFailed { topic: String, broker: String, total: u64, acknowledged: u64, failed: u64, first_error: String },

    /// A broker's answer to one of the console's own admin requests (`crate::admin_calls`) cannot be used.
    #[error("{api} request to broker {broker} failed: {message}")]
    Protocol { api: &'static str, broker: String, message: String },

    /// The console's own connection (`crate::admin_calls`) could not be opened, or a request on it failed.
    /// The error names the broker and, for settings, which property to check.
    #[error("{action} failed: {error}{}", connection_hint(.error))]
    Connection { action: String, error: ConnectionError },

    /// The `-X`/`-F` security properties cannot make a connection (read for the console's own connections;
    /// the librdkafka clients get them as they are).
    #[error("security settings (-X, -F): {0}")]
    Security(String),

    /// Reading stdin or writing stdout failed (other than a closed pipe, which ends a command cleanly).
    #[error("{what}: {error}")]
    Io { what: &'static str, error: std::io::Error },

    /// A flag combination or value that cannot work.
    #[error("{0}")]
    InvalidArgument(String),

    /// A blocking worker thread panicked or was cancelled.
    #[error("internal worker failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What an operator can do about an admin error code.
fn hint(code: RDKafkaErrorCode) -> Option<&'static str> {
    use RDKafkaErrorCode as C;
    Some(match code {
        C::TopicAlreadyExists => "choose another name, or delete it first with `logpipe topics delete`",
        C::UnknownTopicOrPartition => "it does not exist; see `logpipe topics list`",
        C::InvalidPartitions => "pass --partitions with a value of at least 1",
        C::InvalidReplicationFactor => {
            "the cluster has fewer brokers than --replication-factor; lower it (the embedded broker needs 1)"
        }
        C::InvalidConfig => "check the --config keys and values (Kafka topic configs, e.g. retention.ms=86400000)",
        C::InvalidTopic => "topic names use only letters, digits, '.', '_' and '-', at most 249 characters",
        C::TopicDeletionDisabled => "the broker has topic deletion disabled (delete.topic.enable=false)",
        C::PolicyViolation => "the broker's topic policy refused the request",
        C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed => {
            "the client is not authorized; check the broker's ACLs"
        }
        C::RequestTimedOut | C::OperationTimedOut => {
            "the broker did not finish in time; check whether it happened with `logpipe topics list`"
        }
        _ => return None,
    })
}

fn hint_suffix(code: RDKafkaErrorCode) -> String {
    hint(code).map(|h| format!("; {h}")).unwrap_or_default()
}

/// What to do about a connection error: network trouble may pass; the other errors carry their own advice.
fn connection_hint(error: &ConnectionError) -> &'static str {
    if error.is_retriable() {
        "; check that the broker runs and that this host reaches it at that address (the one it advertises), \
         then retry"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_errors_say_what_to_do() {
        let err = Error::TopicOperation {
            operation: "creating",
            topic: "nginx".into(),
            broker: "127.0.0.1:9092".into(),
            code: RDKafkaErrorCode::TopicAlreadyExists,
        };
        let msg = err.to_string();
        assert!(msg.starts_with("creating topic 'nginx' on broker 127.0.0.1:9092 failed: TopicAlreadyExists"));
        assert!(msg.contains("logpipe topics delete"), "{msg}");
    }

    #[test]
    fn connection_errors_name_the_action_and_broker_and_advise_a_retry_only_for_the_network() {
        let action = "altering the configs of topic 'nginx'".to_owned();
        let timeout = ConnectionError::Timeout {
            broker: "k1:9093".into(),
            during: logpipe_producer::Phase::TlsHandshake,
            timeout: std::time::Duration::from_secs(3),
        };
        let msg = Error::Connection { action: action.clone(), error: timeout }.to_string();
        assert!(msg.starts_with("altering the configs of topic 'nginx' failed: broker k1:9093: no answer"), "{msg}");
        assert!(msg.ends_with("then retry"), "{msg}");
        let refused = ConnectionError::Authentication { broker: "k1:9093".into(), message: "SASL failed".into() };
        let msg = Error::Connection { action, error: refused }.to_string();
        assert!(msg.ends_with("broker k1:9093: SASL failed"), "{msg}");
    }
}
