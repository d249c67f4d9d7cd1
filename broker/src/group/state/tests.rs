//! Group state machine tests, driven through [`GroupCoordinator`] with explicit `now` values: the
//! classic rebalance, static membership, expiry and the error codes Kafka returns.

use bytes::Bytes;
use kafka_protocol::ResponseError as E;

use super::*;
use crate::group::subscription::{encode_full_subscription, encode_subscription};
use crate::group::tests_support::*;
use crate::group::GroupCoordinator;

const T0: i64 = 1_000_000;

/// One member, joined and synced: returns its id (generation 1).
fn stable_single(groups: &GroupCoordinator, now: i64) -> String {
    let (a, reply) = new_member(groups, range(), now);
    let joined = resolved(reply);
    assert_eq!((joined.generation_id, joined.leader.as_str()), (1, a.as_str()));
    let synced = resolved(groups.sync(sync_request(&a, 1, &[(&a, "for-a")]), now));
    assert_eq!(synced.assignment, Bytes::from_static(b"for-a"));
    a
}

/// Two members, stable at generation 2; A is the leader.
fn stable_pair(groups: &GroupCoordinator, now: i64) -> (String, String) {
    let a = stable_single(groups, now);
    let (b, reply) = new_member(groups, range(), now);
    let mut b_join = pending(reply);
    let a_join = resolved(groups.join(join_request(&a, None, range()), now));
    let b_join = b_join.try_recv().expect("B answered once A rejoined");
    assert_eq!((a_join.generation_id, b_join.generation_id), (2, 2));
    assert_eq!(a_join.members.len(), 2, "the leader gets every member");
    assert!(b_join.members.is_empty());
    let mut b_sync = pending(groups.sync(sync_request(&b, 2, &[]), now));
    resolved(groups.sync(sync_request(&a, 2, &[(&a, "a"), (&b, "b")]), now));
    assert_eq!(b_sync.try_recv().unwrap().assignment, Bytes::from_static(b"b"));
    (a, b)
}

fn state(groups: &GroupCoordinator) -> GroupStateName {
    groups.group_state("g").expect("group exists")
}

#[test]
fn join_then_sync_makes_a_stable_group_after_the_initial_delay() {
    let (_dir, groups) = coordinator();
    let (a, reply) = new_member(&groups, range(), T0);
    assert!(a.starts_with("client-"), "{a}");
    let mut rx = pending(reply);
    assert_eq!(state(&groups), GroupStateName::PreparingRebalance);
    groups.tick(T0 + 2999);
    assert!(rx.try_recv().is_err(), "the initial delay holds the first rebalance");
    groups.tick(T0 + 3000);
    let joined = rx.try_recv().unwrap();
    assert_eq!(joined.error, None);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, a);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(state(&groups), GroupStateName::CompletingRebalance);

    let synced = resolved(groups.sync(sync_request(&a, 1, &[(&a, "p0")]), T0 + 3001));
    assert_eq!(synced.assignment, Bytes::from_static(b"p0"));
    assert_eq!(state(&groups), GroupStateName::Stable);
    assert_eq!(groups.heartbeat("g", &a, None, 1, T0 + 4000), None);
}

#[test]
fn initial_delay_is_extended_while_members_keep_arriving() {
    let (_dir, groups) = coordinator();
    let (_, a) = new_member(&groups, range(), T0);
    let mut a = pending(a);
    let (_, b) = new_member(&groups, range(), T0 + 1000);
    let mut b = pending(b);
    groups.tick(T0 + 3000);
    assert!(a.try_recv().is_err(), "B joined during the delay: wait once more");
    groups.tick(T0 + 5999);
    assert!(a.try_recv().is_err());
    groups.tick(T0 + 6000);
    let (a, b) = (a.try_recv().unwrap(), b.try_recv().unwrap());
    assert_eq!((a.generation_id, b.generation_id), (1, 1));
    assert_eq!(a.members.len(), 2);
}

