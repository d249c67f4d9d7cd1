//! Which topics the input consumes. An entry of `[indexer.input] topics` is a topic name, or, starting
//! with `^`, a regex (regex crate syntax, as checked at load) that is matched here against the cluster's
//! topics; the group member subscribes to the names that result, never to the pattern itself.
//!
//! Why not hand the pattern to librdkafka, which takes `^regex` subscriptions: a pattern such as
//! `^nginx-.*` also matches the indexer's own dead-letter topics (`nginx-access-dlq`, that is
//! `<topic><dead_letter_topic_suffix>`), so the indexer would read its dead letters, fail them again into
//! `nginx-access-dlq-dlq`, and so on. They must be left out, and librdkafka cannot be told so:
//! - the exclusion cannot be written into the pattern: librdkafka matches with POSIX extended regexes
//!   (`regcomp`), which have no look-ahead and no way to say "and does not end with";
//! - its `topic.blacklist` hides a topic from every use, a dead-letter topic named on purpose included;
//! - skipping them after assignment would still have the group assign them, to sit owned, unread and
//!   uncommitted (their lag growing in `logpipe groups`), and take turns from the real topics.
//!
//! Matched here, the group never sees them. A topic named literally is consumed whatever its name: that is
//! how dead letters are re-processed on purpose. Topics created later are found when the patterns are
//! matched again, every `topic.metadata.refresh.interval.ms` (5 minutes by default), as librdkafka would
//! find them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use regex::Regex;

use crate::backoff::Backoff;
use crate::config::InputConfig;
use crate::error::{Error, Result};

/// How long asking the cluster for its topics may block the consumer's thread.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// librdkafka's `topic.metadata.refresh.interval.ms` default.
const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// The topics `[indexer.input] topics` names or matches.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Named literally: consumed whatever their name, existing or not.
    names: Vec<String>,
    /// The `^regex` entries.
    patterns: Vec<Regex>,
    /// `dead_letter_topic_suffix`, when dead letters are written (and not empty): topics ending with it
    /// are never matched by a pattern.
    dead_letter_suffix: Option<String>,
}

impl Subscription {
    /// `input.topics`; `dead_letter_suffix` is `dead_letter_topic_suffix` when the output writes dead letters.
    pub fn new(input: &InputConfig, dead_letter_suffix: Option<&str>) -> Result<Self> {
        let (mut names, mut patterns) = (Vec::new(), Vec::new());
        for (i, topic) in input.topics.iter().enumerate() {
            if topic.starts_with('^') {
                let pattern = Regex::new(topic)
                    .map_err(|e| Error::Config(format!("indexer.input.topics[{i}]: `{topic}` is not a regex: {e}")))?;
                patterns.push(pattern);
            } else {
                names.push(topic.clone());
            }
        }
        let dead_letter_suffix = dead_letter_suffix.filter(|suffix| !suffix.is_empty()).map(str::to_owned);
        Ok(Self { names, patterns, dead_letter_suffix })
    }

    /// The topics named literally.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn has_patterns(&self) -> bool {
        !self.patterns.is_empty()
    }

    /// The topics among `existing` that a pattern matches, dead-letter topics left out.
    pub fn matched<'a>(&self, existing: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let is_dead_letter_topic =
            |topic: &str| self.dead_letter_suffix.as_deref().is_some_and(|suffix| topic.ends_with(suffix));
        existing
            .into_iter()
            .filter(|topic| !is_dead_letter_topic(topic) && self.patterns.iter().any(|p| p.is_match(topic)))
            .map(str::to_owned)
            .collect()
    }

    /// What to subscribe to, given the cluster's `existing` topics: the names, and what the patterns match.
    pub fn topics<'a>(&self, existing: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let mut topics = self.matched(existing);
        topics.extend(self.names.iter().cloned());
        topics
    }
}

/// Keeps a consumer subscribed to a [`Subscription`]'s topics, matching its patterns again when due.
pub struct Subscriber {
    subscription: Subscription,
    /// What the consumer is subscribed to; `None` before the first subscription.
    subscribed: Option<BTreeSet<String>>,
    /// When to match the patterns again; `None` once there is nothing more to do.
    due: Option<Instant>,
    refresh_interval: Duration,
    /// After a failed metadata request.
    retry: Backoff,
}

impl Subscriber {
    pub fn new(subscription: Subscription, input: &InputConfig) -> Self {
        let refresh_interval = input
            .librdkafka
            .get("topic.metadata.refresh.interval.ms")
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map_or(DEFAULT_REFRESH_INTERVAL, Duration::from_millis);
        let retry = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        Self { subscription, subscribed: None, due: Some(Instant::now()), refresh_interval, retry }
    }

