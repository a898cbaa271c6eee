//! `kingpin acl` and the three identities end to end, through the binary:
//! on ZooKeeper with digest ACLs (the shared server, a namespace of its
//! own) and on a private etcd with auth enabled. Readers and registrars
//! are refused every write with exit code 7, writers do everything, and no
//! password appears in any output or log.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use kingpin::kingpin_api::access::Role;
use kingpin::kingpin_api::discovery::ServerSet;
use kingpin::kingpin_api::Coordinator;
use kingpin_conformance_tests::endpoints::{private_server, shared_endpoint};
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{unique_namespace, unique_suffix};
use kingpin_zookeeper::{ZooKeeperConfig, ZooKeeperCoordinator};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;

const UNAUTHORIZED: i32 = 7;
const INVALID: i32 = 6;
const WAIT: Duration = Duration::from_secs(40);

/// Variables that would pick other backends, settings or identities.
const INHERITED_VARS: [&str; 9] = [
    "KINGPIN_COORDINATOR",
    "KINGPIN_BLOBSTORE",
    "KINGPIN_CONFIG",
    "KINGPIN_AUTHOR",
    "XDG_CONFIG_HOME",
    "RUST_LOG",
    "KINGPIN_ZK_DIGEST",
    "KINGPIN_ETCD_USER",
    "KINGPIN_ETCD_PASSWORD",
];

