//! Small file-system and locking helpers shared by the storage modules.
//!
//! Durable metadata files (topic metadata, checkpoints, producer snapshots) are written with
//! `logpipe_durable::write_atomic`: a reader sees either the old or the new file, never half of one.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(crate) use logpipe_durable::{annotate, create_dir_all, read_optional, sync_dir, write_atomic};

/// Locks ignoring poisoning: a panic in another request must not take the whole partition down with it;
/// every critical section leaves the state consistent before doing anything that can panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
