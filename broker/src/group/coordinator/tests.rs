//! Coordinator tests over a temp dir: OffsetCommit validation, deleting a topic's offsets, durability
//! across a crash, offset expiry (KIP-211), DeleteGroups, OffsetDelete (KIP-496), DescribeGroups and
//! the timer task's shutdown. Group state machine behaviour is tested in `state::tests`.

use kafka_protocol::ResponseError as E;

use super::*;
use crate::group::state::LeaveMember;
use crate::group::tests_support::*;
use crate::group_retention::GroupRetention;

const T0: i64 = 1_000_000;
const DAY: i64 = 24 * 3600 * 1000;
/// The default `offsets_retention_minutes` (7 days).
const RETENTION: i64 = 7 * DAY;

fn commit_request(group: &str, generation: i32, member: &str, partitions: &[(&str, i32, i64)]) -> CommitRequest {
    CommitRequest {
        group_id: group.into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        partitions: partitions
            .iter()
            .map(|(topic, partition, offset)| CommitPartition {
                topic: (*topic).into(),
                partition: *partition,
                offset: *offset,
                leader_epoch: 4,
                metadata: Some(format!("m{offset}")),
            })
            .collect(),
    }
}

/// A standalone consumer's commit (generation -1, no member id), which must succeed.
fn simple_commit(groups: &GroupCoordinator, group: &str, partitions: &[(&str, i32, i64)], now: i64) {
    let outcome = groups.commit_offsets(commit_request(group, -1, "", partitions), now);
    assert!(outcome.errors().iter().all(Option::is_none), "{:?}", outcome.errors());
}

fn offset_of(groups: &GroupCoordinator, group: &str, topic: &str, partition: i32) -> Option<i64> {
    let fetched = groups.fetch_offsets(group, Some(&[(topic.to_owned(), vec![partition])]));
    fetched[0].1[0].1.as_ref().map(|c| c.offset)
}

/// A consumer group "g" with one member subscribed to `logs`, Stable at generation 1.
fn stable_consumer(groups: &GroupCoordinator, now: i64) -> String {
    let (a, reply) = new_member(groups, range(), now);
    resolved(reply);
    resolved(groups.sync(sync_request(&a, 1, &[(&a, "x")]), now));
    a
}

#[test]
fn standalone_commit_creates_an_offsets_only_group() {
    let (_dir, groups) = coordinator();
    simple_commit(&groups, "tool", &[("logs", 0, 10), ("logs", 3, 30)], T0);
    assert_eq!(offset_of(&groups, "tool", "logs", 0), Some(10));
    assert_eq!(offset_of(&groups, "tool", "logs", 1), None);
    assert_eq!(offset_of(&groups, "nobody", "logs", 0), None);
    let listing = groups.list_groups();
    assert_eq!(
        listing,
        vec![GroupListing { group_id: "tool".into(), protocol_type: String::new(), state: GroupStateName::Empty }]
    );
    let all = groups.fetch_offsets("tool", None);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![0, 3]);
    let committed = groups.committed_offsets("tool");
    assert_eq!(committed[1].0, TopicPartition::new("logs", 3));
    assert_eq!(committed[1].1.metadata, "m30");
    assert_eq!(committed[1].1.leader_epoch, 4);
    assert_eq!(committed[1].1.commit_timestamp_ms, T0);
}

#[test]
fn commit_to_unknown_partition_is_refused_per_partition() {
    let (_dir, groups) = coordinator();
    let request = commit_request("g", -1, "", &[("logs", 0, 1), ("logs", 4, 1), ("nope", 0, 1)]);
    let outcome = groups.commit_offsets(request, T0);
    assert_eq!(outcome.errors(), &[None, Some(E::UnknownTopicOrPartition), Some(E::UnknownTopicOrPartition)]);
    assert_eq!(offset_of(&groups, "g", "logs", 0), Some(1));
    assert_eq!(offset_of(&groups, "g", "logs", 4), None);

    // Nothing valid at all: no group is created.
    let outcome = groups.commit_offsets(commit_request("h", -1, "", &[("nope", 0, 1)]), T0);
    assert_eq!(outcome.errors(), &[Some(E::UnknownTopicOrPartition)]);
    assert!(groups.list_groups().iter().all(|g| g.group_id != "h"));
}

