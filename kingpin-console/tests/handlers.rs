//! Every route in-process: pages, edits with review and compare-and-set,
//! conflicts, history and rollback, permissions, CSRF, bad input (with a
//! clear message and nothing written), environments, serversets,
//! dependencies, hosts and approvals.

use axum::http::StatusCode;
use kingpin_api::discovery::{Member, ServerSet};
use kingpin_api::environment::{content_of, EnvPath, Environments, HostId, ServiceName};
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::status::{HostStatus, SyncedEntry};
use kingpin_api::{ChangeInfo, CreateMode, NodePath};
use serde_json::json;

mod support;
use support::{name, Fixture};

const SPAM: &str = "config.manageddata.spam.blacklist";

#[tokio::test]
async fn assets_and_the_front_page() {
    let f = Fixture::proxied();
    let js = f.get("vic", "/assets/htmx-2.0.11.min.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.body.contains("htmx"));
    assert!(js.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    f.get("vic", "/assets/console.css")
        .await
        .assert(StatusCode::OK, "body");
    let home = f.get("vic", "/").await;
    assert_eq!(
        (home.status, home.location()),
        (StatusCode::SEE_OTHER, "/configs")
    );
    let page = f.get("vic", "/configs").await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
}

#[tokio::test]
async fn browsing_by_prefix_and_search_show_only_what_the_user_may_see() {
    let f = Fixture::proxied();
    f.write(SPAM, "[\"203.0.113.7\"]").await;
    f.write("config.app.limits", "{\"rps\": 100}").await;
    f.console.refresh().await.unwrap();
    f.get("vic", "/configs")
        .await
        .assert(StatusCode::OK, "config.*");
    f.get("vic", "/configs?prefix=config.manageddata.spam")
        .await
        .assert(StatusCode::OK, "blacklist")
        .assert(StatusCode::OK, "list");
    f.get("vic", "/search?q=203.0.113&content=on")
        .await
        .assert(StatusCode::OK, SPAM);
    let carol = f.get("carol", "/search?q=config&content=on").await;
    carol.assert(StatusCode::OK, "config.app.limits");
    assert!(
        !carol.body.contains("blacklist"),
        "carol may not see spam configs"
    );
    f.get("vic", "/configs?prefix=Bad..Prefix")
        .await
        .assert(StatusCode::UNPROCESSABLE_ENTITY, "invalid");
}

#[tokio::test]
async fn a_config_page_shows_content_record_and_edit_control_only_to_editors() {
    let f = Fixture::proxied();
    f.write(SPAM, "[\"203.0.113.7\"]").await;
    let alice = f.get("alice", &format!("/config/{SPAM}")).await;
    alice
        .assert(StatusCode::OK, "203.0.113.7")
        .assert(StatusCode::OK, "id=\"edit\"");
    let vic = f.get("vic", &format!("/config/{SPAM}")).await;
    vic.assert(StatusCode::OK, "203.0.113.7");
    assert!(
        !vic.body.contains("id=\"edit\""),
        "a viewer sees no edit control"
    );
    f.get("carol", &format!("/config/{SPAM}"))
        .await
        .assert(StatusCode::FORBIDDEN, "viewer role");
    f.get("vic", "/config/config.nothing.here")
        .await
        .assert(StatusCode::NOT_FOUND, "does not exist");
    f.get("vic", "/config/Config..Bad")
        .await
        .assert(StatusCode::UNPROCESSABLE_ENTITY, "invalid");
}

#[tokio::test]
async fn adding_an_item_reviews_the_diff_then_saves_with_the_user_as_author() {
    let f = Fixture::proxied();
    f.write(SPAM, "[\"203.0.113.7\"]").await;
    let edit = f.get("alice", &format!("/config/{SPAM}/edit")).await;
    edit.assert(StatusCode::OK, "203.0.113.7")
        .assert(StatusCode::OK, "Add row");
    let add_row = f
        .post(
            "alice",
            &format!("/config/{SPAM}/edit"),
            &[
                ("base", "1"),
                ("blanks", "1"),
                ("value", "203.0.113.7"),
                ("value", ""),
            ],
        )
        .await;
    assert_eq!(
        add_row.body.matches("name=\"value\"").count(),
        3,
        "two blank rows now"
    );
    let review = f
        .post(
            "alice",
            &format!("/config/{SPAM}/review"),
            &[
                ("base", "1"),
                ("blanks", "1"),
                ("item_type", "string"),
                ("value", "203.0.113.7"),
                ("value", "198.51.100.9"),
            ],
        )
        .await;
    review
        .assert(StatusCode::OK, "198.51.100.9")
        .assert(StatusCode::OK, "class=\"ins\"");
    assert_eq!(f.version(SPAM).await, 1, "a review writes nothing");
    let content = "[\"203.0.113.7\", \"198.51.100.9\"]";
    f.post(
        "alice",
        &format!("/config/{SPAM}/save"),
        &[("base", "1"), ("content", content), ("message", "")],
    )
    .await
    .assert(StatusCode::UNPROCESSABLE_ENTITY, "message");
    let saved = f
        .post(
            "alice",
            &format!("/config/{SPAM}/save"),
            &[
                ("base", "1"),
                ("content", content),
                ("message", "block a scanner"),
            ],
        )
        .await;
    assert_eq!(
        (saved.status, saved.location()),
        (StatusCode::SEE_OTHER, &*format!("/config/{SPAM}?saved=2"))
    );
    let record = f.store.record(&name(SPAM)).await.unwrap().unwrap().0;
    assert_eq!(
        (record.author.as_str(), record.message.as_str()),
        ("alice", "block a scanner")
    );
    assert_eq!(f.content(SPAM).await, content);
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_message_and_nothing_written() {
    let f = Fixture::proxied();
    f.write("config.manageddata.spam.ports", "[80, 443]").await;
    f.write("config.app.limits", "{\"rps\": 100}").await;
    f.write("config.manageddata.admin.decider", "{\"new_feed\": 20.0}")
        .await;
    // (where to post, the form's fields, what the refusal says)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "/config/config.manageddata.spam.ports/review".into(),
            vec![
                ("base", "1"),
                ("blanks", "1"),
                ("item_type", "string"),
                ("value", "80"),
                ("value", "https"),
            ],
            "",
        ),
        (
            "/config/config.manageddata.spam.ports/save".into(),
            vec![
                ("base", "1"),
                ("content", "[80, \"https\"]"),
                ("message", "m"),
            ],
            "this config holds int items",
        ),
        (
            "/config/config.app.limits/review".into(),
            vec![("base", "1"), ("content", "{\n  \"rps\": 100,\n  oops\n}")],
            "invalid JSON at line 3, column 3",
        ),
        (
            "/config/config.manageddata.admin.decider/review".into(),
            vec![
                ("base", "1"),
                ("blanks", "1"),
                ("key", "new_feed"),
                ("value", "101"),
            ],
            "outside [0, 100]",
        ),
        (
            "/config/config.manageddata.admin.decider/save".into(),
            vec![
                ("base", "1"),
                ("content", "{\"new_feed\": 101}"),
                ("message", "m"),
            ],
            "outside [0, 100]",
        ),
        (
            "/config/config..bad/save".into(),
            vec![("base", "0"), ("content", "[]"), ("message", "m")],
            "empty component",
        ),
    ];
    for (path, fields, complaint) in cases {
        let reply = f.post("alice", &path, &fields).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            reply.body
        );
        assert!(
            reply.body.contains(complaint),
            "{path}: {complaint:?} not in {}",
            reply.body
        );
    }
    // The list of numbers refuses "https" at review too, naming the item.
    let reply = f
        .post(
            "alice",
            "/config/config.manageddata.spam.ports/review",
            &[
                ("base", "1"),
                ("blanks", "1"),
                ("value", "80"),
                ("value", "https"),
            ],
        )
        .await;
    reply.assert(
        StatusCode::UNPROCESSABLE_ENTITY,
        "item 2 (&quot;https&quot;) is not a whole number",
    );
    for config in [
        "config.manageddata.spam.ports",
        "config.app.limits",
        "config.manageddata.admin.decider",
    ] {
        assert_eq!(f.version(config).await, 1, "{config} was not written");
    }
}

