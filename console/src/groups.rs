//! `logpipe groups list|describe|reset-offsets`, like `kafka-consumer-groups.sh`.
//!
//! Three Kafka APIs meet here, none of which knows everything:
//! - ListGroups/DescribeGroups (`fetch_group_list`): state, members, and each member's assignment, encoded
//!   in the *consumer protocol* (the bytes a group leader hands out in SyncGroup), parsed by
//!   [`crate::consumer_protocol`];
//! - OffsetFetch (`committed_offsets` on a consumer configured with the group's `group.id`): committed
//!   offsets. The consumer never subscribes, so looking does not join or disturb the group;
//! - ListOffsets (`fetch_watermarks`): log end offsets, for LAG = log end − committed.
//!
//! Resetting offsets commits with the same never-subscribed consumer (OffsetCommit with generation -1, which
//! brokers accept only from outside an active group), and is refused while the group has members, since
//! they would overwrite the new offsets with their own next commit.
//!
//! References: KIP-62/KIP-429 consumer protocol (`ConsumerProtocolAssignment.json` in Apache Kafka),
//! kafka-consumer-groups.sh (`ConsumerGroupCommand`).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDateTime};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::client::{blocking, Connection};
use crate::consumer_protocol::parse_assignment;
use crate::error::{Error, Result};
use crate::table::{or_dash, Table};

/// `logpipe groups ...`
///
/// Groups are named positionally or with kafka-consumer-groups.sh's `--group` (repeatable), or chosen all
/// at once with `--all-groups`.
#[derive(Debug, clap::Subcommand)]
pub enum GroupsCommand {
    /// List consumer group names, one per line.
    List {
        /// Also print each group's state (Stable, Empty, ...).
        #[arg(long)]
        state: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Show a group's state, and per partition its committed offset, log end offset, lag and consumer.
    Describe {
        #[command(flatten)]
        groups: GroupsArg,
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete consumer groups and their committed offsets. A group must have no active members.
    Delete {
        #[command(flatten)]
        groups: GroupsArg,
        #[command(flatten)]
        connection: Connection,
    },
    /// Move a group's committed offsets (dry run unless --execute). The group must have no active members.
    ResetOffsets {
        #[command(flatten)]
        groups: GroupsArg,
        /// Topic to reset, optionally limited to partitions: `nginx` or `nginx:0,2`; repeatable.
        #[arg(long = "topic", value_name = "TOPIC[:P,P...]", required_unless_present = "all_topics",
              value_parser = parse_topic_spec)]
        topics: Vec<TopicSpec>,
        /// Every topic the group has committed offsets for, instead of --topic.
        #[arg(long, conflicts_with = "topics")]
        all_topics: bool,
        #[command(flatten)]
        target: ResetTargetArgs,
        /// Commit the new offsets; without it, only print the plan.
        #[arg(long)]
        execute: bool,
        #[command(flatten)]
        connection: Connection,
    },
}

/// Which groups a command acts on: named (positionally, or with `--group`, repeatable) or all of them.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = true)]
pub struct GroupsArg {
    /// Consumer group id.
    #[arg(value_name = "GROUP")]
    name: Option<String>,
    /// Consumer group id, as kafka-consumer-groups.sh takes it; repeatable.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Every consumer group of the cluster.
    #[arg(long, conflicts_with_all = ["name", "groups"])]
    all_groups: bool,
}

impl GroupsArg {
    /// The named groups, in the order given, once each; `None` for `--all-groups`.
    fn named(&self) -> Option<Vec<String>> {
        if self.all_groups {
            return None;
        }
        let mut names: Vec<String> = Vec::new();
        for name in self.name.iter().chain(&self.groups) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        Some(names)
    }

    /// The groups to act on, listing the cluster's groups for `--all-groups`.
    fn resolve(&self, consumer: &BaseConsumer, conn: &Connection) -> Result<Vec<String>> {
        match self.named() {
            Some(names) => Ok(names),
            None => Ok(group_list(consumer, conn)?.into_iter().map(|(name, _)| name).collect()),
        }
    }
}

