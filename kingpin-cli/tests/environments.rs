//! `kingpin env` end to end on the embedded SQLite + local blob stack:
//! the walk-through of the README, compare-and-set, views with sources,
//! associations and pins, history, forced deletion, export and import,
//! and the exit codes of bad input.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use tempfile::TempDir;

/// Runs `kingpin` in a fresh directory that is also `KINGPIN_HOME`.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kingpin"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("KINGPIN_HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"))
            .env("USER", "tester")
            .stdin(Stdio::null());
        for var in [
            "KINGPIN_COORDINATOR",
            "KINGPIN_BLOBSTORE",
            "KINGPIN_CONFIG",
            "KINGPIN_AUTHOR",
            "KINGPIN_HOST",
        ] {
            command.env_remove(var);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().expect("kingpin runs")
    }

    fn code(&self, args: &[&str], code: i32) -> (String, String) {
        let out = self.run_with(args, &[]);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "kingpin {args:?}: stdout {stdout} stderr {stderr}"
        );
        (stdout, stderr)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.code(args, 0).0
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        serde_json::from_str(&self.ok(&with_json)).expect("--json prints JSON")
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

#[test]
fn environments_from_the_command_line() {
    let sb = Sandbox::new();
    sb.ok(&[
        "env",
        "create",
        "web",
        "/",
        "--value",
        r#"{"db": {"host": "a", "pool": 5}, "name": "w"}"#,
    ]);
    sb.ok(&[
        "env",
        "create",
        "web",
        "prod",
        "--value",
        r#"{"db": {"pool": 20}}"#,
    ]);
    sb.ok(&[
        "env",
        "create",
        "web",
        "prod/east",
        "--value",
        r#"{"region": "east"}"#,
    ]);
    assert_eq!(sb.json(&["env", "services"]), json!(["web"]));

    // Bad input: exit codes as everywhere else, nothing written.
    let (_, err) = sb.code(&["env", "create", "web", "staging/x"], 3);
    assert!(err.contains("/staging"), "{err}");
    let (_, err) = sb.code(&["env", "set", "web", "/", "--value", "[1]"], 6);
    assert!(err.contains("JSON object"), "{err}");
    sb.code(&["env", "create", "Web", "/"], 6);
    sb.code(&["env", "create", "web", "prod"], 4);
    let (_, err) = sb.code(
        &[
            "env",
            "set",
            "web",
            "prod",
            "--value",
            "{}",
            "--if-version",
            "5",
        ],
        4,
    );
    assert!(err.contains("version 1"), "{err}");
    assert_eq!(
        sb.ok(&[
            "env",
            "set",
            "web",
            "prod",
            "--value",
            r#"{"db": {"pool": 30}}"#,
            "--if-version",
            "1"
        ])
        .trim(),
        "2"
    );

    // The view, where each value comes from, and the versions merged.
    let view = sb.json(&["env", "view", "web", "prod/east"]);
    assert_eq!(
        view["view"],
        json!({"db": {"host": "a", "pool": 30}, "name": "w", "region": "east"})
    );
    assert_eq!(
        view["merged_from"],
        json!([
            {"environment": "/", "version": 1},
            {"environment": "/prod", "version": 2},
            {"environment": "/prod/east", "version": 1},
        ])
    );
    let sources = sb.ok(&["env", "view", "web", "prod/east", "--sources"]);
    assert!(
        sources.lines().any(|l| l == "/db/pool\t30\t/prod"),
        "{sources}"
    );
    assert!(sources.lines().any(|l| l == "/db/host\ta\t/"), "{sources}");
    let own = sb.json(&["env", "show", "web", "prod"]);
    assert_eq!(own["content"], json!({"db": {"pool": 30}}));
    let tree = sb.ok(&["env", "tree", "web"]);
    assert_eq!(tree.lines().count(), 3, "{tree}");
    assert!(
        tree.lines().nth(2).unwrap().starts_with("    east"),
        "{tree}"
    );

    // History, diff, rollback of an environment.
    assert_eq!(
        sb.json(&["env", "history", "web", "prod"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let diff = sb.ok(&["env", "diff", "web", "prod"]);
    assert!(
        diff.contains("-    \"pool\": 20") && diff.contains("+    \"pool\": 30"),
        "{diff}"
    );
    sb.ok(&["env", "rollback", "web", "prod", "--to", "1"]);
    assert_eq!(
        sb.json(&["env", "view", "web", "prod"])["view"]["db"]["pool"],
        json!(20)
    );

    // Associations, the host identity rule, pins.
    sb.ok(&[
        "env",
        "associate",
        "web",
        "prod/east",
        "--host",
        "h1.example.com",
    ]);
    sb.code(
        &[
            "env",
            "associate",
            "web",
            "nope",
            "--host",
            "h1.example.com",
        ],
        3,
    );
    let me = sb.run_with(
        &["env", "associate", "web", "prod"],
        &[("KINGPIN_HOST", "Me.Example.com")],
    );
    assert!(
        me.status.success(),
        "{}",
        String::from_utf8_lossy(&me.stderr)
    );
    let hosts = sb.json(&["env", "hosts", "web"]);
    let listed: Vec<(String, String)> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap().to_owned(),
                h["environment"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("h1.example.com".into(), "/prod/east".into()),
            ("me.example.com".into(), "/prod".into())
        ]
    );
    sb.ok(&["env", "pin", "web", "1", "--host", "h1.example.com"]);
    sb.code(&["env", "pin", "web", "99", "--host", "h1.example.com"], 3);
    assert!(sb
        .ok(&["env", "hosts", "web", "--env", "/prod/east"])
        .contains("pinned to 1"));
    sb.ok(&["env", "unpin", "web", "--host", "h1.example.com"]);

    // Export, then import under another name.
    let mut document = sb.json(&["env", "export", "web"]);
    document["service"] = json!("copy");
    let file = sb.path().join("copy.json");
    std::fs::write(&file, document.to_string()).unwrap();
    let imported = sb.json(&["env", "import", "--file", file.to_str().unwrap()]);
    assert_eq!(imported["hosts"], json!(2));
    assert_eq!(
        sb.json(&["env", "view", "copy", "prod/east"])["view"],
        sb.json(&["env", "view", "web", "prod/east"])["view"]
    );
    sb.code(&["env", "import", "--file", file.to_str().unwrap()], 4);

    // Deletion needs --force with children or hosts, and says what went.
    let (_, err) = sb.code(&["env", "delete", "web", "prod"], 4);
    assert!(err.contains("/prod/east") && err.contains("force"), "{err}");
    let deleted = sb.json(&["env", "delete", "web", "prod", "--force"]);
    assert_eq!(deleted["environments"], json!(["/prod", "/prod/east"]));
    assert_eq!(deleted["unassociated"].as_array().unwrap().len(), 2);
    assert_eq!(sb.json(&["env", "hosts", "web"]), json!([]));

    // The monitor's metaconfig for a service's environments.
    let metaconfig = sb.json(&["metaconfig", "create-environment", "web"]);
    assert_eq!(metaconfig["name"], json!("environments.web"));
    assert_eq!(metaconfig["kind"], json!("environment"));
}

/// `kingpin env import-jones` from a Jones layout on the run's ZooKeeper
/// into the embedded stack: `--dry-run` writes nothing; the import keeps
/// Jones's views and lists the places it adjusted.
#[test]
fn import_jones_from_zookeeper() {
    use kingpin::kingpin_api::{CreateMode, NodePath};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(hosts) = runtime.block_on(kingpin_conformance_tests::endpoints::shared_endpoint(
        kingpin_conformance_tests::servers::ServerKind::ZooKeeper,
        "import_jones_from_zookeeper",
    )) else {
        return;
    };
    let url = format!(
        "zk://{hosts}{}",
        kingpin_conformance_tests::unique_namespace()
    );
    runtime.block_on(async {
        let zk = kingpin::open_coordinator(&url).await.unwrap();
        for (path, data) in [
            (
                "/services/shop/conf",
                r#"{"db": {"host": "a", "pool": 5}, "name": "shop"}"#,
            ),
            ("/services/shop/conf/prod", r#"{"db": {"host": "b"}}"#),
            (
                "/services/shop/views",
                r#"{"db": {"host": "a", "pool": 5}, "name": "shop"}"#,
            ),
            (
                "/services/shop/views/prod",
                r#"{"db": {"host": "b"}, "name": "shop"}"#,
            ),
            (
                "/services/shop/nodemaps",
                r#"{"web1.example.com": "/services/shop/views/prod"}"#,
            ),
        ] {
            let path = NodePath::parse(path).unwrap();
            zk.create(&path, data.as_bytes(), CreateMode::Persistent)
                .await
                .unwrap();
        }
        zk.close().await.unwrap();
    });
    let sb = Sandbox::new();
    let planned = sb.json(&["env", "import-jones", "shop", "--from", &url, "--dry-run"]);
    assert_eq!(planned["adjustments"][0]["places"], json!(["/db/pool"]));
    assert_eq!(
        sb.json(&["env", "services"]),
        json!([]),
        "a dry run writes nothing"
    );
    let text = sb.ok(&["env", "import-jones", "shop", "--from", &url]);
    assert!(
        text.contains("/prod") && text.contains("/db/pool"),
        "{text}"
    );
    assert_eq!(
        sb.json(&["env", "view", "shop", "prod"])["view"],
        json!({"db": {"host": "b"}, "name": "shop"}),
        "Jones's view, not the deep merge"
    );
    let hosts = sb.json(&["env", "hosts", "shop"]);
    assert_eq!(hosts[0]["host"], json!("web1.example.com"));
    assert_eq!(hosts[0]["environment"], json!("/prod"));
    sb.code(
        &[
            "env",
            "import-jones",
            "shop",
            "--from",
            "sqlite:///tmp/x.db",
        ],
        6,
    );
}
