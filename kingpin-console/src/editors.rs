//! Editing content as tables or text: a config's content turned into
//! rows (or text) for the edit form, and a submitted form turned back into
//! content — validated, with a message naming the row, or the line and
//! column, that is wrong.

use bytes::Bytes;
use kingpin_api::environment::content_of;
use kingpin_api::managed::to_kingpin_json;
use serde_json::{Map, Value};

use crate::form::FormData;
use crate::kind::ConfigKind;

/// The type of a table's items (a list's items, a map's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemType {
    /// Strings, typed as they are.
    String,
    /// Whole numbers.
    Int,
    /// Numbers.
    Float,
    /// `true` or `false`.
    Bool,
    /// Any JSON value, typed as JSON.
    Json,
}

impl ItemType {
    /// Every type, for the type selector.
    pub const ALL: [ItemType; 5] = [
        ItemType::String,
        ItemType::Int,
        ItemType::Float,
        ItemType::Bool,
        ItemType::Json,
    ];

    /// The type's name in forms.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemType::String => "string",
            ItemType::Int => "int",
            ItemType::Float => "float",
            ItemType::Bool => "bool",
            ItemType::Json => "json",
        }
    }

    fn parse(text: &str) -> ItemType {
        ItemType::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .unwrap_or(ItemType::String)
    }

    /// What an item of this type is, for messages.
    fn described(self) -> &'static str {
        match self {
            ItemType::String => "a string",
            ItemType::Int => "a whole number",
            ItemType::Float => "a number",
            ItemType::Bool => "true or false",
            ItemType::Json => "JSON",
        }
    }
}

/// The type all of `values` share (strings when there are none).
pub fn infer_type<'a>(values: impl IntoIterator<Item = &'a Value>) -> ItemType {
    let mut found: Option<ItemType> = None;
    for value in values {
        let this = match value {
            Value::String(_) => ItemType::String,
            Value::Number(n) if n.is_i64() || n.is_u64() => ItemType::Int,
            Value::Number(_) => ItemType::Float,
            Value::Bool(_) => ItemType::Bool,
            _ => ItemType::Json,
        };
        found = Some(match (found, this) {
            (None, t) => t,
            (Some(a), b) if a == b => a,
            (Some(ItemType::Int | ItemType::Float), ItemType::Int | ItemType::Float) => {
                ItemType::Float
            }
            _ => ItemType::Json,
        });
    }
    found.unwrap_or(ItemType::String)
}

/// An item as typed in a cell.
pub fn show_item(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A cell's text as an item of type `ty`; `what` names the cell.
fn parse_item(text: &str, ty: ItemType, what: &str) -> Result<Value, String> {
    let bad = || {
        format!(
            "{what} ({text:?}) is not {}, as the items of this config are",
            ty.described()
        )
    };
    match ty {
        ItemType::String => Ok(Value::String(text.to_owned())),
        ItemType::Int => text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| bad()),
        ItemType::Float => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .ok_or_else(bad),
        ItemType::Bool => match text.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(bad()),
        },
        ItemType::Json => {
            serde_json::from_str(text).map_err(|e| format!("{what}: {}", json_error(&e)))
        }
    }
}

/// A JSON error as "line L, column C: what".
pub fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let what = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(what, _)| what);
    format!(
        "invalid JSON at line {}, column {}: {what}",
        e.line(),
        e.column()
    )
}

/// One table row: a list item, or a key with its value (a mapped list's
/// value is its items, one per line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    /// The key (maps, mapped lists, the decider).
    pub key: String,
    /// The item, value, or items.
    pub value: String,
}

/// What the edit form shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Editor {
    /// How it is edited.
    pub kind: ConfigKind,
    /// The items' type (tables).
    pub item_type: ItemType,
    /// The rows (tables).
    pub rows: Vec<Row>,
    /// The text (JSON, text, environments).
    pub text: String,
}

