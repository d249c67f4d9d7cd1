//! Pausing the consumer's assignment while the outputs are saturated, in a way that survives rebalances.
//!
//! librdkafka keeps an application pause on the partition itself, not on the assignment: a partition
//! paused before a rebalance is still paused when the group hands it back, and `resume` reaches only
//! what is assigned at that moment. The poll loop decides to resume between two polls; if that moment
//! falls between a revocation and the next assignment (eager rebalancing, e.g. after an offset commit
//! failed with `UNKNOWN_MEMBER_ID` because a restarted broker forgot the member), the resume reaches
//! nothing, the re-assigned partitions stay paused, and the indexer never fetches again while it
//! believes it runs. So the wanted state is kept here and applied again to every new assignment.

use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::TopicPartitionList;

#[derive(Debug, Default)]
pub struct PauseSwitch {
    paused: AtomicBool,
}

impl PauseSwitch {
    /// Whether the assignment is meant to be paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Pauses or resumes the current assignment, and remembers it for the next one.
    pub fn set<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, pause: bool) {
        self.paused.store(pause, Ordering::Relaxed);
        match consumer.assignment() {
            Ok(assignment) => apply(consumer, &assignment, pause),
            Err(e) => tracing::debug!("cannot read the assignment to {}: {e}", verb(pause)),
        }
    }

    /// Brings newly assigned partitions to the wanted state: called once an assignment took effect.
    /// Resuming a partition that is not paused does nothing.
    pub fn on_assigned<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, assigned: &TopicPartitionList) {
        apply(consumer, assigned, self.is_paused());
    }
}

fn verb(pause: bool) -> &'static str {
    if pause {
        "pause"
    } else {
        "resume"
    }
}

fn apply<C: ConsumerContext>(consumer: &BaseConsumer<C>, partitions: &TopicPartitionList, pause: bool) {
    if partitions.count() == 0 {
        return;
    }
    let result = if pause { consumer.pause(partitions) } else { consumer.resume(partitions) };
    match result {
        Ok(()) => tracing::debug!(partitions = partitions.count(), "{}d the assignment", verb(pause)),
        Err(e) => tracing::warn!("cannot {} the assignment: {e}", verb(pause)),
    }
}

#[cfg(test)]
mod tests {
    //! Against librdkafka's own mock cluster, which can fail a commit with `UNKNOWN_MEMBER_ID` on cue:
    //! the member loses its assignment, rejoins and is assigned the partition again.

    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use rdkafka::client::ClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{CommitMode, Rebalance};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    use rdkafka::Offset;

    use super::*;

    struct Context {
        switch: Arc<PauseSwitch>,
        revoked: AtomicUsize,
        assigned: AtomicUsize,
    }

    impl ClientContext for Context {}

    impl ConsumerContext for Context {
        fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
            match rebalance {
                Rebalance::Revoke(_) => {
                    self.revoked.fetch_add(1, Ordering::SeqCst);
                    // The poll loop's resume landing between the revocation and the next assignment.
                    self.switch.set(consumer, false);
                }
                Rebalance::Assign(list) => {
                    self.assigned.fetch_add(1, Ordering::SeqCst);
                    self.switch.on_assigned(consumer, list);
                }
                Rebalance::Error(_) => {}
            }
        }
    }

    /// Polls until `done` or the deadline; the messages received on the way.
    fn poll_until(consumer: &BaseConsumer<Context>, seconds: u64, done: impl Fn(usize) -> bool) -> usize {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut received = 0;
        while !done(received) && Instant::now() < deadline {
            if let Some(Ok(_)) = consumer.poll(Duration::from_millis(50)) {
                received += 1;
            }
        }
        received
    }

    #[test]
    fn a_resume_between_revocation_and_assignment_reaches_the_new_assignment() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("t", 1, 1).unwrap();
        let producer: BaseProducer =
            ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create().unwrap();
        let send = |n: usize| {
            for i in 0..n {
                let payload = format!("m{i}");
                producer.send(BaseRecord::<(), _>::to("t").payload(&payload)).unwrap();
            }
            producer.flush(Duration::from_secs(10)).unwrap();
        };
        send(5);

        let switch = Arc::new(PauseSwitch::default());
        let context = Context { switch: switch.clone(), revoked: 0.into(), assigned: 0.into() };
        let consumer: BaseConsumer<Context> = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "g")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "100")
            .create_with_context(context)
            .unwrap();
        consumer.subscribe(&["t"]).unwrap();
        assert_eq!(poll_until(&consumer, 30, |n| n == 5), 5, "the first five messages");

        // Outputs saturated: the assignment is paused.
        switch.set(&consumer, true);
        // A restarted broker no longer knows the member: the commit fails, the assignment is lost.
        cluster.request_errors(RDKafkaApiKey::OffsetCommit, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID]);
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset("t", 0, Offset::Offset(5)).unwrap();
        assert!(consumer.commit(&offsets, CommitMode::Sync).is_err(), "the mock cluster fails the commit");
        let rebalanced = |_: usize| {
            consumer.context().revoked.load(Ordering::SeqCst) >= 1
                && consumer.context().assigned.load(Ordering::SeqCst) >= 2
        };
        poll_until(&consumer, 30, rebalanced);
        assert!(rebalanced(0), "revoked and assigned again");
        assert!(!switch.is_paused());

        // Whatever arrives now must be fetched: the re-assigned partition is not left paused.
        send(5);
        let received = poll_until(&consumer, 30, |n| n >= 5);
        assert!(received >= 5, "fetched {received} messages after the rebalance; the partition stayed paused");
    }
}
