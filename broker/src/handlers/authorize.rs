//! Authorization of every request against the ACLs, before its handler runs, with Kafka's operations
//! and error codes (KafkaApis):
//!
//! | request | needs | refused with |
//! |---|---|---|
//! | Produce | WRITE topic (and CREATE on the cluster or topic for a topic it would create) | TOPIC_AUTHORIZATION_FAILED per topic |
//! | Fetch | READ topic | TOPIC_AUTHORIZATION_FAILED per topic |
//! | ListOffsets | DESCRIBE topic | TOPIC_AUTHORIZATION_FAILED per topic |
//! | Metadata | DESCRIBE topic (CREATE to auto-create) | listing all: hidden; named: TOPIC_AUTHORIZATION_FAILED |
//! | OffsetCommit | READ group, READ topic | GROUP_/TOPIC_AUTHORIZATION_FAILED |
//! | OffsetFetch | DESCRIBE group, DESCRIBE topic | GROUP_/TOPIC_AUTHORIZATION_FAILED; all topics: hidden |
//! | FindCoordinator | DESCRIBE group | GROUP_AUTHORIZATION_FAILED |
//! | JoinGroup, SyncGroup, Heartbeat, LeaveGroup | READ group | GROUP_AUTHORIZATION_FAILED |
//! | DescribeGroups | DESCRIBE group | GROUP_AUTHORIZATION_FAILED per group |
//! | ListGroups | DESCRIBE cluster, else DESCRIBE per group | groups hidden |
//! | CreateTopics | CREATE cluster or topic | TOPIC_AUTHORIZATION_FAILED per topic |
//! | DeleteTopics, DeleteRecords | DELETE topic | TOPIC_AUTHORIZATION_FAILED per topic |
//! | CreatePartitions | ALTER topic | TOPIC_AUTHORIZATION_FAILED per topic |
//! | DescribeConfigs / AlterConfigs, IncrementalAlterConfigs | DESCRIBE_CONFIGS / ALTER_CONFIGS on the topic, or the cluster for a broker | TOPIC_/CLUSTER_AUTHORIZATION_FAILED |
//! | DescribeLogDirs | DESCRIBE cluster | CLUSTER_AUTHORIZATION_FAILED |
//! | DeleteGroups | DELETE group | GROUP_AUTHORIZATION_FAILED per group |
//! | OffsetDelete | DELETE group, READ topic | GROUP_/TOPIC_AUTHORIZATION_FAILED |
//! | InitProducerId | WRITE transactional id; idempotent: IDEMPOTENT_WRITE cluster or WRITE on any topic | TRANSACTIONAL_ID_/CLUSTER_AUTHORIZATION_FAILED |
//!
//! Refused parts are taken out of the request and their errors added to the handler's response, so the
//! handlers stay unaware of ACLs. Nothing here runs when the authorizer allows everyone (the loopback
//! default) or the principal is a super user; otherwise it costs one ACL scan per topic or group named
//! in a request, never one per record.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};

use crate::broker::{Broker, Session};
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};

/// What to do with a request after the check.
pub(super) enum Gate {
    /// Run the (possibly reduced) request, then add the refusals to its response.
    Run(RequestKind, Option<Amend>),
    /// Answer at once: the whole request is refused.
    Answer(ResponseKind),
}

pub(super) type Amend = Box<dyn FnOnce(&mut ResponseKind) + Send>;

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;
const TRANSACTIONAL_ID_DENIED: i16 = 53;

/// Config resource types of Describe/AlterConfigs.
const CONFIG_TOPIC: i8 = 2;

struct Check<'a> {
    broker: &'a Arc<Broker>,
    session: &'a Session,
    /// Refusals to log (`Operation Type:name`); `None` where a check only filters what is shown
    /// (Metadata, ListGroups), as Kafka does not log those either.
    refused: Option<std::cell::RefCell<Vec<String>>>,
}

impl<'a> Check<'a> {
    fn logging(broker: &'a Arc<Broker>, session: &'a Session) -> Self {
        Self { broker, session, refused: Some(Default::default()) }
    }

    fn quiet(broker: &'a Arc<Broker>, session: &'a Session) -> Self {
        Self { broker, session, refused: None }
    }

    fn check(&self, op: Operation, kind: ResourceType, name: &str) -> bool {
        let allowed = self.broker.authorize(self.session, op, kind, name);
        if let (false, Some(refused)) = (allowed, &self.refused) {
            refused.borrow_mut().push(format!("{op:?} {kind:?}:{name}"));
        }
        allowed
    }

    fn topic(&self, op: Operation, name: &str) -> bool {
        self.check(op, ResourceType::Topic, name)
    }

