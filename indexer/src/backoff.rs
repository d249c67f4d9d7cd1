//! Capped exponential backoff with "equal jitter": each wait is half the current step plus a random part
//! of the other half, so many indexers retrying one cluster spread out instead of arriving together.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self { initial, max: max.max(initial), step: initial }
    }

    /// The next wait; each call doubles the step up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let half = self.step / 2;
        let jitter = rand::thread_rng().gen_range(Duration::ZERO..=half);
        self.step = (self.step * 2).min(self.max);
        half + jitter
    }

    /// Back to the initial step, after a success.
    pub fn reset(&mut self) {
        self.step = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let waits: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        for (wait, step) in waits.iter().zip([100u64, 200, 400, 800, 800, 800]) {
            assert!(
                *wait >= Duration::from_millis(step / 2) && *wait <= Duration::from_millis(step),
                "{wait:?} for step {step}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
