//! How contenders (of a lock, a read-write lock, a semaphore, an election)
//! are named and ordered under their recipe's node.
//!
//! A contender is an ephemeral-sequential child named
//! `<id><marker><sequence>`: a 32-hex-digit random id unique to one
//! acquisition, a marker saying what it contends for, and the coordinator's
//! 10-digit counter. This is kazoo's naming (`uuid4().hex + "__lock__"`,
//! then ZooKeeper's counter), so a kazoo `Lock` and ours on the same path
//! see each other's contenders and exclude each other. The id is what makes
//! a lost create reply harmless: after a connection drop the owner lists the
//! children and finds its node by the id, instead of creating a second one
//! that would block the queue for as long as the session lives.
//!
//! Curator names its contenders `_c_<uuid>-lock-<sequence>`; its locks and
//! ours do not see each other, which is why we follow kazoo (the Python
//! tooling kingpin replaces) rather than Curator.

use kingpin_api::SEQUENCE_DIGITS;

/// The marker of exclusive contenders: lock holders, read-write lock
/// writers and election candidates (kazoo's `Lock`, `WriteLock` and
/// `Election` use it too).
pub const LOCK_MARKER: &str = "__lock__";

/// The marker of read-write lock readers (kazoo's `ReadLock`).
pub const READ_MARKER: &str = "__rlock__";

/// The marker of semaphore contenders. kazoo's `Semaphore` works
/// differently (a lock beside a pool of leases), so ours has a marker of its
/// own and the two do not interoperate.
pub const LEASE_MARKER: &str = "__lease__";

/// A random id, 32 lowercase hex digits (128 bits, like a UUID's hex).
pub(crate) fn unique_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A child name read as a contender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The child's name.
    pub name: String,
    /// Which of the expected markers it carries.
    pub marker: &'static str,
    /// The counter at its end.
    pub sequence: u64,
}

impl Entry {
    /// Reads `name` as `<anything><marker><10 digits>` for one of
    /// `markers`; `None` for any other child.
    pub fn parse(name: &str, markers: &[&'static str]) -> Option<Entry> {
        let split = name.len().checked_sub(SEQUENCE_DIGITS)?;
        let (head, digits) = (name.get(..split)?, name.get(split..)?);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let marker = markers.iter().find(|m| head.ends_with(**m))?;
        Some(Entry {
            name: name.to_owned(),
            marker,
            sequence: digits.parse().ok()?,
        })
    }

    /// Whether this contender was created with `prefix` (`<id><marker>`).
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.name.len() == prefix.len() + SEQUENCE_DIGITS && self.name.starts_with(prefix)
    }
}

/// The children that are contenders with one of `markers`, in queue order
/// (by sequence; names break ties, which only matter on a counter wrap).
pub(crate) fn queue_order(children: &[String], markers: &[&'static str]) -> Vec<Entry> {
    let mut entries: Vec<Entry> = children
        .iter()
        .filter_map(|c| Entry::parse(c, markers))
        .collect();
    entries.sort_by(|a, b| (a.sequence, &a.name).cmp(&(b.sequence, &b.name)));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kazoo_and_our_names() {
        let kazoo = "0f1e2d3c4b5a69788796a5b4c3d2e1f0__lock__0000000042";
        let e = Entry::parse(kazoo, &[LOCK_MARKER]).unwrap();
        assert_eq!((e.marker, e.sequence), (LOCK_MARKER, 42));
        assert!(e.has_prefix("0f1e2d3c4b5a69788796a5b4c3d2e1f0__lock__"));
        assert!(!e.has_prefix("0f1e2d3c4b5a6978"));
        let reader = "ab__rlock__0000000007";
        assert_eq!(Entry::parse(reader, &[LOCK_MARKER]), None);
        assert_eq!(
            Entry::parse(reader, &[LOCK_MARKER, READ_MARKER])
                .unwrap()
                .marker,
            READ_MARKER
        );
        for other in ["ready", "x__lock__12", "x__lock__00000000a1", "__lock__"] {
            assert_eq!(Entry::parse(other, &[LOCK_MARKER]), None, "{other}");
        }
    }

    #[test]
    fn queue_order_is_by_sequence_across_ids_and_markers() {
        let children: Vec<String> = [
            "ff__lock__0000000003",
            "00__rlock__0000000001",
            "aa__lock__0000000002",
            "member_0000000000",
        ]
        .map(String::from)
        .to_vec();
        let names: Vec<String> = queue_order(&children, &[LOCK_MARKER, READ_MARKER])
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(
            names,
            [
                "00__rlock__0000000001",
                "aa__lock__0000000002",
                "ff__lock__0000000003"
            ]
        );
    }

    #[test]
    fn ids_are_unique_hex() {
        let (a, b) = (unique_id(), unique_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