#[test]
fn member_id_required_then_pending_member_expires() {
    let (_dir, groups) = coordinator_with_delay(0);
    let first = resolved(groups.join(join_request("", None, range()), T0));
    assert_eq!(first.error, Some(E::MemberIdRequired));
    assert_eq!(first.generation_id, -1);
    assert!(first.member_id.starts_with("client-"));
    assert_eq!(state(&groups), GroupStateName::Empty);
    assert!(groups.describe("g").members.is_empty(), "a pending member is not a member yet");

    // Not rejoining within the session timeout forfeits the id.
    groups.tick(T0 + i64::from(SESSION_MS));
    let late = resolved(groups.join(join_request(&first.member_id, None, range()), T0 + i64::from(SESSION_MS)));
    assert_eq!(late.error, Some(E::UnknownMemberId));

    // Before v4 a member joins in one go.
    let mut old = join_request("", None, range());
    old.require_known_member_id = false;
    let joined = resolved(groups.join(old, T0 + 20_000));
    assert_eq!((joined.error, joined.generation_id), (None, 1));
}

#[test]
fn pending_member_holds_the_rebalance_open() {
    let (_dir, groups) = coordinator_with_delay(0);
    let (a, b) = stable_pair(&groups, T0);
    // C got its id but has not rejoined yet; A and B rejoin: the rebalance waits for C.
    let c_id = resolved(groups.join(join_request("", None, range()), T0)).member_id;
    let mut a_join = pending(groups.join(join_request(&a, None, range()), T0));
    let _b_join = pending(groups.join(join_request(&b, None, range()), T0));
    let c_join = resolved(groups.join(join_request(&c_id, None, range()), T0 + 10));
    assert_eq!(c_join.generation_id, 3);
    assert_eq!(a_join.try_recv().unwrap().members.len(), 3);
}

#[test]
fn second_member_triggers_rebalance_and_follower_waits_for_leader() {
    let (_dir, groups) = coordinator_with_delay(0);
    let a = stable_single(&groups, T0);
    let (b, reply) = new_member(&groups, range(), T0 + 100);
    let mut b_join = pending(reply);
    assert_eq!(state(&groups), GroupStateName::PreparingRebalance);
    assert_eq!(groups.heartbeat("g", &a, None, 1, T0 + 200), Some(E::RebalanceInProgress));

    let a_join = resolved(groups.join(join_request(&a, None, range()), T0 + 300));
    let b_join = b_join.try_recv().unwrap();
    assert_eq!(a_join.leader, a, "the previous leader stays leader");
    assert_eq!(b_join.leader, a);
    assert_eq!(a_join.members.iter().map(|m| m.member_id.as_str()).collect::<Vec<_>>(), vec![&a, &b]);

    let mut b_sync = pending(groups.sync(sync_request(&b, 2, &[]), T0 + 400));
    assert_eq!(state(&groups), GroupStateName::CompletingRebalance);
    let a_sync = resolved(groups.sync(sync_request(&a, 2, &[(&a, "a"), (&b, "b")]), T0 + 500));
    assert_eq!(a_sync.assignment, Bytes::from_static(b"a"));
    assert_eq!(b_sync.try_recv().unwrap().assignment, Bytes::from_static(b"b"));
    assert_eq!(state(&groups), GroupStateName::Stable);

    // A follower rejoining with unchanged metadata in a Stable group changes nothing.
    let again = resolved(groups.join(join_request(&b, None, range()), T0 + 600));
    assert_eq!((again.generation_id, again.error), (2, None));
    assert_eq!(state(&groups), GroupStateName::Stable);
    // The leader rejoining forces a rebalance.
    let _a_join = pending(groups.join(join_request(&a, None, range()), T0 + 700));
    assert_eq!(state(&groups), GroupStateName::PreparingRebalance);
}

