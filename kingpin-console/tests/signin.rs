//! Signing in with a users file: the redirect, wrong passwords, the rate
//! limit, the cookie's attributes, CSRF on the form, signing out, and no
//! password in any page.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use kingpin_console::{hash_password, ConsoleSettings, Role};

mod support;
use support::{grant, Fixture, Reply};

struct Browser {
    fixture: Fixture,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new() -> (Browser, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        std::fs::write(
            &users,
            format!("alice:{}\n", hash_password("s3cret pass").unwrap()),
        )
        .unwrap();
        let settings =
            ConsoleSettings::with_users_file(&users, vec![grant(&["alice"], "", Role::Viewer)]);
        (
            Browser {
                fixture: Fixture::new(settings),
                cookies: Vec::new(),
            },
            dir,
        )
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::COOKIE, self.cookie_header());
        let body = match form {
            Some(fields) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(
                    form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(fields)
                        .finish(),
                )
            }
            None => Body::empty(),
        };
        let reply = self.fixture.send(request.body(body).unwrap()).await;
        for set in reply.headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, _) = set.split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        reply
    }

    /// The CSRF token in the last sign-in form.
    async fn signin_token(&mut self) -> String {
        let form = self.send("GET", "/signin?next=/configs", None).await;
        let at = form.body.find("name=\"csrf\" value=\"").unwrap() + 19;
        form.body[at..].split('"').next().unwrap().to_owned()
    }
}

#[tokio::test]
async fn password_sign_in_sets_a_strict_http_only_session_and_signs_out() {
    let (mut browser, _dir) = Browser::new();
    let first = browser.send("GET", "/configs", None).await;
    assert_eq!(
        (first.status, first.location()),
        (StatusCode::SEE_OTHER, "/signin?next=%2Fconfigs")
    );
    browser
        .send("POST", "/config/config.x/save", Some(&[("content", "x")]))
        .await
        .assert(StatusCode::UNAUTHORIZED, "not signed in");

    let token = browser.signin_token().await;
    let wrong = browser
        .send(
            "POST",
            "/signin",
            Some(&[
                ("csrf", &token),
                ("user", "alice"),
                ("password", "guess"),
                ("next", "/configs"),
            ]),
        )
        .await;
    wrong.assert(StatusCode::UNAUTHORIZED, "Wrong user or password");
    assert!(
        !wrong.body.contains("guess"),
        "the password is never echoed"
    );
    browser
        .send(
            "POST",
            "/signin",
            Some(&[("user", "alice"), ("password", "s3cret pass")]),
        )
        .await
        .assert(StatusCode::FORBIDDEN, "CSRF");

    let ok = browser
        .send(
            "POST",
            "/signin",
            Some(&[
                ("csrf", &token),
                ("user", "alice"),
                ("password", "s3cret pass"),
                ("next", "/configs"),
            ]),
        )
        .await;
    assert_eq!(
        (ok.status, ok.location()),
        (StatusCode::SEE_OTHER, "/configs")
    );
    let session = ok
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("kp_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let page = browser.send("GET", "/configs", None).await;
    page.assert(StatusCode::OK, "alice");
    assert!(!page.body.contains("s3cret"));

    let csrf = browser.fixture.console.state().auth.key.csrf_token(
        &browser
            .fixture
            .console
            .state()
            .auth
            .key
            .open(
                &browser
                    .cookies
                    .iter()
                    .find(|(n, _)| n == "kp_session")
                    .unwrap()
                    .1,
            )
            .unwrap()
            .nonce,
    );
    let out = browser
        .send("POST", "/signout", Some(&[("csrf", &csrf)]))
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let after = browser.send("GET", "/configs", None).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "signed out");
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_even_with_the_right_password() {
    let (mut browser, _dir) = Browser::new();
    let token = browser.signin_token().await;
    for _ in 0..5 {
        browser
            .send(
                "POST",
                "/signin",
                Some(&[("csrf", &token), ("user", "alice"), ("password", "nope")]),
            )
            .await
            .assert(StatusCode::UNAUTHORIZED, "Wrong");
    }
    browser
        .send(
            "POST",
            "/signin",
            Some(&[
                ("csrf", &token),
                ("user", "alice"),
                ("password", "s3cret pass"),
            ]),
        )
        .await
        .assert(StatusCode::TOO_MANY_REQUESTS, "Too many failed sign-ins");
}

#[tokio::test]
async fn an_open_redirect_after_sign_in_is_refused() {
    let (mut browser, _dir) = Browser::new();
    let token = browser.signin_token().await;
    let ok = browser
        .send(
            "POST",
            "/signin",
            Some(&[
                ("csrf", &token),
                ("user", "alice"),
                ("password", "s3cret pass"),
                ("next", "//evil.example/"),
            ]),
        )
        .await;
    assert_eq!(ok.location(), "/configs");
}
