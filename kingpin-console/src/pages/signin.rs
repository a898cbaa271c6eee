//! Signing in with a password, and out.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, DOCTYPE};
use serde::Deserialize;

use crate::auth::session::{self, random_nonce, SESSION_COOKIE, SIGNIN_COOKIE};
use crate::auth::{ClientAddr, Identify, SignedIn, CSRF_FIELD};
use crate::error::PageError;
use crate::form::FormData;
use crate::pages::layout::CSS_PATH;
use crate::AppState;

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Only local paths: a sign-in must not send the user elsewhere.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/configs".to_owned(),
    }
}

fn render(next: &str, csrf: &str, error: Option<&str>) -> maud::Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Sign in · kingpin" }
                link rel="stylesheet" href=(CSS_PATH);
            }
            body {
                header { a.brand href="/" { "kingpin" } }
                main {
                    h1 { "Sign in" }
                    @if let Some(error) = error { p.notice.error role="alert" { (error) } }
                    form method="post" action="/signin" {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        input type="hidden" name="next" value=(next);
                        p { label for="user" { "User" } br; input #user type="text" name="user" autocomplete="username" required autofocus; }
                        p { label for="password" { "Password" } br; input #password type="password" name="password" autocomplete="current-password" required; }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

/// The sign-in form, with a fresh CSRF nonce in a cookie of its own.
pub async fn form(State(state): State<Arc<AppState>>, Query(next): Query<Next>) -> Response {
    if !matches!(state.auth.identify, Identify::Users(_)) {
        return Redirect::to("/configs").into_response();
    }
    let nonce = random_nonce();
    let csrf = state.auth.key.csrf_token(&format!("signin:{nonce}"));
    let cookie = session::set_cookie(
        SIGNIN_COOKIE,
        &nonce,
        std::time::Duration::from_secs(3600),
        state.auth.secure_cookies,
    );
    (
        [(header::SET_COOKIE, cookie)],
        render(&safe_next(next.next.as_deref()), &csrf, None),
    )
        .into_response()
}

/// Checks the password (rate-limited), then sets the session cookie.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ClientAddr(address): ClientAddr,
    form: FormData,
) -> Result<Response, PageError> {
    let Identify::Users(users) = &state.auth.identify else {
        return Ok(Redirect::to("/configs").into_response());
    };
    let nonce = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session::cookie(h, SIGNIN_COOKIE))
        .unwrap_or_default();
    let token = form.get(CSRF_FIELD).unwrap_or_default();
    if nonce.is_empty() || !state.auth.key.check_csrf(&format!("signin:{nonce}"), token) {
        return Err(PageError::forbidden(
            "the sign-in form's CSRF token is missing or wrong: load the sign-in page again",
        ));
    }
    let user = form.get("user").unwrap_or_default().trim().to_owned();
    let password = form.get("password").unwrap_or_default().to_owned();
    let next = safe_next(form.get("next"));
    let retry = |message: &str, status: StatusCode| {
        (status, render(&next, token, Some(message))).into_response()
    };
    if let Some(wait) = state.auth.limiter.refused(&user, address) {
        tracing::warn!(user = %user, ?address, "sign-in refused: too many failures");
        return Ok(retry(
            &format!(
                "Too many failed sign-ins; try again in {} minutes.",
                wait.as_secs() / 60 + 1
            ),
            StatusCode::TOO_MANY_REQUESTS,
        ));
    }
    let checking = users.clone();
    let (name, secret) = (user.clone(), password);
    let ok = tokio::task::spawn_blocking(move || checking.verify(&name, &secret))
        .await
        .unwrap_or(false);
    if !ok {
        state.auth.limiter.failed(&user, address);
        // The user name is logged, never the password.
        tracing::warn!(user = %user, ?address, "failed sign-in");
        return Ok(retry("Wrong user or password.", StatusCode::UNAUTHORIZED));
    }
    state.auth.limiter.succeeded(&user);
    tracing::info!(user = %user, "signed in");
    let (value, _) = state.auth.key.issue(&user, state.auth.session_lifetime);
    let cookie = session::set_cookie(
        SESSION_COOKIE,
        &value,
        state.auth.session_lifetime,
        state.auth.secure_cookies,
    );
    let clear = session::set_cookie(
        SIGNIN_COOKIE,
        "",
        std::time::Duration::ZERO,
        state.auth.secure_cookies,
    );
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie
            .parse()
            .map_err(|_| PageError::invalid("bad cookie"))?,
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        clear
            .parse()
            .map_err(|_| PageError::invalid("bad cookie"))?,
    );
    Ok(response)
}

/// Ends the session (clears its cookie).
pub async fn sign_out(
    State(state): State<Arc<AppState>>,
    who: SignedIn,
    form: FormData,
) -> Result<Response, PageError> {
    who.check_csrf(&form)?;
    let clear = session::set_cookie(
        SESSION_COOKIE,
        "",
        std::time::Duration::ZERO,
        state.auth.secure_cookies,
    );
    Ok(([(header::SET_COOKIE, clear)], Redirect::to("/signin")).into_response())
}