#[test]
fn session_timeout_evicts_silent_member() {
    let (_dir, groups) = coordinator_with_delay(0);
    let (a, b) = stable_pair(&groups, T0);
    let session = i64::from(SESSION_MS);
    for t in [5000, session - 1] {
        assert_eq!(groups.heartbeat("g", &a, None, 2, T0 + t), None);
        groups.tick(T0 + t);
    }
    assert_eq!(state(&groups), GroupStateName::Stable);
    groups.tick(T0 + session);
    assert_eq!(state(&groups), GroupStateName::PreparingRebalance, "B expired at T0 + session");
    assert_eq!(groups.heartbeat("g", &b, None, 2, T0 + session + 1), Some(E::UnknownMemberId));
    assert_eq!(groups.heartbeat("g", &a, None, 2, T0 + session + 1), Some(E::RebalanceInProgress));
    let a_join = resolved(groups.join(join_request(&a, None, range()), T0 + session + 2));
    assert_eq!(a_join.generation_id, 3);
    assert_eq!(a_join.members.len(), 1);
}

#[test]
fn members_that_do_not_rejoin_in_the_rebalance_timeout_are_removed() {
    let (_dir, groups) = coordinator_with_delay(0);
    let (a, b) = stable_pair(&groups, T0);
    let (c, c_join) = new_member(&groups, range(), T0);
    let mut c_join = pending(c_join);
    let mut a_join = pending(groups.join(join_request(&a, None, range()), T0 + 1));
    // B keeps heartbeating (so its session never expires) but never rejoins.
    let rebalance = i64::from(REBALANCE_MS);
    for t in (1000..rebalance).step_by(3000) {
        assert_eq!(groups.heartbeat("g", &b, None, 2, T0 + t), Some(E::RebalanceInProgress));
        groups.tick(T0 + t);
    }
    groups.tick(T0 + rebalance - 1);
    assert!(a_join.try_recv().is_err());
    groups.tick(T0 + rebalance);
    let (a_join, c_join) = (a_join.try_recv().unwrap(), c_join.try_recv().unwrap());
    assert_eq!((a_join.generation_id, c_join.generation_id), (3, 3));
    let ids: Vec<_> = a_join.members.iter().map(|m| m.member_id.clone()).collect();
    assert_eq!(ids, vec![a.clone(), c.clone()]);
    assert_eq!(groups.heartbeat("g", &b, None, 3, T0 + rebalance + 1), Some(E::UnknownMemberId));
}

#[test]
fn new_member_that_never_rejoins_does_not_block_forever() {
    let (_dir, groups) = coordinator_with_delay(0);
    let (a, _b) = stable_pair(&groups, T0);
    // A (leader) rejoins; B never does and keeps no session: after the rebalance timeout only A is left.
    let mut a_join = pending(groups.join(join_request(&a, None, range()), T0));
    groups.tick(T0 + i64::from(REBALANCE_MS));
    assert_eq!(a_join.try_recv().unwrap().members.len(), 1);
}

