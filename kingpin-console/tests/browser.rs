//! End to end in a real headless browser: Debian's `chromium`, driven
//! through `chromedriver` (WebDriver, via fantoccini), against a console
//! served on loopback over the run's ZooKeeper and S3 servers, signed in
//! through its own users file, with a real monitor writing files to disk.
//!
//! `scripts/test` installs chromium and chromium-driver; elsewhere name the
//! binaries with KINGPIN_TEST_CHROMIUM and KINGPIN_TEST_CHROMEDRIVER.
//! Without them the tests fail, unless KINGPIN_TEST_SKIP_EXTERNAL=1.
//!
//! Screenshots of the main pages go to
//! `$CARGO_TARGET_TMPDIR/console-screenshots/` (or KINGPIN_TEST_SCREENSHOTS).

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fantoccini::{Client, ClientBuilder, Locator};
use kingpin_api::environment::{content_of, EnvPath, Environments, ServiceName};
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::{BlobStore, ChangeInfo, ConfigName, ConfigStore, Coordinator};
use kingpin_conformance_tests::endpoints::{shared_endpoint, shared_s3, skip_external};
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{harness, unique_namespace, unique_suffix};
use kingpin_console::{Console, ConsoleSettings, Grant, Role};
use kingpin_monitor::{Monitor, MonitorSettings};
use serde_json::json;

const SPAM: &str = "config.manageddata.spam.blacklist";
const PAYMENTS: &str = "config.manageddata.payments.limits";
const PASSWORD: &str = "correct horse battery staple";
/// Generous: a failing wait means the behaviour is missing, not slow.
const WAIT: Duration = Duration::from_secs(30);

/// One browser at a time: chromium is heavy on two cores.
static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn name(s: &str) -> ConfigName {
    ConfigName::parse(s).unwrap()
}

fn setup() -> ChangeInfo {
    ChangeInfo::new("setup", "setup")
}

/// chromium and chromedriver, or None (and a skip line) when they are
/// missing and the run allows skipping.
fn browser_binaries(case: &str) -> Option<(PathBuf, PathBuf)> {
    let find = |var: &str, names: &[&str]| -> Option<PathBuf> {
        if let Ok(path) = std::env::var(var) {
            return Some(PathBuf::from(path));
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        names
            .iter()
            .flat_map(|n| std::env::split_paths(&path).map(move |dir| dir.join(n)))
            .chain(names.iter().map(|n| Path::new("/usr/bin").join(n)))
            .find(|p| p.is_file())
    };
    let chromium = find("KINGPIN_TEST_CHROMIUM", &["chromium", "chromium-browser"]);
    let driver = find("KINGPIN_TEST_CHROMEDRIVER", &["chromedriver"]);
    match (chromium, driver) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ if skip_external() => {
            harness::skip("browser", case, "chromium or chromedriver is missing");
            None
        }
        _ => panic!(
            "{case}: chromium and chromedriver are needed (apt-get install chromium chromium-driver, which scripts/test does; or set KINGPIN_TEST_CHROMIUM and KINGPIN_TEST_CHROMEDRIVER)"
        ),
    }
}

/// A chromedriver process of the test's own, stopped on drop.
struct Driver {
    child: Child,
    url: String,
    chromium: PathBuf,
}

impl Driver {
    fn start(chromium: PathBuf, driver: &Path) -> Driver {
        let mut child = Command::new(driver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        // "ChromeDriver was started successfully on port 37661."
        let port = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => panic!("chromedriver exited before saying it started"),
            };
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().to_owned();
            }
        };
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
        }
    }

    /// A new browser session: its own profile, so its own cookies.
    async fn browser(&self, console: &str) -> Browser {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": self.chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,900"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot open a chromium session: {e}"));
        Browser {
            client,
            base: console.to_owned(),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One signed-in browser session on the console.
struct Browser {
    client: Client,
    base: String,
}

impl Browser {
    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn sign_in(&self, user: &str) {
        self.goto("/signin").await;
        self.client
            .find(Locator::Id("user"))
            .await
            .unwrap()
            .send_keys(user)
            .await
            .unwrap();
        self.client
            .find(Locator::Id("password"))
            .await
            .unwrap()
            .send_keys(PASSWORD)
            .await
            .unwrap();
        self.click("form[action='/signin'] button[type=submit]")
            .await;
        // Signed in, the header names the user.
        self.wait_for_text("header", user).await;
    }

    async fn click(&self, css: &str) {
        self.element(css).await.click().await.unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        element.clear().await.unwrap();
        element.send_keys(text).await.unwrap();
    }

    /// The element, waiting for the page that has it.
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => {
                let page = match self.client.find(Locator::Css("body")).await {
                    Ok(body) => body.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                panic!("no {css} on {}: {e}\n{page}", self.url().await)
            }
        }
    }

    async fn text(&self, css: &str) -> String {
        self.element(css).await.text().await.unwrap()
    }

    /// Waits until `css` holds `text` (the page after a click).
    async fn wait_for_text(&self, css: &str, text: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let found = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if found.contains(text) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{text:?} never appeared in {css} on {}: {found:?}",
                self.url().await
            );
            // The browser loads the next page on its own; WebDriver has no
            // event for "this text appeared", only polling.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn has(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    async fn screenshot(&self, file: &str) {
        let dir = std::env::var_os("KINGPIN_TEST_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
            });
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        std::fs::write(dir.join(file), png).unwrap();
    }

    async fn close(self) {
        self.client.close().await.unwrap();
    }
}

