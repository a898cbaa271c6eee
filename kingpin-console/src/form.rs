//! Submitted forms: `application/x-www-form-urlencoded` bodies whose
//! fields may repeat (one `item` per table row).

use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};

use crate::error::PageError;

/// Largest form accepted: a config's content travels in one field.
pub const MAX_FORM_BYTES: usize = 17 * 1024 * 1024;

/// The fields of a submitted form, in order.
#[derive(Debug, Clone, Default)]
pub struct FormData {
    fields: Vec<(String, String)>,
}

impl FormData {
    /// Parses an urlencoded body.
    pub fn parse(body: &[u8]) -> Self {
        FormData {
            fields: form_urlencoded::parse(body).into_owned().collect(),
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of `name`, or a 422 naming the missing field.
    pub fn require(&self, name: &str) -> Result<&str, PageError> {
        self.get(name)
            .ok_or_else(|| PageError::invalid(format!("the form has no {name} field")))
    }

    /// `name` as a version number (a missing or empty field is 0: the
    /// config did not exist when the page was loaded).
    pub fn version(&self, name: &str) -> Result<u64, PageError> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(0),
            Some(text) => text.parse().map_err(|_| {
                PageError::invalid(format!("{name} {text:?} is not a version number"))
            }),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                PageError::too_large("the form is larger than the console accepts (17 MiB)")
                    .into_response()
            })?;
        let _ = state;
        Ok(FormData::parse(&bytes))
    }
}
