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

/// The compression thread; it ends when this is dropped, after the batch it is sealing (the batches
/// still waiting are dropped with it: the producer is closing).
pub(crate) struct Sealer<T> {
    jobs: Option<mpsc::Sender<(u64, Full<T>)>>,
    sealed: tokio_mpsc::UnboundedReceiver<Ready<T>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Sealer<T> {
    /// Starts the thread.
    pub(crate) fn start(codec: Codec) -> std::io::Result<Self> {
        let (jobs, inbox) = mpsc::channel::<(u64, Full<T>)>();
        let (ready, sealed) = tokio_mpsc::unbounded_channel();
        let thread = std::thread::Builder::new().name("kafka-compress".into()).spawn(move || {
            for (order, full) in inbox {
                let batch = full.batch.seal(codec, ProducerStamp::NONE);
                if ready.send(Ready { order, topic: full.topic, partition: full.partition, batch }).is_err() {
                    break;
                }
            }
        })?;
        Ok(Self { jobs: Some(jobs), sealed, thread: Some(thread) })
    }

    pub(crate) fn seal(&self, order: u64, full: Full<T>) {
        // The thread stops only when `jobs` is dropped, or when sealing panicked (a bug in a codec),
        // which this passes on to the sender's thread as it was before sealing had a thread.
        let jobs = self.jobs.as_ref().expect("jobs until dropped");
        jobs.send((order, full)).expect("the compression thread is running");
    }

    /// The next sealed batch, waiting for it. `None` only if the thread is gone (a codec panicked).
    pub(crate) async fn next(&mut self) -> Option<Ready<T>> {
        self.sealed.recv().await
    }

    /// The next sealed batch if one is ready.
    pub(crate) fn try_next(&mut self) -> Option<Ready<T>> {
        self.sealed.try_recv().ok()
    }
}

impl<T> Drop for Sealer<T> {
    fn drop(&mut self) {
        // Closed first, so the thread stops at its next send instead of sealing the rest of the queue.
        self.sealed.close();
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

    #[tokio::test]
    async fn batches_come_back_sealed_in_the_order_they_were_handed_over() {
        let mut sealer = Sealer::<u32>::start(Codec::Lz4).unwrap();
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
            let ready = sealer.next().await.expect("a sealed batch");
            assert_eq!((ready.order, ready.partition), (order, (order % 2) as u32));
            assert_eq!(ready.batch.opaques.len(), if order % 3 == 0 { 2000 } else { 1 });
            let last = ready.batch.into_records().pop().expect("records");
            assert_eq!(last.1, format!("batch {order} record {}", last.2).into_bytes());
        }
        assert!(sealer.try_next().is_none(), "nothing more than was handed over");
        // Dropping joins the compression thread: this returns only once the thread has ended.
        drop(sealer);
    }
}