/// A console on loopback over ZooKeeper and S3, with its users file:
/// alice edits spam, payments and the shop's environments; bob approves
/// everything; vic only reads.
struct Stack {
    url: String,
    store: ConfigStore,
    coordinator: Arc<dyn Coordinator>,
    coordinator_url: String,
    blobstore_url: String,
    dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn grant(users: &[&str], prefix: &str, role: Role) -> Grant {
    Grant {
        users: users.iter().map(|u| u.to_string()).collect(),
        prefix: prefix.to_owned(),
        role,
    }
}

async fn stack(case: &str) -> Option<Stack> {
    let hosts = shared_endpoint(ServerKind::ZooKeeper, case).await?;
    let (endpoint, credentials) = shared_s3(case).await?;
    // The monitor's S3 client reads its keys from the AWS chain.
    std::env::set_var("AWS_ACCESS_KEY_ID", &credentials.access_key);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", &credentials.secret_key);
    let prefix = format!("console-{}", unique_suffix());
    let blobs: Arc<dyn BlobStore> = Arc::new(
        kingpin_conformance_tests::s3::aws_sdk_store(
            &endpoint,
            &credentials,
            "kingpin-test",
            &prefix,
        )
        .await,
    );
    let coordinator_url = format!("zk://{hosts}{}?session_timeout=4s", unique_namespace());
    let coordinator = kingpin::open_coordinator(&coordinator_url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hash = kingpin_console::hash_password(PASSWORD).unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, format!("alice:{hash}\nbob:{hash}\nvic:{hash}\n")).unwrap();
    let grants = vec![
        grant(&["alice", "bob", "vic"], "", Role::Viewer),
        grant(&["alice"], "config.manageddata.spam", Role::Editor),
        grant(&["alice"], "config.manageddata.payments", Role::Editor),
        grant(&["alice"], "environments.shop", Role::Editor),
        grant(&["bob"], "", Role::Approver),
    ];
    let mut settings = ConsoleSettings::with_users_file(users, grants);
    settings.approvals = vec!["config.manageddata.payments".into()];
    settings.catalog_refresh = Duration::from_millis(200);
    settings.status_refresh = Duration::from_millis(200);
    let console = Console::new(coordinator.clone(), blobs.clone(), settings).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        console.serve(listener).await.unwrap();
    });
    Some(Stack {
        url,
        store: ConfigStore::new(coordinator.clone(), blobs),
        coordinator,
        coordinator_url,
        blobstore_url: format!(
            "s3://kingpin-test/{prefix}?endpoint={endpoint}&region=us-east-1&path_style=true&conditional_put=if-none-match"
        ),
        dir,
        server,
    })
}

impl Stack {
    async fn write(&self, config: &str, content: &str) {
        self.store
            .write(&name(config), Bytes::from(content.to_owned()), &setup())
            .await
            .unwrap();
    }

    async fn content(&self, config: &str) -> (u64, String) {
        let config = self.store.read(&name(config)).await.unwrap().unwrap();
        (
            config.record.version,
            String::from_utf8(config.content.to_vec()).unwrap(),
        )
    }
}

