//! File-system events (inotify, through the `notify` crate) that wake the tailer early. Best effort:
//! polling stays on and is what correctness rests on — scans every `scan_frequency`, and reads of open
//! files at most `MAX_IDLE` apart — so a missed event (a full inotify queue, `max_user_watches` reached,
//! a network file system that sends none) only costs latency.
//!
//! Each path glob is watched at its fixed directory prefix: the components before the first one with a
//! glob metacharacter (`/var/log/nginx` for `/var/log/nginx/access.log*`), recursively only when the
//! glob has `**`. Files in a directory matched by a wildcard (`/var/log/*/app.log`) are therefore seen by
//! polling only, unless a `**` glob covers them.
//!
//! The watcher's thread sorts events by the inputs whose globs match the path and records them in a
//! shared [`Woken`]; the tailer takes that at the start of a turn. What it asks for:
//! - a matching path created, renamed or removed: scan that input (soon, not at once: at most one such
//!   scan per input every [`EVENT_SCAN_GAP`](super::EVENT_SCAN_GAP));
//! - a matching path's data changed: nothing but the wake itself if the file is open (the turn reads
//!   every open file), a scan if it is not (a file closed by `close_inactive` that grows again, or one
//!   not opened yet);
//! - a directory created or renamed under a watched one: scan the inputs watching there (files may
//!   have been created in it before its own watch was in place);
//! - the inotify queue overflowed, or a watched directory went away: scan every input.
//!
//! Access events are ignored: inotify reports the tailer's own opens and reads as well.
//!
//! A doorbell channel of capacity 1 wakes the tailer's idle wait, so a burst of events costs one wake.

use std::collections::{BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify::event::{CreateKind, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use regex::Regex;

use super::input::FileInput;

/// What events asked of the tailer since it last looked.
#[derive(Debug, Default)]
pub(super) struct Woken {
    /// Inputs to scan.
    pub(super) scan: BTreeSet<usize>,
    /// (input, path) of matching files whose data changed.
    pub(super) modified: HashSet<(usize, PathBuf)>,
    /// Watched directories whose watch ended (deleted or renamed): watched again when they exist.
    pub(super) lost: HashSet<PathBuf>,
}

/// A directory watched for one or more globs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WatchDir {
    pub(super) path: PathBuf,
    pub(super) recursive: bool,
}

pub(super) struct FsEvents {
    watcher: RecommendedWatcher,
    shared: Arc<Mutex<Woken>>,
    doorbell: Receiver<()>,
    /// Each directory and whether its watch is in place.
    dirs: Vec<(WatchDir, bool)>,
    /// Whether the "inotify watch limit" warning was logged (it is logged once).
    warned_limit: bool,
}

impl FsEvents {
    /// Watches the directories of `inputs`' globs. `None` (with a warning) when the platform gives no
    /// watcher at all, e.g. when `fs.inotify.max_user_instances` is reached.
    pub(super) fn new(inputs: &[FileInput]) -> Option<Self> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let matchers: Vec<InputMatcher> = inputs.iter().map(|i| InputMatcher::new(i, &cwd)).collect();
        let mut dirs: Vec<(WatchDir, bool)> = Vec::new();
        for dir in matchers.iter().flat_map(|m| m.dirs.iter()) {
            match dirs.iter_mut().find(|(d, _)| d.path == dir.path) {
                Some((d, _)) => d.recursive |= dir.recursive,
                None => dirs.push((dir.clone(), false)),
            }
        }
        if dirs.is_empty() {
            return None;
        }
        let shared = Arc::new(Mutex::new(Woken::default()));
        let (ring, doorbell) = mpsc::sync_channel(1);
        let roots: Vec<PathBuf> = dirs.iter().map(|(d, _)| d.path.clone()).collect();
        let mut handler = Handler { shared: shared.clone(), ring, matchers, roots, cache: None };
        let watcher = match notify::recommended_watcher(move |e| handler.handle(e)) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "file-system events are not available; files are found and read by polling only");
                return None;
            }
        };
        let mut events = Self { watcher, shared, doorbell, dirs, warned_limit: false };
        events.watch_missing();
        Some(events)
    }

    /// Tries to watch every directory not watched yet (it may have been created since).
    pub(super) fn watch_missing(&mut self) {
        for (dir, watching) in self.dirs.iter_mut().filter(|(_, w)| !*w) {
            let mode = if dir.recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
            match self.watcher.watch(&dir.path, mode) {
                Ok(()) => {
                    *watching = true;
                    tracing::debug!(dir = %dir.path.display(), recursive = dir.recursive, "watching for file-system events");
                }
                Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                    if !self.warned_limit {
                        self.warned_limit = true;
                        tracing::warn!(
                            dir = %dir.path.display(),
                            "inotify watch limit reached; polling only for this directory (raise fs.inotify.max_user_watches)"
                        );
                    }
                }
                // Most often the directory does not exist yet: retried at the next scan.
                Err(e) => tracing::debug!(dir = %dir.path.display(), error = %e, "cannot watch directory yet"),
            }
        }
    }

    /// Waits up to `timeout` for an event. Returns whether one came.
    pub(super) fn wait(&self, timeout: Duration) -> bool {
        self.doorbell.recv_timeout(timeout).is_ok()
    }

    /// What events asked for since the last call.
    pub(super) fn take(&mut self) -> Woken {
        let woken = std::mem::take(&mut *self.shared.lock().unwrap_or_else(PoisonError::into_inner));
        for lost in &woken.lost {
            if let Some((dir, watching)) = self.dirs.iter_mut().find(|(d, _)| d.path == *lost) {
                let _ = self.watcher.unwatch(&dir.path);
                *watching = false;
            }
        }
        woken
    }

    pub(super) fn all_watched(&self) -> bool {
        self.dirs.iter().all(|(_, w)| *w)
    }
}