#[tokio::test]
async fn a_stale_save_shows_the_conflict_and_keeps_the_edit() {
    let f = Fixture::proxied();
    f.write(SPAM, "[\"a\"]").await;
    f.write(SPAM, "[\"a\", \"theirs\"]").await;
    let reply = f
        .post(
            "alice",
            &format!("/config/{SPAM}/save"),
            &[
                ("base", "1"),
                ("content", "[\"a\", \"mine\"]"),
                ("message", "add mine"),
            ],
        )
        .await;
    reply
        .assert(StatusCode::CONFLICT, "changed while you edited")
        .assert(StatusCode::CONFLICT, "theirs")
        .assert(StatusCode::CONFLICT, "id=\"your-edit\"")
        .assert(StatusCode::CONFLICT, "mine")
        .assert(StatusCode::CONFLICT, "Review my edit against version 2");
    assert_eq!(f.content(SPAM).await, "[\"a\", \"theirs\"]");
    // Reviewing at the stale base goes to the conflict view at once.
    f.post(
        "alice",
        &format!("/config/{SPAM}/review"),
        &[
            ("base", "1"),
            ("blanks", "1"),
            ("value", "a"),
            ("value", "mine"),
        ],
    )
    .await
    .assert(StatusCode::CONFLICT, "mine");
    // From the conflict view, against the new version, it lands.
    f.post(
        "alice",
        &format!("/config/{SPAM}/review"),
        &[("base", "2"), ("content", "[\"a\", \"mine\"]")],
    )
    .await
    .assert(StatusCode::OK, "mine");
}