#[test]
fn static_member_rejoining_with_a_new_id_replaces_the_old_one_without_rebalance() {
    let (_dir, groups) = coordinator_with_delay(0);
    let a_old = resolved(groups.join(join_request("", Some("ia"), range()), T0));
    assert_eq!(a_old.error, None, "static members skip MEMBER_ID_REQUIRED");
    let a_old = a_old.member_id;
    resolved(
        groups.sync(
            SyncRequest { group_instance_id: Some("ia".into()), ..sync_request(&a_old, 1, &[(&a_old, "a")]) },
            T0,
        ),
    );
    let (b, b_join) = new_member(&groups, range(), T0);
    let mut b_join = pending(b_join);
    resolved(groups.join(join_request(&a_old, Some("ia"), range()), T0));
    b_join.try_recv().unwrap();
    let mut b_sync = pending(groups.sync(sync_request(&b, 2, &[]), T0));
    resolved(groups.sync(
        SyncRequest { group_instance_id: Some("ia".into()), ..sync_request(&a_old, 2, &[(&a_old, "a2"), (&b, "b2")]) },
        T0,
    ));
    b_sync.try_recv().unwrap();

    // The process of "ia" restarts: same metadata, no member id.
    let rejoin = resolved(groups.join(join_request("", Some("ia"), range()), T0 + 1000));
    assert_eq!(rejoin.error, None);
    assert_eq!(rejoin.generation_id, 2, "no new generation");
    assert_ne!(rejoin.member_id, a_old);
    assert_eq!(rejoin.leader, a_old, "pre-v9 clients see the old leader id and do not assign");
    assert!(rejoin.members.is_empty());
    assert_eq!(state(&groups), GroupStateName::Stable);
    let a_new = rejoin.member_id;
    assert_eq!(groups.heartbeat("g", &a_old, Some("ia"), 2, T0 + 1001), Some(E::FencedInstanceId));
    assert_eq!(groups.heartbeat("g", &a_new, Some("ia"), 2, T0 + 1001), None);
    assert_eq!(groups.heartbeat("g", &b, None, 2, T0 + 1001), None, "B was not disturbed");
    let synced = resolved(
        groups.sync(SyncRequest { group_instance_id: Some("ia".into()), ..sync_request(&a_new, 2, &[]) }, T0 + 1002),
    );
    assert_eq!(synced.assignment, Bytes::from_static(b"a2"), "the assignment carries over");

    // v9 leader: gets the members and skip_assignment instead.
    let mut v9 = join_request("", Some("ia"), range());
    v9.supports_skip_assignment = true;
    let rejoin = resolved(groups.join(v9, T0 + 2000));
    assert!(rejoin.skip_assignment);
    assert_eq!(rejoin.leader, rejoin.member_id);
    assert_eq!(rejoin.members.len(), 2);
    assert_eq!(state(&groups), GroupStateName::Stable);

    // Changed subscription: that needs a rebalance.
    let changed = join_request("", Some("ia"), protocols(&["range"], &["logs", "other"]));
    let _rejoin = pending(groups.join(changed, T0 + 3000));
    assert_eq!(state(&groups), GroupStateName::PreparingRebalance);
}

/// What a Java consumer with the cooperative-sticky assignor sends (`ConsumerCoordinator.metadata`): its
/// generation, in the subscription and in the assignor's user data, and the partitions it owns. A
/// restarted process has generation -1 and owns nothing.
fn java_consumer(topics: &[&str], owned: &[(&str, &[i32])], generation: i32) -> Vec<Protocol> {
    let user_data = generation.to_be_bytes();
    let metadata = encode_full_subscription(3, topics, Some(&user_data), owned, generation);
    vec![Protocol { name: "cooperative-sticky".into(), metadata }]
}