/// Which offsets `reset-offsets` moves to; exactly one is required.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct ResetTargetArgs {
    /// The log start offset (oldest retained record).
    #[arg(long)]
    to_earliest: bool,
    /// The log end offset (skip everything not yet consumed).
    #[arg(long)]
    to_latest: bool,
    /// This offset, clamped into [log start, log end].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    to_offset: Option<i64>,
    /// The committed offset moved by N (negative: back), clamped into [log start, log end].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// The committed offset (a partition without one: the log end), e.g. to pin the offsets of
    /// --all-topics before the group's consumers come back.
    #[arg(long)]
    to_current: bool,
    /// The first record at or after now minus this duration: ISO 8601, as kafka-consumer-groups.sh
    /// takes it (PT30M, PT1H30M, P1DT12H).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    by_duration: Option<i64>,
    /// The first record at or after this time: Kafka's format, 2026-11-21T08:00:00.000 (UTC, as in
    /// kafka-consumer-groups.sh), or with a zone (2026-11-21T09:00:00.000+01:00).
    #[arg(long, value_name = "DATETIME", value_parser = parse_datetime)]
    to_datetime: Option<i64>,
}

/// Where `reset-offsets` moves a group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    Earliest,
    Latest,
    Offset(i64),
    /// Relative to the committed offset.
    ShiftBy(i64),
    /// The committed offset.
    Current,
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
}

impl ResetTargetArgs {
    /// The chosen target (clap guarantees exactly one flag).
    pub fn target(&self) -> ResetTarget {
        if self.to_earliest {
            ResetTarget::Earliest
        } else if let Some(n) = self.to_offset {
            ResetTarget::Offset(n)
        } else if let Some(n) = self.shift_by {
            ResetTarget::ShiftBy(n)
        } else if self.to_current {
            ResetTarget::Current
        } else if let Some(ms) = self.to_datetime {
            ResetTarget::Timestamp(ms)
        } else if let Some(ms) = self.by_duration {
            ResetTarget::Timestamp(chrono::Utc::now().timestamp_millis().saturating_sub(ms))
        } else {
            ResetTarget::Latest
        }
    }
}

/// `--topic T` or `--topic T:0,1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub topic: String,
    /// `None`: every partition.
    pub partitions: Option<Vec<i32>>,
}

pub(crate) async fn run(cmd: GroupsCommand) -> Result<()> {
    match cmd {
        GroupsCommand::List { state, connection } => list(connection, state).await,
        GroupsCommand::Describe { groups, connection } => describe(connection, groups).await,
        GroupsCommand::Delete { groups, connection } => delete(connection, groups).await,
        GroupsCommand::ResetOffsets { groups, topics, all_topics, target, execute, connection } => {
            let topics = if all_topics { None } else { Some(topics) };
            reset_offsets(connection, groups, topics, target.target(), execute).await
        }
    }
}

/// Parses `--topic`: a topic name, optionally followed by `:` and comma-separated partitions.
pub(crate) fn parse_topic_spec(s: &str) -> Result<TopicSpec, String> {
    let (topic, partitions) = match s.split_once(':') {
        None => (s, None),
        Some((topic, list)) => {
            let partitions = list
                .split(',')
                .map(|p| p.trim().parse::<i32>().ok().filter(|p| *p >= 0))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("expected TOPIC or TOPIC:P,P... with partition numbers, got '{s}'"))?;
            (topic, Some(partitions))
        }
    };
    if topic.is_empty() {
        return Err(format!("missing topic name in '{s}'"));
    }
    Ok(TopicSpec { topic: topic.to_owned(), partitions })
}

/// Parses `--to-datetime` into milliseconds since the epoch. Accepts RFC 3339 (`2026-11-21T08:00:00Z`,
/// `...+01:00`, fractional seconds) and kafka-consumer-groups.sh's zone-less `2026-11-21T08:00:00.000`
/// (or without the fraction), which — as in Kafka, which appends `Z` — is UTC whatever the machine's zone.
pub(crate) fn parse_datetime(s: &str) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Ok(t.timestamp_millis());
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc().timestamp_millis()).map_err(|_| {
        format!("expected a date-time like 2026-11-21T08:00:00.000 (UTC) or 2026-11-21T09:00:00.000+01:00, got '{s}'")
    })
}

