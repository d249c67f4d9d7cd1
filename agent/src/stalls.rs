//! Conditions that stop events from flowing without failing anything — a path glob that matches no
//! file or a file that cannot be opened, a topic the cluster does not have — logged once when they start
//! and once when they clear, instead of never (a silent stall) or on every retry (a flood). The ongoing
//! ones are also published in the agent's snapshot ([`Stall`]), so `logpipe status` shows them.

use std::collections::BTreeMap;

/// What a stall is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StallKind {
    /// A path glob of a file input that matches no file, or a file the agent cannot open.
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
    /// Marks `key` stalled for `reason`; true the first time (until it clears), and when the reason changes
    /// (a new condition, since now: a glob's file became unreadable, a topic's refusal changed).
    pub fn start(&mut self, key: &str, reason: &str) -> bool {
        if self.active.get(key).is_some_and(|(known, _)| known == reason) {
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

/// No file matches a glob.
const NO_FILE: &str = "no file matches; check the path and that the agent may read the directory";

/// After a scan matched `pattern`: `readable` files it may read, and `unreadable`, (path, error) of the
/// files it matches but cannot open (permissions, the open-file limit). Starts or ends the stall of
/// `pattern`: stalled while no file matches, or while a file it matches cannot be read (those files are
/// logged one by one by the scan). Logs the start of "no file" and the end of either.
pub fn glob_matched(state: &mut Ongoing, pattern: &str, readable: usize, unreadable: &[(String, String)]) {
    if let Some((path, error)) = unreadable.first() {
        let mut reason = format!("cannot open {path} for reading: {error}");
        if unreadable.len() > 1 {
            reason.push_str(&format!(" (and {} more files)", unreadable.len() - 1));
        }
        reason.push_str("; check its permissions and the agent's open-file limit");
        state.start(pattern, &reason);
    } else if readable == 0 {
        if state.start(pattern, NO_FILE) {
            tracing::warn!(
                pattern,
                "no file matches this path (yet): the input waits and looks again every scan_frequency; check \
                 `paths` in [[agent.inputs]], that the directory exists and that the agent's user may read it"
            );
        }
    } else if state.clear(pattern) {
        tracing::info!(pattern, files = readable, "files match this path now; reading them");
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

    #[test]
    fn a_glob_stalls_while_it_matches_no_file_or_a_file_that_cannot_be_read() {
        let mut s = Ongoing::default();
        let reason = |s: &Ongoing| s.stalls(StallKind::Glob).map(|st| st.reason).collect::<Vec<_>>();
        glob_matched(&mut s, "/logs/*.log", 0, &[]);
        assert_eq!(reason(&s), [NO_FILE]);
        let denied = [("/logs/a.log".to_owned(), "Permission denied (os error 13)".to_owned())];
        glob_matched(&mut s, "/logs/*.log", 0, &denied);
        assert_eq!(
            reason(&s),
            ["cannot open /logs/a.log for reading: Permission denied (os error 13); check its permissions and the \
              agent's open-file limit"]
        );
        // Other files read do not hide it.
        glob_matched(&mut s, "/logs/*.log", 3, &denied);
        assert_eq!(reason(&s).len(), 1);
        glob_matched(&mut s, "/logs/*.log", 4, &[]);
        assert!(s.is_empty());
    }
}