#[test]
fn restarted_static_member_with_its_subscription_unchanged_does_not_rebalance() {
    let (_dir, groups) = coordinator_with_delay(0);
    let static_sync = |member: &str, generation: i32, assignments: &[(&str, &str)]| SyncRequest {
        group_instance_id: Some("ia".into()),
        ..sync_request(member, generation, assignments)
    };
    // Static A ("ia", the leader) and dynamic B, Stable at generation 2.
    let a =
        resolved(groups.join(join_request("", Some("ia"), java_consumer(&["logs", "other"], &[], -1)), T0)).member_id;
    resolved(groups.sync(static_sync(&a, 1, &[(&a, "a1")]), T0));
    let (b, b_join) = new_member(&groups, java_consumer(&["logs", "other"], &[], -1), T0);
    let mut b_join = pending(b_join);
    let a_owns: &[(&str, &[i32])] = &[("logs", &[0, 1]), ("other", &[0])];
    resolved(groups.join(join_request(&a, Some("ia"), java_consumer(&["logs", "other"], a_owns, 1)), T0));
    b_join.try_recv().unwrap();
    let mut b_sync = pending(groups.sync(sync_request(&b, 2, &[]), T0));
    resolved(groups.sync(static_sync(&a, 2, &[(&a, "a2"), (&b, "b2")]), T0));
    b_sync.try_recv().unwrap();
    assert_eq!(state(&groups), GroupStateName::Stable);

    // The process of "ia" restarts: no member id, generation -1, owns nothing, topics in another order.
    let restarted = java_consumer(&["other", "logs"], &[], -1);
    assert_ne!(restarted, java_consumer(&["logs", "other"], a_owns, 1), "the metadata bytes differ");
    let rejoin = resolved(groups.join(join_request("", Some("ia"), restarted), T0 + 1000));
    assert_eq!((rejoin.error, rejoin.generation_id), (None, 2), "answered at once, no new generation");
    assert_eq!(state(&groups), GroupStateName::Stable);
    assert_eq!(groups.heartbeat("g", &b, None, 2, T0 + 1001), None, "B was not disturbed");
    let synced = resolved(groups.sync(static_sync(&rejoin.member_id, 2, &[]), T0 + 1002));
    assert_eq!(synced.assignment, Bytes::from_static(b"a2"), "the assignment carries over");

    // Another restart, now subscribing to fewer topics: that needs a rebalance.
    let changed = join_request("", Some("ia"), java_consumer(&["logs"], &[], -1));
    let _rejoin = pending(groups.join(changed, T0 + 2000));
    assert_eq!(state(&groups), GroupStateName::PreparingRebalance);

    // Not the consumer protocol: the metadata is opaque and compared byte for byte.
    let connect = |metadata: Bytes| JoinRequest {
        group_id: "c".into(),
        protocol_type: "connect".into(),
        ..join_request("", Some("iw"), vec![Protocol { name: "sessioned".into(), metadata }])
    };
    let w = resolved(groups.join(connect(encode_subscription(0, &["logs"])), T0)).member_id;
    let sync_w = SyncRequest { group_id: "c".into(), group_instance_id: Some("iw".into()), ..sync_request(&w, 1, &[]) };
    resolved(groups.sync(sync_w, T0));
    resolved(groups.join(connect(encode_subscription(0, &["logs"])), T0 + 1));
    assert_eq!(groups.group_state("c"), Some(GroupStateName::Stable));
    let w_join = resolved(groups.join(connect(encode_subscription(1, &["logs"])), T0 + 2));
    assert_eq!(w_join.generation_id, 2, "W is alone: the rebalance it caused is already over");
    assert_eq!(groups.group_state("c"), Some(GroupStateName::CompletingRebalance));
}

#[test]
fn static_member_with_a_stale_id_is_fenced() {
    let (_dir, groups) = coordinator_with_delay(0);
    let static_sync = |member: &str, generation: i32, assignments: &[(&str, &str)]| SyncRequest {
        group_instance_id: Some("ia".into()),
        ..sync_request(member, generation, assignments)
    };
    let a = resolved(groups.join(join_request("", Some("ia"), range()), T0)).member_id;
    let stale = resolved(groups.join(join_request("stale-id", Some("ia"), range()), T0));
    assert_eq!(stale.error, Some(E::FencedInstanceId));
    let unknown = resolved(groups.join(join_request(&a, Some("unknown-instance"), range()), T0));
    assert_eq!(unknown.error, Some(E::UnknownMemberId));
    assert_eq!(resolved(groups.sync(static_sync("stale-id", 1, &[]), T0)).error, Some(E::FencedInstanceId));
    resolved(groups.sync(static_sync(&a, 1, &[]), T0));

    let (b, b_join) = new_member(&groups, range(), T0);
    let mut b_join = pending(b_join);
    resolved(groups.join(join_request(&a, Some("ia"), range()), T0));
    b_join.try_recv().unwrap();
    let mut b_sync = pending(groups.sync(sync_request(&b, 2, &[]), T0));
    resolved(groups.sync(static_sync(&a, 2, &[(&a, "a"), (&b, "b")]), T0));
    b_sync.try_recv().unwrap();

    // A rebalance is under way and the old incarnation of "ia" waits in JoinGroup when the new one
    // arrives: the old request is fenced, the new one takes its place in the rebalance.
    let (_c, c_join) = new_member(&groups, range(), T0);
    let _c_join = pending(c_join);
    let mut old_join = pending(groups.join(join_request(&a, Some("ia"), range()), T0));
    let mut new_join = pending(groups.join(join_request("", Some("ia"), range()), T0 + 1));
    assert_eq!(old_join.try_recv().unwrap().error, Some(E::FencedInstanceId));
    let _ = groups.join(join_request(&b, None, range()), T0 + 2);
    let new_join = new_join.try_recv().unwrap();
    assert_eq!(new_join.generation_id, 3);
    assert_ne!(new_join.member_id, a);
    assert_eq!(new_join.leader, new_join.member_id, "leadership moved to the new id");
    assert_eq!(new_join.members.len(), 3);
}