/// Parses `--by-duration`, ISO 8601 as Java's `Duration.parse` reads it (`PT30M`, `PT1H30M`, `P1DT12H`,
/// `PT0.5S`), into milliseconds.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("expected a duration like PT30M, PT1H30M or P1DT12H (ISO 8601), got '{s}'");
    let upper = s.trim().to_ascii_uppercase();
    let rest = upper.strip_prefix('P').ok_or_else(bad)?;
    let (days, time) = match rest.split_once('T') {
        Some((_, "")) => return Err(bad()),
        Some((days, time)) => (days, time),
        None => (rest, ""),
    };
    let mut total = 0.0;
    for (part, units) in
        [(days, &[('D', 86_400_000.0)][..]), (time, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)])]
    {
        let mut number = String::new();
        let mut next_unit = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            // Units in order, each once, each after a number.
            let at = units[next_unit..].iter().position(|(u, _)| *u == c).ok_or_else(bad)? + next_unit;
            let value: f64 = number.parse().map_err(|_| bad())?;
            total += value * units[at].1;
            number.clear();
            next_unit = at + 1;
        }
        if !number.is_empty() {
            return Err(bad());
        }
    }
    if rest.is_empty() || rest == "T" {
        return Err(bad());
    }
    Ok(total.round() as i64)
}

/// A member as describe prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    id: String,
    host: String,
    client_id: String,
}

/// One member of a group and the partitions assigned to it, for callers other than the command line
/// (the web console).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub id: String,
    pub host: String,
    pub client_id: String,
    pub assignment: Vec<(String, i32)>,
}

/// A group's state and members with their assignments (DescribeGroups), without joining the group.
pub async fn group_members(conn: Connection, group: String) -> Result<(String, Vec<GroupMember>)> {
    blocking(move || {
        let consumer = group_consumer(&conn, &group)?;
        let summary = summarize_group(&consumer, &conn, &group)?;
        let mut members: Vec<GroupMember> = summary
            .members
            .iter()
            .map(|m| GroupMember {
                id: m.id.clone(),
                host: m.host.clone(),
                client_id: m.client_id.clone(),
                assignment: Vec::new(),
            })
            .collect();
        for (key, index) in summary.assignment {
            members[index].assignment.push(key);
        }
        Ok((summary.state, members))
    })
    .await
}

/// Plans, and with `execute` commits, the reset of one group's offsets on `topics` (all partitions), as
/// `logpipe groups reset-offsets` does: refused with [`Error::GroupActive`] while the group has members.
/// Returns (topic, partition, new offset).
pub async fn reset_group_offsets(
    conn: Connection,
    group: String,
    topics: Vec<String>,
    target: ResetTarget,
    execute: bool,
) -> Result<Vec<(String, i32, i64)>> {
    blocking(move || {
        let specs: Vec<TopicSpec> = topics.into_iter().map(|topic| TopicSpec { topic, partitions: None }).collect();
        reset_one(&conn, &group, Some(&specs), target, execute)
    })
    .await
}

/// What ListGroups/DescribeGroups say about one group.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupSummary {
    state: String,
    protocol: String,
    members: Vec<Member>,
    /// (topic, partition) → index into `members`.
    assignment: BTreeMap<(String, i32), usize>,
}

/// A consumer that carries the group's id but never subscribes: it can read and commit the group's offsets
/// without joining it.
fn group_consumer(conn: &Connection, group: &str) -> Result<BaseConsumer> {
    conn.client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(conn.creation_error())
}

fn summarize_group(consumer: &BaseConsumer, conn: &Connection, group: &str) -> Result<GroupSummary> {
    let list = consumer
        .fetch_group_list(Some(group), conn.timeout())
        .map_err(conn.kafka_error(format!("describing consumer group '{group}'")))?;
    let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
        return Ok(GroupSummary {
            state: "Dead".to_owned(),
            protocol: String::new(),
            members: Vec::new(),
            assignment: BTreeMap::new(),
        });
    };
    let mut summary = GroupSummary {
        state: info.state().to_owned(),
        protocol: info.protocol().to_owned(),
        members: Vec::new(),
        assignment: BTreeMap::new(),
    };
    // Only the "consumer" protocol type has the assignment layout parsed here (Kafka Connect uses its own).
    let consumer_protocol = matches!(info.protocol_type(), "consumer" | "");
    for member in info.members() {
        let index = summary.members.len();
        summary.members.push(Member {
            id: member.id().to_owned(),
            host: member.client_host().to_owned(),
            client_id: member.client_id().to_owned(),
        });
        if !consumer_protocol {
            continue;
        }
        match parse_assignment(member.assignment().unwrap_or_default()) {
            Ok(partitions) => {
                for key in partitions {
                    summary.assignment.insert(key, index);
                }
            }
            Err(e) => tracing::warn!(group, member = member.id(), "unreadable assignment: {e}"),
        }
    }
    Ok(summary)
}