#[tokio::test]
async fn csrf_and_permissions_are_enforced_whatever_the_page_showed() {
    let f = Fixture::proxied();
    f.write(SPAM, "[\"a\"]").await;
    let save = format!("/config/{SPAM}/save");
    let fields = [("base", "1"), ("content", "[\"b\"]"), ("message", "m")];
    f.post_raw(Some("alice"), &save, &fields)
        .await
        .assert(StatusCode::FORBIDDEN, "CSRF");
    let mut wrong = fields.to_vec();
    let bobs = f.csrf("bob");
    wrong.push(("csrf", &bobs));
    f.post_raw(Some("alice"), &save, &wrong)
        .await
        .assert(StatusCode::FORBIDDEN, "CSRF");
    f.post("vic", &save, &fields)
        .await
        .assert(StatusCode::FORBIDDEN, "editor role");
    f.get("vic", &format!("/config/{SPAM}/edit"))
        .await
        .assert(StatusCode::FORBIDDEN, "editor role");
    f.post(
        "vic",
        &format!("/config/{SPAM}/rollback"),
        &[("version", "1"), ("base", "1"), ("message", "m")],
    )
    .await
    .assert(StatusCode::FORBIDDEN, "editor role");
    f.post_raw(None, &save, &fields)
        .await
        .assert(StatusCode::UNAUTHORIZED, "no user");
    assert_eq!(f.content(SPAM).await, "[\"a\"]", "nothing was written");
}

