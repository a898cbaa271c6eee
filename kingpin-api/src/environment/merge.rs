//! How views are made: the contents of an environment's chain (root first)
//! merged by JSON Merge Patch (RFC 7396), where each value of a view came
//! from, and how Jones's top-level merge is reproduced on import.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::names::EnvPath;
use crate::error::{Error, Result};

/// An environment's own content, or a view: a JSON object.
pub type Content = Map<String, Value>;

/// Parses content that must be a JSON object.
pub fn parse_content(what: &str, bytes: &[u8]) -> Result<Content> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Error::invalid(format!(
            "{what} must be a JSON object, not {}",
            kind_of(&other)
        ))),
        Err(e) => Err(Error::invalid(format!("{what} is not valid JSON: {e}"))),
    }
}

/// `value` as content, when it is an object.
pub fn content_of(what: &str, value: Value) -> Result<Content> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(Error::invalid(format!(
            "{what} must be a JSON object, not {}",
            kind_of(&other)
        ))),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Content as stored and as written to a host's file: pretty JSON with a
/// final newline, so `cat` shows it well.
pub fn content_bytes(content: &Content) -> Bytes {
    // A map of JSON values always serializes.
    let mut bytes = serde_json::to_vec_pretty(content).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// The view of a chain of contents, root first: each merged onto the
/// result of the ones before by JSON Merge Patch. Objects merge key by key
/// at every depth, `null` removes an inherited key, anything else
/// replaces.
pub fn merge_chain<'a>(contents: impl IntoIterator<Item = &'a Content>) -> Content {
    let mut view = Value::Object(Map::new());
    for content in contents {
        json_patch::merge(&mut view, &Value::Object(content.clone()));
    }
    match view {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Where one value of a view came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueSource {
    /// The value's place, as a JSON Pointer (`/db/pool_size`).
    pub pointer: String,
    /// The value.
    pub value: Value,
    /// The environment whose content set it.
    pub environment: EnvPath,
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Every leaf of the view of `chain` (a value that is not an object, or an
/// empty object) with the environment that set it: the last one in the
/// chain whose content holds a value (not `null`) at that place.
pub fn sources(chain: &[(EnvPath, &Content)]) -> Vec<ValueSource> {
    let view = merge_chain(chain.iter().map(|(_, c)| *c));
    let mut leaves = Vec::new();
    collect_leaves(&mut Vec::new(), &view, &mut leaves);
    leaves
        .into_iter()
        .map(|(keys, value)| {
            let environment = chain
                .iter()
                .rev()
                .find(|(_, content)| value_at(content, &keys).is_some_and(|v| !v.is_null()))
                .map(|(env, _)| env.clone())
                .unwrap_or_else(EnvPath::root);
            ValueSource {
                pointer: keys.iter().map(|k| format!("/{}", escape(k))).collect(),
                value,
                environment,
            }
        })
        .collect()
}

fn collect_leaves(prefix: &mut Vec<String>, map: &Content, out: &mut Vec<(Vec<String>, Value)>) {
    for (key, value) in map {
        prefix.push(key.clone());
        match value {
            Value::Object(inner) if !inner.is_empty() => collect_leaves(prefix, inner, out),
            other => out.push((prefix.clone(), other.clone())),
        }
        prefix.pop();
    }
}

fn value_at<'a>(content: &'a Content, keys: &[String]) -> Option<&'a Value> {
    let (first, rest) = keys.split_first()?;
    let mut value = content.get(first)?;
    for key in rest {
        value = value.as_object()?.get(key)?;
    }
    Some(value)
}

/// Jones's view of a chain: top-level keys only, each child's value
/// replacing its parent's whole.
pub fn jones_merge<'a>(contents: impl IntoIterator<Item = &'a Content>) -> Content {
    let mut view = Map::new();
    for content in contents {
        for (key, value) in content {
            view.insert(key.clone(), value.clone());
        }
    }
    view
}

/// Content that makes `merge(parent_view, content)` equal `target`, as
/// close to `own` as can be: `own` with `null`s where the deep merge
/// would keep nested keys of the parent that Jones's top-level merge
/// dropped, or, when that is not enough (Jones's stored view did not match
/// its contents), the merge patch from `parent_view` to `target`.
///
/// Errors with the places of `target` that hold `null`: a merge patch
/// removes such keys and cannot write them.
pub fn reproducing_content(
    parent_view: &Content,
    own: &Content,
    target: &Content,
) -> std::result::Result<Content, Vec<String>> {
    let mut padded = Map::new();
    for (key, value) in own {
        let padded_value = match parent_view.get(key) {
            Some(parent) => pad_with_nulls(parent, value),
            None => value.clone(),
        };
        padded.insert(key.clone(), padded_value);
    }
    if merge_chain([parent_view, &padded]) == *target {
        return Ok(padded);
    }
    let patch = merge_patch_between(parent_view, target);
    if merge_chain([parent_view, &patch]) == *target {
        return Ok(patch);
    }
    let mut nulls = Vec::new();
    null_places(&mut String::new(), target, &mut nulls);
    Err(nulls)
}

/// `child` with a `null` for every key of `parent` it lacks, at every
/// depth where both are objects: merged onto `parent`, it gives `child`.
fn pad_with_nulls(parent: &Value, child: &Value) -> Value {
    match (parent, child) {
        (Value::Object(parent), Value::Object(child)) => {
            let mut padded = Map::new();
            for (key, value) in child {
                let value = match parent.get(key) {
                    Some(p) => pad_with_nulls(p, value),
                    None => value.clone(),
                };
                padded.insert(key.clone(), value);
            }
            for key in parent.keys() {
                if !child.contains_key(key) {
                    padded.insert(key.clone(), Value::Null);
                }
            }
            Value::Object(padded)
        }
        _ => child.clone(),
    }
}

/// The merge patch that turns `from` into `to`.
fn merge_patch_between(from: &Content, to: &Content) -> Content {
    let mut patch = Map::new();
    for key in from.keys() {
        if !to.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    for (key, value) in to {
        match (from.get(key), value) {
            (Some(old), new) if old == new => {}
            (Some(Value::Object(old)), Value::Object(new)) => {
                patch.insert(key.clone(), Value::Object(merge_patch_between(old, new)));
            }
            _ => {
                patch.insert(key.clone(), value.clone());
            }
        }
    }
    patch
}

fn null_places(prefix: &mut String, map: &Content, out: &mut Vec<String>) {
    for (key, value) in map {
        let len = prefix.len();
        prefix.push('/');
        prefix.push_str(&escape(key));
        match value {
            Value::Null => out.push(prefix.clone()),
            Value::Object(inner) => null_places(prefix, inner, out),
            _ => {}
        }
        prefix.truncate(len);
    }
}

/// The places where `adjusted` differs from `own`, as JSON Pointers.
pub fn differences(own: &Content, adjusted: &Content) -> Vec<String> {
    let mut out = Vec::new();
    diff_places(&mut String::new(), own, adjusted, &mut out);
    out
}

fn diff_places(prefix: &mut String, a: &Content, b: &Content, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let len = prefix.len();
        prefix.push('/');
        prefix.push_str(&escape(key));
        match (a.get(key), b.get(key)) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => diff_places(prefix, x, y, out),
            (x, y) if x != y => out.push(prefix.clone()),
            _ => {}
        }
        prefix.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn content(value: Value) -> Content {
        content_of("test", value).unwrap()
    }

    #[test]
    fn deep_merge_with_null_removal_and_sources() {
        let root = content(json!({"db": {"host": "a", "pool": 5}, "debug": true, "name": "x"}));
        let prod = content(json!({"db": {"pool": 20}, "debug": null}));
        let leaf = content(json!({"db": {"host": "b"}, "extra": {}}));
        let view = merge_chain([&root, &prod, &leaf]);
        assert_eq!(
            Value::Object(view),
            json!({"db": {"host": "b", "pool": 20}, "name": "x", "extra": {}})
        );
        let chain = [
            (EnvPath::root(), &root),
            (EnvPath::parse("/prod").unwrap(), &prod),
            (EnvPath::parse("/prod/east").unwrap(), &leaf),
        ];
        let sources: Vec<(String, String)> = sources(&chain)
            .into_iter()
            .map(|s| (s.pointer, s.environment.to_string()))
            .collect();
        let expected = [
            ("/db/host", "/prod/east"),
            ("/db/pool", "/prod"),
            ("/extra", "/prod/east"),
            ("/name", "/"),
        ];
        for (pointer, env) in expected {
            assert!(
                sources.contains(&(pointer.to_owned(), env.to_owned())),
                "{pointer} from {env}: {sources:?}"
            );
        }
        assert_eq!(sources.len(), 4);
    }

    #[test]
    fn non_objects_are_refused() {
        for bad in ["[1]", "3", "\"s\"", "null", "{", ""] {
            assert!(parse_content("x", bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(parse_content("x", b"{\"a\": 1}").is_ok());
    }

    #[test]
    fn jones_views_are_reproduced_with_nulls() {
        let root = content(json!({"db": {"host": "a", "pool": 5}, "keep": 1}));
        let child = content(json!({"db": {"host": "b"}}));
        let jones = jones_merge([&root, &child]);
        assert_eq!(
            Value::Object(jones.clone()),
            json!({"db": {"host": "b"}, "keep": 1})
        );
        assert_ne!(merge_chain([&root, &child]), jones, "deep merge differs");
        let fixed = reproducing_content(&merge_chain([&root]), &child, &jones).unwrap();
        assert_eq!(
            Value::Object(fixed.clone()),
            json!({"db": {"host": "b", "pool": null}})
        );
        assert_eq!(merge_chain([&root, &fixed]), jones);
        assert_eq!(differences(&child, &fixed), ["/db/pool"]);
        // A stale stored view is reproduced too.
        let stale = content(json!({"db": {"host": "old"}}));
        let fixed = reproducing_content(&merge_chain([&root]), &child, &stale).unwrap();
        assert_eq!(merge_chain([&root, &fixed]), stale);
        // Nulls cannot be written by a merge patch.
        let with_null = content(json!({"db": null, "keep": 1}));
        let err = reproducing_content(&root, &content(json!({"db": null})), &with_null);
        assert_eq!(err.unwrap_err(), ["/db"]);
    }
}