/// Every group of the cluster with its state, sorted by name.
fn group_list(consumer: &BaseConsumer, conn: &Connection) -> Result<Vec<(String, String)>> {
    let list = consumer.fetch_group_list(None, conn.timeout()).map_err(conn.kafka_error("listing consumer groups"))?;
    let mut groups: Vec<(String, String)> =
        list.groups().iter().map(|g| (g.name().to_owned(), g.state().to_owned())).collect();
    groups.sort();
    Ok(groups)
}

async fn list(conn: Connection, with_state: bool) -> Result<()> {
    let groups = blocking(move || {
        let consumer: BaseConsumer = conn.client_config().create().map_err(conn.creation_error())?;
        group_list(&consumer, &conn)
    })
    .await?;
    if with_state {
        let mut table = Table::new(["GROUP", "STATE"]);
        for (name, state) in groups {
            table.push([name, state]);
        }
        print!("{table}");
    } else {
        for (name, _) in groups {
            println!("{name}");
        }
    }
    Ok(())
}

/// One line of the describe table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OffsetRow {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    log_end: Option<i64>,
    member: Option<Member>,
}

impl OffsetRow {
    /// Records the group has yet to consume; unknown without both offsets.
    fn lag(&self) -> Option<i64> {
        Some(self.log_end? - self.committed?)
    }
}

async fn describe(conn: Connection, groups: GroupsArg) -> Result<()> {
    let described = blocking(move || {
        let consumer: BaseConsumer = conn.client_config().create().map_err(conn.creation_error())?;
        let names = groups.resolve(&consumer, &conn)?;
        names.into_iter().map(|group| describe_one(&conn, group)).collect::<Result<Vec<_>>>()
    })
    .await?;
    for (i, (group, summary, rows)) in described.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print!("{}", format_describe(group, summary, rows));
        if rows.is_empty() {
            eprintln!("Consumer group '{group}' has no active members and no committed offsets.");
        }
    }
    Ok(())
}

/// The committed offset of every partition `group` has one for (OffsetFetch needs partitions to ask about:
/// every partition of every non-internal topic, plus `also`).
fn committed_offsets(
    consumer: &BaseConsumer,
    conn: &Connection,
    group: &str,
    also: impl IntoIterator<Item = (String, i32)>,
) -> Result<BTreeMap<(String, i32), i64>> {
    let metadata = consumer.fetch_metadata(None, conn.timeout()).map_err(conn.kafka_error("listing topics"))?;
    let mut tpl = TopicPartitionList::new();
    for topic in metadata.topics().iter().filter(|t| !t.name().starts_with("__")) {
        for p in topic.partitions() {
            tpl.add_partition(topic.name(), p.id());
        }
    }
    for (topic, partition) in also {
        if tpl.find_partition(&topic, partition).is_none() {
            tpl.add_partition(&topic, partition);
        }
    }
    if tpl.count() == 0 {
        return Ok(BTreeMap::new());
    }
    let committed = consumer
        .committed_offsets(tpl, conn.timeout())
        .map_err(conn.kafka_error(format!("fetching committed offsets of group '{group}'")))?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(n) => Some(((e.topic().to_owned(), e.partition()), n)),
            _ => None,
        })
        .collect())
}

fn describe_one(conn: &Connection, group: String) -> Result<(String, GroupSummary, Vec<OffsetRow>)> {
    let consumer = group_consumer(conn, &group)?;
    let summary = summarize_group(&consumer, conn, &group)?;
    // Assigned partitions are asked about too (covers a topic missing from metadata for a moment).
    let committed = committed_offsets(&consumer, conn, &group, summary.assignment.keys().cloned())?;
    let mut keyed: BTreeMap<(String, i32), Option<i64>> =
        summary.assignment.keys().map(|k| (k.clone(), None)).collect();
    keyed.extend(committed.into_iter().map(|(k, n)| (k, Some(n))));
    if keyed.is_empty() && summary.members.is_empty() && matches!(summary.state.as_str(), "Dead" | "") {
        return Err(Error::UnknownGroup { group, broker: conn.bootstrap_server.clone() });
    }
    let rows = keyed
        .into_iter()
        .map(|((topic, partition), committed)| {
            let log_end = consumer
                .fetch_watermarks(&topic, partition, conn.timeout())
                .inspect_err(|e| tracing::debug!(%topic, partition, "watermarks: {e}"))
                .ok()
                .map(|(_, high)| high);
            let member = summary.assignment.get(&(topic.clone(), partition)).map(|&i| summary.members[i].clone());
            OffsetRow { topic, partition, committed, log_end, member }
        })
        .collect::<Vec<_>>();
    Ok((group, summary, rows))
}

