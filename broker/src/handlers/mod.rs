//! One module per Kafka API, and the table that registers them.
//!
//! Every handler has the same shape:
//!
//! ```ignore
//! pub const VERSIONS: (i16, i16) = (min, max);
//! pub fn handle(broker: &Arc<Broker>, header: &RequestHeader, request: XRequest)
//!     -> impl Future<Output = XResponse> + Send + 'static;
//! ```
//!
//! The synchronous part of `handle` (appending a batch, applying a commit) runs as the request is read,
//! so requests pipelined on one connection take effect in the order they were sent. The returned future
//! only waits (for an fsync, a long poll, a rebalance) and runs concurrently with later requests; the
//! connection writes responses in request order.
//!
//! ApiVersions advertises exactly [`SUPPORTED`], and the decoder refuses anything outside it.

mod alter_configs;
mod alter_user_scram_credentials;
mod api_versions;
mod authorize;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_configs;
mod describe_log_dirs;
mod describe_user_scram_credentials;
mod fetch;
mod incremental_alter_configs;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod produce;
pub(crate) mod sasl_authenticate;
pub(crate) mod sasl_handshake;

mod delete_groups;
mod describe_groups;
mod find_coordinator;
mod heartbeat;
mod join_group;
mod leave_group;
mod list_groups;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod sync_group;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};

use crate::broker::{Broker, Session};
use crate::protocol::Request;
use crate::storage::FileRecords;

pub type ResponseFuture = Pin<Box<dyn Future<Output = Reply> + Send + 'static>>;

/// A handler's answer: the response, and for a Fetch on a connection that sends record sets with
/// `sendfile` (`Session::sendfile`), the ones left in their segment files: one entry per partition of the
/// response in order (topics, then their partitions), `None` where the records are in `body`.
pub struct Reply {
    pub body: ResponseKind,
    pub files: Vec<Option<FileRecords>>,
}

impl From<ResponseKind> for Reply {
    fn from(body: ResponseKind) -> Self {
        Self { body, files: Vec::new() }
    }
}

/// Every API this broker implements, with the versions it advertises.
pub const SUPPORTED: &[(ApiKey, (i16, i16))] = &[
    (ApiKey::Produce, produce::VERSIONS),
    (ApiKey::Fetch, fetch::VERSIONS),
    (ApiKey::ListOffsets, list_offsets::VERSIONS),
    (ApiKey::Metadata, metadata::VERSIONS),
    (ApiKey::OffsetCommit, offset_commit::VERSIONS),
    (ApiKey::OffsetFetch, offset_fetch::VERSIONS),
    (ApiKey::FindCoordinator, find_coordinator::VERSIONS),
    (ApiKey::JoinGroup, join_group::VERSIONS),
    (ApiKey::Heartbeat, heartbeat::VERSIONS),
    (ApiKey::LeaveGroup, leave_group::VERSIONS),
    (ApiKey::SyncGroup, sync_group::VERSIONS),
    (ApiKey::DescribeGroups, describe_groups::VERSIONS),
    (ApiKey::ListGroups, list_groups::VERSIONS),
    (ApiKey::ApiVersions, api_versions::VERSIONS),
    (ApiKey::CreateTopics, create_topics::VERSIONS),
    (ApiKey::DeleteTopics, delete_topics::VERSIONS),
    (ApiKey::InitProducerId, init_producer_id::VERSIONS),
    (ApiKey::DescribeConfigs, describe_configs::VERSIONS),
    (ApiKey::DescribeLogDirs, describe_log_dirs::VERSIONS),
    (ApiKey::DeleteGroups, delete_groups::VERSIONS),
    (ApiKey::OffsetDelete, offset_delete::VERSIONS),
    (ApiKey::CreatePartitions, create_partitions::VERSIONS),
    (ApiKey::AlterConfigs, alter_configs::VERSIONS),
    (ApiKey::IncrementalAlterConfigs, incremental_alter_configs::VERSIONS),
    (ApiKey::DeleteRecords, delete_records::VERSIONS),
    (ApiKey::SaslHandshake, sasl_handshake::VERSIONS),
    (ApiKey::SaslAuthenticate, sasl_authenticate::VERSIONS),
    (ApiKey::DescribeUserScramCredentials, describe_user_scram_credentials::VERSIONS),
    (ApiKey::AlterUserScramCredentials, alter_user_scram_credentials::VERSIONS),
    (ApiKey::DescribeAcls, describe_acls::VERSIONS),
    (ApiKey::CreateAcls, create_acls::VERSIONS),
    (ApiKey::DeleteAcls, delete_acls::VERSIONS),
];