impl Editor {
    /// The editor of `content` as `kind`; content that does not fit the
    /// kind is an error.
    pub fn from_content(kind: ConfigKind, content: &[u8]) -> Result<Editor, String> {
        let mut editor = Editor {
            kind,
            item_type: ItemType::String,
            rows: Vec::new(),
            text: String::new(),
        };
        if !kind.is_table() {
            editor.text = match kind {
                ConfigKind::Text => String::from_utf8_lossy(content).into_owned(),
                _ => pretty(content),
            };
            return Ok(editor);
        }
        let value: Value = if content.iter().all(u8::is_ascii_whitespace) {
            if kind == ConfigKind::List {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            }
        } else {
            serde_json::from_slice(content).map_err(|e| json_error(&e))?
        };
        match (kind, value) {
            (ConfigKind::List, Value::Array(items)) => {
                editor.item_type = infer_type(&items);
                editor.rows = items
                    .iter()
                    .map(|v| Row {
                        key: String::new(),
                        value: show_item(v),
                    })
                    .collect();
            }
            (ConfigKind::Map | ConfigKind::Decider, Value::Object(map)) => {
                editor.item_type = if kind == ConfigKind::Decider {
                    ItemType::Float
                } else {
                    infer_type(map.values())
                };
                editor.rows = map
                    .iter()
                    .map(|(k, v)| Row {
                        key: k.clone(),
                        value: show_item(v),
                    })
                    .collect();
            }
            (ConfigKind::MappedList, Value::Object(map)) => {
                editor.item_type = infer_type(map.values().filter_map(Value::as_array).flatten());
                for (key, items) in &map {
                    let items = items
                        .as_array()
                        .ok_or_else(|| format!("the value of {key:?} is not a list"))?;
                    editor.rows.push(Row {
                        key: key.clone(),
                        value: items.iter().map(show_item).collect::<Vec<_>>().join("\n"),
                    });
                }
            }
            (kind, _) => return Err(format!("the content is not a {kind}")),
        }
        Ok(editor)
    }

    /// The editor as the user left it in a submitted form (rows marked for
    /// removal are dropped; blank rows are kept for typing into).
    pub fn from_form(kind: ConfigKind, form: &FormData) -> Editor {
        let removed: Vec<usize> = form
            .all("remove")
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect();
        let values = form.all("value");
        let keys = form.all("key");
        let rows = values
            .iter()
            .enumerate()
            .filter(|(i, _)| !removed.contains(i))
            .map(|(i, value)| Row {
                key: keys.get(i).map(|k| k.to_string()).unwrap_or_default(),
                value: value.to_string(),
            })
            .collect();
        Editor {
            kind,
            item_type: if kind == ConfigKind::Decider {
                ItemType::Float
            } else {
                ItemType::parse(form.get("item_type").unwrap_or("string"))
            },
            rows,
            text: form.get("content").unwrap_or_default().to_owned(),
        }
    }

    /// The content the editor holds, validated: rows of the wrong type,
    /// duplicate keys or items, decider values outside [0, 100], JSON
    /// that does not parse are errors naming the row or line and column.
    pub fn to_content(&self) -> Result<Bytes, String> {
        let rows = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| !(r.key.trim().is_empty() && r.value.trim().is_empty()));
        match self.kind {
            ConfigKind::Text => Ok(Bytes::from(self.text.clone())),
            ConfigKind::Json => {
                serde_json::from_str::<Value>(&self.text).map_err(|e| json_error(&e))?;
                Ok(Bytes::from(self.text.clone()))
            }
            ConfigKind::Environment => {
                let value: Value = serde_json::from_str(&self.text).map_err(|e| json_error(&e))?;
                let content =
                    content_of("the environment", value).map_err(|e| e.message().to_owned())?;
                Ok(Bytes::from(to_kingpin_json(&Value::Object(content))))
            }
            ConfigKind::EnvironmentView => Err(
                "an environment's view is derived from its environments: edit those instead".into(),
            ),
            ConfigKind::List => {
                let mut items: Vec<Value> = Vec::new();
                for (i, row) in rows {
                    let item = parse_item(&row.value, self.item_type, &format!("item {}", i + 1))?;
                    if let Some(first) = items.iter().position(|v| *v == item) {
                        return Err(format!(
                            "item {} ({:?}) repeats item {}: a list holds distinct items",
                            i + 1,
                            row.value,
                            first + 1
                        ));
                    }
                    items.push(item);
                }
                Ok(Bytes::from(to_kingpin_json(&Value::Array(items))))
            }
            ConfigKind::Map | ConfigKind::Decider | ConfigKind::MappedList => {
                let mut map = Map::new();
                for (i, row) in rows {
                    let key = row.key.trim();
                    if key.is_empty() {
                        return Err(format!("row {} has a value but no key", i + 1));
                    }
                    let value = match self.kind {
                        ConfigKind::MappedList => Value::Array(
                            row.value
                                .lines()
                                .filter(|l| !l.trim().is_empty())
                                .enumerate()
                                .map(|(j, line)| {
                                    parse_item(
                                        line,
                                        self.item_type,
                                        &format!("item {} of {key:?}", j + 1),
                                    )
                                })
                                .collect::<Result<_, _>>()?,
                        ),
                        ConfigKind::Decider => {
                            let number: f64 = row.value.trim().parse().map_err(|_| {
                                format!(
                                    "the value of flag {key:?} ({:?}) is not a number",
                                    row.value
                                )
                            })?;
                            kingpin_api::decider::validate(key, number)
                                .map_err(|e| e.message().to_owned())?;
                            serde_json::to_value(number).map_err(|e| e.to_string())?
                        }
                        _ => parse_item(
                            &row.value,
                            self.item_type,
                            &format!("the value of {key:?}"),
                        )?,
                    };
                    if map.insert(key.to_owned(), value).is_some() {
                        return Err(format!("key {key:?} appears twice"));
                    }
                }
                Ok(Bytes::from(to_kingpin_json(&Value::Object(map))))
            }
        }
    }
}