#[tokio::test]
async fn history_diff_and_rollback_with_confirmation() {
    let f = Fixture::proxied();
    f.write(SPAM, "[\"one\"]").await;
    f.write(SPAM, "[\"one\", \"two\"]").await;
    f.get("alice", &format!("/config/{SPAM}/history"))
        .await
        .assert(StatusCode::OK, "roll back")
        .assert(StatusCode::OK, "setup");
    let vic = f.get("vic", &format!("/config/{SPAM}/history")).await;
    assert!(
        !vic.body.contains("roll back"),
        "no rollback control for a viewer"
    );
    f.get("vic", &format!("/config/{SPAM}/version/1"))
        .await
        .assert(StatusCode::OK, "one");
    f.get("vic", &format!("/config/{SPAM}/version/9"))
        .await
        .assert(StatusCode::NOT_FOUND, "no version 9");
    f.get("vic", &format!("/config/{SPAM}/diff?from=1&to=2"))
        .await
        .assert(StatusCode::OK, "two");
    f.get("alice", &format!("/config/{SPAM}/rollback?version=1"))
        .await
        .assert(StatusCode::OK, "Roll back");
    assert_eq!(f.version(SPAM).await, 2, "confirming writes nothing");
    let rolled = f
        .post(
            "alice",
            &format!("/config/{SPAM}/rollback"),
            &[("version", "1"), ("base", "2"), ("message", "undo")],
        )
        .await;
    assert_eq!(rolled.status, StatusCode::SEE_OTHER);
    assert_eq!(f.content(SPAM).await, "[\"one\"]");
    f.post(
        "alice",
        &format!("/config/{SPAM}/rollback"),
        &[("version", "2"), ("base", "2"), ("message", "stale")],
    )
    .await
    .assert(StatusCode::CONFLICT, "no longer at version 2");
    assert_eq!(f.version(SPAM).await, 3);
}

