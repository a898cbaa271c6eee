//! The catalog: every config's current record (and small contents, for
//! search), re-read in the background, so browsing and searching 10,000
//! configs costs no coordinator round trip per page.
//!
//! It is a cache, never the truth: a config's own page, every edit and
//! every compare-and-set read the store. Writes made through this console
//! update it at once; others show up at the next refresh.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::stream::{self, StreamExt};
use kingpin_api::{ConfigName, ConfigRecord, ConfigStore, ErrorKind, NodePath, Result};

use crate::kind::{infer_kind, kind_by_name, ConfigKind};

/// Contents up to this size are kept for searching.
pub const INDEXED_CONTENT_LIMIT: u64 = 64 * 1024;
/// At most this many content bytes are kept in all.
pub const INDEXED_TOTAL_LIMIT: usize = 32 * 1024 * 1024;
/// Coordinator and blob requests in flight during a refresh.
const CONCURRENCY: usize = 64;

/// One node of the walk: its path, its children, and its record if it is
/// a config.
type Visited = (NodePath, Vec<String>, Option<ConfigRecord>);

/// Subtrees of the coordinator that hold no configs: metaconfigs,
/// serverset members, host status, the console's own records.
const NOT_CONFIGS: [&str; 5] = [
    "/metaconfig",
    "/discovery",
    "/status",
    "/console",
    "/zookeeper",
];

/// One config as last seen.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// Its name.
    pub name: String,
    /// Its kind, when the content (or the name) tells; `None` for content
    /// too large to index.
    pub kind: Option<ConfigKind>,
    /// The current record.
    pub record: ConfigRecord,
    /// The content, when small and text.
    pub text: Option<Arc<str>>,
    /// `text` in ASCII lowercase (same byte offsets), for searching
    /// without folding every content's case on every search.
    folded: Option<Arc<[u8]>>,
}

/// One row of the tree under a prefix.
#[derive(Debug, Clone)]
pub struct TreeRow {
    /// The next name component.
    pub component: String,
    /// The name up to it.
    pub name: String,
    /// The config of exactly that name, if there is one.
    pub entry: Option<CatalogEntry>,
    /// Configs below it (not counting itself).
    pub below: usize,
}

/// Where a search matched.
#[derive(Debug, Clone)]
pub struct SearchHit {
    /// The config.
    pub entry: CatalogEntry,
    /// The name matched.
    pub in_name: bool,
    /// The line of the content that matched, if the content did.
    pub snippet: Option<String>,
}

#[derive(Debug, Default)]
struct Snapshot {
    entries: BTreeMap<String, CatalogEntry>,
    refreshed_ms: u64,
    loaded: bool,
}

/// The catalog of one console.
#[derive(Debug)]
pub struct Catalog {
    store: ConfigStore,
    snapshot: RwLock<Arc<Snapshot>>,
    // One refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
}

fn is_config_subtree(path: &str) -> bool {
    if NOT_CONFIGS
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
    {
        return false;
    }
    // Environment host associations (one node per host) hold no configs.
    let parts: Vec<&str> = path.split('/').collect();
    !(parts.len() >= 4
        && parts[1] == "environments"
        && (parts[3] == "hosts" || parts[3] == "members"))
}

fn name_of(path: &NodePath) -> Option<ConfigName> {
    ConfigName::parse(&path.as_str()[1..].replace('/', ".")).ok()
}

/// Finds `needle` (lowercase) in `haystack`, ignoring ASCII case.
pub fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    if n.is_empty() || n.len() > h.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// The line around byte `at`, cut to about 160 characters.
fn snippet(text: &str, at: usize) -> String {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = &text[start..end];
    let offset = at - start;
    let from = line
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| i + 60 >= offset)
        .unwrap_or(0);
    let cut: String = line[from..].chars().take(160).collect();
    format!("{}{}", if from > 0 { "…" } else { "" }, cut.trim())
}