#[test]
fn commit_checks_metadata_size_and_unknown_generations() {
    let (_dir, groups) = coordinator();
    let mut request = commit_request("g", -1, "", &[("logs", 0, 1), ("logs", 1, 1)]);
    request.partitions[1].metadata = Some("x".repeat(OFFSET_METADATA_MAX_BYTES + 1));
    let outcome = groups.commit_offsets(request, T0);
    assert_eq!(outcome.errors(), &[None, Some(E::OffsetMetadataTooLarge)]);
    // A generation for a group that does not exist: a member of a group that is gone.
    let outcome = groups.commit_offsets(commit_request("gone", 3, "m", &[("logs", 0, 1)]), T0);
    assert_eq!(outcome.errors(), &[Some(E::IllegalGeneration)]);
}

#[test]
fn member_commits_and_reset_offsets_on_an_empty_group() {
    let (_dir, groups) = coordinator_with_delay(0);
    let a = stable_consumer(&groups, T0);
    let outcome = groups.commit_offsets(commit_request("g", 1, &a, &[("logs", 0, 7)]), T0);
    assert_eq!(outcome.errors(), &[None]);
    groups.leave("g", &[LeaveMember { member_id: a, group_instance_id: None }], T0).unwrap();
    // `kafka-consumer-groups --reset-offsets` on the now empty group.
    simple_commit(&groups, "g", &[("logs", 0, 0)], T0 + 1);
    assert_eq!(offset_of(&groups, "g", "logs", 0), Some(0));
}

#[test]
fn commit_without_generation_but_with_a_member_id_to_an_empty_group_is_accepted() {
    let (_dir, groups) = coordinator_with_delay(0);
    // An admin/simple commit that carries some member id, to a group Kafka would create for it.
    let outcome = groups.commit_offsets(commit_request("tool", -1, "some-admin-client", &[("logs", 0, 3)]), T0);
    assert_eq!(outcome.errors(), &[None]);
    assert_eq!(offset_of(&groups, "tool", "logs", 0), Some(3));
    // To an existing Empty group, which once had members.
    let a = stable_consumer(&groups, T0);
    groups.leave("g", &[LeaveMember { member_id: a.clone(), group_instance_id: None }], T0).unwrap();
    let outcome = groups.commit_offsets(commit_request("g", -1, &a, &[("logs", 0, 9)]), T0 + 1);
    assert_eq!(outcome.errors(), &[None]);
    assert_eq!(offset_of(&groups, "g", "logs", 0), Some(9));
    // A group with members still validates the member, as Kafka does.
    let (b, reply) = new_member(&groups, range(), T0 + 2);
    let generation = resolved(reply).generation_id;
    resolved(groups.sync(sync_request(&b, generation, &[(&b, "x")]), T0 + 2));
    assert_eq!(groups.describe("g").state, GroupStateName::Stable);
    let outcome = groups.commit_offsets(commit_request("g", -1, "stranger", &[("logs", 0, 1)]), T0 + 2);
    assert_eq!(outcome.errors(), &[Some(E::UnknownMemberId)]);
    let outcome = groups.commit_offsets(commit_request("g", -1, &b, &[("logs", 0, 1)]), T0 + 2);
    assert_eq!(outcome.errors(), &[Some(E::IllegalGeneration)]);
    assert_eq!(offset_of(&groups, "g", "logs", 0), Some(9));
}

