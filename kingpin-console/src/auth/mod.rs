//! Who is asking, and may they: sign-in (users file, trusted proxy header,
//! or the local user), sessions, CSRF tokens and roles.

pub mod limiter;
pub mod roles;
pub mod session;
pub mod users;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use ipnet::IpNet;

use crate::error::PageError;
use crate::form::FormData;
use crate::AppState;
use limiter::SignInLimiter;
use roles::{Grants, Role};
use session::{SessionKey, SESSION_COOKIE};
use users::Users;

/// The header htmx requests carry the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field other requests carry it in.
pub const CSRF_FIELD: &str = "csrf";

/// How users are identified, loaded.
#[derive(Debug)]
pub enum Identify {
    /// Passwords, checked against these users.
    Users(Users),
    /// A header set by a trusted proxy.
    Proxy {
        /// The header (lowercase).
        header: String,
        /// Where it is believed from.
        trusted: Vec<IpNet>,
    },
    /// Always this user.
    Local(String),
}

/// Sign-in, sessions and roles.
#[derive(Debug)]
pub struct Auth {
    /// How users are identified.
    pub identify: Identify,
    /// Roles by name prefix.
    pub grants: Grants,
    /// Signs sessions and CSRF tokens.
    pub key: SessionKey,
    /// Failed sign-ins.
    pub limiter: SignInLimiter,
    /// `Secure` cookies.
    pub secure_cookies: bool,
    /// How long a session lasts.
    pub session_lifetime: Duration,
}

/// The signed-in user of a request, with the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Who.
    pub user: String,
    /// The token to put in forms.
    pub csrf: String,
    /// Whether signing out means anything (password sessions).
    pub can_sign_out: bool,
    // What the token is bound to, and the token a request sent in its
    // header, if any.
    binding: String,
    header_token: Option<String>,
    state: Arc<AppState>,
}

impl SignedIn {
    /// The user's highest role on `name`.
    pub fn role(&self, name: &str) -> Option<Role> {
        self.state.auth.grants.role(&self.user, name)
    }

    /// Whether the user has at least `role` on `name`.
    pub fn may(&self, name: &str, role: Role) -> bool {
        self.state.auth.grants.allows(&self.user, name, role)
    }

    /// 403 unless the user has at least `role` on `name`.
    pub fn require(&self, name: &str, role: Role) -> Result<(), PageError> {
        if self.may(name, role) {
            Ok(())
        } else {
            Err(PageError::forbidden(format!(
                "{} needs the {role} role on {name} for this; nothing was changed",
                self.user
            )))
        }
    }

    /// The user's highest role anywhere.
    pub fn best_role(&self) -> Option<Role> {
        self.state.auth.grants.best_role(&self.user)
    }

    /// 403 unless the form (or the htmx header) carries this session's
    /// CSRF token.
    pub fn check_csrf(&self, form: &FormData) -> Result<(), PageError> {
        let token = self
            .header_token
            .as_deref()
            .or_else(|| form.get(CSRF_FIELD));
        match token {
            Some(token) if self.state.auth.key.check_csrf(&self.binding, token) => Ok(()),
            _ => Err(PageError::forbidden(
                "the form's CSRF token is missing or wrong (reload the page and try again); nothing was changed",
            )),
        }
    }
}

/// The client's address, when the server recorded it.
pub fn peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

impl FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Response> {
        let auth = &state.auth;
        let header_token = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (user, binding, can_sign_out) = match &auth.identify {
            Identify::Local(user) => (user.clone(), user.clone(), false),
            Identify::Proxy { header, trusted } => {
                let from_proxy =
                    peer(parts).is_some_and(|ip| trusted.iter().any(|n| n.contains(&ip)));
                let named = parts
                    .headers
                    .get(header.as_str())
                    .and_then(|v| v.to_str().ok());
                match named {
                    Some(user) if from_proxy && !user.trim().is_empty() => {
                        (user.trim().to_owned(), user.trim().to_owned(), false)
                    }
                    Some(_) if !from_proxy => {
                        tracing::warn!(peer = ?peer(parts), "refused a user header from an untrusted address");
                        return Err(PageError::new(
                            StatusCode::UNAUTHORIZED,
                            "the user header is accepted only from the configured proxies",
                        )
                        .into_response());
                    }
                    _ => {
                        return Err(PageError::new(
                            StatusCode::UNAUTHORIZED,
                            "not signed in: the proxy named no user",
                        )
                        .into_response())
                    }
                }
            }
            Identify::Users(_) => {
                let session = parts
                    .headers
                    .get_all(header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(|h| session::cookie(h, SESSION_COOKIE))
                    .and_then(|value| auth.key.open(value));
                match session {
                    Some(session) => (session.user, session.nonce, true),
                    None if parts.method == Method::GET || parts.method == Method::HEAD => {
                        let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                        let next: String =
                            form_urlencoded::byte_serialize(next.as_bytes()).collect();
                        return Err(Redirect::to(&format!("/signin?next={next}")).into_response());
                    }
                    None => {
                        return Err(PageError::new(
                            StatusCode::UNAUTHORIZED,
                            "not signed in (or the session ended); nothing was changed",
                        )
                        .into_response())
                    }
                }
            }
        };
        let csrf = auth.key.csrf_token(&binding);
        Ok(SignedIn {
            user,
            csrf,
            can_sign_out,
            binding,
            header_token,
            state: state.clone(),
        })
    }
}

/// The client's address, if the server recorded it (in-process tests
/// send none).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(peer(parts)))
    }
}