impl Catalog {
    /// An empty catalog over `store`; [`refresh`](Self::refresh) fills it.
    pub fn new(store: ConfigStore) -> Self {
        Catalog {
            store,
            snapshot: RwLock::default(),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// When the catalog was last re-read (ms since the epoch); 0: never.
    pub fn refreshed_ms(&self) -> u64 {
        self.current().refreshed_ms
    }

    /// How many configs it holds.
    pub fn len(&self) -> usize {
        self.current().entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads it once if it was never read. A request arriving while the
    /// first read runs waits for that read instead of starting another.
    pub async fn ensure_loaded(&self) -> Result<()> {
        if self.current().loaded {
            return Ok(());
        }
        let _one = self.refreshing.lock().await;
        if self.current().loaded {
            return Ok(());
        }
        self.reread().await
    }

    /// Re-reads every config record, and the contents that changed.
    pub async fn refresh(&self) -> Result<()> {
        let _one = self.refreshing.lock().await;
        self.reread().await
    }

    /// [`refresh`](Self::refresh), with the one-refresh lock held.
    async fn reread(&self) -> Result<()> {
        let records = self.walk().await?;
        let previous = self.current();
        let mut entries = BTreeMap::new();
        let mut to_fetch = Vec::new();
        let mut indexed = 0usize;
        for (name, record) in records {
            match previous.entries.get(name.as_str()) {
                Some(old) if old.record.blob_key == record.blob_key => {
                    indexed += old.text.as_ref().map_or(0, |t| t.len());
                    entries.insert(
                        name.as_str().to_owned(),
                        CatalogEntry {
                            record,
                            ..old.clone()
                        },
                    );
                }
                _ => to_fetch.push((name, record)),
            }
        }
        let fetched: Vec<CatalogEntry> = stream::iter(to_fetch)
            .map(|(name, record)| self.entry(name, record))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for mut entry in fetched {
            let size = entry.text.as_ref().map_or(0, |t| t.len());
            if indexed + size > INDEXED_TOTAL_LIMIT {
                entry.text = None;
                entry.folded = None;
            } else {
                indexed += size;
            }
            entries.insert(entry.name.clone(), entry);
        }
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Snapshot {
            entries,
            refreshed_ms: now_ms(),
            loaded: true,
        });
        Ok(())
    }

    /// Re-reads one config (after this console wrote it).
    pub async fn refresh_one(&self, name: &ConfigName) {
        let record = match self.store.record(name).await {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(config = %name, error = %e, "cannot refresh the catalog entry");
                return;
            }
        };
        let entry = match record {
            Some((record, _)) => Some(self.entry(name.clone(), record).await),
            None => None,
        };
        let mut guard = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        let mut next = Snapshot {
            entries: guard.entries.clone(),
            refreshed_ms: guard.refreshed_ms,
            loaded: guard.loaded,
        };
        match entry {
            Some(entry) => next.entries.insert(name.as_str().to_owned(), entry),
            None => next.entries.remove(name.as_str()),
        };
        *guard = Arc::new(next);
    }

    /// A catalog entry for `record`, with its content when small.
    async fn entry(&self, name: ConfigName, record: ConfigRecord) -> CatalogEntry {
        let mut text = None;
        let mut kind = kind_by_name(name.as_str());
        if record.size <= INDEXED_CONTENT_LIMIT {
            match self.store.content(&name, &record).await {
                Ok(content) => {
                    kind = Some(infer_kind(name.as_str(), &content));
                    text = String::from_utf8(content.to_vec())
                        .ok()
                        .map(Arc::<str>::from);
                }
                Err(e) => {
                    tracing::warn!(config = %name, error = %e, "cannot read content for the catalog")
                }
            }
        }
        let folded = text
            .as_deref()
            .map(|t| Arc::from(t.to_ascii_lowercase().into_bytes()));
        CatalogEntry {
            name: name.as_str().to_owned(),
            kind,
            record,
            text,
            folded,
        }
    }

    /// Every config record in the coordinator, level by level.
    async fn walk(&self) -> Result<Vec<(ConfigName, ConfigRecord)>> {
        let coordinator = self.store.coordinator().clone();
        let mut level = vec![NodePath::root()];
        let mut found = Vec::new();
        while !level.is_empty() {
            let visited: Vec<Result<Visited>> = stream::iter(level)
                .map(|path| {
                    let coordinator = coordinator.clone();
                    async move {
                        let children = match coordinator.children(&path).await {
                            Ok(children) => children,
                            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
                            Err(e) => return Err(e),
                        };
                        let record = if path.as_str() == "/" {
                            None
                        } else {
                            match coordinator.get(&path).await {
                                Ok(node) if node.data.first() == Some(&b'{') => {
                                    ConfigRecord::from_json(&node.data, path.as_str()).ok()
                                }
                                Ok(_) => None,
                                Err(e) if e.kind() == ErrorKind::NotFound => None,
                                Err(e) => return Err(e),
                            }
                        };
                        Ok((path, children, record))
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            let mut next = Vec::new();
            for visit in visited {
                let (path, children, record) = visit?;
                if let (Some(record), Some(name)) = (record, name_of(&path)) {
                    found.push((name, record));
                }
                for child in children {
                    let Ok(child) = path.join(&child) else {
                        continue;
                    };
                    if is_config_subtree(child.as_str()) {
                        next.push(child);
                    }
                }
            }
            level = next;
        }
        Ok(found)
    }

    /// One config, if the catalog has it.
    pub fn get(&self, name: &str) -> Option<CatalogEntry> {
        self.current().entries.get(name).cloned()
    }

    /// The current version of every config in `names`, in order, from one
    /// snapshot and without copying entries (the hosts pages look up
    /// thousands).
    pub fn versions<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<Option<u64>> {
        let snapshot = self.current();
        names
            .into_iter()
            .map(|name| snapshot.entries.get(name).map(|e| e.record.version))
            .collect()
    }

    /// The rows directly under `prefix` (empty: the top), for names
    /// `visible` lets through; at most `limit` rows, and how many there
    /// were in all.
    pub fn tree(
        &self,
        prefix: &str,
        visible: impl Fn(&str) -> bool,
        limit: usize,
    ) -> (Vec<TreeRow>, usize) {
        let snapshot = self.current();
        let start = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}.")
        };
        let mut rows: Vec<TreeRow> = Vec::new();
        let mut total = 0;
        for (name, entry) in snapshot.entries.range(start.clone()..) {
            if !name.starts_with(&start) {
                break;
            }
            if !visible(name) {
                continue;
            }
            let rest = &name[start.len()..];
            let component = rest.split('.').next().unwrap_or(rest);
            let is_self = rest.len() == component.len();
            match rows.last_mut() {
                Some(row) if row.component == component => {
                    if is_self {
                        row.entry = Some(entry.clone());
                    } else {
                        row.below += 1;
                    }
                }
                _ => {
                    total += 1;
                    if rows.len() >= limit {
                        continue;
                    }
                    rows.push(TreeRow {
                        component: component.to_owned(),
                        name: format!("{start}{component}"),
                        entry: is_self.then(|| entry.clone()),
                        below: usize::from(!is_self),
                    });
                }
            }
        }
        (rows, total)
    }

    /// Configs whose name or content holds `query` (ignoring case),
    /// names first; at most `limit`, and how many matched in all.
    pub fn search(
        &self,
        query: &str,
        in_content: bool,
        visible: impl Fn(&str) -> bool,
        limit: usize,
    ) -> (Vec<SearchHit>, usize) {
        let needle = query.trim().to_ascii_lowercase();
        if needle.is_empty() {
            return (Vec::new(), 0);
        }
        let snapshot = self.current();
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        let mut by_name = Vec::new();
        let mut by_content = Vec::new();
        let mut total = 0;
        for (name, entry) in &snapshot.entries {
            let in_name = name.contains(&needle);
            let at = match (in_content, entry.text.as_deref(), entry.folded.as_deref()) {
                (true, Some(text), Some(folded)) => finder.find(folded).map(|at| (text, at)),
                _ => None,
            };
            if !(in_name || at.is_some()) || !visible(name) {
                continue;
            }
            total += 1;
            if by_name.len() + by_content.len() >= limit {
                continue;
            }
            let hit = SearchHit {
                entry: entry.clone(),
                in_name,
                snippet: at.map(|(text, at)| snippet(text, at)),
            };
            if in_name {
                by_name.push(hit);
            } else {
                by_content.push(hit);
            }
        }
        by_name.extend(by_content);
        (by_name, total)
    }

    /// Every entry `visible` lets through (for the decider and host pages).
    pub fn entries(&self) -> Vec<CatalogEntry> {
        self.current().entries.values().cloned().collect()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kingpin_api::{ChangeInfo, MemoryBlobStore, MemoryServer};

    #[tokio::test]
    async fn finds_configs_by_prefix_name_and_content_and_skips_other_nodes() {
        let store = ConfigStore::new(
            Arc::new(MemoryServer::new().connect()),
            Arc::new(MemoryBlobStore::new()),
        );
        let who = ChangeInfo::new("alice", "test");
        for (name, content) in [
            ("config.manageddata.spam", "{\"nested\": true}"),
            ("config.manageddata.spam.blacklist", "[\"203.0.113.7\"]"),
            ("config.manageddata.spam.allow", "[\"Example.COM\"]"),
            ("config.app.limits", "{\"rps\": 100}"),
        ] {
            store
                .write(&ConfigName::parse(name).unwrap(), content.into(), &who)
                .await
                .unwrap();
        }
        let meta = NodePath::parse("/metaconfig/config/x").unwrap();
        store
            .coordinator()
            .create(
                &meta,
                br#"{"version": 1}"#,
                kingpin_api::CreateMode::Persistent,
            )
            .await
            .unwrap();
        let catalog = Catalog::new(store);
        catalog.refresh().await.unwrap();
        assert_eq!(catalog.len(), 4);
        let (rows, total) = catalog.tree("config", |_| true, 100);
        assert_eq!(total, 2);
        assert_eq!((rows[0].component.as_str(), rows[0].below), ("app", 1));
        let (rows, _) = catalog.tree("config.manageddata", |_| true, 100);
        assert_eq!(rows[0].below, 2);
        assert!(
            rows[0].entry.is_some(),
            "config.manageddata.spam is itself a config"
        );
        let (hits, _) = catalog.search("example.com", true, |_| true, 10);
        assert_eq!(hits[0].entry.name, "config.manageddata.spam.allow");
        assert!(hits[0].snippet.as_deref().unwrap().contains("Example.COM"));
        let (hits, total) = catalog.search("spam", false, |n| !n.ends_with("allow"), 10);
        assert_eq!((hits.len(), total), (2, 2));
        assert_eq!(
            catalog
                .get("config.manageddata.spam.blacklist")
                .unwrap()
                .kind,
            Some(ConfigKind::List)
        );
    }
}