pub fn supported_versions(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(key, _)| *key == api_key).map(|(_, versions)| *versions)
}

/// The ApiVersions response for a client that asked with a version we do not implement (KIP-511).
pub use api_versions::unsupported_version_response;

macro_rules! route {
    ($broker:expr, $header:expr, $request:expr, $module:ident, $variant:ident) => {
        $module::handle($broker, $header, $request).map(ResponseKind::$variant).map(Reply::from).boxed()
    };
}

/// Runs the synchronous part of a request's handler and returns the rest as a future. `session` says who
/// the client is: its address (which DescribeGroups reports as each member's host), its principal, and
/// the node address of the listener it connected to (Metadata, FindCoordinator).
///
/// SaslHandshake and SaslAuthenticate change the connection's state and are answered by the connection
/// (`server::connection`); here they only get ILLEGAL_SASL_STATE.
///
/// Unless the authorizer allows everyone or the principal is a super user, the request is first checked
/// against the ACLs (`authorize`): refused parts never reach the handler.
pub fn dispatch(broker: &Arc<Broker>, request: Request, session: &Session) -> ResponseFuture {
    let header = &request.header;
    if broker.acls.allows_everyone() || broker.acls.is_super_user(&session.principal) {
        return route(broker, header, request.body, session);
    }
    match authorize::gate(broker, header, session, request.body) {
        authorize::Gate::Answer(response) => futures::future::ready(Reply::from(response)).boxed(),
        authorize::Gate::Run(body, None) => route(broker, header, body, session),
        authorize::Gate::Run(body, Some(amend)) => route(broker, header, body, session)
            .map(move |mut reply| {
                amend(&mut reply.body);
                reply
            })
            .boxed(),
    }
}