fn format_describe(group: &str, summary: &GroupSummary, rows: &[OffsetRow]) -> String {
    let mut state = Table::new(["GROUP", "STATE", "ASSIGNMENT-STRATEGY", "#MEMBERS"]);
    state.push([group.to_owned(), summary.state.clone(), summary.protocol.clone(), summary.members.len().to_string()]);

    let mut offsets = Table::new([
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for row in rows {
        let member = row.member.as_ref();
        offsets.push([
            group.to_owned(),
            row.topic.clone(),
            row.partition.to_string(),
            or_dash(row.committed),
            or_dash(row.log_end),
            or_dash(row.lag()),
            member.map(|m| m.id.clone()).unwrap_or_default(),
            member.map(|m| m.host.clone()).unwrap_or_default(),
            member.map(|m| m.client_id.clone()).unwrap_or_default(),
        ]);
    }
    format!("{state}\n{offsets}")
}

async fn delete(conn: Connection, groups: GroupsArg) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = conn.client_config().create().map_err(conn.creation_error())?;
    let names = match groups.named() {
        Some(names) => names,
        None => {
            let c = conn.clone();
            blocking(move || {
                let consumer: BaseConsumer = c.client_config().create().map_err(c.creation_error())?;
                Ok(group_list(&consumer, &c)?.into_iter().map(|(name, _)| name).collect())
            })
            .await?
        }
    };
    if names.is_empty() {
        println!("There are no consumer groups to delete.");
        return Ok(());
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let options = AdminOptions::new().request_timeout(Some(conn.timeout())).operation_timeout(Some(conn.timeout()));
    let results = admin.delete_groups(&refs, &options).await.map_err(conn.kafka_error("deleting consumer groups"))?;
    let (mut deleted, mut failed) = (Vec::new(), Vec::new());
    for result in results {
        match result {
            Ok(group) => deleted.push(group),
            Err((group, code)) => failed.push((group, code)),
        }
    }
    let quoted = |names: &[String]| names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    if failed.is_empty() {
        // kafka-consumer-groups.sh's words.
        println!("Deletion of requested consumer groups ({}) was successful.", quoted(&deleted));
        return Ok(());
    }
    if !deleted.is_empty() {
        println!("These consumer groups were deleted successfully: {}", quoted(&deleted));
    }
    let reasons: Vec<String> =
        failed.iter().map(|(group, code)| format!("'{group}': {}", delete_hint(*code))).collect();
    Err(Error::GroupsNotDeleted { broker: conn.bootstrap_server.clone(), reasons: reasons.join("; ") })
}

/// Why a group could not be deleted, and what to do.
fn delete_hint(code: RDKafkaErrorCode) -> String {
    match code {
        RDKafkaErrorCode::NonEmptyGroup => {
            "it has active members (NonEmptyGroup); stop its consumers and retry once the group is Empty".to_owned()
        }
        RDKafkaErrorCode::GroupIdNotFound => {
            "it does not exist (GroupIdNotFound); see `logpipe groups list`".to_owned()
        }
        other => other.to_string(),
    }
}

async fn reset_offsets(
    conn: Connection,
    groups: GroupsArg,
    topics: Option<Vec<TopicSpec>>,
    target: ResetTarget,
    execute: bool,
) -> Result<()> {
    let (plans, failures) = blocking(move || {
        let lister: BaseConsumer = conn.client_config().create().map_err(conn.creation_error())?;
        let names = groups.resolve(&lister, &conn)?;
        let mut plans = Vec::new();
        let mut failures = Vec::new();
        for group in names {
            match reset_one(&conn, &group, topics.as_deref(), target, execute) {
                Ok(plan) => plans.extend(plan.into_iter().map(|(t, p, o)| (group.clone(), t, p, o))),
                // With several groups, one that cannot be reset does not stop the others (as Kafka's tool).
                Err(e @ Error::GroupActive { .. }) if groups.named().is_none_or(|n| n.len() > 1) => {
                    eprintln!("error: {e}");
                    failures.push(group);
                }
                Err(e) => return Err(e),
            }
        }
        Ok((plans, failures))
    })
    .await?;

    let mut table = Table::new(["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]);
    for (group, topic, partition, offset) in &plans {
        table.push([group.clone(), topic.clone(), partition.to_string(), offset.to_string()]);
    }
    print!("{table}");
    if execute {
        eprintln!("Committed the new offsets.");
    } else {
        eprintln!("Dry run: nothing was committed. Re-run with --execute to commit these offsets.");
    }
    if !failures.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{} group(s) were not reset because they have active members: {}; stop their consumers and retry",
            failures.len(),
            failures.join(", ")
        )));
    }
    Ok(())
}