#[tokio::test]
async fn creating_a_config_and_the_new_page() {
    let f = Fixture::proxied();
    f.get("alice", "/new?prefix=config.app")
        .await
        .assert(StatusCode::OK, "config.app.");
    let go = f.get("alice", "/new?name=config.app.flags&kind=json").await;
    assert_eq!(go.location(), "/config/config.app.flags/edit?kind=json");
    f.get("alice", "/config/config.app.flags/edit?kind=json")
        .await
        .assert(StatusCode::OK, "A new config");
    let saved = f
        .post(
            "alice",
            "/config/config.app.flags/save",
            &[
                ("base", "0"),
                ("kind", "json"),
                ("content", "{\"a\": 1}"),
                ("message", "new"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    assert_eq!(f.content("config.app.flags").await, "{\"a\": 1}");
    f.get("vic", "/new?name=config.app.other")
        .await
        .assert(StatusCode::FORBIDDEN, "editor role");
}

async fn shop(f: &Fixture) -> (Environments, ServiceName) {
    let envs = Environments::new(f.store.clone());
    let shop = ServiceName::parse("shop").unwrap();
    let who = ChangeInfo::new("setup", "setup");
    envs.create(
        &shop,
        &EnvPath::root(),
        content_of("r", json!({"db": {"host": "db1", "pool": 10}})).unwrap(),
        &who,
    )
    .await
    .unwrap();
    envs.create(
        &shop,
        &EnvPath::parse("/prod").unwrap(),
        content_of("p", json!({"db": {"pool": 50}})).unwrap(),
        &who,
    )
    .await
    .unwrap();
    envs.associate(
        &shop,
        &HostId::parse("web-1.example.com").unwrap(),
        &EnvPath::parse("/prod").unwrap(),
    )
    .await
    .unwrap();
    (envs, shop)
}

#[tokio::test]
async fn environments_show_tree_provenance_hosts_and_edits_rebuild_views() {
    let f = Fixture::proxied();
    let (envs, shop) = shop(&f).await;
    f.get("vic", "/environments")
        .await
        .assert(StatusCode::OK, "shop");
    let page = f.get("vic", "/environments/shop?env=/prod").await;
    page.assert(StatusCode::OK, "/db/pool")
        .assert(StatusCode::OK, "web-1.example.com")
        .assert(StatusCode::OK, "(own)");
    assert!(
        !page.body.contains("id=\"edit-env\""),
        "a viewer sees no edit control"
    );
    f.get("vic", "/environments/shop?env=/nowhere")
        .await
        .assert(StatusCode::NOT_FOUND, "does not exist");
    let root = "environments.shop.conf";
    f.post(
        "alice",
        &format!("/config/{root}/review"),
        &[("base", "1"), ("content", "[1]")],
    )
    .await
    .assert(StatusCode::UNPROCESSABLE_ENTITY, "object");
    let saved = f
        .post(
            "alice",
            &format!("/config/{root}/save"),
            &[
                ("base", "1"),
                ("content", "{\"db\": {\"host\": \"db2\", \"pool\": 10}}"),
                ("message", "move db"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let view = envs
        .view(&shop, &EnvPath::parse("/prod").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(view.content),
        json!({"db": {"host": "db2", "pool": 50}})
    );
    f.get("alice", "/config/environments.shop.views.prod/edit")
        .await
        .assert(StatusCode::UNPROCESSABLE_ENTITY, "derived");
    f.post(
        "alice",
        "/config/environments.shop.conf.prod.east/save",
        &[
            ("base", "0"),
            ("content", "{\"region\": \"east\"}"),
            ("message", "new env"),
        ],
    )
    .await;
    assert!(envs
        .read(&shop, &EnvPath::parse("/prod/east").unwrap())
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn decider_serversets_and_dependencies() {
    let f = Fixture::proxied();
    f.write("config.manageddata.admin.decider", "{\"new_feed\": 20.0}")
        .await;
    f.get("vic", "/decider")
        .await
        .assert(StatusCode::OK, "new_feed");
    let coordinator = f.store.coordinator().clone();
    let api = ServerSet::new(coordinator.clone(), "api", "prod").unwrap();
    let _member = api
        .join(Member::new(kingpin_client::Endpoint::new("10.0.0.7", 8080)))
        .await
        .unwrap();
    f.get("vic", "/serversets")
        .await
        .assert(StatusCode::OK, "discovery.api.prod");
    f.get("vic", "/serverset/discovery.api.prod")
        .await
        .assert(StatusCode::OK, "10.0.0.7:8080")
        .assert(StatusCode::OK, "ALIVE");
    let metaconfigs = MetaConfigManager::new(coordinator);
    metaconfigs
        .create(&MetaConfig::config(name(SPAM)).unwrap())
        .await
        .unwrap();
    for dep in ["web.dep", "base.dep"] {
        metaconfigs.create_dependency(&name(dep)).await.unwrap();
    }
    metaconfigs
        .add_to_dependency(&name("base.dep"), &name(SPAM))
        .await
        .unwrap();
    metaconfigs
        .add_to_dependency(&name("web.dep"), &name("base.dep"))
        .await
        .unwrap();
    metaconfigs
        .add_to_dependency(&name("base.dep"), &name("web.dep"))
        .await
        .unwrap();
    f.get("vic", "/dependencies")
        .await
        .assert(StatusCode::OK, "web.dep");
    f.get("vic", "/dependency/web.dep")
        .await
        .assert(StatusCode::OK, "base.dep")
        .assert(StatusCode::OK, SPAM)
        .assert(StatusCode::OK, "already shown above");
}

#[tokio::test]
async fn hosts_show_who_has_which_version() {
    let f = Fixture::proxied();
    f.write(SPAM, "[\"a\"]").await;
    f.write(SPAM, "[\"b\"]").await;
    let coordinator = f.store.coordinator().clone();
    for (host, version, error) in [
        ("web-1", 2, None),
        ("web-2", 1, None),
        ("web-3", 2, Some("blob missing")),
    ] {
        let report = HostStatus {
            host: host.into(),
            reported_ms: 1,
            entries: vec![SyncedEntry {
                name: SPAM.into(),
                version: Some(version),
                synced_ms: Some(1),
                error: error.map(str::to_owned),
            }],
            truncated: 0,
        };
        coordinator
            .create(
                &NodePath::parse(&format!("/status/{host}")).unwrap(),
                &report.to_json(),
                CreateMode::Ephemeral,
            )
            .await
            .unwrap();
    }
    f.console.refresh().await.unwrap();
    f.get("vic", &format!("/config/{SPAM}"))
        .await
        .assert(StatusCode::OK, "<strong>2</strong> on version 2 (current)")
        .assert(StatusCode::OK, "behind")
        .assert(StatusCode::OK, "failing: blob missing");
    f.get("vic", "/hosts").await.assert(StatusCode::OK, "web-3");
    f.get("vic", "/host/web-2")
        .await
        .assert(StatusCode::OK, "behind");
    f.get("vic", "/host/nowhere")
        .await
        .assert(StatusCode::NOT_FOUND, "does not report");
    f.get("nobody", "/hosts")
        .await
        .assert(StatusCode::FORBIDDEN, "no role");
}

#[tokio::test]
async fn approvals_propose_then_another_user_publishes_against_the_base() {
    let f = Fixture::proxied();
    let pay = "config.manageddata.payments.limits";
    f.write(pay, "{\"max\": 100}").await;
    let proposed = f
        .post(
            "alice",
            &format!("/config/{pay}/save"),
            &[
                ("base", "1"),
                ("blanks", "1"),
                ("content", "{\"max\": 200}"),
                ("message", "raise"),
            ],
        )
        .await;
    assert_eq!(proposed.status, StatusCode::SEE_OTHER);
    assert!(
        proposed.location().contains("proposed=p_"),
        "{}",
        proposed.location()
    );
    assert_eq!(f.version(pay).await, 1, "a proposal writes nothing");
    let id = proposed.location().rsplit('=').next().unwrap().to_owned();
    f.get("bob", "/approvals").await.assert(StatusCode::OK, &id);
    f.get("bob", &format!("/approval/{id}"))
        .await
        .assert(StatusCode::OK, "200")
        .assert(StatusCode::OK, "Approve and publish");
    let own = f.get("alice", &format!("/approval/{id}")).await;
    assert!(
        !own.body.contains("Approve and publish"),
        "no approve control for the author"
    );
    f.post("alice", &format!("/approval/{id}/publish"), &[])
        .await
        .assert(StatusCode::FORBIDDEN, "approver role");
    f.post_raw(Some("bob"), &format!("/approval/{id}/publish"), &[])
        .await
        .assert(StatusCode::FORBIDDEN, "CSRF");
    let published = f.post("bob", &format!("/approval/{id}/publish"), &[]).await;
    assert_eq!(
        published.status,
        StatusCode::SEE_OTHER,
        "{}",
        published.body
    );
    assert_eq!(f.content(pay).await, "{\"max\": 200}");
    let record = f.store.record(&name(pay)).await.unwrap().unwrap().0;
    assert_eq!(record.author, "alice");
    assert!(record.message.contains("approved by bob"));
    f.post("bob", &format!("/approval/{id}/publish"), &[])
        .await
        .assert(StatusCode::CONFLICT, "published already");

    // A stale proposal is never published.
    let stale = f
        .post(
            "alice",
            &format!("/config/{pay}/save"),
            &[
                ("base", "2"),
                ("content", "{\"max\": 300}"),
                ("message", "more"),
            ],
        )
        .await;
    let stale_id = stale.location().rsplit('=').next().unwrap().to_owned();
    f.write(pay, "{\"max\": 250}").await;
    f.get("bob", &format!("/approval/{stale_id}"))
        .await
        .assert(StatusCode::OK, "Stale");
    f.post("bob", &format!("/approval/{stale_id}/publish"), &[])
        .await
        .assert(StatusCode::CONFLICT, "stale proposal");
    assert_eq!(f.content(pay).await, "{\"max\": 250}");
    let rejected = f
        .post("bob", &format!("/approval/{stale_id}/reject"), &[])
        .await;
    assert_eq!(rejected.status, StatusCode::SEE_OTHER);
    f.get("bob", &format!("/approval/{stale_id}"))
        .await
        .assert(StatusCode::OK, "rejected");
    f.get("bob", "/approval/p_bad")
        .await
        .assert(StatusCode::NOT_FOUND, "no proposal");
}

#[tokio::test]
async fn a_user_header_from_an_untrusted_address_is_refused() {
    let f = Fixture::proxied();
    let request = axum::http::Request::builder()
        .uri("/configs")
        .header("X-Forwarded-User", "bob")
        .extension(axum::extract::ConnectInfo(
            "10.1.2.3:5000".parse::<std::net::SocketAddr>().unwrap(),
        ))
        .body(axum::body::Body::empty())
        .unwrap();
    f.send(request)
        .await
        .assert(StatusCode::UNAUTHORIZED, "only from the configured proxies");
}
