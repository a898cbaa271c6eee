//! Line diffs of two contents, as HTML. JSON is pretty-printed first, so
//! a change to one item of a one-line KingPin list shows as one line.

use maud::{html, Markup};
use similar::{ChangeTag, TextDiff};

use crate::editors::pretty;

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// The diff from `old` to `new`, with how many lines were added and
/// removed.
pub fn render(old: &[u8], new: &[u8]) -> (Markup, usize, usize) {
    let (old, new) = (pretty(old), pretty(new));
    let diff = TextDiff::from_lines(&old, &new);
    let (mut added, mut removed) = (0, 0);
    let groups = diff.grouped_ops(CONTEXT);
    let markup = html! {
        @if groups.is_empty() {
            p.muted { "No change." }
        } @else {
            table.diff {
                @for (i, group) in groups.iter().enumerate() {
                    @if i > 0 { tr.gap { td colspan="3" { "⋯" } } }
                    @for op in group {
                        @for change in diff.iter_changes(op) {
                            @let (class, sign) = match change.tag() {
                                ChangeTag::Delete => { removed += 1; ("del", "-") }
                                ChangeTag::Insert => { added += 1; ("ins", "+") }
                                ChangeTag::Equal => ("eq", " "),
                            };
                            tr class=(class) {
                                td.ln { (change.old_index().map(|i| (i + 1).to_string()).unwrap_or_default()) }
                                td.ln { (change.new_index().map(|i| (i + 1).to_string()).unwrap_or_default()) }
                                td { code { (sign) " " (change.value().trim_end_matches('\n')) } }
                            }
                        }
                    }
                }
            }
        }
    };
    (markup, added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_changed_item_is_one_line() {
        let (markup, added, removed) = render(b"[\"a\", \"b\"]", b"[\"a\", \"c\"]");
        assert_eq!((added, removed), (1, 1));
        let html = markup.into_string();
        assert!(
            html.contains("+ ") && html.contains("&quot;c&quot;"),
            "{html}"
        );
        let (markup, added, removed) = render(b"x", b"x");
        assert_eq!((added, removed), (0, 0));
        assert!(markup.into_string().contains("No change"));
    }
}
