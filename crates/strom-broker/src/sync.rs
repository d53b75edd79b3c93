//! The one lock-poisoning policy of the broker: a poisoned lock is taken anyway.
//!
//! A lock is poisoned when a thread panicked while holding it. The broker's locks guard
//! state that every writer keeps consistent before anything that can panic (appends are
//! validated before they change state; a panicked façade task is reported as an
//! internal error by `blocking::offload`), so refusing every later request because of
//! one panic would turn a bug into an outage. Every lock in the crate goes through these.

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
