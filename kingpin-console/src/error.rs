//! Errors as pages: a status and a message a person can act on.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kingpin_api::{Error, ErrorKind};

use crate::pages::layout;

/// A failed request: its status and what to tell the user.
#[derive(Debug, Clone)]
pub struct PageError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the user (never a secret).
    pub message: String,
}

impl PageError {
    /// A page error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        PageError {
            status,
            message: message.into(),
        }
    }

    /// 422: the input was wrong; nothing was written.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 403: the signed-in user may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }
}

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        let status = match e.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::InvalidArgument => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::BadVersion | ErrorKind::AlreadyExists | ErrorKind::NotEmpty => {
                StatusCode::CONFLICT
            }
            ErrorKind::Unauthorized => StatusCode::FORBIDDEN,
            ErrorKind::Unavailable | ErrorKind::SessionExpired => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(error = %e, "console request failed");
        }
        PageError::new(status, e.to_string())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error").to_owned();
        (self.status, layout::bare(&title, &self.message)).into_response()
    }
}