fn route(broker: &Arc<Broker>, header: &RequestHeader, body: RequestKind, session: &Session) -> ResponseFuture {
    let peer = session.peer;
    match body {
        RequestKind::Produce(r) => route!(broker, header, r, produce, Produce),
        RequestKind::Fetch(r) => fetch::handle(broker, header, r, session.sendfile).boxed(),
        RequestKind::ListOffsets(r) => route!(broker, header, r, list_offsets, ListOffsets),
        RequestKind::Metadata(r) => {
            metadata::handle(broker, header, r, &session.node).map(ResponseKind::Metadata).map(Reply::from).boxed()
        }
        RequestKind::OffsetCommit(r) => route!(broker, header, r, offset_commit, OffsetCommit),
        RequestKind::OffsetFetch(r) => route!(broker, header, r, offset_fetch, OffsetFetch),
        RequestKind::FindCoordinator(r) => find_coordinator::handle(broker, header, r, &session.node)
            .map(ResponseKind::FindCoordinator)
            .map(Reply::from)
            .boxed(),
        RequestKind::JoinGroup(r) => join_group::handle_from(broker, header, r, format!("/{}", peer.ip()))
            .map(ResponseKind::JoinGroup)
            .map(Reply::from)
            .boxed(),
        RequestKind::Heartbeat(r) => route!(broker, header, r, heartbeat, Heartbeat),
        RequestKind::LeaveGroup(r) => route!(broker, header, r, leave_group, LeaveGroup),
        RequestKind::SyncGroup(r) => route!(broker, header, r, sync_group, SyncGroup),
        RequestKind::DescribeGroups(r) => route!(broker, header, r, describe_groups, DescribeGroups),
        RequestKind::ListGroups(r) => route!(broker, header, r, list_groups, ListGroups),
        RequestKind::ApiVersions(r) => route!(broker, header, r, api_versions, ApiVersions),
        RequestKind::CreateTopics(r) => route!(broker, header, r, create_topics, CreateTopics),
        RequestKind::DeleteTopics(r) => route!(broker, header, r, delete_topics, DeleteTopics),
        RequestKind::InitProducerId(r) => route!(broker, header, r, init_producer_id, InitProducerId),
        RequestKind::DescribeConfigs(r) => route!(broker, header, r, describe_configs, DescribeConfigs),
        RequestKind::DescribeLogDirs(r) => route!(broker, header, r, describe_log_dirs, DescribeLogDirs),
        RequestKind::DeleteGroups(r) => route!(broker, header, r, delete_groups, DeleteGroups),
        RequestKind::OffsetDelete(r) => route!(broker, header, r, offset_delete, OffsetDelete),
        RequestKind::CreatePartitions(r) => route!(broker, header, r, create_partitions, CreatePartitions),
        RequestKind::AlterConfigs(r) => route!(broker, header, r, alter_configs, AlterConfigs),
        RequestKind::IncrementalAlterConfigs(r) => {
            route!(broker, header, r, incremental_alter_configs, IncrementalAlterConfigs)
        }
        RequestKind::DeleteRecords(r) => route!(broker, header, r, delete_records, DeleteRecords),
        RequestKind::DescribeUserScramCredentials(r) => describe_user_scram_credentials::handle(broker, session, r)
            .map(ResponseKind::DescribeUserScramCredentials)
            .map(Reply::from)
            .boxed(),
        RequestKind::AlterUserScramCredentials(r) => alter_user_scram_credentials::handle(broker, session, r)
            .map(ResponseKind::AlterUserScramCredentials)
            .map(Reply::from)
            .boxed(),
        RequestKind::DescribeAcls(r) => {
            futures::future::ready(Reply::from(ResponseKind::DescribeAcls(describe_acls::handle(broker, session, r))))
                .boxed()
        }
        RequestKind::CreateAcls(r) => {
            create_acls::handle(broker, session, r).map(ResponseKind::CreateAcls).map(Reply::from).boxed()
        }
        RequestKind::DeleteAcls(r) => {
            delete_acls::handle(broker, session, r).map(ResponseKind::DeleteAcls).map(Reply::from).boxed()
        }
        // The connection answers these (they change its state); reaching here means no SASL exchange.
        RequestKind::SaslHandshake(r) => {
            let (response, _) = sasl_handshake::handle(None, &r);
            futures::future::ready(Reply::from(ResponseKind::SaslHandshake(response))).boxed()
        }
        RequestKind::SaslAuthenticate(_) => futures::future::ready(Reply::from(ResponseKind::SaslAuthenticate(
            sasl_authenticate::illegal_state("no SASL exchange on this connection"),
        )))
        .boxed(),
        // The decoder only lets through keys listed in SUPPORTED, all of which are matched above.
        other => unreachable!("request {other:?} passed decoding without a handler"),
    }
}

/// Kafka error codes as response data.
pub(crate) fn code(error: kafka_protocol::ResponseError) -> i16 {
    error.code()
}

/// The Kafka error for a failed topic operation.
pub(crate) fn topic_error_code(e: &crate::storage::TopicError) -> kafka_protocol::ResponseError {
    use crate::storage::TopicError;
    use kafka_protocol::ResponseError;
    match e {
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
        TopicError::InvalidName { .. } => ResponseError::InvalidTopicException,
        TopicError::InvalidPartitions(_) | TopicError::CannotShrink { .. } => ResponseError::InvalidPartitions,
        TopicError::InvalidConfig { .. } => ResponseError::InvalidConfig,
        TopicError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        TopicError::Io(_) => ResponseError::UnknownServerError,
    }
}

/// Kafka's `StrBytes` from a Rust string.
pub(crate) fn str_bytes(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}

#[cfg(test)]
mod tests;