#[test]
fn error_codes_where_kafka_returns_them() {
    let (_dir, groups) = coordinator_with_delay(0);
    let (a, b) = stable_pair(&groups, T0);
    let t = T0 + 100;
    assert_eq!(groups.heartbeat("g", &a, None, 1, t), Some(E::IllegalGeneration));
    assert_eq!(groups.heartbeat("g", "nobody", None, 2, t), Some(E::UnknownMemberId));
    assert_eq!(groups.heartbeat("other-group", &a, None, 2, t), Some(E::UnknownMemberId));
    assert_eq!(groups.heartbeat("", &a, None, 2, t), Some(E::InvalidGroupId));
    assert_eq!(resolved(groups.sync(sync_request(&a, 1, &[]), t)).error, Some(E::IllegalGeneration));
    assert_eq!(resolved(groups.sync(sync_request("nobody", 2, &[]), t)).error, Some(E::UnknownMemberId));
    let mut wrong_protocol = sync_request(&a, 2, &[]);
    wrong_protocol.protocol_name = Some("roundrobin".into());
    assert_eq!(resolved(groups.sync(wrong_protocol, t)).error, Some(E::InconsistentGroupProtocol));
    assert_eq!(resolved(groups.join(join_request("gone", None, range()), t)).error, Some(E::UnknownMemberId));
    let mut unknown_group = join_request("some-id", None, range());
    unknown_group.group_id = "never-seen".into();
    assert_eq!(resolved(groups.join(unknown_group, t)).error, Some(E::UnknownMemberId));
    let mut short = join_request("", None, range());
    short.session_timeout_ms = 5999;
    assert_eq!(resolved(groups.join(short, t)).error, Some(E::InvalidSessionTimeout));

    // A rebalance starts: sync says REBALANCE_IN_PROGRESS; commits of the old generation still pass.
    let (_c, c_join) = new_member(&groups, range(), t);
    let _c_join = pending(c_join);
    assert_eq!(resolved(groups.sync(sync_request(&b, 2, &[]), t)).error, Some(E::RebalanceInProgress));
    assert_eq!(groups.heartbeat("g", &b, None, 2, t), Some(E::RebalanceInProgress));
    let commit = |member: &str, generation: i32| {
        let request = crate::group::CommitRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            retention_time_ms: -1,
            partitions: vec![crate::group::CommitPartition {
                topic: "logs".into(),
                partition: 0,
                offset: 5,
                leader_epoch: -1,
                metadata: None,
            }],
        };
        groups.commit_offsets(request, t).errors()[0]
    };
    assert_eq!(commit(&a, 2), None);
    assert_eq!(commit(&a, 1), Some(E::IllegalGeneration));
    assert_eq!(commit("nobody", 2), Some(E::UnknownMemberId));
    assert_eq!(commit("", -1), Some(E::UnknownMemberId), "only members commit for a non-empty group");

    // Everyone rejoins: CompletingRebalance refuses commits.
    let _ = groups.join(join_request(&a, None, range()), t);
    let _ = groups.join(join_request(&b, None, range()), t);
    assert_eq!(state(&groups), GroupStateName::CompletingRebalance);
    assert_eq!(commit(&a, 3), Some(E::RebalanceInProgress));
    assert_eq!(groups.heartbeat("g", &a, None, 3, t), None);
}

