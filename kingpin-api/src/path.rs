//! Validated node paths.

use std::fmt;

use crate::error::{Error, Result};

/// Longest accepted path, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Longest accepted path component, in bytes.
pub const MAX_COMPONENT_LEN: usize = 255;

/// An absolute, `/`-separated node path whose components have been checked.
///
/// Every coordinator call takes a `NodePath`, so a malformed path is rejected
/// when it is parsed, before any I/O. Components are 1 to 255 bytes of
/// printable ASCII other than `/`; `.` and `..` are refused, and so is the
/// top-level `zookeeper` component, which ZooKeeper reserves for itself.
///
/// ```
/// use kingpin_api::NodePath;
/// let p = NodePath::parse("/config/manageddata/spam")?;
/// assert_eq!(p.name(), "spam");
/// assert_eq!(p.parent().unwrap().as_str(), "/config/manageddata");
/// assert!(NodePath::parse("/config/../etc").is_err());
/// # Ok::<(), kingpin_api::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NodePath(String);

/// Paths order component by component, so a node's descendants sort right
/// after it (`/a`, `/a/b`, `/a-b`), which keeps subtrees contiguous in
/// ordered maps.
impl Ord for NodePath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.components().cmp(other.components())
    }
}

impl PartialOrd for NodePath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl NodePath {
    /// The root node, `/`.
    pub fn root() -> Self {
        NodePath("/".to_owned())
    }

    /// Parses and validates an absolute path. A trailing `/` is not allowed
    /// (except for the root itself).
    pub fn parse(path: &str) -> Result<Self> {
        if path == "/" {
            return Ok(Self::root());
        }
        let Some(rest) = path.strip_prefix('/') else {
            return Err(Error::invalid(format!(
                "path {path:?} is not absolute: it must start with '/'"
            )));
        };
        if path.len() > MAX_PATH_LEN {
            return Err(Error::invalid(format!(
                "path is {} bytes, over the limit of {MAX_PATH_LEN}",
                path.len()
            )));
        }
        for (i, component) in rest.split('/').enumerate() {
            check_component(component)
                .map_err(|why| Error::invalid(format!("path {path:?} is invalid: {why}")))?;
            if i == 0 && component == "zookeeper" {
                return Err(Error::invalid(format!(
                    "path {path:?} is invalid: /zookeeper is reserved by ZooKeeper"
                )));
            }
        }
        Ok(NodePath(path.to_owned()))
    }

    /// The path of the child `name` of this node. `name` must be a single
    /// valid component.
    pub fn join(&self, name: &str) -> Result<Self> {
        check_component(name)
            .map_err(|why| Error::invalid(format!("child name {name:?} is invalid: {why}")))?;
        let joined = if self.is_root() {
            format!("/{name}")
        } else {
            format!("{}/{name}", self.0)
        };
        NodePath::parse(&joined)
    }

    /// Whether this is `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The path as a string, always starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component; empty for the root.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The parent node; `None` for the root.
    pub fn parent(&self) -> Option<NodePath> {
        if self.is_root() {
            return None;
        }
        match self.0.rfind('/') {
            Some(0) => Some(Self::root()),
            Some(i) => Some(NodePath(self.0[..i].to_owned())),
            None => None,
        }
    }

    /// The components, outermost first; none for the root.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// Number of components: 0 for the root, 1 for `/a`.
    pub fn depth(&self) -> usize {
        self.components().count()
    }

    /// The proper ancestors, excluding the root, outermost first:
    /// `/a/b/c` gives `/a`, `/a/b`.
    pub fn ancestors(&self) -> Vec<NodePath> {
        let mut out = Vec::new();
        let mut current = self.parent();
        while let Some(p) = current {
            if p.is_root() {
                break;
            }
            current = p.parent();
            out.push(p);
        }
        out.reverse();
        out
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &NodePath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

fn check_component(component: &str) -> std::result::Result<(), String> {
    if component.is_empty() {
        return Err("empty component".to_owned());
    }
    if component == "." || component == ".." {
        return Err(format!("component {component:?} is not allowed"));
    }
    if component.len() > MAX_COMPONENT_LEN {
        return Err(format!(
            "component is {} bytes, over the limit of {MAX_COMPONENT_LEN}",
            component.len()
        ));
    }
    if let Some(c) = component
        .chars()
        .find(|c| !c.is_ascii_graphic() || *c == '/')
    {
        return Err(format!("character {c:?} is not allowed"));
    }
    Ok(())
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::str::FromStr for NodePath {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        NodePath::parse(s)
    }
}

impl TryFrom<&str> for NodePath {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        NodePath::parse(s)
    }
}

impl AsRef<str> for NodePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn accepts_ordinary_paths() {
        for p in [
            "/",
            "/a",
            "/a/b_c-d.e",
            "/discovery/svc/prod/member_0000000001",
            "/x/1-10.0.0.1:9090",
        ] {
            assert_eq!(NodePath::parse(p).unwrap().as_str(), p);
        }
    }

    #[test]
    fn rejects_malformed_paths_with_invalid_argument() {
        let long_component = format!("/{}", "a".repeat(256));
        for p in [
            "",
            "a",
            "a/b",
            "/a/",
            "//a",
            "/a//b",
            "/a/./b",
            "/a/../b",
            "/..",
            "/a b",
            "/a\0b",
            "/a\nb",
            "/zookeeper",
            "/zookeeper/quota",
            "/é",
            long_component.as_str(),
        ] {
            let err = NodePath::parse(p).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{p:?}");
        }
        let too_long = "/abcdefgh".repeat(200);
        assert_eq!(
            NodePath::parse(&too_long).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn navigation() {
        let p = NodePath::parse("/a/b/c").unwrap();
        assert_eq!(p.name(), "c");
        assert_eq!(p.depth(), 3);
        assert_eq!(p.parent().unwrap().as_str(), "/a/b");
        let ancestors: Vec<_> = p.ancestors().iter().map(|a| a.to_string()).collect();
        assert_eq!(ancestors, ["/a", "/a/b"]);
        assert_eq!(
            NodePath::parse("/a").unwrap().parent().unwrap(),
            NodePath::root()
        );
        assert!(NodePath::root().parent().is_none());
        assert_eq!(NodePath::root().join("x").unwrap().as_str(), "/x");
        assert!(p.join("..").is_err());
        assert!(p.join("x/y").is_err());
        assert!(p.starts_with(&NodePath::parse("/a/b").unwrap()));
        assert!(!NodePath::parse("/a/bc")
            .unwrap()
            .starts_with(&NodePath::parse("/a/b").unwrap()));
        let mut sorted: Vec<NodePath> = ["/a-b", "/a/b", "/a", "/"]
            .iter()
            .map(|s| NodePath::parse(s).unwrap())
            .collect();
        sorted.sort();
        let sorted: Vec<&str> = sorted.iter().map(NodePath::as_str).collect();
        assert_eq!(
            sorted,
            ["/", "/a", "/a/b", "/a-b"],
            "subtrees are contiguous"
        );
    }
}