    fn group(&self, op: Operation, name: &str) -> bool {
        self.check(op, ResourceType::Group, name)
    }

    fn cluster(&self, op: Operation) -> bool {
        self.check(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// The name of the topic with `id`, if there is one.
    fn topic_name(&self, id: uuid::Uuid) -> Option<String> {
        self.broker.logs.topics().into_iter().find(|meta| meta.id == id).map(|meta| meta.name)
    }

    /// May the principal learn that topic `name` exists (DESCRIBE, which READ, WRITE, DELETE and ALTER
    /// imply)? Only shapes an answer, so a refusal is not logged.
    fn may_see_topic(&self, name: &str) -> bool {
        self.broker.authorize(self.session, Operation::Describe, ResourceType::Topic, name)
    }

    /// A cluster check that only picks a path (a refusal here is not the request's refusal).
    fn probe_cluster(&self, op: Operation) -> bool {
        self.broker.authorize(self.session, op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// May this request create `name` if it does not exist (auto-creation)? An existing topic needs no
    /// check (partition 0 always exists; looking it up clones an `Arc`, not the topic's metadata).
    fn may_create(&self, name: &str) -> bool {
        self.broker.logs.partition(name, 0).is_some()
            || self.probe_cluster(Operation::Create)
            || self.topic(Operation::Create, name)
    }
}

/// The topic a DeleteTopics entry names. From v6 it may name it by id alone: the check is then on the name
/// the id stands for. `None` for an id that stands for no topic, which goes on to the handler's
/// UNKNOWN_TOPIC_ID.
fn topic_to_delete(
    check: &Check,
    t: &kafka_protocol::messages::delete_topics_request::DeleteTopicState,
) -> Option<String> {
    t.name.as_ref().map(|n| n.to_string()).or_else(|| check.topic_name(t.topic_id))
}

/// The answer to a refused DeleteTopics entry (its error code is added with the others). As Kafka does,
/// a principal that may not describe the topic it named by id is not told the topic's name.
fn delete_refused(
    check: &Check,
    t: kafka_protocol::messages::delete_topics_request::DeleteTopicState,
) -> kafka_protocol::messages::delete_topics_response::DeletableTopicResult {
    let name = match &t.name {
        Some(name) => Some(name.clone()),
        None => topic_to_delete(check, &t)
            .filter(|n| check.may_see_topic(n))
            .map(|n| kafka_protocol::messages::TopicName(super::str_bytes(n))),
    };
    kafka_protocol::messages::delete_topics_response::DeletableTopicResult::default()
        .with_name(name)
        .with_topic_id(t.topic_id)
}

/// Moves the items `allowed` refuses out of `items`, in order.
fn split_off<T>(items: &mut Vec<T>, mut allowed: impl FnMut(&T) -> bool) -> Vec<T> {
    let (keep, denied): (Vec<T>, Vec<T>) = std::mem::take(items).into_iter().partition(|t| allowed(t));
    *items = keep;
    denied
}

fn amend(f: impl FnOnce(&mut ResponseKind) + Send + 'static) -> Option<Amend> {
    Some(Box::new(f))
}

/// Checks `body` for the session's principal. Call only when the authorizer does not allow everyone and
/// the principal is not a super user.
pub(super) fn gate(broker: &Arc<Broker>, header: &RequestHeader, session: &Session, body: RequestKind) -> Gate {
    let check = Check::logging(broker, session);
    let gate = check_request(&check, header, body);
    if let Some(refused) = check.refused.map(|r| r.into_inner()).filter(|r| !r.is_empty()) {
        let api = kafka_protocol::messages::ApiKey::try_from(header.request_api_key).ok();
        broker.acls.denials.record(session.peer, &session.principal, api, &refused);
    }
    gate
}

fn check_request(check: &Check, header: &RequestHeader, body: RequestKind) -> Gate {
    use Operation::*;
    let (broker, session) = (check.broker, check.session);
    let version = header.request_api_version;
    match body {
        RequestKind::Produce(mut r) => {
            let auto_create = broker.config.auto_create_topics_enable;
            let denied = split_off(&mut r.topic_data, |t| {
                check.topic(Write, &t.name) && (!auto_create || check.may_create(&t.name))
            });
            if denied.is_empty() {
                return Gate::Run(RequestKind::Produce(r), None);
            }
            Gate::Run(
                RequestKind::Produce(r),
                amend(move |resp| {
                    use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
                    let ResponseKind::Produce(resp) = resp else { return };
                    resp.responses.extend(denied.into_iter().map(|t| {
                        TopicProduceResponse::default().with_name(t.name).with_partition_responses(
                            t.partition_data
                                .iter()
                                .map(|p| {
                                    PartitionProduceResponse::default()
                                        .with_index(p.index)
                                        .with_error_code(TOPIC_DENIED)
                                        .with_base_offset(-1)
                                })
                                .collect(),
                        )
                    }));
                }),
            )
        }
        RequestKind::Fetch(mut r) => {
            let denied = split_off(&mut r.topics, |t| check.topic(Read, &t.topic));
            if denied.is_empty() {
                return Gate::Run(RequestKind::Fetch(r), None);
            }
            Gate::Run(
                RequestKind::Fetch(r),
                amend(move |resp| {
                    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
                    let ResponseKind::Fetch(resp) = resp else { return };
                    resp.responses.extend(denied.into_iter().map(|t| {
                        FetchableTopicResponse::default().with_topic(t.topic).with_topic_id(t.topic_id).with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    PartitionData::default()
                                        .with_partition_index(p.partition)
                                        .with_error_code(TOPIC_DENIED)
                                        .with_high_watermark(-1)
                                        .with_last_stable_offset(-1)
                                        .with_log_start_offset(-1)
                                        .with_records(Some(Default::default()))
                                })
                                .collect(),
                        )
                    }));
                }),
            )
        }
        RequestKind::ListOffsets(mut r) => {
            let denied = split_off(&mut r.topics, |t| check.topic(Describe, &t.name));
            if denied.is_empty() {
                return Gate::Run(RequestKind::ListOffsets(r), None);
            }
            Gate::Run(
                RequestKind::ListOffsets(r),
                amend(move |resp| {
                    use kafka_protocol::messages::list_offsets_response::{
                        ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
                    };
                    let ResponseKind::ListOffsets(resp) = resp else { return };
                    resp.topics.extend(denied.into_iter().map(|t| {
                        ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    ListOffsetsPartitionResponse::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(TOPIC_DENIED)
                                        .with_timestamp(-1)
                                        .with_offset(-1)
                                })
                                .collect(),
                        )
                    }));
                }),
            )
        }
        RequestKind::Metadata(mut r) => {
            let amend = metadata(check, version, &mut r).or_else(|| metadata_hide(check));
            Gate::Run(RequestKind::Metadata(r), amend)
        }
        RequestKind::OffsetCommit(mut r) => {
            use kafka_protocol::messages::offset_commit_response::{
                OffsetCommitResponsePartition, OffsetCommitResponseTopic,
            };
            let errors = |topics: Vec<kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic>,
                          error: i16| {
                topics
                    .into_iter()
                    .map(|t| {
                        OffsetCommitResponseTopic::default().with_name(t.name).with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(error)
                                })
                                .collect(),
                        )
                    })
                    .collect::<Vec<_>>()
            };
            if !check.group(Read, &r.group_id) {
                let topics = errors(r.topics, GROUP_DENIED);
                let resp = kafka_protocol::messages::OffsetCommitResponse::default().with_topics(topics);
                return Gate::Answer(ResponseKind::OffsetCommit(resp));
            }
            let denied = errors(split_off(&mut r.topics, |t| check.topic(Read, &t.name)), TOPIC_DENIED);
            Gate::Run(
                RequestKind::OffsetCommit(r),
                (!denied.is_empty()).then(|| -> Amend {
                    Box::new(move |resp| {
                        if let ResponseKind::OffsetCommit(resp) = resp {
                            resp.topics.extend(denied)
                        }
                    })
                }),
            )
        }
        RequestKind::OffsetFetch(r) => offset_fetch(check, version, r),
        RequestKind::FindCoordinator(mut r) => {
            const GROUP: i8 = 0;
            if r.key_type != GROUP {
                return Gate::Run(RequestKind::FindCoordinator(r), None); // transactions are refused anyway
            }
            if version < 4 {
                if check.group(Describe, &r.key) {
                    return Gate::Run(RequestKind::FindCoordinator(r), None);
                }
                let mut resp = kafka_protocol::messages::FindCoordinatorResponse::default();
                resp.error_code = GROUP_DENIED;
                resp.node_id = (-1).into();
                resp.port = -1;
                return Gate::Answer(ResponseKind::FindCoordinator(resp));
            }
            let denied = split_off(&mut r.coordinator_keys, |k| check.group(Describe, k));
            Gate::Run(
                RequestKind::FindCoordinator(r),
                (!denied.is_empty()).then(|| -> Amend {
                    Box::new(move |resp| {
                        use kafka_protocol::messages::find_coordinator_response::Coordinator;
                        let ResponseKind::FindCoordinator(resp) = resp else { return };
                        resp.coordinators.extend(denied.into_iter().map(|key| {
                            Coordinator::default()
                                .with_key(key)
                                .with_node_id((-1).into())
                                .with_port(-1)
                                .with_error_code(GROUP_DENIED)
                        }))
                    })
                }),
            )
        }
        RequestKind::JoinGroup(r) => group_gate(check, &r.group_id.clone(), RequestKind::JoinGroup(r), || {
            ResponseKind::JoinGroup(Default::default())
        }),
        RequestKind::SyncGroup(r) => group_gate(check, &r.group_id.clone(), RequestKind::SyncGroup(r), || {
            ResponseKind::SyncGroup(Default::default())
        }),
        RequestKind::Heartbeat(r) => group_gate(check, &r.group_id.clone(), RequestKind::Heartbeat(r), || {
            ResponseKind::Heartbeat(Default::default())
        }),
        RequestKind::LeaveGroup(r) => group_gate(check, &r.group_id.clone(), RequestKind::LeaveGroup(r), || {
            ResponseKind::LeaveGroup(Default::default())
        }),
        RequestKind::DescribeGroups(mut r) => {
            let denied = split_off(&mut r.groups, |g| check.group(Describe, g));
            Gate::Run(
                RequestKind::DescribeGroups(r),
                (!denied.is_empty()).then(|| -> Amend {
                    Box::new(move |resp| {
                        use kafka_protocol::messages::describe_groups_response::DescribedGroup;
                        let ResponseKind::DescribeGroups(resp) = resp else { return };
                        resp.groups.extend(
                            denied
                                .into_iter()
                                .map(|g| DescribedGroup::default().with_group_id(g).with_error_code(GROUP_DENIED)),
                        )
                    })
                }),
            )
        }
        RequestKind::ListGroups(r) => {
            if check.probe_cluster(Describe) {
                return Gate::Run(RequestKind::ListGroups(r), None);
            }
            let broker = check.broker.clone();
            let session = check.session.clone();
            Gate::Run(
                RequestKind::ListGroups(r),
                amend(move |resp| {
                    let ResponseKind::ListGroups(resp) = resp else { return };
                    let check = Check::quiet(&broker, &session);
                    resp.groups.retain(|g| check.group(Describe, &g.group_id));
                }),
            )
        }
        RequestKind::CreateTopics(mut r) => {
            let cluster = check.probe_cluster(Create);
            let denied = split_off(&mut r.topics, |t| cluster || check.topic(Create, &t.name));
            Gate::Run(
                RequestKind::CreateTopics(r),
                (!denied.is_empty()).then(|| -> Amend {
                    Box::new(move |resp| {
                        use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
                        let ResponseKind::CreateTopics(resp) = resp else { return };
                        resp.topics.extend(denied.into_iter().map(|t| {
                            CreatableTopicResult::default()
                                .with_name(t.name)
                                .with_error_code(TOPIC_DENIED)
                                .with_error_message(Some(super::str_bytes("CREATE on the topic or cluster needed")))
                                .with_num_partitions(-1)
                                .with_replication_factor(-1)
                        }))
                    })
                }),
            )
        }
        RequestKind::DeleteTopics(mut r) => {
            use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
            let mut denied: Vec<DeletableTopicResult> = split_off(&mut r.topic_names, |t| check.topic(Delete, t))
                .into_iter()
                .map(|name| DeletableTopicResult::default().with_name(Some(name)))
                .collect();
            let refused =
                split_off(&mut r.topics, |t| topic_to_delete(check, t).is_none_or(|n| check.topic(Delete, &n)));
            denied.extend(refused.into_iter().map(|t| delete_refused(check, t)));
            Gate::Run(
                RequestKind::DeleteTopics(r),
                (!denied.is_empty()).then(|| -> Amend {
                    Box::new(move |resp| {
                        let ResponseKind::DeleteTopics(resp) = resp else { return };
                        resp.responses.extend(denied.into_iter().map(|t| t.with_error_code(TOPIC_DENIED)))
                    })
                }),
            )
        }
        RequestKind::DeleteRecords(mut r) => {
            let denied = split_off(&mut r.topics, |t| check.topic(Delete, &t.name));
            Gate::Run(
                RequestKind::DeleteRecords(r),
                (!denied.is_empty()).then(|| -> Amend {
                    Box::new(move |resp| {
                        use kafka_protocol::messages::delete_records_response::{
                            DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
                        };
                        let ResponseKind::DeleteRecords(resp) = resp else { return };
                        resp.topics.extend(denied.into_iter().map(|t| {
                            DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        DeleteRecordsPartitionResult::default()
                                            .with_partition_index(p.partition_index)
                                            .with_low_watermark(-1)
                                            .with_error_code(TOPIC_DENIED)
                                    })
                                    .collect(),
                            )
                        }))
                    })
                }),
            )
        }
        RequestKind::CreatePartitions(mut r) => {
            let denied = split_off(&mut r.topics, |t| check.topic(Alter, &t.name));
            Gate::Run(
                RequestKind::CreatePartitions(r),
                (!denied.is_empty()).then(|| -> Amend {
                    Box::new(move |resp| {
                        use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
                        let ResponseKind::CreatePartitions(resp) = resp else { return };
                        resp.results.extend(denied.into_iter().map(|t| {
                            CreatePartitionsTopicResult::default().with_name(t.name).with_error_code(TOPIC_DENIED)
                        }))
                    })
                }),
            )
        }
        RequestKind::DescribeConfigs(mut r) => {
            let allowed = |kind: i8, name: &str| config_allowed(check, DescribeConfigs, kind, name);
            let denied = split_off(&mut r.resources, |c| allowed(c.resource_type, &c.resource_name));
            Gate::Run(
                RequestKind::DescribeConfigs(r),
                (!denied.is_empty()).then(|| -> Amend {
                    Box::new(move |resp| {
                        use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
                        let ResponseKind::DescribeConfigs(resp) = resp else { return };
                        resp.results.extend(denied.into_iter().map(|c| {
                            DescribeConfigsResult::default()
                                .with_error_code(config_denied(c.resource_type))
                                .with_resource_type(c.resource_type)
                                .with_resource_name(c.resource_name)
                        }))
                    })
                }),
            )
        }
        RequestKind::AlterConfigs(mut r) => {
            let denied: Vec<(i8, _)> =
                split_off(&mut r.resources, |c| config_allowed(check, AlterConfigs, c.resource_type, &c.resource_name))
                    .into_iter()
                    .map(|c| (c.resource_type, c.resource_name))
                    .collect();
            Gate::Run(
                RequestKind::AlterConfigs(r),
                (!denied.is_empty()).then(|| -> Amend {
                    Box::new(move |resp| {
                        use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
                        let ResponseKind::AlterConfigs(resp) = resp else { return };
                        resp.responses.extend(denied.into_iter().map(|(kind, name)| {
                            AlterConfigsResourceResponse::default()
                                .with_error_code(config_denied(kind))
                                .with_resource_type(kind)
                                .with_resource_name(name)
                        }))
                    })
                }),
            )
        }
        RequestKind::IncrementalAlterConfigs(mut r) => {
            let denied: Vec<(i8, _)> =
                split_off(&mut r.resources, |c| config_allowed(check, AlterConfigs, c.resource_type, &c.resource_name))
                    .into_iter()
                    .map(|c| (c.resource_type, c.resource_name))
                    .collect();
            Gate::Run(
                RequestKind::IncrementalAlterConfigs(r),
                (!denied.is_empty()).then(|| -> Amend {
                    Box::new(move |resp| {
                        use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
                        let ResponseKind::IncrementalAlterConfigs(resp) = resp else { return };
                        resp.responses.extend(denied.into_iter().map(|(kind, name)| {
                            AlterConfigsResourceResponse::default()
                                .with_error_code(config_denied(kind))
                                .with_resource_type(kind)
                                .with_resource_name(name)
                        }))
                    })
                }),
            )
        }
        RequestKind::DescribeLogDirs(r) => {
            if check.cluster(Describe) {
                return Gate::Run(RequestKind::DescribeLogDirs(r), None);
            }
            let resp = kafka_protocol::messages::DescribeLogDirsResponse::default().with_error_code(CLUSTER_DENIED);
            Gate::Answer(ResponseKind::DescribeLogDirs(resp))
        }
        RequestKind::DeleteGroups(mut r) => {
            let denied = split_off(&mut r.groups_names, |g| check.group(Delete, g));
            Gate::Run(
                RequestKind::DeleteGroups(r),
                (!denied.is_empty()).then(|| -> Amend {
                    Box::new(move |resp| {
                        use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
                        let ResponseKind::DeleteGroups(resp) = resp else { return };
                        resp.results.extend(
                            denied.into_iter().map(|g| {
                                DeletableGroupResult::default().with_group_id(g).with_error_code(GROUP_DENIED)
                            }),
                        )
                    })
                }),
            )
        }
        RequestKind::OffsetDelete(mut r) => {
            use kafka_protocol::messages::offset_delete_response::{
                OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
            };
            if !check.group(Delete, &r.group_id) {
                let resp = kafka_protocol::messages::OffsetDeleteResponse::default().with_error_code(GROUP_DENIED);
                return Gate::Answer(ResponseKind::OffsetDelete(resp));
            }
            let denied = split_off(&mut r.topics, |t| check.topic(Read, &t.name));
            Gate::Run(
                RequestKind::OffsetDelete(r),
                (!denied.is_empty()).then(|| -> Amend {
                    Box::new(move |resp| {
                        let ResponseKind::OffsetDelete(resp) = resp else { return };
                        resp.topics.extend(denied.into_iter().map(|t| {
                            OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        OffsetDeleteResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(TOPIC_DENIED)
                                    })
                                    .collect(),
                            )
                        }))
                    })
                }),
            )
        }
        RequestKind::InitProducerId(r) => {
            // An empty id is no id (the handler reads it so too).
            let refused = match r.transactional_id.as_ref().filter(|id| !id.is_empty()) {
                Some(id) => (!check.check(Write, ResourceType::TransactionalId, id)).then_some(TRANSACTIONAL_ID_DENIED),
                None => (!check.probe_cluster(IdempotentWrite)
                    && !broker.acls.authorize_any(&session.requester(), Write, ResourceType::Topic)
                    && !check.cluster(IdempotentWrite))
                .then_some(CLUSTER_DENIED),
            };
            match refused {
                None => Gate::Run(RequestKind::InitProducerId(r), None),
                Some(error) => Gate::Answer(ResponseKind::InitProducerId(
                    kafka_protocol::messages::InitProducerIdResponse::default().with_error_code(error),
                )),
            }
        }
        // ApiVersions and SASL need nothing; the SCRAM and ACL APIs check the cluster themselves.
        other => Gate::Run(other, None),
    }
}