#[test]
fn deleting_a_topic_deletes_its_committed_offsets_durably() {
    let dir = tempfile::tempdir().unwrap();
    let logs_exists = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let exists: PartitionExists = {
        let logs_exists = Arc::clone(&logs_exists);
        Arc::new(move |topic, partition| match topic {
            "logs" => logs_exists.load(Ordering::SeqCst) && (0..4).contains(&partition),
            "other" => (0..2).contains(&partition),
            _ => false,
        })
    };
    let config = BrokerConfig { group_initial_rebalance_delay_ms: 0, ..config(dir.path()) };
    let groups = GroupCoordinator::open_with(&config, Arc::clone(&exists), T0).unwrap();
    let a = stable_consumer(&groups, T0);
    groups.commit_offsets(commit_request("g", 1, &a, &[("logs", 0, 7), ("logs", 3, 8), ("other", 0, 9)]), T0);
    simple_commit(&groups, "only-logs", &[("logs", 1, 1)], T0);
    simple_commit(&groups, "only-other", &[("other", 1, 2)], T0);

    logs_exists.store(false, Ordering::SeqCst); // LogManager::delete_topic("logs")
    groups.delete_topic_offsets("logs", T0 + 1);
    assert_eq!(offset_of(&groups, "g", "logs", 0), None);
    assert_eq!(offset_of(&groups, "g", "other", 0), Some(9));
    let listed: Vec<String> = groups.list_groups().into_iter().map(|g| g.group_id).collect();
    assert_eq!(listed, vec!["g", "only-other"], "an empty group left without offsets is forgotten");
    assert_eq!(groups.describe("g").state, GroupStateName::Stable, "members are untouched");
    // A commit racing in after the deletion finds the topic gone.
    let late = groups.commit_offsets(commit_request("g", 1, &a, &[("logs", 0, 10)]), T0 + 2);
    assert_eq!(late.errors(), &[Some(E::UnknownTopicOrPartition)]);
    drop(groups); // no close(): the deletion was synced before delete_topic_offsets returned

    // The topic is re-created under the same name: nobody resumes at the old positions.
    logs_exists.store(true, Ordering::SeqCst);
    let groups = GroupCoordinator::open_with(&config, exists, T0 + 3).unwrap();
    for (group, partition) in [("g", 0), ("g", 3), ("only-logs", 1)] {
        assert_eq!(offset_of(&groups, group, "logs", partition), None, "{group} logs-{partition}");
    }
    assert_eq!(offset_of(&groups, "g", "other", 0), Some(9));
    assert_eq!(offset_of(&groups, "only-other", "other", 1), Some(2));
    let listed: Vec<String> = groups.list_groups().into_iter().map(|g| g.group_id).collect();
    assert_eq!(listed, vec!["g", "only-other"]);
    // Deleting a topic nobody committed for is a no-op.
    groups.delete_topic_offsets("never-committed", T0 + 4);
    groups.close().unwrap();
}

#[test]
fn close_is_idempotent_and_best_effort() {
    let (_dir, groups) = coordinator();
    simple_commit(&groups, "tool", &[("logs", 0, 1)], T0);
    groups.close().unwrap();
    groups.close().unwrap();
    simple_commit(&groups, "tool", &[("logs", 0, 2)], T0);
    groups.close().unwrap();
}

#[tokio::test]
async fn acknowledged_commits_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let groups = GroupCoordinator::open_with(&config(dir.path()), partition_exists(), T0).unwrap();
    let commits: Vec<_> = (0..8)
        .map(|i| groups.commit_offsets(commit_request("g", -1, "", &[("logs", i % 4, i64::from(i))]), T0).wait())
        .collect();
    for errors in futures::future::join_all(commits).await {
        assert_eq!(errors, vec![None]);
    }
    drop(groups); // no close(): as after kill -9, only what was fsynced counts

    let groups = GroupCoordinator::open_with(&config(dir.path()), partition_exists(), T0 + 1).unwrap();
    for p in 0..4 {
        assert_eq!(offset_of(&groups, "g", "logs", p), Some(i64::from(p) + 4));
    }
    groups.close().unwrap();
}

#[test]
fn offsets_of_a_group_empty_for_the_retention_period_expire() {
    let (dir, groups) = coordinator_with_delay(0);
    let a = stable_consumer(&groups, T0);
    groups.commit_offsets(commit_request("g", 1, &a, &[("logs", 0, 7)]), T0);
    // Stable and subscribed: nothing expires, however old the commit.
    groups.expire_offsets(T0 + 30 * DAY);
    assert_eq!(offset_of(&groups, "g", "logs", 0), Some(7));

    let empty_at = T0 + 30 * DAY;
    groups.leave("g", &[LeaveMember { member_id: a, group_instance_id: None }], empty_at).unwrap();
    groups.expire_offsets(empty_at + RETENTION - 1);
    assert_eq!(offset_of(&groups, "g", "logs", 0), Some(7), "KIP-211: counted from when the group emptied");

    // The empty-since time survives a restart.
    drop(groups);
    let groups = GroupCoordinator::open_with(&config(dir.path()), partition_exists(), empty_at + DAY).unwrap();
    groups.expire_offsets(empty_at + RETENTION - 1);
    assert_eq!(offset_of(&groups, "g", "logs", 0), Some(7));
    groups.expire_offsets(empty_at + RETENTION);
    assert_eq!(offset_of(&groups, "g", "logs", 0), None);
    assert!(groups.list_groups().is_empty(), "an empty group without offsets is forgotten");
    assert_eq!(groups.describe("g").state, GroupStateName::Dead);
}