/// Plans (and with `execute`, commits) the reset of one group; `topics: None` means every topic it has
/// committed offsets for.
fn reset_one(
    conn: &Connection,
    group: &str,
    topics: Option<&[TopicSpec]>,
    target: ResetTarget,
    execute: bool,
) -> Result<Vec<(String, i32, i64)>> {
    let consumer = group_consumer(conn, group)?;
    let summary = summarize_group(&consumer, conn, group)?;
    if !summary.members.is_empty() {
        return Err(Error::GroupActive {
            group: group.to_owned(),
            broker: conn.bootstrap_server.clone(),
            state: summary.state,
            members: summary.members.len(),
        });
    }
    let committed = committed_offsets(&consumer, conn, group, [])?;
    let specs: Vec<TopicSpec> = match topics {
        Some(specs) => specs.to_vec(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (topic, partition) in committed.keys() {
                by_topic.entry(topic.clone()).or_default().push(*partition);
            }
            by_topic.into_iter().map(|(topic, p)| TopicSpec { topic, partitions: Some(p) }).collect()
        }
    };
    let plan = plan_reset(&consumer, conn, group, &specs, target, &committed)?;
    if execute && !plan.is_empty() {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, offset) in &plan {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(conn.kafka_error("building the commit"))?;
        }
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(conn.kafka_error(format!("committing offsets of group '{group}'")))?;
    }
    Ok(plan)
}

/// Computes (topic, partition, new offset) for every selected partition.
fn plan_reset(
    consumer: &BaseConsumer,
    conn: &Connection,
    group: &str,
    topics: &[TopicSpec],
    target: ResetTarget,
    committed: &BTreeMap<(String, i32), i64>,
) -> Result<Vec<(String, i32, i64)>> {
    let mut selected: Vec<(String, i32)> = Vec::new();
    for spec in topics {
        let ids = conn.partitions(consumer.client(), &spec.topic)?;
        match &spec.partitions {
            Some(wanted) => {
                for &p in wanted {
                    conn.check_partition(&spec.topic, &ids, p)?;
                    selected.push((spec.topic.clone(), p));
                }
            }
            None => selected.extend(ids.into_iter().map(|p| (spec.topic.clone(), p))),
        }
    }
    selected.sort();
    selected.dedup();

    let mut watermarks: HashMap<(String, i32), (i64, i64)> = HashMap::new();
    for (topic, partition) in &selected {
        let w = consumer
            .fetch_watermarks(topic, *partition, conn.timeout())
            .map_err(conn.kafka_error(format!("fetching offsets of topic '{topic}' partition {partition}")))?;
        watermarks.insert((topic.clone(), *partition), w);
    }

    let by_time = match target {
        ResetTarget::Timestamp(ms) => {
            let mut tpl = TopicPartitionList::new();
            for (topic, partition) in &selected {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(ms))
                    .map_err(conn.kafka_error("building the time lookup"))?;
            }
            let found = consumer
                .offsets_for_times(tpl, conn.timeout())
                .map_err(conn.kafka_error("looking up offsets by time"))?;
            found
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(n) => Some(((e.topic().to_owned(), e.partition()), n)),
                    _ => None,
                })
                .collect()
        }
        _ => HashMap::new(),
    };

    selected
        .into_iter()
        .map(|key| {
            let (low, high) = watermarks[&key];
            let found = match target {
                ResetTarget::ShiftBy(_) => Some(*committed.get(&key).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "cannot shift the offset of group '{group}' on topic '{}' partition {}: it has no committed \
                         offset there; move it with --to-earliest, --to-latest or --to-offset first",
                        key.0, key.1
                    ))
                })?),
                ResetTarget::Current => committed.get(&key).copied(),
                _ => by_time.get(&key).copied(),
            };
            let offset = new_offset(target, low, high, found);
            Ok((key.0, key.1, offset))
        })
        .collect()
}

