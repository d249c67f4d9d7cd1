//! The producer's compression thread. Full batches are sealed (compressed, framed, checksummed) here, in
//! the order the sender hands them over, while the sender's thread goes on with requests and answers.
//!
//! Compression is most of a producer's CPU (lz4 was four fifths of the sender's thread, shipping nginx
//! logs). On that one thread it capped the agent at what one core compresses, while the file reading
//! and the broker's writes left the other core partly idle.

use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use tokio::sync::mpsc as tokio_mpsc;

use crate::accumulator::Full;
use crate::batch::{Codec, ProducerStamp, Sealed};

/// A sealed batch, back from the thread in the order it was handed over.
pub(crate) struct Ready<T> {
    pub order: u64,
    pub topic: Arc<str>,
    pub partition: u32,
    pub batch: Sealed<T>,
}

/// The compression thread; it ends when this is dropped, after the batch it is sealing.
pub(crate) struct Sealer<T> {
    jobs: Option<mpsc::Sender<(u64, Full<T>)>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Sealer<T> {
    /// Starts the thread; sealed batches come out of the receiver.
    pub(crate) fn start(codec: Codec) -> std::io::Result<(Self, tokio_mpsc::UnboundedReceiver<Ready<T>>)> {
        let (jobs, inbox) = mpsc::channel::<(u64, Full<T>)>();
        let (ready, outbox) = tokio_mpsc::unbounded_channel();
        let thread = std::thread::Builder::new().name("kafka-compress".into()).spawn(move || {
            for (order, full) in inbox {
                let batch = full.batch.seal(codec, ProducerStamp::NONE);
                if ready.send(Ready { order, topic: full.topic, partition: full.partition, batch }).is_err() {
                    break;
                }
            }
        })?;
        Ok((Self { jobs: Some(jobs), thread: Some(thread) }, outbox))
    }

    pub(crate) fn seal(&self, order: u64, full: Full<T>) {
        // The thread stops only when `jobs` is dropped, or when sealing panicked (a bug in a codec),
        // which this passes on to the sender's thread as it was before sealing had a thread.
        let jobs = self.jobs.as_ref().expect("jobs until dropped");
        jobs.send((order, full)).expect("the compression thread is running");
    }
}

impl<T> Drop for Sealer<T> {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::OpenBatch;

    #[test]
    fn batches_come_back_sealed_in_the_order_they_were_handed_over() {
        let (sealer, mut sealed) = Sealer::<u32>::start(Codec::Lz4).unwrap();
        let topic: Arc<str> = Arc::from("logs");
        for order in 0..40u64 {
            // Batches of very different sizes, so a quick one would overtake a slow one if it could.
            let mut batch = OpenBatch::new(1024);
            let records = if order % 3 == 0 { 2000 } else { 1 };
            for i in 0..records {
                batch.push(0, None, format!("batch {order} record {i}").as_bytes(), i);
            }
            sealer.seal(order, Full { topic: topic.clone(), partition: (order % 2) as u32, batch });
        }
        for order in 0..40u64 {
            let ready = sealed.blocking_recv().expect("a sealed batch");
            assert_eq!((ready.order, ready.partition), (order, (order % 2) as u32));
            assert_eq!(ready.batch.opaques.len(), if order % 3 == 0 { 2000 } else { 1 });
            let last = ready.batch.into_records().pop().expect("records");
            assert_eq!(last.1, format!("batch {order} record {}", last.2).into_bytes());
        }
        drop(sealer);
        assert!(sealed.blocking_recv().is_none(), "the thread ends when the sealer is dropped");
    }
}
