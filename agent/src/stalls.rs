//! Conditions that stop events from flowing without failing anything — a path glob that matches no
//! file, a topic the cluster does not have — logged once when they start and once when they clear,
//! instead of never (a silent stall) or on every retry (a flood).

use std::collections::HashSet;

/// The keys (a glob, a topic) whose condition is on. `start` and `clear` say whether the state changed,
/// which is when to log.
#[derive(Debug, Default)]
pub struct Ongoing {
    active: HashSet<String>,
}

impl Ongoing {
    /// Marks `key` stalled; true the first time (until it clears).
    pub fn start(&mut self, key: &str) -> bool {
        !self.active.contains(key) && self.active.insert(key.to_owned())
    }

    /// Marks `key` flowing again; true if it was stalled.
    pub fn clear(&mut self, key: &str) -> bool {
        self.active.remove(key)
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }
}

/// After a scan matched `pattern` against `files` files: logs the start or the end of "no file".
pub fn glob_matched(state: &mut Ongoing, pattern: &str, files: usize) {
    if files == 0 {
        if state.start(pattern) {
            tracing::warn!(
                pattern,
                "no file matches this path (yet): the input waits and looks again every scan_frequency; check \
                 `paths` in [[agent.inputs]], that the directory exists and that the agent's user may read it"
            );
        }
    } else if state.clear(pattern) {
        tracing::info!(pattern, files, "files match this path now; reading them");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_is_reported_once_per_start_and_once_per_clear() {
        let mut s = Ongoing::default();
        assert!(s.start("a"));
        assert!(!s.start("a"));
        assert!(s.start("b"));
        assert!(s.clear("a"));
        assert!(!s.clear("a"));
        assert!(s.start("a"));
        assert!(!s.is_empty());
    }
}
