//! How the node hierarchy is laid out in etcd's flat key space.
//!
//! Under the configured prefix `P`:
//!
//! | key | holds |
//! |---|---|
//! | `P/n/0002/a/b` | node `/a/b` (depth 2, zero-padded to 4 digits) |
//! | `P/s/a` | the next sequence number for children of `/a` (`P/s/` for the root) |
//!
//! Putting the depth first makes the direct children of a node one key range
//! (`P/n/0003/a/b/`), for `children` and for children watches, without
//! scanning grandchildren. A node's value is its data version (8 bytes, big
//! endian) followed by its data: keeping the version ourselves lets one
//! transaction create and then set a node and still count two changes, as
//! ZooKeeper does.

use kingpin_api::{Error, ErrorKind, NodePath, Result, Stat};

/// Maps node paths to etcd keys under a prefix.
#[derive(Debug, Clone)]
pub struct KeyLayout {
    prefix: String,
}

impl KeyLayout {
    /// A layout under `prefix` (empty, or an absolute path without a
    /// trailing `/`).
    pub fn new(prefix: &str) -> Self {
        KeyLayout {
            prefix: prefix.to_owned(),
        }
    }

    /// The key holding `path`.
    pub fn node_key(&self, path: &NodePath) -> Vec<u8> {
        format!("{}/n/{:04}{}", self.prefix, path.depth(), path).into_bytes()
    }

    /// The key range prefix holding the direct children of `path`.
    pub fn children_prefix(&self, path: &NodePath) -> Vec<u8> {
        let base = if path.is_root() { "" } else { path.as_str() };
        format!("{}/n/{:04}{}/", self.prefix, path.depth() + 1, base).into_bytes()
    }

    /// The key holding the sequence counter for children of `parent`.
    pub fn counter_key(&self, parent: &NodePath) -> Vec<u8> {
        let base = if parent.is_root() {
            "/"
        } else {
            parent.as_str()
        };
        format!("{}/s{}", self.prefix, base).into_bytes()
    }

    /// Every key this layout uses: the prefix followed by `/`.
    pub fn namespace_prefix(&self) -> Vec<u8> {
        format!("{}/", self.prefix).into_bytes()
    }

    /// The keys of `top` and of its descendants down to depth `deepest`,
    /// with the sequence counters of all of them: exact keys and key
    /// prefixes, for granting access to a subtree. A subtree is not one key
    /// range here (depth comes first in a key), so it takes one range per
    /// depth.
    pub fn subtree(&self, top: &NodePath, deepest: usize) -> Vec<KeySpan> {
        let mut spans = vec![
            KeySpan::Exact(self.node_key(top)),
            KeySpan::Exact(self.counter_key(top)),
            KeySpan::Prefix(format!("{}/s{}/", self.prefix, top).into_bytes()),
        ];
        for depth in top.depth() + 1..=deepest {
            spans.push(KeySpan::Prefix(
                format!("{}/n/{depth:04}{top}/", self.prefix).into_bytes(),
            ));
        }
        spans
    }

    /// The child name of a key found under [`children_prefix`](Self::children_prefix).
    pub fn child_name<'a>(&self, children_prefix: &[u8], key: &'a [u8]) -> Option<&'a str> {
        std::str::from_utf8(key.strip_prefix(children_prefix)?).ok()
    }
}

/// A set of keys: one key, or every key with a prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeySpan {
    /// This key only.
    Exact(Vec<u8>),
    /// Every key starting with these bytes.
    Prefix(Vec<u8>),
}

impl KeySpan {
    /// The `[key, range_end)` etcd uses for it (an empty end: one key).
    pub fn range(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            KeySpan::Exact(key) => (key.clone(), Vec::new()),
            KeySpan::Prefix(prefix) => (prefix.clone(), prefix_end(prefix)),
        }
    }
}

/// The first key after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff: to the end of the key space.
    vec![0]
}

/// Encodes a node's stored value: version, then data.
pub fn encode_value(version: u64, data: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + data.len());
    value.extend_from_slice(&version.to_be_bytes());
    value.extend_from_slice(data);
    value
}

/// Splits a stored value into version and data.
pub fn decode_value<'a>(key: &[u8], value: &'a [u8]) -> Result<(u64, &'a [u8])> {
    if value.len() < 8 {
        return Err(Error::new(
            ErrorKind::Backend,
            format!(
                "etcd key {} does not hold a kingpin node (written by something else?)",
                String::from_utf8_lossy(key)
            ),
        ));
    }
    let (version, data) = value.split_at(8);
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(version);
    Ok((u64::from_be_bytes(bytes), data))
}

/// The node metadata of a stored key-value.
pub fn stat_of(kv: &etcd_client::KeyValue) -> Result<Stat> {
    let (version, _) = decode_value(kv.key(), kv.value())?;
    Ok(Stat {
        version,
        created_revision: kv.create_revision() as u64,
        modified_revision: kv.mod_revision() as u64,
        ephemeral_owner: (kv.lease() != 0).then_some(kv.lease() as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_one_range_without_grandchildren() {
        let layout = KeyLayout::new("/p");
        let a = NodePath::parse("/a").unwrap();
        assert_eq!(layout.node_key(&a), b"/p/n/0001/a");
        assert_eq!(layout.children_prefix(&a), b"/p/n/0002/a/");
        let child = layout.node_key(&NodePath::parse("/a/b").unwrap());
        let grandchild = layout.node_key(&NodePath::parse("/a/b/c").unwrap());
        assert!(child.starts_with(&layout.children_prefix(&a)));
        assert!(!grandchild.starts_with(&layout.children_prefix(&a)));
        assert_eq!(layout.children_prefix(&NodePath::root()), b"/p/n/0001/");
        assert_eq!(layout.counter_key(&NodePath::root()), b"/p/s/");
        assert_eq!(
            layout.child_name(b"/p/n/0002/a/", b"/p/n/0002/a/b"),
            Some("b")
        );
    }

    #[test]
    fn subtrees_are_one_span_per_depth() {
        let layout = KeyLayout::new("/p");
        let top = NodePath::parse("/discovery").unwrap();
        let spans = layout.subtree(&top, 3);
        assert_eq!(
            spans,
            [
                KeySpan::Exact(b"/p/n/0001/discovery".to_vec()),
                KeySpan::Exact(b"/p/s/discovery".to_vec()),
                KeySpan::Prefix(b"/p/s/discovery/".to_vec()),
                KeySpan::Prefix(b"/p/n/0002/discovery/".to_vec()),
                KeySpan::Prefix(b"/p/n/0003/discovery/".to_vec()),
            ]
        );
        let member = NodePath::parse("/discovery/svc/prod/member_0000000001").unwrap();
        let key = layout.node_key(&member);
        assert!(!spans.iter().any(|s| match s {
            KeySpan::Prefix(p) => key.starts_with(p),
            KeySpan::Exact(k) => *k == key,
        }));
        let deeper = layout.subtree(&top, 4);
        assert!(deeper
            .iter()
            .any(|s| matches!(s, KeySpan::Prefix(p) if key.starts_with(p))));
        assert_eq!(
            KeySpan::Prefix(b"/p/".to_vec()).range(),
            (b"/p/".to_vec(), b"/p0".to_vec())
        );
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b");
    }

    #[test]
    fn values_round_trip_and_foreign_values_are_errors() {
        let v = encode_value(7, b"data");
        assert_eq!(decode_value(b"k", &v).unwrap(), (7, &b"data"[..]));
        assert_eq!(
            decode_value(b"k", b"x").unwrap_err().kind(),
            ErrorKind::Backend
        );
    }
}