/// JSON pretty-printed for reading and diffing (KingPin's files are one
/// line); anything else as text.
pub fn pretty(content: &[u8]) -> String {
    match serde_json::from_slice::<Value>(content) {
        Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(content).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> FormData {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        FormData::parse(body.as_bytes())
    }

    #[test]
    fn a_list_round_trips_and_refuses_items_of_another_type() {
        let editor = Editor::from_content(ConfigKind::List, b"[1, 2]").unwrap();
        assert_eq!(editor.item_type, ItemType::Int);
        let edited = Editor::from_form(
            ConfigKind::List,
            &form(&[
                ("item_type", "int"),
                ("value", "1"),
                ("value", "2"),
                ("value", "3"),
                ("remove", "0"),
            ]),
        );
        assert_eq!(edited.to_content().unwrap(), Bytes::from("[2, 3]"));
        let bad = Editor::from_form(
            ConfigKind::List,
            &form(&[("item_type", "int"), ("value", "1"), ("value", "abc")]),
        );
        let err = bad.to_content().unwrap_err();
        assert!(
            err.contains("item 2") && err.contains("whole number"),
            "{err}"
        );
    }

    #[test]
    fn decider_values_stay_in_range() {
        let ok = Editor::from_form(
            ConfigKind::Decider,
            &form(&[("key", "new_feed"), ("value", "20")]),
        );
        assert_eq!(
            ok.to_content().unwrap(),
            Bytes::from("{\"new_feed\": 20.0}")
        );
        let err = Editor::from_form(
            ConfigKind::Decider,
            &form(&[("key", "new_feed"), ("value", "101")]),
        )
        .to_content()
        .unwrap_err();
        assert!(err.contains("outside [0, 100]"), "{err}");
    }

    #[test]
    fn json_errors_name_line_and_column() {
        let editor = Editor::from_form(
            ConfigKind::Json,
            &form(&[("content", "{\n  \"a\": 1,\n  oops\n}")]),
        );
        let err = editor.to_content().unwrap_err();
        assert!(err.starts_with("invalid JSON at line 3, column 3"), "{err}");
        let env = Editor::from_form(ConfigKind::Environment, &form(&[("content", "[1]")]));
        assert!(env.to_content().unwrap_err().contains("object"));
    }

    #[test]
    fn mapped_lists_take_one_item_per_line() {
        let editor = Editor::from_form(
            ConfigKind::MappedList,
            &form(&[
                ("key", "b"),
                ("value", "x\ny\n"),
                ("key", "a"),
                ("value", "z"),
            ]),
        );
        assert_eq!(
            editor.to_content().unwrap(),
            Bytes::from("{\"a\": [\"z\"], \"b\": [\"x\", \"y\"]}")
        );
    }
}