/// What one run of the binary printed.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A coordinator namespace, a blob directory, and how each identity
/// authenticates (environment variables).
struct Deployment {
    coordinator: String,
    home: tempfile::TempDir,
    identities: Vec<(Role, Vec<(&'static str, String)>)>,
    secrets: Vec<String>,
    /// Everything every run printed, to search for secrets at the end.
    transcript: std::sync::Mutex<String>,
}

impl Deployment {
    fn new(coordinator: String) -> Deployment {
        Deployment {
            coordinator,
            home: tempfile::tempdir().unwrap(),
            identities: Vec::new(),
            secrets: Vec::new(),
            transcript: Default::default(),
        }
    }

    fn blobstore(&self) -> String {
        format!("file://{}", self.home.path().join("blobs").display())
    }

    fn command(&self, env: &[(&'static str, String)], args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kingpin"));
        for var in INHERITED_VARS {
            command.env_remove(var);
        }
        command
            .arg("--coordinator")
            .arg(&self.coordinator)
            .arg("--blobstore")
            .arg(self.blobstore())
            .args(args)
            .current_dir(self.home.path())
            .env("KINGPIN_HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("xdg"))
            // As chatty as it gets: no log line may hold a secret.
            .env("RUST_LOG", "trace");
        for (var, value) in env {
            command.env(var, value);
        }
        command
    }

    fn env_of(&self, role: Option<Role>) -> Vec<(&'static str, String)> {
        role.map(|role| {
            self.identities
                .iter()
                .find(|(r, _)| *r == role)
                .expect("an identity per role")
                .1
                .clone()
        })
        .unwrap_or_default()
    }

    async fn run_with(
        &self,
        env: &[(&'static str, String)],
        args: &[&str],
        stdin: Option<&str>,
    ) -> Run {
        let mut command = self.command(env, args);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("kingpin runs");
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.unwrap_or("").as_bytes())
            .await
            .unwrap();
        drop(input);
        let output = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .expect("kingpin finishes")
            .unwrap();
        let run = Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        let mut transcript = self.transcript.lock().unwrap();
        transcript.push_str(&format!(
            "$ kingpin {}\n{}{}",
            args.join(" "),
            run.stdout,
            run.stderr
        ));
        run
    }

    async fn run(&self, role: Option<Role>, args: &[&str]) -> Run {
        self.run_with(&self.env_of(role), args, None).await
    }

    /// Runs and expects exit code `code`.
    async fn expect(&self, role: Option<Role>, code: i32, args: &[&str]) -> Run {
        let run = self.run(role, args).await;
        assert_eq!(
            run.code,
            code,
            "{role:?}: kingpin {}\nstdout: {}\nstderr: {}",
            args.join(" "),
            run.stdout,
            run.stderr
        );
        run
    }

    /// Runs and expects exit code 7 with an `unauthorized` message.
    async fn refused(&self, role: Option<Role>, args: &[&str]) {
        let run = self.expect(role, UNAUTHORIZED, args).await;
        assert!(
            run.stderr.contains("kingpin: unauthorized:"),
            "{}",
            run.stderr
        );
    }

    fn write_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.home.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// No secret in anything any run printed.
    fn assert_no_secret_printed(&self) {
        let transcript = self.transcript.lock().unwrap();
        assert!(!transcript.is_empty());
        for secret in &self.secrets {
            assert!(
                !transcript.contains(secret.as_str()),
                "a secret was printed:\n{transcript}"
            );
        }
    }
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp paths")
}

/// Writers set up the data the other identities then read.
async fn write_fixture(d: &Deployment) {
    d.expect(
        Some(Role::Writer),
        0,
        &[
            "config",
            "set",
            "config.app.flags",
            "--value",
            "{\"on\":true}",
        ],
    )
    .await;
    d.expect(
        Some(Role::Writer),
        0,
        &["metaconfig", "create-config", "config.app.flags"],
    )
    .await;
    d.expect(
        Some(Role::Writer),
        0,
        &["metaconfig", "create-serverset", "api", "prod"],
    )
    .await;
    d.expect(Some(Role::Writer), 0, &["dep", "create", "host.dep"])
        .await;
    d.expect(
        Some(Role::Writer),
        0,
        &[
            "dep",
            "add",
            "host.dep",
            "config.app.flags",
            "discovery.api.prod",
        ],
    )
    .await;
    d.expect(
        Some(Role::Writer),
        0,
        &["list", "add", "config.manageddata.app.hosts", "a"],
    )
    .await;
}

/// Every kind of write the CLI makes, refused for `role`.
async fn refuse_every_write(d: &Deployment, role: Option<Role>) {
    d.refused(
        role,
        &["config", "set", "config.app.flags", "--value", "{}"],
    )
    .await;
    d.refused(role, &["config", "set", "config.app.new", "--value", "{}"])
        .await;
    d.refused(
        role,
        &["config", "rollback", "config.app.flags", "--to", "1"],
    )
    .await;
    d.refused(role, &["list", "add", "config.manageddata.app.hosts", "b"])
        .await;
    d.refused(role, &["metaconfig", "create-config", "config.app.other"])
        .await;
    d.refused(role, &["metaconfig", "remove", "config.app.flags"])
        .await;
    d.refused(role, &["dep", "create", "other.dep"]).await;
    d.refused(role, &["dep", "remove", "host.dep", "config.app.flags"])
        .await;
}

/// `kingpin register` as the registrar joins, and leaves on SIGTERM;
/// `observer` follows the serverset by its watch.
async fn register_and_leave(d: &Deployment, observer: std::sync::Arc<dyn Coordinator>) {
    let serverset = ServerSet::new(observer, "api", "prod").unwrap();
    let mut watch = serverset.watch().await.expect("a serverset watch");
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = d
        .command(
            &d.env_of(Some(Role::Registrar)),
            &[
                "register",
                "--service",
                "api",
                "--env",
                "prod",
                "--host",
                "127.0.0.1",
                "--port",
                "8080",
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("kingpin register runs");
    let log_text = || std::fs::read_to_string(log.path()).unwrap_or_default();
    let until = |want: usize| {
        let serverset = &serverset;
        async move {
            serverset
                .members()
                .await
                .map(|m| m.len() == want)
                .unwrap_or(false)
        }
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while !until(1).await {
        tokio::time::timeout_at(deadline, watch.next())
            .await
            .unwrap_or_else(|_| panic!("the registrar never joined:\n{}", log_text()));
    }
    let pid = child.id().expect("running");
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("register exits")
        .unwrap();
    assert!(status.success(), "{status}\n{}", log_text());
    while !until(0).await {
        tokio::time::timeout_at(deadline, watch.next())
            .await
            .unwrap_or_else(|_| panic!("the registrar never left:\n{}", log_text()));
    }
    d.transcript.lock().unwrap().push_str(&log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_identities_on_zookeeper_with_digest_acls() {
    let Some(hosts) = shared_endpoint(ServerKind::ZooKeeper, "three_identities_zk").await else {
        return;
    };
    let namespace = unique_namespace();
    let mut d = Deployment::new(format!("zk://{hosts}{namespace}"));
    let mut identities = Vec::new();
    let mut credentials = Vec::new();
    for role in Role::ALL {
        let user = format!("kp-{role}");
        let password = format!("pw-{}", unique_suffix());
        // The digest the policy names, from the password on stdin.
        let run = d
            .run_with(
                &[],
                &["acl", "digest", &user],
                Some(&format!("{password}\n")),
            )
            .await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        let identity = run.stdout.trim().to_owned();
        assert_eq!(
            identity,
            format!(
                "digest:{}",
                kingpin::access::zookeeper_digest_identity(&user, &password)
            )
        );
        identities.push((role, identity));
        credentials.push((role, format!("{user}:{password}")));
        d.secrets.push(password);
    }
    d.identities = credentials
        .iter()
        .map(|(role, c)| (*role, vec![("KINGPIN_ZK_DIGEST", c.clone())]))
        .collect();
    let quoted = |role: Role| {
        let (_, identity) = identities.iter().find(|(r, _)| *r == role).unwrap();
        format!("[\"{identity}\"]")
    };
    let policy = d.write_file(
        "policy.toml",
        &format!(
            "anonymous = \"none\"\nreaders = {}\nregistrars = {}\nwriters = {}\n",
            quoted(Role::Reader),
            quoted(Role::Registrar),
            quoted(Role::Writer)
        ),
    );
    let policy = path_arg(&policy);

    // Setup needs a writer's identity; a dry run changes nothing.
    d.expect(None, INVALID, &["acl", "setup", "--policy", policy])
        .await;
    let run = d
        .expect(
            Some(Role::Reader),
            INVALID,
            &["acl", "setup", "--policy", policy],
        )
        .await;
    assert!(run.stderr.contains("lock it out"), "{}", run.stderr);
    let bad = d.write_file("bad.toml", "writers = [\"digest:kp-writer:hunter2\"]\n");
    let run = d
        .expect(
            Some(Role::Writer),
            INVALID,
            &["acl", "setup", "--policy", path_arg(&bad)],
        )
        .await;
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    let dry = d
        .expect(
            Some(Role::Writer),
            0,
            &["acl", "setup", "--policy", policy, "--dry-run"],
        )
        .await;
    assert!(dry.stdout.contains("/acl  differs"), "{}", dry.stdout);
    // No policy stored yet: nothing to check against.
    d.expect(Some(Role::Writer), 3, &["acl", "check"]).await;
    d.expect(Some(Role::Writer), 1, &["acl", "check", "--policy", policy])
        .await;
    let setup = d
        .expect(Some(Role::Writer), 0, &["acl", "setup", "--policy", policy])
        .await;
    assert!(setup.stdout.contains("/acl  fixed"), "{}", setup.stdout);
    assert!(
        setup.stdout.contains("/discovery  fixed"),
        "{}",
        setup.stdout
    );

    // The writer does everything.
    write_fixture(&d).await;

    // The reader reads everything and every write is refused.
    let run = d
        .expect(
            Some(Role::Reader),
            0,
            &["config", "get", "config.app.flags"],
        )
        .await;
    assert_eq!(run.stdout.trim(), "{\"on\":true}");
    d.expect(
        Some(Role::Reader),
        0,
        &["dep", "show", "host.dep", "--resolved"],
    )
    .await;
    d.expect(Some(Role::Reader), 0, &["metaconfig", "list"])
        .await;
    refuse_every_write(&d, Some(Role::Reader)).await;
    d.expect(Some(Role::Reader), 0, &["acl", "check"]).await;
    let show = d.expect(Some(Role::Reader), 0, &["acl", "show"]).await;
    assert!(show.stdout.contains("kp-reader"), "{}", show.stdout);

    // The registrar joins and leaves its serverset, and writes no config.
    let (_, reader_credentials) = credentials
        .iter()
        .find(|(r, _)| *r == Role::Reader)
        .unwrap();
    let observer = ZooKeeperCoordinator::connect(
        ZooKeeperConfig::new([hosts.clone()])
            .with_chroot(&namespace)
            .unwrap()
            .with_digest(reader_credentials.clone())
            .unwrap(),
    )
    .await
    .expect("the reader's session");
    register_and_leave(&d, std::sync::Arc::new(observer)).await;
    refuse_every_write(&d, Some(Role::Registrar)).await;

    // Without identity: nothing (the policy gives anonymous users nothing).
    d.refused(None, &["config", "get", "config.app.flags"])
        .await;
    refuse_every_write(&d, None).await;
    d.expect(Some(Role::Writer), 0, &["backends"]).await;
    d.assert_no_secret_printed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_identities_on_etcd_with_auth_enabled() {
    let Some(server) = private_server(ServerKind::Etcd, "three_identities_etcd").await else {
        return;
    };
    let prefix = unique_namespace();
    let mut d = Deployment::new(format!("etcd://{}{prefix}", server.endpoint()));
    let root_password = format!("root-{}", unique_suffix());
    let users: Vec<(Role, String, String)> = Role::ALL
        .into_iter()
        .map(|role| {
            (
                role,
                format!("kp-{role}"),
                format!("pw-{}", unique_suffix()),
            )
        })
        .collect();
    server
        .enable_etcd_auth(
            &root_password,
            &users
                .iter()
                .map(|(_, u, p)| (u.clone(), p.clone()))
                .collect::<Vec<_>>(),
        )
        .await
        .expect("auth enabled");
    d.identities = users
        .iter()
        .map(|(role, user, password)| {
            (
                *role,
                vec![
                    ("KINGPIN_ETCD_USER", user.clone()),
                    ("KINGPIN_ETCD_PASSWORD", password.clone()),
                ],
            )
        })
        .collect();
    d.secrets = users.iter().map(|(_, _, p)| p.clone()).collect();
    d.secrets.push(root_password.clone());
    let root = [
        ("KINGPIN_ETCD_USER", "root".to_owned()),
        ("KINGPIN_ETCD_PASSWORD", root_password.clone()),
    ];
    let policy = d.write_file(
        "policy.toml",
        "readers = [\"kp-reader\"]\nregistrars = [\"kp-registrar\"]\nwriters = [\"kp-writer\"]\n",
    );
    let policy = path_arg(&policy);
    let open = d.write_file(
        "open.toml",
        "anonymous = \"read\"\nwriters = [\"kp-writer\"]\n",
    );
    let run = d
        .run_with(&root, &["acl", "setup", "--policy", path_arg(&open)], None)
        .await;
    assert_eq!(run.code, INVALID, "{}", run.stderr);
    // Only root manages roles.
    d.refused(Some(Role::Writer), &["acl", "setup", "--policy", policy])
        .await;
    let setup = d
        .run_with(&root, &["acl", "setup", "--policy", policy], None)
        .await;
    assert_eq!(setup.code, 0, "{}{}", setup.stdout, setup.stderr);
    assert!(
        setup
            .stdout
            .contains(&format!("role kingpin-reader@{prefix}  fixed")),
        "{}",
        setup.stdout
    );
    let check = d.run_with(&root, &["acl", "check"], None).await;
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);

    write_fixture(&d).await;
    let run = d
        .expect(
            Some(Role::Reader),
            0,
            &["config", "get", "config.app.flags"],
        )
        .await;
    assert_eq!(run.stdout.trim(), "{\"on\":true}");
    refuse_every_write(&d, Some(Role::Reader)).await;

    let (_, reader, password) = users.iter().find(|(r, _, _)| *r == Role::Reader).unwrap();
    let observer = kingpin_etcd::EtcdCoordinator::connect(
        kingpin_etcd::EtcdConfig::new([server.endpoint()])
            .with_prefix(&prefix)
            .unwrap()
            .with_credentials(reader.clone(), password.clone()),
    )
    .await
    .expect("the reader's session");
    register_and_leave(&d, std::sync::Arc::new(observer)).await;
    refuse_every_write(&d, Some(Role::Registrar)).await;

    d.refused(None, &["config", "get", "config.app.flags"])
        .await;
    refuse_every_write(&d, None).await;
    d.assert_no_secret_printed();
}

/// The user file permissions give read access to, and nothing else.
const NOBODY: u32 = 65534;

/// Everyone may read and enter `dir` and everything below it; only its
/// owner (root) may write.
fn readable_by_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            readable_by_all(&path);
        } else {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_permissions_make_readers_of_other_users() {
    if !nix::unistd::geteuid().is_root() {
        kingpin_conformance_tests::harness::skip(
            "sqlite",
            "sqlite_file_permissions_make_readers_of_other_users",
            "running a command as another user needs root",
        );
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("state").join("kingpin.db");
    let mut d = Deployment::new(format!("sqlite://{}", db.display()));
    d.home = home;
    // The writer (root, the file's owner) sets everything up.
    d.expect(
        None,
        0,
        &[
            "config",
            "set",
            "config.app.flags",
            "--value",
            "{\"on\":true}",
        ],
    )
    .await;
    d.expect(None, 0, &["dep", "create", "host.dep"]).await;
    // Its -wal and -shm files stay once it is gone, for readers to use.
    assert!(db.with_extension("db-shm").exists());
    // The database readable by all, writable by its owner only; the reader
    // runs a copy of the binary (root's home is closed to others).
    let binary = d.home.path().join("kingpin");
    std::fs::copy(env!("CARGO_BIN_EXE_kingpin"), &binary).unwrap();
    readable_by_all(d.home.path());
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let as_nobody = |args: &[&str]| {
        let mut command = std::process::Command::new(&binary);
        for var in INHERITED_VARS {
            command.env_remove(var);
        }
        command
            .arg("--coordinator")
            .arg(&d.coordinator)
            .arg("--blobstore")
            .arg(d.blobstore())
            .args(args)
            .current_dir(d.home.path())
            .env("KINGPIN_HOME", d.home.path())
            .env("HOME", d.home.path())
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .expect("kingpin runs as nobody")
    };
    use std::os::unix::process::CommandExt as _;
    let read = as_nobody(&["config", "get", "config.app.flags"]);
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&read.stdout).trim(),
        "{\"on\":true}"
    );
    let listed = as_nobody(&["dep", "list"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    // A config write stops at the blob directory, a dependency at the
    // database.
    for (write, why) in [
        (
            &["config", "set", "config.app.flags", "--value", "{}"][..],
            "refused to write",
        ),
        (
            &["dep", "create", "other.dep"][..],
            "may only read SQLite database",
        ),
    ] {
        let refused = as_nobody(write);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(UNAUTHORIZED), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
    // Nothing changed.
    let run = d
        .expect(None, 0, &["config", "get", "config.app.flags"])
        .await;
    assert_eq!(run.stdout.trim(), "{\"on\":true}");
}
