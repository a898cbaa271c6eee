//! Items and values typed by `--type`, parsed from the command line before
//! anything is opened.

use kingpin::kingpin_api::Error;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A type a managed list, map or mapped list can hold, parsed from one
/// command-line argument.
pub trait Item: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Parses one argument; `InvalidArgument` naming it otherwise.
    fn parse(text: &str) -> Result<Self, Error>;
}

fn not_a(text: &str, what: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid(format!(
        "{text:?} is not {what}: {why}; nothing was written"
    ))
}

impl Item for String {
    fn parse(text: &str) -> Result<Self, Error> {
        Ok(text.to_owned())
    }
}

impl Item for i64 {
    fn parse(text: &str) -> Result<Self, Error> {
        text.parse().map_err(|e| not_a(text, "an int", e))
    }
}

impl Item for f64 {
    fn parse(text: &str) -> Result<Self, Error> {
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(value),
            Ok(_) => Err(not_a(text, "a float", "JSON has no NaN or infinity")),
            Err(e) => Err(not_a(text, "a float", e)),
        }
    }
}

impl Item for bool {
    fn parse(text: &str) -> Result<Self, Error> {
        match text {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(not_a(text, "a bool", "expected true or false")),
        }
    }
}

impl Item for Value {
    fn parse(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(|e| not_a(text, "JSON", e))
    }
}

/// Every argument parsed as `T`; the first bad one is the error.
pub fn parse_all<T: Item>(texts: &[String]) -> Result<Vec<T>, Error> {
    texts.iter().map(|text| T::parse(text)).collect()
}

/// `value` as JSON, for printing.
pub fn to_json<T: Serialize>(value: &T) -> Result<Value, Error> {
    serde_json::to_value(value)
        .map_err(|e| Error::invalid(format!("a value cannot be printed as JSON: {e}")))
}

/// Runs `$body` with the type alias `$T` bound to the Rust type of the
/// [`ItemType`](crate::cli::ItemType) `$ty`.
macro_rules! with_item_type {
    ($ty:expr, $T:ident => $body:expr) => {
        match $ty {
            $crate::cli::ItemType::String => {
                type $T = String;
                $body
            }
            $crate::cli::ItemType::Int => {
                type $T = i64;
                $body
            }
            $crate::cli::ItemType::Float => {
                type $T = f64;
                $body
            }
            $crate::cli::ItemType::Bool => {
                type $T = bool;
                $body
            }
            $crate::cli::ItemType::Json => {
                type $T = serde_json::Value;
                $body
            }
        }
    };
}
pub(crate) use with_item_type;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_parse_by_type() {
        assert_eq!(i64::parse("-5").unwrap(), -5);
        assert_eq!(f64::parse("2.5").unwrap(), 2.5);
        assert!(bool::parse("true").unwrap());
        assert_eq!(Value::parse("[1]").unwrap(), serde_json::json!([1]));
        for bad in [
            i64::parse("x").err(),
            f64::parse("NaN").err(),
            bool::parse("yes").err(),
            Value::parse("{").err(),
        ] {
            let err = bad.unwrap();
            assert!(err.message().contains("nothing was written"), "{err}");
        }
    }
}
