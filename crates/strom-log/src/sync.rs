//! The lock-poisoning policy, the same in every Strom crate: a poisoned lock is taken
//! anyway. A lock is poisoned when a thread panicked while holding it; the state under
//! the log's locks is published after the writes it describes (offsets, sizes and index
//! entries move only once the bytes are written), so a panic leaves the last published
//! state, and refusing every later read of the partition would turn one bug into an
//! outage of the partition.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}
