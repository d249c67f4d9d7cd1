//! Conditions that stop events from flowing without failing anything — a path glob that matches no
//! file, a topic the cluster does not have — logged once when they start and once when they clear,
//! instead of never (a silent stall) or on every retry (a flood). The ongoing ones are also published in
//! the agent's snapshot ([`Stall`]), so `logpipe status` shows them.

use std::collections::BTreeMap;

/// What a stall is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StallKind {
    /// A path glob of a file input that matches no file.
    Glob,
    /// A topic whose deliveries fail (it does not exist, refuses the agent, ...).
    Topic,
}

/// One ongoing stall, as the snapshot shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    pub kind: StallKind,
    /// The glob or the topic.
    pub key: String,
    /// What is wrong and what to do, in a few words.
    pub reason: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub since_ms: i64,
}

/// The keys (a glob, a topic) whose condition is on. `start` and `clear` say whether the state changed,
/// which is when to log.
#[derive(Debug, Default)]
pub struct Ongoing {
    /// Key → (reason, since when).
    active: BTreeMap<String, (String, i64)>,
}

impl Ongoing {
    /// Marks `key` stalled for `reason`; true the first time (until it clears).
    pub fn start(&mut self, key: &str, reason: &str) -> bool {
        if self.active.contains_key(key) {
            return false;
        }
        self.active.insert(key.to_owned(), (reason.to_owned(), now_ms()));
        true
    }

    /// Marks `key` flowing again; true if it was stalled.
    pub fn clear(&mut self, key: &str) -> bool {
        self.active.remove(key).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// The ongoing stalls, by key.
    pub fn stalls(&self, kind: StallKind) -> impl Iterator<Item = Stall> + '_ {
        self.active.iter().map(move |(key, (reason, since_ms))| Stall {
            kind,
            key: key.clone(),
            reason: reason.clone(),
            since_ms: *since_ms,
        })
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// After a scan matched `pattern` against `files` files: logs the start or the end of "no file".
pub fn glob_matched(state: &mut Ongoing, pattern: &str, files: usize) {
    if files == 0 {
        if state.start(pattern, "no file matches; check the path and that the agent may read the directory") {
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
        assert!(s.start("a", "why"));
        assert!(!s.start("a", "why"));
        assert!(s.start("b", "because"));
        assert!(s.clear("a"));
        assert!(!s.clear("a"));
        assert!(s.start("a", "why"));
        assert!(!s.is_empty());
        let stalls: Vec<Stall> = s.stalls(StallKind::Topic).collect();
        assert_eq!(
            stalls.iter().map(|s| (s.key.as_str(), s.reason.as_str())).collect::<Vec<_>>(),
            [("a", "why"), ("b", "because")]
        );
        assert!(stalls.iter().all(|s| s.kind == StallKind::Topic && s.since_ms > 0));
    }
}