/// The new offset of one partition whose log spans [low, high).
///
/// `found` is, for a timestamp, the ListOffsets-by-time answer (none means no record is that recent, so,
/// as in Kafka, the group moves to the log end) and, for a shift or the current offset, the committed
/// offset (none: as in Kafka, the log end).
fn new_offset(target: ResetTarget, low: i64, high: i64, found: Option<i64>) -> i64 {
    // Outside the log the broker would answer OFFSET_OUT_OF_RANGE on the next fetch; clamp instead.
    let clamp = |n: i64| n.clamp(low, high.max(low));
    match target {
        ResetTarget::Earliest => low,
        ResetTarget::Latest => high,
        ResetTarget::Offset(n) => clamp(n),
        ResetTarget::ShiftBy(n) => clamp(found.unwrap_or(low).saturating_add(n)),
        ResetTarget::Current => clamp(found.unwrap_or(high)),
        ResetTarget::Timestamp(_) => found.unwrap_or(high),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn topic_specs() {
        assert_eq!(parse_topic_spec("nginx"), Ok(TopicSpec { topic: "nginx".into(), partitions: None }));
        assert_eq!(
            parse_topic_spec("nginx:0,2"),
            Ok(TopicSpec { topic: "nginx".into(), partitions: Some(vec![0, 2]) })
        );
        assert!(parse_topic_spec("nginx:").is_err());
        assert!(parse_topic_spec("nginx:a").is_err());
        assert!(parse_topic_spec("nginx:-1").is_err());
        assert!(parse_topic_spec(":1").is_err());
    }

    #[test]
    fn datetimes() {
        let expected = 1_795_248_000_000; // 2026-11-21T08:00:00Z
        assert_eq!(parse_datetime("2026-11-21T08:00:00Z"), Ok(expected));
        assert_eq!(parse_datetime("2026-11-21T09:00:00+01:00"), Ok(expected));
        assert_eq!(parse_datetime("2026-11-21T08:00:00.250Z"), Ok(expected + 250));
        // Zone-less is UTC, as in kafka-consumer-groups.sh.
        assert_eq!(parse_datetime("2026-11-21T08:00:00"), Ok(expected));
        assert_eq!(parse_datetime("2026-11-21T08:00:00.000"), Ok(expected));
        assert_eq!(parse_datetime("2026-11-21T09:00:00.000+0100"), Ok(expected));
        assert!(parse_datetime("2026-11-21").is_err());
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT30M"), Ok(1_800_000));
        assert_eq!(parse_duration("PT1H30M"), Ok(5_400_000));
        assert_eq!(parse_duration("P1DT12H"), Ok(129_600_000));
        assert_eq!(parse_duration("P2D"), Ok(172_800_000));
        assert_eq!(parse_duration("pt0.5s"), Ok(500));
        for bad in ["", "P", "PT", "30M", "PT30", "PTM", "PT1M1H", "P1H", "PT1H1H", "1d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_offsets() {
        assert_eq!(new_offset(ResetTarget::Earliest, 5, 10, None), 5);
        assert_eq!(new_offset(ResetTarget::Latest, 5, 10, None), 10);
        assert_eq!(new_offset(ResetTarget::Offset(7), 5, 10, None), 7);
        assert_eq!(new_offset(ResetTarget::Offset(2), 5, 10, None), 5);
        assert_eq!(new_offset(ResetTarget::Offset(99), 5, 10, None), 10);
        assert_eq!(new_offset(ResetTarget::Timestamp(0), 5, 10, Some(6)), 6);
        assert_eq!(new_offset(ResetTarget::Timestamp(0), 5, 10, None), 10);
        assert_eq!(new_offset(ResetTarget::ShiftBy(3), 5, 20, Some(7)), 10);
        assert_eq!(new_offset(ResetTarget::ShiftBy(-3), 5, 20, Some(7)), 5);
        assert_eq!(new_offset(ResetTarget::ShiftBy(30), 5, 20, Some(7)), 20);
        assert_eq!(new_offset(ResetTarget::Current, 5, 20, Some(7)), 7);
        assert_eq!(new_offset(ResetTarget::Current, 5, 20, None), 20);
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: GroupsCommand,
    }

    #[test]
    fn reset_needs_exactly_one_target() {
        let parse =
            |args: &[&str]| Cli::try_parse_from(["groups", "reset-offsets", "g", "--topic", "t"].iter().chain(args));
        assert!(parse(&[]).is_err());
        assert!(parse(&["--to-earliest", "--to-latest"]).is_err());
        match parse(&["--to-offset", "3", "--execute"]).unwrap().command {
            GroupsCommand::ResetOffsets { target, execute, .. } => {
                assert_eq!(target.target(), ResetTarget::Offset(3));
                assert!(execute);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["--to-datetime", "2026-11-21T08:00:00Z"]).unwrap().command {
            GroupsCommand::ResetOffsets { target, execute, .. } => {
                assert_eq!(target.target(), ResetTarget::Timestamp(1_795_248_000_000));
                assert!(!execute);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn groups_by_position_flag_or_all() {
        let named = |args: &[&str]| match Cli::try_parse_from(["groups"].iter().chain(args)).map(|c| c.command) {
            Ok(GroupsCommand::Describe { groups, .. } | GroupsCommand::Delete { groups, .. }) => Ok(groups.named()),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.kind()),
        };
        assert_eq!(named(&["describe", "g"]), Ok(Some(vec!["g".to_owned()])));
        assert_eq!(named(&["describe", "--group", "g", "--group", "h"]), Ok(Some(vec!["g".into(), "h".into()])));
        assert_eq!(named(&["delete", "g", "--group", "g"]), Ok(Some(vec!["g".to_owned()])));
        assert_eq!(named(&["delete", "--all-groups"]), Ok(None));
        assert!(named(&["delete"]).is_err());
        assert!(named(&["delete", "g", "--all-groups"]).is_err());
    }

    #[test]
    fn reset_shift_by_takes_negative_numbers_and_all_topics_replaces_topic() {
        match Cli::try_parse_from(["groups", "reset-offsets", "--all-groups", "--all-topics", "--shift-by", "-5"])
            .unwrap()
            .command
        {
            GroupsCommand::ResetOffsets { target, all_topics, groups, .. } => {
                assert_eq!(target.target(), ResetTarget::ShiftBy(-5));
                assert!(all_topics);
                assert_eq!(groups.named(), None);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["groups", "reset-offsets", "g", "--to-latest"]).is_err(), "needs --topic");
        assert!(Cli::try_parse_from(["groups", "reset-offsets", "g", "--all-topics", "--topic", "t", "--to-latest"])
            .is_err());
    }

    #[test]
    fn describe_table() {
        let member = Member { id: "rdkafka-1".into(), host: "/127.0.0.1".into(), client_id: "rdkafka".into() };
        let summary = GroupSummary {
            state: "Stable".into(),
            protocol: "range".into(),
            members: vec![member.clone()],
            assignment: BTreeMap::new(),
        };
        let rows = vec![
            OffsetRow {
                topic: "nginx".into(),
                partition: 0,
                committed: Some(40),
                log_end: Some(42),
                member: Some(member),
            },
            OffsetRow { topic: "nginx".into(), partition: 1, committed: None, log_end: Some(7), member: None },
        ];
        let text = format_describe("g", &summary, &rows);
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines[0], ["GROUP", "STATE", "ASSIGNMENT-STRATEGY", "#MEMBERS"]);
        assert_eq!(lines[1], ["g", "Stable", "range", "1"]);
        assert!(lines[2].is_empty());
        assert_eq!(lines[3][..6], ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"]);
        assert_eq!(lines[4], ["g", "nginx", "0", "40", "42", "2", "rdkafka-1", "/127.0.0.1", "rdkafka"]);
        assert_eq!(lines[5], ["g", "nginx", "1", "-", "7", "-", "-", "-", "-"]);
    }
}