fn group_gate(check: &Check, group: &str, request: RequestKind, refusal: impl FnOnce() -> ResponseKind) -> Gate {
    if check.group(Operation::Read, group) {
        return Gate::Run(request, None);
    }
    let mut response = refusal();
    match &mut response {
        ResponseKind::JoinGroup(r) => r.error_code = GROUP_DENIED,
        ResponseKind::SyncGroup(r) => r.error_code = GROUP_DENIED,
        ResponseKind::Heartbeat(r) => r.error_code = GROUP_DENIED,
        ResponseKind::LeaveGroup(r) => r.error_code = GROUP_DENIED,
        _ => {}
    }
    Gate::Answer(response)
}

fn config_allowed(check: &Check, op: Operation, kind: i8, name: &str) -> bool {
    if kind == CONFIG_TOPIC {
        check.topic(op, name)
    } else {
        check.cluster(op)
    }
}

fn config_denied(kind: i8) -> i16 {
    if kind == CONFIG_TOPIC {
        TOPIC_DENIED
    } else {
        CLUSTER_DENIED
    }
}

/// Metadata for named topics: those the principal may not describe (or would create without CREATE) are
/// taken out and answered with TOPIC_AUTHORIZATION_FAILED. `None` when the request lists all topics.
fn metadata(check: &Check, version: i16, r: &mut kafka_protocol::messages::MetadataRequest) -> Option<Amend> {
    let topics = r.topics.as_mut()?;
    if version == 0 && topics.is_empty() {
        return None;
    }
    let auto_create = check.broker.config.auto_create_topics_enable && (version < 4 || r.allow_auto_topic_creation);
    let denied: Vec<kafka_protocol::messages::TopicName> = split_off(topics, |t| match &t.name {
        Some(name) => check.topic(Operation::Describe, name) && (!auto_create || check.may_create(name)),
        None => true, // by topic id: filtered from the response below
    })
    .into_iter()
    .filter_map(|t| t.name)
    .collect();
    let only_denied = topics.is_empty();
    let hide = metadata_hide(check);
    Some(Box::new(move |resp| {
        use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
        if only_denied {
            // v0 reads an empty list as "all topics": answer with the refusals alone.
            if let ResponseKind::Metadata(resp) = resp {
                resp.topics.clear();
            }
        } else if let Some(hide) = hide {
            hide(resp);
        }
        let ResponseKind::Metadata(resp) = resp else { return };
        resp.topics.extend(
            denied
                .into_iter()
                .map(|name| MetadataResponseTopic::default().with_name(Some(name)).with_error_code(TOPIC_DENIED)),
        );
    }))
}

