//! The edit form: a table of rows for managed lists, maps, mapped lists
//! and the decider, a text editor for JSON, text and environments.

use maud::{html, Markup};

use crate::auth::SignedIn;
use crate::editors::{Editor, ItemType, Row};
use crate::kind::ConfigKind;
use crate::pages::layout::csrf_field;

/// The form editing `name` from version `base`, with `blanks` empty rows
/// to type new ones into, and an error from the last attempt.
pub fn editor_form(
    who: &SignedIn,
    name: &str,
    editor: &Editor,
    base: u64,
    blanks: usize,
    error: Option<&str>,
) -> Markup {
    let kind = editor.kind;
    let rows: Vec<&Row> = editor
        .rows
        .iter()
        .filter(|r| !(r.key.trim().is_empty() && r.value.trim().is_empty()))
        .collect();
    let blank = Row::default();
    let all: Vec<&Row> = rows
        .iter()
        .copied()
        .chain(std::iter::repeat_n(&blank, blanks))
        .collect();
    let keyed = matches!(
        kind,
        ConfigKind::Map | ConfigKind::MappedList | ConfigKind::Decider
    );
    html! {
        form #editor method="post" action=(format!("/config/{name}/review")) {
            (csrf_field(who))
            input type="hidden" name="base" value=(base);
            input type="hidden" name="kind" value=(kind.as_str());
            @if let Some(error) = error { p.notice.error #error role="alert" { (error) " Nothing was saved." } }
            @if kind.is_table() {
                @if kind != ConfigKind::Decider {
                    p {
                        label for="item_type" { "Item type " }
                        select #item_type name="item_type" {
                            @for t in ItemType::ALL {
                                option value=(t.as_str()) selected[t == editor.item_type] { (t.as_str()) }
                            }
                        }
                    }
                }
                table #rows {
                    thead { tr {
                        th { "#" }
                        @if keyed { th { @if kind == ConfigKind::Decider { "flag" } @else { "key" } } }
                        th { @match kind { ConfigKind::MappedList => "items (one per line)", ConfigKind::Decider => "value in [0, 100]", ConfigKind::List => "item", _ => "value" } }
                        th { "remove" }
                    } }
                    tbody {
                        @for (i, row) in all.iter().enumerate() {
                            tr {
                                td.muted { (i + 1) }
                                @if keyed {
                                    td { input.mono type="text" name="key" value=(row.key) aria-label=(format!("key {}", i + 1)); }
                                }
                                td {
                                    @match kind {
                                        ConfigKind::MappedList => { textarea name="value" aria-label=(format!("items {}", i + 1)) { (row.value) } }
                                        ConfigKind::Decider => { input.mono type="number" name="value" min="0" max="100" step="any" value=(row.value) aria-label=(format!("value {}", i + 1)); }
                                        _ => { input.mono type="text" name="value" value=(row.value) aria-label=(format!("item {}", i + 1)); }
                                    }
                                }
                                td { input type="checkbox" name="remove" value=(i) aria-label=(format!("remove {}", i + 1)); }
                            }
                        }
                    }
                }
                input type="hidden" name="blanks" value=(blanks);
            } @else {
                textarea #text name="content" spellcheck="false" aria-label="content" { (editor.text) }
            }
            div.actions {
                @if kind.is_table() {
                    button.secondary #add-row type="submit" name="action" value="add_row"
                        formaction=(format!("/config/{name}/edit"))
                        hx-post=(format!("/config/{name}/edit")) hx-target="#editor" hx-select="#editor" hx-swap="outerHTML" {
                        "Add row"
                    }
                }
                button #review type="submit" { "Review changes" }
                a.button.secondary href=(format!("/config/{name}")) { "Cancel" }
            }
        }
    }
}
