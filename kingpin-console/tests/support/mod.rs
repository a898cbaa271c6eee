//! What the console's in-process tests share: a console over in-memory
//! backends, signed in through a trusted proxy header, and requests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Request, StatusCode};
use bytes::Bytes;
use kingpin_api::{ChangeInfo, ConfigName, ConfigStore, MemoryBlobStore, MemoryServer};
use kingpin_console::{Console, ConsoleSettings, Grant, Role, SignIn};
use tower::ServiceExt as _;

pub const PROXY: &str = "127.0.0.1:40000";

pub struct Fixture {
    pub console: Console,
    pub store: ConfigStore,
    pub server: MemoryServer,
    pub blobs: MemoryBlobStore,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[track_caller]
    pub fn assert(&self, status: StatusCode, contains: &str) -> &Self {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert!(
            self.body.contains(contains),
            "{contains:?} not in the {status} page: {}",
            self.body
        );
        self
    }
}

pub fn grant(users: &[&str], prefix: &str, role: Role) -> Grant {
    Grant {
        users: users.iter().map(|u| u.to_string()).collect(),
        prefix: prefix.to_owned(),
        role,
    }
}

/// alice edits spam configs and environments of `shop`, bob approves
/// everything, vic only reads, carol reads only `config.app`.
pub fn grants() -> Vec<Grant> {
    vec![
        grant(&["alice", "bob", "vic"], "", Role::Viewer),
        grant(&["alice"], "config.manageddata.spam", Role::Editor),
        grant(&["alice"], "config.manageddata.payments", Role::Editor),
        grant(&["alice"], "config.manageddata.admin.decider", Role::Editor),
        grant(&["alice"], "config.app", Role::Editor),
        grant(&["alice"], "environments.shop", Role::Editor),
        grant(&["bob"], "", Role::Approver),
        grant(&["carol"], "config.app", Role::Viewer),
    ]
}

pub fn proxy_settings() -> ConsoleSettings {
    let mut settings = ConsoleSettings::local("");
    settings.sign_in = SignIn::Proxy {
        header: "X-Forwarded-User".into(),
        trusted: vec!["127.0.0.1/32".parse().unwrap()],
    };
    settings.grants = grants();
    settings.approvals = vec!["config.manageddata.payments".into()];
    settings
}

pub fn name(s: &str) -> ConfigName {
    ConfigName::parse(s).unwrap()
}

impl Fixture {
    pub fn new(settings: ConsoleSettings) -> Self {
        let server = MemoryServer::new();
        let blobs = MemoryBlobStore::new();
        let coordinator: Arc<dyn kingpin_api::Coordinator> = Arc::new(server.connect());
        let console = Console::new(coordinator.clone(), Arc::new(blobs.clone()), settings).unwrap();
        Fixture {
            store: ConfigStore::new(coordinator, Arc::new(blobs.clone())),
            console,
            server,
            blobs,
        }
    }

    pub fn proxied() -> Self {
        Self::new(proxy_settings())
    }

    pub async fn write(&self, config: &str, content: &str) -> u64 {
        self.store
            .write(
                &name(config),
                Bytes::from(content.to_owned()),
                &ChangeInfo::new("setup", "setup"),
            )
            .await
            .unwrap()
            .version
    }

    pub async fn version(&self, config: &str) -> u64 {
        self.store
            .record(&name(config))
            .await
            .unwrap()
            .map_or(0, |(r, _)| r.version)
    }

    pub async fn content(&self, config: &str) -> String {
        let config = self.store.read(&name(config)).await.unwrap().unwrap();
        String::from_utf8(config.content.to_vec()).unwrap()
    }

    pub fn csrf(&self, user: &str) -> String {
        self.console.state().auth.key.csrf_token(user)
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.console.router().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    fn request(user: Option<&str>, method: &str, path: &str) -> axum::http::request::Builder {
        let addr: SocketAddr = PROXY.parse().unwrap();
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .extension(ConnectInfo(addr));
        if let Some(user) = user {
            builder = builder.header("X-Forwarded-User", user);
        }
        builder
    }

    pub async fn get(&self, user: &str, path: &str) -> Reply {
        self.send(
            Self::request(Some(user), "GET", path)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// A form post with the user's CSRF token added.
    pub async fn post(&self, user: &str, path: &str, fields: &[(&str, &str)]) -> Reply {
        let csrf = self.csrf(user);
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf", &csrf));
        self.post_raw(Some(user), path, &all).await
    }

    pub async fn post_raw(&self, user: Option<&str>, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(
            Self::request(user, "POST", path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }
}