/// Everything a test needs, or None when the run skips it.
async fn start(case: &str) -> Option<(tokio::sync::MutexGuard<'static, ()>, Driver, Stack)> {
    let (chromium, driver) = browser_binaries(case)?;
    let stack = stack(case).await?;
    let guard = ONE_BROWSER_AT_A_TIME.lock().await;
    Some((guard, Driver::start(chromium, &driver), stack))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_list_item_through_the_form_reaches_the_monitors_file() {
    let Some((_one, driver, stack)) = start("adding_a_list_item_through_the_form").await else {
        return;
    };
    stack.write(SPAM, "[\"203.0.113.7\"]").await;
    let metaconfigs = MetaConfigManager::new(stack.coordinator.clone());
    metaconfigs
        .create(&MetaConfig::config(name(SPAM)).unwrap())
        .await
        .unwrap();
    metaconfigs
        .create_dependency(&name("web.dep"))
        .await
        .unwrap();
    metaconfigs
        .add_to_dependency(&name("web.dep"), &name(SPAM))
        .await
        .unwrap();
    let out = stack.dir.path().join("var");
    let mut settings = MonitorSettings::new(
        &stack.coordinator_url,
        &stack.blobstore_url,
        name("web.dep"),
    );
    settings.config_dir = out.join("config");
    settings.serverset_dir = out.join("serverset");
    settings.admin_addr = None;
    settings.host = Some("web-1.example.com".into());
    settings.report_status = true;
    settings.status_interval = Duration::from_millis(200);
    let monitor = Monitor::start(settings).await.unwrap();
    let on_disk = |version: u64| {
        let state = monitor.state();
        async move {
            tokio::time::timeout(
                WAIT,
                state.wait_for(|s| s.entry(&name(SPAM)).and_then(|e| e.version) == Some(version)),
            )
            .await
            .unwrap_or_else(|_| panic!("the monitor never wrote version {version}"));
        }
    };
    on_disk(1).await;

    let alice = driver.browser(&stack.url).await;
    alice.sign_in("alice").await;
    alice.goto(&format!("/config/{SPAM}/edit")).await;
    alice
        .type_into("input[aria-label='item 2']", "198.51.100.1")
        .await;
    alice.screenshot("edit-list.png").await;
    alice.click("#review").await;
    let diff = alice.text("#diff").await;
    assert!(
        diff.contains("198.51.100.1"),
        "the review shows the added item: {diff}"
    );
    assert!(alice.text("main").await.contains("Against version 1"));
    alice.type_into("#message", "block a spammer").await;
    alice.screenshot("review.png").await;
    alice.click("#save").await;
    alice.wait_for_text(".notice", "Saved version 2").await;

    on_disk(2).await;
    let file = std::fs::read_to_string(out.join("config").join(SPAM)).unwrap();
    assert!(
        file.contains("198.51.100.1") && file.contains("203.0.113.7"),
        "{file}"
    );
    let record = stack.store.record(&name(SPAM)).await.unwrap().unwrap().0;
    assert_eq!(
        (record.author.as_str(), record.message.as_str()),
        ("alice", "block a spammer")
    );

    // Who has which version: the monitor's report reaches the config page.
    alice.goto(&format!("/config/{SPAM}")).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let hosts = match alice.has("#host-versions").await {
            true => alice.text("#host-versions").await,
            false => String::new(),
        };
        if hosts.contains("1 on version 2 (current)") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the host on version 2 never showed on the config page: {}",
            alice.text("main").await
        );
        // The report and the console's refresh run on their own schedules.
        tokio::time::sleep(Duration::from_millis(200)).await;
        alice.client.refresh().await.unwrap();
    }
    alice.screenshot("config.png").await;
    for (path, file) in [
        ("/configs?prefix=config.manageddata.spam", "browse.png"),
        (&format!("/config/{SPAM}/history") as &str, "history.png"),
        ("/hosts", "hosts.png"),
        ("/search?q=198.51&content=on", "search.png"),
    ] {
        alice.goto(path).await;
        alice.element("main h1").await;
        alice.screenshot(file).await;
    }
    alice.close().await;
    monitor.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_saving_a_stale_edit_gets_the_conflict_view_with_its_edit_intact() {
    let Some((_one, driver, stack)) = start("a_second_session_saving_a_stale_edit").await else {
        return;
    };
    stack.write(SPAM, "[\"203.0.113.7\"]").await;
    let first = driver.browser(&stack.url).await;
    let second = driver.browser(&stack.url).await;
    first.sign_in("alice").await;
    second.sign_in("alice").await;
    for (browser, item) in [(&first, "192.0.2.1"), (&second, "192.0.2.2")] {
        browser.goto(&format!("/config/{SPAM}/edit")).await;
        browser.type_into("input[aria-label='item 2']", item).await;
        browser.click("#review").await;
        browser.type_into("#message", &format!("add {item}")).await;
    }
    first.click("#save").await;
    first.wait_for_text(".notice", "Saved version 2").await;
    second.click("#save").await;
    second.wait_for_text("#conflict", "Nothing was saved").await;
    second.screenshot("conflict.png").await;
    let page = second.text("main").await;
    assert!(
        page.contains("192.0.2.1"),
        "the conflict shows what changed meanwhile: {page}"
    );
    assert!(
        second.text("#your-edit").await.contains("192.0.2.2"),
        "the edit is kept"
    );
    assert_eq!(
        stack.content(SPAM).await.0,
        2,
        "the stale save wrote nothing"
    );
    // The kept edit goes on to the editor, against the new version.
    second.click("#conflict ~ form button.secondary").await;
    let kept = second.element("input[aria-label='item 2']").await;
    assert_eq!(
        kept.prop("value").await.unwrap().as_deref(),
        Some("192.0.2.2")
    );
    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environments_inherited_view_follows_an_edit_of_its_parent() {
    let Some((_one, driver, stack)) = start("an_environments_inherited_view").await else {
        return;
    };
    let envs = Environments::new(stack.store.clone());
    let shop = ServiceName::parse("shop").unwrap();
    envs.create(
        &shop,
        &EnvPath::root(),
        content_of("r", json!({"db": {"host": "db1", "pool": 10}})).unwrap(),
        &setup(),
    )
    .await
    .unwrap();
    envs.create(
        &shop,
        &EnvPath::parse("/prod").unwrap(),
        content_of("p", json!({"db": {"pool": 50}})).unwrap(),
        &setup(),
    )
    .await
    .unwrap();
    let alice = driver.browser(&stack.url).await;
    alice.sign_in("alice").await;
    alice.goto("/environments/shop?env=/prod").await;
    let view = alice.text("#view").await;
    assert!(view.contains("\"db1\"") && view.contains("50"), "{view}");
    alice.goto("/environments/shop?env=/").await;
    alice.click("#edit-env").await;
    alice
        .type_into("#text", "{\"db\": {\"host\": \"db2\", \"pool\": 10}}")
        .await;
    alice.click("#review").await;
    alice.type_into("#message", "move the database").await;
    alice.click("#save").await;
    alice.wait_for_text(".notice", "Saved version").await;
    alice.goto("/environments/shop?env=/prod").await;
    let view = alice.text("#view").await;
    assert!(
        view.contains("\"db2\"") && !view.contains("\"db1\""),
        "the view follows the parent: {view}"
    );
    assert!(
        view.contains("50") && view.contains("(own)"),
        "prod's own value stays: {view}"
    );
    alice.screenshot("environment.png").await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_edit_control_and_cannot_edit() {
    let Some((_one, driver, stack)) = start("a_viewer_cannot_edit").await else {
        return;
    };
    stack.write(SPAM, "[\"203.0.113.7\"]").await;
    let vic = driver.browser(&stack.url).await;
    vic.sign_in("vic").await;
    vic.goto(&format!("/config/{SPAM}")).await;
    assert!(vic.text("main").await.contains("203.0.113.7"));
    assert!(!vic.has("#edit").await, "a viewer sees no edit control");
    vic.goto(&format!("/config/{SPAM}/edit")).await;
    vic.wait_for_text("main", "vic needs the editor role").await;
    assert!(!vic.has("#editor").await, "no editor for a viewer");
    assert_eq!(stack.content(SPAM).await.0, 1);
    vic.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_is_published_only_when_another_user_approves() {
    let Some((_one, driver, stack)) = start("a_proposal_is_published").await else {
        return;
    };
    stack.write(PAYMENTS, "{\"max\": 100}").await;
    let alice = driver.browser(&stack.url).await;
    alice.sign_in("alice").await;
    alice.goto(&format!("/config/{PAYMENTS}/edit")).await;
    // A managed map: a table of keys and values.
    alice.type_into("input[aria-label='item 1']", "200").await;
    alice.click("#review").await;
    alice.type_into("#message", "raise the limit").await;
    assert_eq!(alice.text("#save").await, "Propose");
    alice.click("#save").await;
    alice.wait_for_text(".notice", "").await;
    let proposed = alice.url().await;
    let id = proposed
        .split("proposed=")
        .nth(1)
        .unwrap_or_else(|| panic!("not proposed: {proposed}"))
        .to_owned();
    assert_eq!(
        stack.content(PAYMENTS).await,
        (1, "{\"max\": 100}".to_owned()),
        "a proposal writes nothing"
    );
    alice.goto(&format!("/approval/{id}")).await;
    alice.element("#diff").await;
    assert!(
        !alice.has("#publish").await,
        "nobody approves their own change"
    );

    let bob = driver.browser(&stack.url).await;
    bob.sign_in("bob").await;
    bob.goto("/approvals").await;
    bob.click(&format!("a[href='/approval/{id}']")).await;
    let diff = bob.text("#diff").await;
    assert!(diff.contains("200"), "the reviewer sees the diff: {diff}");
    bob.screenshot("approval.png").await;
    bob.click("#publish").await;
    bob.wait_for_text(".notice", "Saved version 2").await;
    let (version, content) = stack.content(PAYMENTS).await;
    assert_eq!(version, 2);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&content).unwrap(),
        json!({"max": 200})
    );
    alice.close().await;
    bob.close().await;
}