    /// Subscribes `consumer` at first, and again when the topics the patterns match have changed; does
    /// nothing until then. With patterns it asks the cluster for its topics, blocking the thread up to
    /// [`METADATA_TIMEOUT`]; without, it subscribes once.
    pub fn update<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        if self.due.is_none_or(|due| Instant::now() < due) {
            return Ok(());
        }
        let topics = if self.subscription.has_patterns() {
            match consumer.fetch_metadata(None, METADATA_TIMEOUT) {
                Ok(metadata) => {
                    self.retry.reset();
                    self.due = Some(Instant::now() + self.refresh_interval);
                    // A topic the cluster reports an error for is left out, as librdkafka leaves it out.
                    let existing = metadata.topics().iter().filter(|t| t.error().is_none()).map(|t| t.name());
                    self.subscription.topics(existing)
                }
                Err(e) => {
                    tracing::warn!("cannot list the cluster's topics to match indexer.input.topics: {e}; retrying");
                    self.due = Some(Instant::now() + self.retry.next_delay());
                    if self.subscribed.is_some() {
                        return Ok(());
                    }
                    // Meanwhile the names are consumed.
                    self.subscription.names().iter().cloned().collect()
                }
            }
        } else {
            self.due = None;
            self.subscription.names().iter().cloned().collect()
        };
        if self.subscribed.as_ref() == Some(&topics) {
            return Ok(());
        }
        if topics.is_empty() {
            consumer.unsubscribe();
        } else {
            consumer.subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        tracing::info!(topics = ?topics, "subscribed");
        self.subscribed = Some(topics);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rdkafka::mocking::MockCluster;

    use super::*;
    use crate::consumer::client_config;

    fn input(topics: &[&str]) -> InputConfig {
        InputConfig { topics: topics.iter().map(|t| t.to_string()).collect(), ..InputConfig::default() }
    }

    const CLUSTER: [&str; 6] =
        ["nginx-access", "nginx-access-dlq", "nginx-error-dlq", "nginx-error-dlq-dlq", "nginxish", "other"];

    #[test]
    fn patterns_never_match_dead_letter_topics() {
        let subscription = Subscription::new(&input(&["^nginx-.*"]), Some("-dlq")).unwrap();
        assert_eq!(subscription.topics(CLUSTER), BTreeSet::from(["nginx-access".to_owned()]));
        // Named literally, a dead-letter topic is consumed: that is how dead letters are re-processed.
        let subscription = Subscription::new(&input(&["^nginx-.*", "nginx-error-dlq"]), Some("-dlq")).unwrap();
        assert_eq!(subscription.names(), ["nginx-error-dlq"]);
        assert_eq!(subscription.matched(CLUSTER), BTreeSet::from(["nginx-access".to_owned()]));
        let want = BTreeSet::from(["nginx-access".to_owned(), "nginx-error-dlq".to_owned()]);
        assert_eq!(subscription.topics(CLUSTER), want);
        // Without dead letters (a file output), or with an empty suffix, nothing is left out.
        for suffix in [None, Some("")] {
            let subscription = Subscription::new(&input(&["^nginx-"]), suffix).unwrap();
            assert_eq!(subscription.topics(CLUSTER).len(), 4, "{suffix:?}");
        }
        // Names only: taken as they are, existing or not.
        let subscription = Subscription::new(&input(&["other", "missing-dlq"]), Some("-dlq")).unwrap();
        assert!(!subscription.has_patterns());
        assert_eq!(subscription.topics(CLUSTER), BTreeSet::from(["missing-dlq".to_owned(), "other".to_owned()]));
        let err = Subscription::new(&input(&["logs", "^("]), None).unwrap_err().to_string();
        assert!(err.contains("indexer.input.topics[1]"), "{err}");
    }

    /// Against librdkafka's mock cluster: the group assigns the matched topic's partitions, none of its
    /// dead-letter topic's.
    #[test]
    fn regex_subscription_leaves_dead_letter_topics_unassigned() {
        let cluster = MockCluster::new(1).unwrap();
        for topic in ["nginx-access", "nginx-access-dlq", "other"] {
            cluster.create_topic(topic, 2, 1).unwrap();
        }
        let input = InputConfig {
            brokers: vec![cluster.bootstrap_servers()],
            group_id: "regex".into(),
            ..input(&["^nginx-.*"])
        };
        let consumer: BaseConsumer = client_config(&input).unwrap().create().unwrap();
        let mut subscriber = Subscriber::new(Subscription::new(&input, Some("-dlq")).unwrap(), &input);
        subscriber.update(&consumer).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let assigned = loop {
            assert!(Instant::now() < deadline, "no assignment within 30 s");
            let _ = consumer.poll(Duration::from_millis(100));
            let assignment = consumer.assignment().unwrap();
            if assignment.count() > 0 {
                break assignment.elements().iter().map(|e| e.topic().to_owned()).collect::<BTreeSet<_>>();
            }
        };
        assert_eq!(assigned, BTreeSet::from(["nginx-access".to_owned()]));
        assert_eq!(consumer.subscription().unwrap().elements()[0].topic(), "nginx-access");
    }
}
