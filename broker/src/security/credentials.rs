//! The SCRAM credentials store: `credentials.json` under `log_dirs`, mode 0600, written atomically.
//!
//! It holds, per user and mechanism, Kafka's salted form (salt, iterations, StoredKey, ServerKey), never a
//! password. `logpipe users add|delete|list` edits it, before the first start as well as while the
//! broker runs; the broker rereads it when its modification time or size changes, so a new user can
//! log in without a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::scram::{ScramCredential, ScramMechanism, MIN_ITERATIONS};
use crate::error::{Error, Result};

pub const FILE_NAME: &str = "credentials.json";

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    users: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
}

/// A view of the store that rereads the file when it changed on disk.
pub struct CredentialStore {
    path: PathBuf,
    cached: Mutex<(Option<(SystemTime, u64)>, StoreFile)>,
}

fn storage_error(path: &Path, source: std::io::Error) -> Error {
    Error::Storage { path: path.to_owned(), source }
}

fn read(path: &Path) -> Result<StoreFile> {
    match logpipe_durable::read_optional(path).map_err(|e| storage_error(path, e))? {
        None => Ok(StoreFile::default()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Error::Config(format!("{}: not a logpipe credentials file ({e}); fix or remove it", path.display()))
        }),
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
}

impl CredentialStore {
    pub fn open(log_dirs: &Path) -> Result<Self> {
        let path = log_dirs.join(FILE_NAME);
        let file = read(&path)?;
        Ok(Self { cached: Mutex::new((stamp(&path), file)), path })
    }

    /// The user's credential for `mechanism`, rereading the file first if it changed.
    pub fn lookup(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.with_current(|file| file.users.get(user).and_then(|m| m.get(&mechanism)).cloned())
    }

    /// Every credential of `user` (for PLAIN, which checks the password against any of them).
    pub fn lookup_all(&self, user: &str) -> Vec<(ScramMechanism, ScramCredential)> {
        self.with_current(|file| {
            file.users.get(user).map(|m| m.iter().map(|(k, v)| (*k, v.clone())).collect()).unwrap_or_default()
        })
    }

    /// Users and their mechanisms with iteration counts (DescribeUserScramCredentials, `users list`).
    pub fn describe(&self) -> BTreeMap<String, Vec<(ScramMechanism, u32)>> {
        self.with_current(describe)
    }

    fn with_current<T>(&self, f: impl FnOnce(&StoreFile) -> T) -> T {
        let mut cached = self.cached.lock().expect("credentials lock poisoned");
        let now = stamp(&self.path);
        if now != cached.0 {
            match read(&self.path) {
                Ok(file) => *cached = (now, file),
                Err(e) => {
                    tracing::error!(error = %e, "cannot reread the credentials store; keeping the users loaded before")
                }
            }
        }
        f(&cached.1)
    }

    /// Applies changes and writes the file (AlterUserScramCredentials).
    pub fn update(&self, change: impl FnOnce(&mut Users)) -> Result<()> {
        let mut cached = self.cached.lock().expect("credentials lock poisoned");
        let mut file = read(&self.path)?;
        change(&mut Users(&mut file));
        write(&self.path, &file)?;
        *cached = (stamp(&self.path), file);
        Ok(())
    }
}

fn describe(file: &StoreFile) -> BTreeMap<String, Vec<(ScramMechanism, u32)>> {
    file.users.iter().map(|(user, m)| (user.clone(), m.iter().map(|(k, v)| (*k, v.iterations)).collect())).collect()
}

fn write(path: &Path, file: &StoreFile) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(file).map_err(|e| Error::Io(std::io::Error::other(e)))?;
    let options = logpipe_durable::WriteOptions { mode: Some(0o600), create_dir: true };
    logpipe_durable::write_atomic_with(path, &bytes, options).map_err(|e| storage_error(path, e))
}

/// The users of the store, to change in [`CredentialStore::update`] or [`edit`].
pub struct Users<'a>(&'a mut StoreFile);

impl Users<'_> {
    pub fn set(&mut self, user: &str, mechanism: ScramMechanism, credential: ScramCredential) {
        self.0.users.entry(user.to_owned()).or_default().insert(mechanism, credential);
    }

    /// Removes one mechanism (or all, with `None`); whether anything was removed.
    pub fn remove(&mut self, user: &str, mechanism: Option<ScramMechanism>) -> bool {
        let Some(mechanisms) = self.0.users.get_mut(user) else { return false };
        let removed = match mechanism {
            Some(m) => mechanisms.remove(&m).is_some(),
            None => !std::mem::take(mechanisms).is_empty(),
        };
        if mechanisms.is_empty() {
            self.0.users.remove(user);
        }
        removed
    }
}

/// `logpipe users add`: salts and stores a password. Works without a running broker.
pub fn add_user(log_dirs: &Path, user: &str, mechanism: ScramMechanism, password: &str, iterations: u32) -> Result<()> {
    if user.is_empty() || user.chars().any(|c| c.is_control()) {
        return Err(Error::Config(format!("user name `{user}` is empty or holds control characters")));
    }
    if password.is_empty() {
        return Err(Error::Config("the password is empty".into()));
    }
    if iterations < MIN_ITERATIONS {
        return Err(Error::Config(format!("--iterations must be at least {MIN_ITERATIONS}")));
    }
    let credential = ScramCredential::new(mechanism, password.as_bytes(), iterations);
    edit(log_dirs, |users| users.set(user, mechanism, credential))
}

/// `logpipe users delete`: whether the user (or that mechanism of it) existed.
pub fn delete_user(log_dirs: &Path, user: &str, mechanism: Option<ScramMechanism>) -> Result<bool> {
    let mut removed = false;
    edit(log_dirs, |users| removed = users.remove(user, mechanism))?;
    Ok(removed)
}

/// `logpipe users list`: user → (mechanism, iterations).
pub fn list_users(log_dirs: &Path) -> Result<BTreeMap<String, Vec<(ScramMechanism, u32)>>> {
    Ok(describe(&read(&log_dirs.join(FILE_NAME))?))
}

fn edit(log_dirs: &Path, change: impl FnOnce(&mut Users)) -> Result<()> {
    let path = log_dirs.join(FILE_NAME);
    let mut file = read(&path)?;
    change(&mut Users(&mut file));
    write(&path, &file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_list_delete_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::open(dir.path()).unwrap();
        assert!(store.lookup("alice", ScramMechanism::Sha512).is_none());
        add_user(dir.path(), "alice", ScramMechanism::Sha512, "pw", 4096).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(!text.contains("\"pw\""), "no password at rest");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(store.lookup("alice", ScramMechanism::Sha512).unwrap().verify_password(ScramMechanism::Sha512, b"pw"));
        assert_eq!(list_users(dir.path()).unwrap()["alice"], vec![(ScramMechanism::Sha512, 4096)]);
        assert!(add_user(dir.path(), "bob", ScramMechanism::Sha256, "pw", 100).is_err());
        assert!(delete_user(dir.path(), "alice", None).unwrap());
        assert!(!delete_user(dir.path(), "alice", None).unwrap());
        assert!(store.lookup_all("alice").is_empty());
    }
}
