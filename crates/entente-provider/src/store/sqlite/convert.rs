//! Mapping between the store's types and SQLite's: errors and integers.

use rusqlite::ffi;

use crate::store::StoreError;

/// Adds what the store was doing to a SQLite error; the result is a
/// [`StoreError::Backend`]. Contexts name the operation, never the identifiers
/// involved: errors end up in logs.
pub(super) trait Context<T> {
    fn context(self, doing: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn context(self, doing: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| backend(doing, &e))
    }
}

pub(super) fn backend(doing: &str, error: &rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("{doing}: {error}"))
}

/// Which integrity constraint a statement violated, if that is why it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Violation {
    /// A UNIQUE or PRIMARY KEY constraint: the row exists already.
    Unique,
    /// A FOREIGN KEY constraint: a row it refers to does not exist.
    ForeignKey,
}

pub(super) fn violation(error: &rusqlite::Error) -> Option<Violation> {
    match error.sqlite_error()?.extended_code {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
            Some(Violation::Unique)
        }
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Some(Violation::ForeignKey),
        _ => None,
    }
}

// SQLite integers are signed 64-bit; the store's are `u64`. Two conversions keep
// every value meaningful without failing on input a peer controls:

/// For values the store compares by order (times, sequence numbers, limits):
/// clamped to `i64::MAX`, which keeps the order of every value that can occur
/// (`u64::MAX` as "never" or "everything" still works).
pub(super) fn ordered(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// For values the store only stores and compares for equality (epochs, creation
/// times): reinterpreted bit for bit, so every `u64` round-trips exactly.
pub(super) fn opaque(value: u64) -> i64 {
    value.cast_signed()
}

/// The inverse of [`opaque`].
pub(super) fn from_opaque(value: i64) -> u64 {
    value.cast_unsigned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_round_trips_every_value() {
        for v in [0, 1, i64::MAX.cast_unsigned(), 1 << 63, u64::MAX] {
            assert_eq!(from_opaque(opaque(v)), v);
        }
    }

    #[test]
    fn ordered_keeps_order_and_clamps() {
        assert_eq!(ordered(7), 7);
        assert_eq!(ordered(u64::MAX), i64::MAX);
        assert!(ordered(1 << 63) >= ordered((1 << 63) - 1));
    }
}