/// Drops from a Metadata response the topics the principal may not describe.
fn metadata_hide(check: &Check) -> Option<Amend> {
    let broker = check.broker.clone();
    let session = check.session.clone();
    amend(move |resp| {
        let ResponseKind::Metadata(resp) = resp else { return };
        let check = Check::quiet(&broker, &session);
        resp.topics.retain(|t| t.name.as_ref().is_some_and(|n| check.topic(Operation::Describe, n)));
    })
}

fn offset_fetch(check: &Check, version: i16, mut r: kafka_protocol::messages::OffsetFetchRequest) -> Gate {
    use kafka_protocol::messages::offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
        OffsetFetchResponseTopic, OffsetFetchResponseTopics,
    };
    use Operation::Describe;
    if version < 8 {
        if !check.group(Describe, &r.group_id) {
            let mut resp = kafka_protocol::messages::OffsetFetchResponse::default().with_error_code(GROUP_DENIED);
            resp.topics = r
                .topics
                .unwrap_or_default()
                .into_iter()
                .map(|t| {
                    OffsetFetchResponseTopic::default().with_name(t.name).with_partitions(
                        t.partition_indexes
                            .iter()
                            .map(|p| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(-1)
                                    .with_error_code(GROUP_DENIED)
                            })
                            .collect(),
                    )
                })
                .collect();
            return Gate::Answer(ResponseKind::OffsetFetch(resp));
        }
        let denied = r.topics.as_mut().map(|t| split_off(t, |t| check.topic(Describe, &t.name))).unwrap_or_default();
        let all = r.topics.is_none();
        let broker = check.broker.clone();
        let session = check.session.clone();
        return Gate::Run(
            RequestKind::OffsetFetch(r),
            amend(move |resp| {
                let ResponseKind::OffsetFetch(resp) = resp else { return };
                if all {
                    let check = Check::quiet(&broker, &session);
                    resp.topics.retain(|t| check.topic(Describe, &t.name));
                }
                resp.topics.extend(denied.into_iter().map(|t| {
                    OffsetFetchResponseTopic::default().with_name(t.name).with_partitions(
                        t.partition_indexes
                            .iter()
                            .map(|p| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(-1)
                                    .with_error_code(TOPIC_DENIED)
                            })
                            .collect(),
                    )
                }));
            }),
        );
    }
    let denied_groups: Vec<_> =
        split_off(&mut r.groups, |g| check.group(Describe, &g.group_id)).into_iter().map(|g| g.group_id).collect();
    let mut denied_topics = Vec::new();
    let mut all_topics = BTreeSet::new();
    for g in &mut r.groups {
        match g.topics.as_mut() {
            Some(topics) => {
                denied_topics.push((g.group_id.clone(), split_off(topics, |t| check.topic(Describe, &t.name))))
            }
            None => {
                all_topics.insert(g.group_id.clone());
            }
        }
    }
    let broker = check.broker.clone();
    let session = check.session.clone();
    Gate::Run(
        RequestKind::OffsetFetch(r),
        amend(move |resp| {
            let ResponseKind::OffsetFetch(resp) = resp else { return };
            let check = Check::quiet(&broker, &session);
            for group in &mut resp.groups {
                if all_topics.contains(&group.group_id) {
                    group.topics.retain(|t| check.topic(Describe, &t.name));
                }
                if let Some((_, denied)) = denied_topics.iter_mut().find(|(g, _)| *g == group.group_id) {
                    group.topics.extend(std::mem::take(denied).into_iter().map(|t| {
                        OffsetFetchResponseTopics::default().with_name(t.name).with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|p| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(-1)
                                        .with_error_code(TOPIC_DENIED)
                                })
                                .collect(),
                        )
                    }));
                }
            }
            resp.groups.extend(
                denied_groups
                    .into_iter()
                    .map(|g| OffsetFetchResponseGroup::default().with_group_id(g).with_error_code(GROUP_DENIED)),
            );
        }),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    use crate::broker::{Broker, NodeInfo, Session};
    use crate::config::BrokerConfig;
    use crate::handlers::dispatch;
    use crate::protocol::Request;
    use crate::security::acl::AclConfig;

    fn broker(dir: &tempfile::TempDir) -> Arc<Broker> {
        let acl = AclConfig {
            principal: "User:alice".into(),
            resource_type: "topic".into(),
            resource_name: Some("granted".into()),
            pattern_type: None,
            operations: vec!["write".into(), "create".into()],
            permission: None,
            host: None,
        };
        let config = BrokerConfig {
            log_dirs: dir.path().to_path_buf(),
            acls: vec![acl],
            super_users: vec!["User:admin".into()],
            allow_everyone_if_no_acl_found: Some(false),
            ..BrokerConfig::default()
        };
        let node = NodeInfo { node_id: 0, host: "127.0.0.1".into(), port: 9092 };
        Broker::open(logpipe_config::Valid::new(config).unwrap(), node).unwrap()
    }

    async fn call(broker: &Arc<Broker>, who: &str, api_key: ApiKey, version: i16, body: RequestKind) -> ResponseKind {
        let header = RequestHeader::default().with_request_api_key(api_key as i16).with_request_api_version(version);
        let peer = "10.1.2.3:5000".parse().unwrap();
        let session = Session { peer, principal: who.into(), node: broker.node.clone(), sendfile: false };
        dispatch(broker, Request { api_key, header, body }, &session).await.body
    }

    fn name(s: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(s))
    }

    async fn topics_seen(broker: &Arc<Broker>, who: &str) -> Vec<String> {
        let ResponseKind::Metadata(r) = call(
            broker,
            who,
            ApiKey::Metadata,
            12,
            RequestKind::Metadata(MetadataRequest::default().with_topics(None)),
        )
        .await
        else {
            panic!("not a metadata response")
        };
        r.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.to_string())).collect()
    }

    #[tokio::test]
    async fn refused_parts_get_kafkas_errors_and_the_rest_runs() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(&dir);
        let create =
            CreateTopicsRequest::default().with_topics(vec![creatable_topic("granted"), creatable_topic("secret")]);
        let ResponseKind::CreateTopics(r) =
            call(&broker, "User:alice", ApiKey::CreateTopics, 5, RequestKind::CreateTopics(create.clone())).await
        else {
            panic!()
        };
        let codes: Vec<(String, i16)> = r.topics.iter().map(|t| (t.name.to_string(), t.error_code)).collect();
        assert!(codes.contains(&("granted".into(), 0)) && codes.contains(&("secret".into(), 29)), "{codes:?}");
        call(&broker, "User:admin", ApiKey::CreateTopics, 5, RequestKind::CreateTopics(create)).await;

        assert_eq!(topics_seen(&broker, "User:alice").await, vec!["granted".to_string()], "secret is hidden");
        let mut all = topics_seen(&broker, "User:admin").await;
        all.sort();
        assert_eq!(all, vec!["granted".to_string(), "secret".to_string()], "super users see everything");

        let produce = ProduceRequest::default().with_acks(1).with_topic_data(vec![TopicProduceData::default()
            .with_name(name("secret"))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0)])]);
        let ResponseKind::Produce(r) =
            call(&broker, "User:alice", ApiKey::Produce, 9, RequestKind::Produce(produce)).await
        else {
            panic!()
        };
        assert_eq!(r.responses[0].partition_responses[0].error_code, 29);

        let join = JoinGroupRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g")));
        let ResponseKind::JoinGroup(r) =
            call(&broker, "User:alice", ApiKey::JoinGroup, 5, RequestKind::JoinGroup(join)).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, 30);

        let ResponseKind::InitProducerId(r) =
            call(&broker, "User:bob", ApiKey::InitProducerId, 4, RequestKind::InitProducerId(Default::default())).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, 31, "no WRITE on any topic: no idempotent producer");
    }

    #[tokio::test]
    async fn delete_topics_by_id_needs_delete_on_the_topic_the_id_names() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(&dir);
        let create =
            CreateTopicsRequest::default().with_topics(vec![creatable_topic("granted"), creatable_topic("secret")]);
        call(&broker, "User:admin", ApiKey::CreateTopics, 5, RequestKind::CreateTopics(create)).await;
        let id = |n: &str| broker.logs.topics().into_iter().find(|m| m.name == n).unwrap().id;
        let by_id = |id| delete_topics_request::DeleteTopicState::default().with_topic_id(id);
        let unknown = uuid::Uuid::from_u128(7);
        let delete =
            DeleteTopicsRequest::default().with_topics(vec![by_id(id("granted")), by_id(id("secret")), by_id(unknown)]);

        // alice may WRITE "granted" (so DESCRIBE it) but DELETE nothing, and may not even see "secret".
        let ResponseKind::DeleteTopics(r) =
            call(&broker, "User:alice", ApiKey::DeleteTopics, 6, RequestKind::DeleteTopics(delete.clone())).await
        else {
            panic!()
        };
        let results: Vec<(Option<String>, uuid::Uuid, i16)> =
            r.responses.iter().map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id, t.error_code)).collect();
        assert!(results.contains(&(Some("granted".into()), id("granted"), 29)), "{results:?}");
        assert!(
            results.contains(&(None, id("secret"), 29)),
            "the name of a topic alice cannot see stays hidden: {results:?}"
        );
        assert!(results.contains(&(None, unknown, 100)), "an unknown id is UNKNOWN_TOPIC_ID: {results:?}");
        assert_eq!(broker.logs.topics().len(), 2, "nothing was deleted");

        let ResponseKind::DeleteTopics(r) =
            call(&broker, "User:admin", ApiKey::DeleteTopics, 6, RequestKind::DeleteTopics(delete)).await
        else {
            panic!()
        };
        assert!(r.responses.iter().take(2).all(|t| t.error_code == 0), "{r:?}");
        assert!(broker.logs.topics().is_empty(), "the super user deleted both");
    }

    fn creatable_topic(n: &'static str) -> create_topics_request::CreatableTopic {
        create_topics_request::CreatableTopic::default()
            .with_name(name(n))
            .with_num_partitions(1)
            .with_replication_factor(1)
    }
}