/// Runs on the watcher's thread.
struct Handler {
    shared: Arc<Mutex<Woken>>,
    ring: SyncSender<()>,
    matchers: Vec<InputMatcher>,
    roots: Vec<PathBuf>,
    /// The last path and the inputs it matched: most events are for the one file being written.
    cache: Option<(PathBuf, Vec<usize>)>,
}

enum Wants {
    Scan,
    Read,
}

impl Handler {
    fn handle(&mut self, event: notify::Result<Event>) {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(error = %e, "file-system event error; polling goes on");
                return;
            }
        };
        let wants = match event.kind {
            EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) => Wants::Scan,
            EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => Wants::Read,
            _ if event.need_rescan() => {
                let mut woken = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
                woken.scan.extend(0..self.matchers.len());
                drop(woken);
                let _ = self.ring.try_send(());
                return;
            }
            // Access (the tailer's own opens and reads among them), metadata, other.
            _ => return,
        };
        let mut ring = false;
        let mut woken = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        for path in &event.paths {
            if matches!(wants, Wants::Scan) && self.roots.contains(path) {
                // The watched directory itself was removed or renamed: its watch is gone.
                woken.lost.insert(path.clone());
                woken.scan.extend(0..self.matchers.len());
                ring = true;
                continue;
            }
            if self.cache.as_ref().is_none_or(|(p, _)| p != path) {
                let inputs = (0..self.matchers.len()).filter(|&i| self.matchers[i].matches(path)).collect();
                self.cache = Some((path.clone(), inputs));
            }
            let (_, inputs) = self.cache.as_ref().expect("just set");
            if inputs.is_empty() && matches!(wants, Wants::Scan) {
                let dir = matches!(event.kind, EventKind::Create(CreateKind::Folder))
                    || matches!(event.kind, EventKind::Modify(ModifyKind::Name(_))) && path.is_dir();
                if dir {
                    for (i, m) in self.matchers.iter().enumerate() {
                        if m.roots.iter().any(|r| path.starts_with(r)) {
                            ring |= woken.scan.insert(i);
                        }
                    }
                }
                continue;
            }
            for &i in inputs {
                ring |= match wants {
                    Wants::Scan => woken.scan.insert(i),
                    Wants::Read => woken.modified.insert((i, path.clone())),
                };
            }
        }
        drop(woken);
        if ring {
            // Full means a wake is already pending.
            let _ = self.ring.try_send(());
        }
    }
}

/// The globs of one input, made absolute (event paths are), and its `exclude_files`.
struct InputMatcher {
    patterns: Vec<glob::Pattern>,
    roots: Vec<PathBuf>,
    exclude: Vec<Regex>,
    dirs: Vec<WatchDir>,
}

impl InputMatcher {
    fn new(input: &FileInput, cwd: &Path) -> Self {
        let mut patterns = Vec::new();
        let mut dirs = Vec::new();
        for p in &input.paths {
            let abs = if Path::new(p).is_absolute() {
                p.clone()
            } else {
                format!("{}/{p}", glob::Pattern::escape(&cwd.to_string_lossy()))
            };
            if let Ok(pattern) = glob::Pattern::new(&abs) {
                patterns.push(pattern);
            }
            if let Some(dir) = watch_dir(&abs) {
                dirs.push(dir);
            }
        }
        let roots = dirs.iter().map(|d: &WatchDir| d.path.clone()).collect();
        Self { patterns, roots, exclude: input.exclude_files.clone(), dirs }
    }

    fn matches(&self, path: &Path) -> bool {
        // As `glob::glob` walks: a `*` does not cross a `/`.
        let options = glob::MatchOptions { require_literal_separator: true, ..Default::default() };
        self.patterns.iter().any(|p| p.matches_path_with(path, options))
            && !path.to_str().is_some_and(|s| self.exclude.iter().any(|re| re.is_match(s)))
    }
}

/// The directory to watch for an absolute glob: its components before the first one with a glob
/// metacharacter, or its parent directory when it has none. Recursive when the glob has `**`.
pub(super) fn watch_dir(glob: &str) -> Option<WatchDir> {
    let path = Path::new(glob);
    let components: Vec<Component> = path.components().collect();
    let literal = |c: &Component| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']);
    let fixed = components.iter().take_while(|c| literal(c)).count();
    // A glob without metacharacters names a file: watch its directory.
    let take = fixed.min(components.len().saturating_sub(1));
    if take == 0 {
        return None;
    }
    let dir: PathBuf = components[..take].iter().collect();
    Some(WatchDir { path: dir, recursive: glob.contains("**") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(glob: &str) -> (String, bool) {
        let d = watch_dir(glob).unwrap();
        (d.path.to_string_lossy().into_owned(), d.recursive)
    }

    #[test]
    fn watches_the_fixed_prefix_of_each_glob() {
        assert_eq!(dir("/var/log/nginx/access.log*"), ("/var/log/nginx".into(), false));
        assert_eq!(dir("/var/log/nginx/access.log"), ("/var/log/nginx".into(), false));
        assert_eq!(dir("/var/log/*/app.log"), ("/var/log".into(), false));
        assert_eq!(dir("/logs/**/*.log*"), ("/logs".into(), true));
        assert_eq!(dir("/logs/app-[0-9].log"), ("/logs".into(), false));
        assert_eq!(dir("/*.log"), ("/".into(), false));
    }
}
