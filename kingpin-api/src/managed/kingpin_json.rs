//! JSON text byte-for-byte as KingPin wrote it.
//!
//! KingPin serialized managed data with Python's `json.dumps` (lists as
//! they are, maps with `sort_keys=True`): `", "` and `": "` separators,
//! every non-ASCII character escaped as `\uXXXX`, and floats in Python's
//! `repr` form (`1e+16`, `1e-05`, `2.0`). Applications that compare or
//! hash KingPin's files keep working when kingpin writes them.

use serde_json::Value;

/// `value` as Python's `json.dumps(value, sort_keys=True)` writes it.
pub fn to_kingpin_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&python_float_repr(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorted here rather than trusting the map's order: serde_json's
            // `preserve_order` feature, if any crate turns it on, would
            // change it.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, key);
                out.push_str(": ");
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Python's `ensure_ascii` escaping: only printable ASCII stays as is.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// `repr(f)` as Python 3 writes it: the shortest digits that round-trip
/// (what serde_json's formatter also finds), laid out by Python's rule —
/// scientific when the decimal exponent is below -4 or 16 and above, with a
/// signed exponent of at least two digits; otherwise positional with at
/// least one fractional digit.
fn python_float_repr(f: f64) -> String {
    let shortest = Value::from(f).to_string();
    let (negative, unsigned) = match shortest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, shortest.as_str()),
    };
    let (digits, point) = shortest_digits(unsigned);
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if digits.is_empty() {
        out.push_str("0.0");
        return out;
    }
    if point <= -4 || point > 16 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exponent = point - 1;
        let sign = if exponent < 0 { '-' } else { '+' };
        out.push_str(&format!("e{sign}{:02}", exponent.abs()));
    } else if point <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat(point.unsigned_abs() as usize));
        out.push_str(&digits);
    } else {
        let point = point as usize;
        if digits.len() <= point {
            out.push_str(&digits);
            out.push_str(&"0".repeat(point - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
    out
}

/// The significant digits of a non-negative decimal (`"123.45"`,
/// `"1.5e-7"`), without leading or trailing zeros, and the position of the
/// decimal point relative to them: the value is `0.<digits> × 10^point`.
fn shortest_digits(text: &str) -> (String, i32) {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = format!("{int_part}{frac_part}");
    let leading_zeros = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_matches('0').to_owned();
    let point = int_part.len() as i32 - leading_zeros as i32 + exponent;
    (digits, point)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_and_maps_use_pythons_separators_and_sorted_keys() {
        assert_eq!(to_kingpin_json(&json!(["a", "b", 3])), r#"["a", "b", 3]"#);
        assert_eq!(to_kingpin_json(&json!([])), "[]");
        assert_eq!(
            to_kingpin_json(&json!({"b": [1, 2], "a": {}, "c": null})),
            r#"{"a": {}, "b": [1, 2], "c": null}"#
        );
    }

    #[test]
    fn non_ascii_and_control_characters_are_escaped_like_python() {
        assert_eq!(
            to_kingpin_json(&json!("é\u{1F600}\"\\\n\u{7f}\u{1}")),
            r#""\u00e9\ud83d\ude00\"\\\n\u007f\u0001""#
        );
    }

    #[test]
    fn floats_follow_python_repr() {
        let cases = [
            (2.0, "2.0"),
            (0.1, "0.1"),
            (-1.5, "-1.5"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.25e17, "1.25e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (12.5, "12.5"),
            (0.0, "0.0"),
            (1e300, "1e+300"),
            (123456789.123, "123456789.123"),
        ];
        for (value, python) in cases {
            assert_eq!(python_float_repr(value), python, "{value}");
        }
    }
}