#[test]
fn a_group_active_at_a_crash_gets_the_full_retention_after_restart() {
    let (dir, groups) = coordinator_with_delay(0);
    let a = stable_consumer(&groups, T0);
    groups.commit_offsets(commit_request("g", 1, &a, &[("logs", 0, 7)]), T0);
    drop(groups);
    let restart = T0 + 10 * DAY;
    let groups = GroupCoordinator::open_with(&config(dir.path()), partition_exists(), restart).unwrap();
    assert_eq!(groups.describe("g").state, GroupStateName::Empty);
    assert_eq!(groups.describe("g").protocol_type, "consumer");
    groups.expire_offsets(restart + RETENTION - 1);
    assert_eq!(offset_of(&groups, "g", "logs", 0), Some(7));
    groups.expire_offsets(restart + RETENTION);
    assert_eq!(offset_of(&groups, "g", "logs", 0), None);
}

#[test]
fn standalone_offsets_expire_by_commit_time_and_explicit_retention() {
    let (_dir, groups) = coordinator();
    simple_commit(&groups, "tool", &[("logs", 0, 1)], T0);
    simple_commit(&groups, "tool", &[("logs", 1, 1)], T0 + DAY);
    let mut v2 = commit_request("tool", -1, "", &[("logs", 2, 1)]);
    v2.retention_time_ms = 1000;
    groups.commit_offsets(v2, T0);
    groups.expire_offsets(T0 + 1000);
    assert_eq!(offset_of(&groups, "tool", "logs", 2), None, "OffsetCommit v2-v4 retention is honoured");
    groups.expire_offsets(T0 + RETENTION);
    assert_eq!(offset_of(&groups, "tool", "logs", 0), None);
    assert_eq!(offset_of(&groups, "tool", "logs", 1), Some(1));
    groups.expire_offsets(T0 + DAY + RETENTION);
    assert!(groups.list_groups().is_empty());
}

#[test]
fn stable_consumer_group_loses_offsets_of_topics_it_no_longer_reads() {
    let (_dir, groups) = coordinator_with_delay(0);
    let a = stable_consumer(&groups, T0);
    groups.commit_offsets(commit_request("g", 1, &a, &[("logs", 0, 1), ("other", 0, 1)]), T0);
    groups.expire_offsets(T0 + RETENTION);
    assert_eq!(offset_of(&groups, "g", "logs", 0), Some(1));
    assert_eq!(offset_of(&groups, "g", "other", 0), None);
}

#[tokio::test]
async fn offsets_of_protected_groups_never_expire() {
    let dir = tempfile::tempdir().unwrap();
    let retention = GroupRetention { protect_groups: vec!["g".into(), "tool".into()], ..GroupRetention::default() };
    let config = BrokerConfig { group_initial_rebalance_delay_ms: 0, retention, ..config(dir.path()) };
    let groups = GroupCoordinator::open_with(&config, partition_exists(), T0).unwrap();
    let a = stable_consumer(&groups, T0);
    groups.commit_offsets(commit_request("g", 1, &a, &[("logs", 0, 7), ("other", 0, 3)]), T0);
    let mut v2 = commit_request("tool", -1, "", &[("logs", 1, 5)]);
    v2.retention_time_ms = 1000;
    groups.commit_offsets(v2, T0);
    simple_commit(&groups, "unlisted", &[("logs", 0, 1)], T0);

    // Stable, no longer subscribed to `other`: kept all the same.
    groups.expire_offsets(T0 + RETENTION);
    assert_eq!(offset_of(&groups, "g", "other", 0), Some(3));
    assert_eq!(offset_of(&groups, "tool", "logs", 1), Some(5), "an explicit retention is not honoured either");
    assert_eq!(offset_of(&groups, "unlisted", "logs", 0), None, "other groups expire as in Kafka");

    // The indexer stops for longer than offsets_retention_minutes: its floor keeps holding.
    let empty_at = T0 + DAY;
    groups.leave("g", &[LeaveMember { member_id: a, group_instance_id: None }], empty_at).unwrap();
    groups.expire_offsets(empty_at + RETENTION);
    groups.expire_offsets(empty_at + 10 * RETENTION);
    assert_eq!(offset_of(&groups, "g", "logs", 0), Some(7));
    assert_eq!(groups.describe("g").state, GroupStateName::Empty, "not forgotten");
    drop(groups);
    let groups = GroupCoordinator::open_with(&config, partition_exists(), empty_at + 20 * RETENTION).unwrap();
    groups.tick(empty_at + 30 * RETENTION);
    assert_eq!(offset_of(&groups, "g", "logs", 0), Some(7), "nor after a restart");

    // Deleting them explicitly still works.
    let errors = groups.delete_groups(&["g".to_owned(), "tool".to_owned()]).wait().await;
    assert_eq!(errors, vec![None, None]);
    assert!(groups.list_groups().is_empty());
}