#[test]
fn heartbeat_checks_the_generation_before_the_state() {
    let (_dir, groups) = coordinator_with_delay(0);
    let (a, b) = stable_pair(&groups, T0);
    // C joins: PreparingRebalance, still at generation 2.
    let (_c, c_join) = new_member(&groups, range(), T0);
    let _c_join = pending(c_join);
    assert_eq!(state(&groups), GroupStateName::PreparingRebalance);
    let t = T0 + i64::from(SESSION_MS) - 1000;
    assert_eq!(groups.heartbeat("g", &b, None, 1, t), Some(E::IllegalGeneration));
    assert_eq!(groups.heartbeat("g", &a, None, 2, t), Some(E::RebalanceInProgress));
    assert_eq!(groups.heartbeat("g", "nobody", None, 1, t), Some(E::UnknownMemberId), "the member comes first");
    // A stale heartbeat does not keep the member alive.
    let t = T0 + i64::from(SESSION_MS);
    groups.tick(t);
    assert_eq!(groups.heartbeat("g", &b, None, 2, t), Some(E::UnknownMemberId));

    // A rejoins: CompletingRebalance at generation 3.
    let _ = groups.join(join_request(&a, None, range()), t);
    assert_eq!(state(&groups), GroupStateName::CompletingRebalance);
    assert_eq!(groups.heartbeat("g", &a, None, 2, t), Some(E::IllegalGeneration));
    assert_eq!(groups.heartbeat("g", &a, None, 3, t), None);
}

#[test]
fn protocol_chosen_by_member_votes_among_common_ones() {
    let (_dir, groups) = coordinator_with_delay(0);
    let (a, a_join) = new_member(&groups, protocols(&["range", "roundrobin"], &["logs"]), T0);
    assert_eq!(resolved(a_join).protocol_name.as_deref(), Some("range"));
    let (_b, b_join) = new_member(&groups, protocols(&["roundrobin", "range"], &["logs"]), T0);
    let _b_join = pending(b_join);
    // A tie (1:1) goes to the leader's preference.
    let a_join = resolved(groups.join(join_request(&a, None, protocols(&["range", "roundrobin"], &["logs"])), T0));
    assert_eq!(a_join.protocol_name.as_deref(), Some("range"));
    // A third member preferring roundrobin tips the vote.
    let (_c, c_join) = new_member(&groups, protocols(&["roundrobin", "range", "sticky"], &["logs"]), T0);
    let _c_join = pending(c_join);
    let _ = groups.join(join_request(&a, None, protocols(&["range", "roundrobin"], &["logs"])), T0);
    let b_join = groups.join(join_request(&_b, None, protocols(&["roundrobin", "range"], &["logs"])), T0);
    assert_eq!(resolved(b_join).protocol_name.as_deref(), Some("roundrobin"));
}

#[test]
fn inconsistent_protocols_are_refused() {
    let (_dir, groups) = coordinator_with_delay(0);
    let _a = stable_single(&groups, T0);
    let rr = join_request("", None, protocols(&["roundrobin"], &["logs"]));
    assert_eq!(resolved(groups.join(rr, T0)).error, Some(E::InconsistentGroupProtocol));
    let mut connect = join_request("", None, range());
    connect.protocol_type = "connect".into();
    assert_eq!(resolved(groups.join(connect, T0)).error, Some(E::InconsistentGroupProtocol));
    let mut none = join_request("", None, Vec::new());
    none.group_id = "fresh".into();
    assert_eq!(resolved(groups.join(none, T0)).error, Some(E::InconsistentGroupProtocol));
}

#[test]
fn waiting_requests_are_answered_when_the_group_moves_on() {
    let (_dir, groups) = coordinator_with_delay(0);
    let (a, b) = stable_pair(&groups, T0);
    // A pending JoinGroup of a member that leaves is answered.
    let (c, c_join) = new_member(&groups, range(), T0);
    let mut c_join = pending(c_join);
    let left = groups.leave("g", &[LeaveMember { member_id: c.clone(), group_instance_id: None }], T0).unwrap();
    assert_eq!(left, vec![None]);
    assert_eq!(c_join.try_recv().unwrap().error, Some(E::UnknownMemberId));

    // Followers parked in SyncGroup are answered when the leader leaves.
    let _ = groups.join(join_request(&a, None, range()), T0);
    let _ = groups.join(join_request(&b, None, range()), T0);
    assert_eq!(state(&groups), GroupStateName::CompletingRebalance);
    let mut b_sync = pending(groups.sync(sync_request(&b, 3, &[]), T0));
    groups.leave("g", &[LeaveMember { member_id: a.clone(), group_instance_id: None }], T0).unwrap();
    assert_eq!(b_sync.try_recv().unwrap().error, Some(E::RebalanceInProgress));
    assert_eq!(state(&groups), GroupStateName::PreparingRebalance);

    // Unknown members leaving.
    let left = groups.leave("g", &[LeaveMember { member_id: "nobody".into(), group_instance_id: None }], T0).unwrap();
    assert_eq!(left, vec![Some(E::UnknownMemberId)]);
    let left = groups.leave("nope", &[LeaveMember { member_id: "x".into(), group_instance_id: None }], T0).unwrap();
    assert_eq!(left, vec![Some(E::UnknownMemberId)]);
    assert_eq!(groups.leave("", &[], T0), Err(E::InvalidGroupId));

    // The last member leaving empties the group.
    let _ = groups.join(join_request(&b, None, range()), T0);
    groups.leave("g", &[LeaveMember { member_id: b, group_instance_id: None }], T0).unwrap();
    assert_eq!(state(&groups), GroupStateName::Empty);
}

#[test]
fn static_member_removed_by_instance_id() {
    let (_dir, groups) = coordinator_with_delay(0);
    let _ = resolved(groups.join(join_request("", Some("ia"), range()), T0));
    let left = groups.leave("g", &[LeaveMember { member_id: String::new(), group_instance_id: Some("ia".into()) }], T0);
    assert_eq!(left, Ok(vec![None]));
    assert_eq!(state(&groups), GroupStateName::Empty);
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let (_dir, groups) = coordinator_with_delay(0);
    let (a, b) = stable_pair(&groups, T0);
    let _ = groups.join(join_request(&a, None, range()), T0);
    let _ = groups.join(join_request(&b, None, range()), T0);
    // The follower syncs; the leader heartbeats (so its session holds) but never syncs.
    let mut b_sync = pending(groups.sync(sync_request(&b, 3, &[]), T0 + 10));
    for t in (5000..i64::from(REBALANCE_MS)).step_by(5000) {
        assert_eq!(groups.heartbeat("g", &a, None, 3, T0 + t), None);
        groups.tick(T0 + t);
    }
    groups.tick(T0 + i64::from(REBALANCE_MS) - 1);
    assert!(b_sync.try_recv().is_err());
    groups.tick(T0 + i64::from(REBALANCE_MS));
    assert_eq!(b_sync.try_recv().unwrap().error, Some(E::RebalanceInProgress));
    let d = groups.describe("g");
    assert_eq!(d.members.iter().map(|m| m.member_id.as_str()).collect::<Vec<_>>(), vec![b.as_str()]);
    assert_eq!(d.state, GroupStateName::PreparingRebalance);
}

#[test]
fn state_names_are_kafkas() {
    for (state, name) in [
        (GroupStateName::Empty, "Empty"),
        (GroupStateName::PreparingRebalance, "PreparingRebalance"),
        (GroupStateName::CompletingRebalance, "CompletingRebalance"),
        (GroupStateName::Stable, "Stable"),
        (GroupStateName::Dead, "Dead"),
    ] {
        assert_eq!(state.as_str(), name);
        assert_eq!(GroupStateName::parse(&name.to_lowercase()), Some(state));
    }
}