#[test]
fn tick_runs_expiry() {
    let (_dir, groups) = coordinator();
    simple_commit(&groups, "tool", &[("logs", 0, 1)], T0);
    groups.tick(T0);
    groups.tick(T0 + RETENTION);
    assert!(groups.list_groups().is_empty());
}

#[tokio::test]
async fn delete_groups_only_when_empty() {
    let (dir, groups) = coordinator_with_delay(0);
    let _a = stable_consumer(&groups, T0);
    simple_commit(&groups, "tool", &[("logs", 0, 1)], T0);
    let ids = vec!["g".to_owned(), "tool".to_owned(), "nobody".to_owned()];
    let errors = groups.delete_groups(&ids).wait().await;
    assert_eq!(errors, vec![Some(E::NonEmptyGroup), None, Some(E::GroupIdNotFound)]);
    assert_eq!(offset_of(&groups, "tool", "logs", 0), None);
    assert_eq!(groups.list_groups().len(), 1);
    drop(groups);
    let groups = GroupCoordinator::open_with(&config(dir.path()), partition_exists(), T0).unwrap();
    assert_eq!(offset_of(&groups, "tool", "logs", 0), None, "the deletion is durable");
}

#[tokio::test]
async fn offset_delete_respects_subscriptions() {
    let (_dir, groups) = coordinator_with_delay(0);
    let a = stable_consumer(&groups, T0);
    groups.commit_offsets(commit_request("g", 1, &a, &[("logs", 0, 1), ("other", 0, 1)]), T0);
    let tps = [TopicPartition::new("logs", 0), TopicPartition::new("other", 0), TopicPartition::new("nope", 0)];
    let errors = groups.delete_offsets("g", &tps).unwrap().wait().await;
    assert_eq!(errors, vec![Some(E::GroupSubscribedToTopic), None, Some(E::UnknownTopicOrPartition)]);
    assert_eq!(offset_of(&groups, "g", "logs", 0), Some(1));
    assert_eq!(offset_of(&groups, "g", "other", 0), None);
    assert_eq!(groups.delete_offsets("nobody", &tps).err(), Some(E::GroupIdNotFound));

    // Once empty, anything goes.
    groups.leave("g", &[LeaveMember { member_id: a, group_instance_id: None }], T0).unwrap();
    let errors = groups.delete_offsets("g", &tps[..1]).unwrap().wait().await;
    assert_eq!(errors, vec![None]);
    assert_eq!(offset_of(&groups, "g", "logs", 0), None);
}

#[test]
fn offset_delete_refuses_active_groups_of_other_protocols() {
    let (_dir, groups) = coordinator_with_delay(0);
    let mut join = join_request("", None, range());
    join.protocol_type = "connect".into();
    join.require_known_member_id = false;
    resolved(groups.join(join, T0));
    assert_eq!(groups.delete_offsets("g", &[TopicPartition::new("logs", 0)]).err(), Some(E::NonEmptyGroup));
}

#[test]
fn describe_shows_kafkas_view() {
    let (_dir, groups) = coordinator_with_delay(0);
    let (a, reply) = new_member(&groups, range(), T0);
    resolved(reply);
    let d = groups.describe("g");
    assert_eq!(d.state, GroupStateName::CompletingRebalance);
    assert_eq!(d.protocol, "", "no protocol or assignment until Stable");
    assert!(d.members[0].metadata.is_empty());
    resolved(groups.sync(sync_request(&a, 1, &[(&a, "assigned")]), T0));
    let d = groups.describe("g");
    assert_eq!(d.state.as_str(), "Stable");
    assert_eq!((d.protocol_type.as_str(), d.protocol.as_str()), ("consumer", "range"));
    let m = &d.members[0];
    assert_eq!(
        (m.member_id.as_str(), m.client_id.as_str(), m.client_host.as_str()),
        (a.as_str(), "client", "/10.0.0.1")
    );
    assert_eq!(m.assignment.as_ref(), b"assigned");
    assert_eq!(m.metadata, range()[0].metadata);
    assert_eq!(groups.describe("nobody").state, GroupStateName::Dead);
}

#[tokio::test]
async fn run_timers_stops_on_shutdown() {
    let (_dir, groups) = coordinator();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(Arc::clone(&groups).run_timers(shutdown.clone()));
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops").expect("no panic");
}
