//! The `kingpin` binary end to end: each test runs it in its own temporary
//! directory on the embedded SQLite + local blob stack, except
//! `against_zookeeper_and_s3`, which uses the servers named by
//! `KINGPIN_TEST_ZK` and `KINGPIN_TEST_S3`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tempfile::TempDir;

/// Environment variables that would pick other backends or settings.
const SETTINGS_VARS: [&str; 5] = [
    "KINGPIN_COORDINATOR",
    "KINGPIN_BLOBSTORE",
    "KINGPIN_CONFIG",
    "KINGPIN_AUTHOR",
    "XDG_CONFIG_HOME",
];

/// A temporary working directory, also `KINGPIN_HOME`, with no config file.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kingpin"));
        command
            .args(args)
            .current_dir(self.path())
            .env("KINGPIN_HOME", self.path())
            .env("USER", "tester")
            .stdin(Stdio::null());
        for var in SETTINGS_VARS {
            command.env_remove(var);
        }
        // No config file from the real home.
        command.env("XDG_CONFIG_HOME", self.path().join("xdg"));
        command
    }

    fn run_command(mut command: Command, stdin: Option<&[u8]>) -> Output {
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kingpin runs");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input).expect("stdin written");
        }
        child.wait_with_output().expect("kingpin finishes")
    }

    fn run(&self, args: &[&str]) -> Output {
        Self::run_command(self.command(args), None)
    }

    /// Runs and expects success; stdout.
    fn ok(&self, args: &[&str]) -> String {
        expect_code(self.run(args), 0, args).0
    }

    /// Runs and expects `code`; stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        expect_code(self.run(args), code, args).1
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let out = self.ok(&with_json);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    fn history_len(&self, name: &str) -> usize {
        self.json(&["config", "history", name])
            .as_array()
            .map_or(0, Vec::len)
    }
}

fn expect_code(output: Output, code: i32, args: &[&str]) -> (String, String) {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "kingpin {args:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

const LIST: &str = "config.manageddata.spam.blacklist";

#[test]
fn list_round_trip_in_the_kingpin_format() {
    let s = Sandbox::new();
    assert_eq!(s.ok(&["list", "add", LIST, "a", "b", "a"]), "added 2\n");
    assert_eq!(s.ok(&["list", "get", LIST]), "a\nb\n");
    assert_eq!(s.ok(&["config", "get", LIST]), r#"["a", "b"]"#);
    assert_eq!(s.ok(&["list", "contains", LIST, "b"]), "true\n");
    assert_eq!(s.ok(&["list", "remove", LIST, "a", "zzz"]), "removed 1\n");
    assert_eq!(s.ok(&["list", "contains", LIST, "a"]), "false\n");
    assert_eq!(s.json(&["list", "get", LIST]), serde_json::json!(["b"]));
    assert_eq!(s.history_len(LIST), 2);

    // Typed items: a bad one writes nothing.
    let ints = "config.manageddata.app.ports";
    assert_eq!(
        s.ok(&["list", "add", ints, "--type", "int", "80", "-1"]),
        "added 2\n"
    );
    let err = s.fails(&["list", "add", ints, "--type", "int", "443", "x"], 6);
    assert!(err.contains("\"x\" is not an int"), "{err}");
    assert_eq!(s.ok(&["config", "get", ints]), "[80, -1]");
    assert_eq!(s.history_len(ints), 1);
    assert_eq!(s.ok(&["list", "get", ints, "--type", "int"]), "80\n-1\n");
    // Reading the ints as strings is refused.
    s.fails(&["list", "get", ints, "--type", "string"], 6);
    s.ok(&["list", "set", ints, "--type", "json", "{\"a\":1}", "\"s\""]);
    assert_eq!(s.ok(&["list", "get", ints]), "{\"a\":1}\ns\n");
    s.ok(&["list", "clear", ints]);
    assert_eq!(s.ok(&["config", "get", ints]), "[]");
}

#[test]
fn map_set_get_with_sorted_keys() {
    let s = Sandbox::new();
    let map = "config.manageddata.app.limits";
    assert_eq!(
        s.ok(&["map", "set", map, "zeta", "1", "alpha", "2", "--type", "int"]),
        "changed 2\n"
    );
    assert_eq!(s.ok(&["config", "get", map]), r#"{"alpha": 2, "zeta": 1}"#);
    assert_eq!(s.ok(&["map", "get", map, "alpha"]), "2\n");
    assert_eq!(s.ok(&["map", "get", map]), "alpha\t2\nzeta\t1\n");
    assert_eq!(s.ok(&["map", "keys", map]), "alpha\nzeta\n");
    s.fails(&["map", "get", map, "nope"], 3);
    let err = s.fails(&["map", "set", map, "k"], 2);
    assert!(err.contains("KEY VALUE pairs"), "{err}");
    s.fails(&["map", "set", map, "k", "x", "--type", "float"], 6);
    assert_eq!(s.ok(&["map", "remove", map, "zeta", "nope"]), "removed 1\n");
    assert_eq!(
        s.json(&["map", "get", map]),
        serde_json::json!({ "alpha": 2 })
    );
    s.ok(&["map", "clear", map]);
    assert_eq!(s.ok(&["config", "get", map]), "{}");
}

#[test]
fn mapped_list_round_trip() {
    let s = Sandbox::new();
    let name = "config.manageddata.app.hosts";
    assert_eq!(
        s.ok(&["mapped-list", "add", name, "web", "a", "b"]),
        "added 2\n"
    );
    s.ok(&["mapped-list", "add", name, "db", "x", "y"]);
    assert_eq!(
        s.ok(&["mapped-list", "remove", name, "db", "y"]),
        "removed 1\n"
    );
    assert_eq!(
        s.ok(&["config", "get", name]),
        r#"{"db": ["x"], "web": ["a", "b"]}"#
    );
    assert_eq!(s.ok(&["mapped-list", "get", name, "web"]), "a\nb\n");
    assert_eq!(
        s.ok(&["mapped-list", "get", name]),
        "db\t[\"x\"]\nweb\t[\"a\",\"b\"]\n"
    );
    s.ok(&["mapped-list", "set", name, "web", "c", "c", "d"]);
    assert_eq!(s.ok(&["mapped-list", "get", name, "web"]), "c\nd\n");
    s.ok(&["mapped-list", "remove-key", name, "db"]);
    assert_eq!(s.ok(&["mapped-list", "keys", name]), "web\n");
    s.ok(&["mapped-list", "clear", name]);
    assert_eq!(s.ok(&["config", "get", name]), "{}");
}

#[test]
fn json_documents_must_be_json() {
    let s = Sandbox::new();
    let name = "config.app.limits";
    assert_eq!(
        s.ok(&[
            "json",
            "set",
            name,
            "--value",
            r#"{"rps": 10, "burst": 20}"#
        ]),
        "1\n"
    );
    assert_eq!(
        s.ok(&["config", "get", name]),
        r#"{"burst": 20, "rps": 10}"#
    );
    let err = s.fails(&["json", "set", name, "--value", "{not json"], 6);
    assert!(err.contains("not JSON"), "{err}");
    let piped = Sandbox::run_command(s.command(&["json", "set", name]), Some(b"nope"));
    expect_code(piped, 6, &["json", "set (stdin)"]);
    assert_eq!(s.history_len(name), 1);
    let piped = Sandbox::run_command(s.command(&["json", "set", name]), Some(b"[1, 2]"));
    expect_code(piped, 0, &["json", "set (stdin)"]);
    assert_eq!(s.ok(&["json", "get", name]), "[\n  1,\n  2\n]\n");
    s.fails(&["json", "get", "config.app.none"], 3);
}

#[test]
fn decider_values_stay_in_range() {
    let s = Sandbox::new();
    s.ok(&["decider", "set", "new_feed", "12.5"]);
    assert_eq!(s.ok(&["decider", "get", "new_feed"]), "12.5\n");
    let err = s.fails(&["decider", "set", "new_feed", "150"], 6);
    assert!(err.contains("outside [0, 100]"), "{err}");
    s.fails(&["decider", "set", "new_feed", "-1"], 6);
    s.fails(&["decider", "set", "new_feed", "lots"], 6);
    s.fails(&["decider", "set", "Upper", "1"], 6);
    assert_eq!(s.ok(&["decider", "get", "new_feed"]), "12.5\n");
    s.ok(&["decider", "set", "other", "100"]);
    assert_eq!(s.ok(&["decider", "list"]), "new_feed\t12.5\nother\t100\n");
    s.ok(&["decider", "remove", "other"]);
    s.fails(&["decider", "get", "other"], 3);
    assert_eq!(
        s.ok(&["config", "get", "config.manageddata.admin.decider"]),
        r#"{"new_feed": 12.5}"#
    );
}

#[test]
fn invalid_names_are_refused_before_anything_is_opened() {
    let s = Sandbox::new();
    for bad in ["Config.Bad", "a..b", "a/b"] {
        for args in [
            vec!["config", "get", bad],
            vec!["config", "set", bad, "--value", "x"],
            vec!["list", "add", bad, "x"],
            vec!["map", "set", bad, "k", "v"],
            vec!["json", "set", bad, "--value", "{}"],
            vec!["metaconfig", "create-config", bad],
            vec!["dep", "add", "web.dep", bad],
        ] {
            let err = s.fails(&args, 6);
            assert!(err.contains(&format!("{bad:?}")), "{args:?}: {err}");
            assert!(err.starts_with("kingpin: invalid_argument: "), "{err}");
        }
    }
    s.fails(&["dep", "create", "config.not-a-dep"], 6);
    s.fails(&["metaconfig", "create-serverset", "a.b", "prod"], 6);
    assert!(
        !s.path().join(".kingpin").exists(),
        "invalid input created .kingpin"
    );
}

#[test]
fn config_set_get_history_rollback_diff() {
    let s = Sandbox::new();
    let name = "config.app.settings";
    assert_eq!(
        s.ok(&["config", "set", name, "--value", "one\n", "-m", "first"]),
        "1\n"
    );
    let piped = Sandbox::run_command(s.command(&["config", "set", name]), Some(b"two\n"));
    expect_code(piped, 0, &["config", "set (stdin)"]);
    let file = s.path().join("three.txt");
    std::fs::write(&file, b"three\n").expect("written");
    let file_arg = file.to_str().expect("a UTF-8 path");
    s.ok(&["config", "set", name, "--file", file_arg, "--author", "bob"]);
    assert_eq!(s.ok(&["config", "get", name]), "three\n");
    assert_eq!(s.ok(&["config", "get", name, "--version", "1"]), "one\n");
    s.fails(&["config", "get", name, "--version", "9"], 3);

    let history = s.ok(&["config", "history", name]);
    let lines: Vec<Vec<&str>> = history
        .lines()
        .map(|line| line.split('\t').collect())
        .collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert_eq!(lines[0][0], "3");
    assert_eq!(lines[0][2], "bob");
    assert_eq!(lines[2][0], "1");
    assert_eq!(lines[2][2], "tester");
    assert_eq!(lines[2][3], "4");
    assert_eq!(lines[2][5], "first");
    assert!(
        lines[2][1].ends_with('Z') && lines[2][1].contains('T'),
        "{history}"
    );
    assert_eq!(
        s.ok(&["config", "history", name, "--limit", "1"])
            .lines()
            .count(),
        1
    );

    assert_eq!(s.ok(&["config", "rollback", name, "--to", "1"]), "4\n");
    assert_eq!(s.ok(&["config", "get", name]), "one\n");
    let diff = s.ok(&["config", "diff", name]);
    assert!(
        diff.contains("-three\n") && diff.contains("+one\n"),
        "{diff}"
    );
    assert!(diff.contains(&format!("--- {name}@3")), "{diff}");
    let diff = s.ok(&["config", "diff", name, "--from", "1", "--to", "2"]);
    assert!(diff.contains("-one\n") && diff.contains("+two\n"), "{diff}");
    assert_eq!(
        s.ok(&["config", "diff", name, "--from", "1", "--to", "4"]),
        ""
    );
    s.fails(&["config", "diff", name, "--from", "7"], 3);
    s.fails(&["config", "rollback", name, "--to", "9"], 3);
    let gc = s.json(&["config", "gc", name, "--keep", "2"]);
    assert_eq!(gc["records_deleted"], 2, "{gc}");
    assert_eq!(s.history_len(name), 2);
    assert_eq!(s.ok(&["config", "get", name]), "one\n");
}

#[test]
fn if_version_is_compare_and_set() {
    let s = Sandbox::new();
    let name = "config.app.cas";
    s.ok(&["config", "set", name, "--value", "a", "--if-version", "0"]);
    let err = s.fails(
        &["config", "set", name, "--value", "b", "--if-version", "0"],
        4,
    );
    assert!(err.contains("bad_version"), "{err}");
    s.fails(
        &["config", "set", name, "--value", "b", "--if-version", "5"],
        4,
    );
    assert_eq!(
        s.ok(&["config", "set", name, "--value", "b", "--if-version", "1"]),
        "2\n"
    );
    s.fails(
        &[
            "config",
            "set",
            "config.app.other",
            "--value",
            "b",
            "--if-version",
            "1",
        ],
        4,
    );
    assert_eq!(s.ok(&["config", "get", name]), "b");
}

#[test]
fn missing_configs_are_not_found() {
    let s = Sandbox::new();
    let err = s.fails(&["config", "get", "config.nope"], 3);
    assert!(
        err.starts_with("kingpin: not_found: ") && err.contains("config.nope"),
        "{err}"
    );
    s.fails(&["config", "history", "config.nope"], 3);
    s.fails(&["config", "diff", "config.nope"], 3);
    // The API reads a list that was never written as empty (KingPin's
    // semantics), but a mistyped name on the command line is not found.
    for kind in ["list", "map", "mapped-list", "json"] {
        let err = s.fails(&[kind, "get", "config.nope"], 3);
        assert!(err.contains("config.nope"), "{kind}: {err}");
    }
    s.ok(&["list", "add", "config.nope", "a"]);
    assert_eq!(s.ok(&["list", "get", "config.nope"]), "a\n");
}

#[test]
fn the_author_is_the_account_when_user_is_unset() {
    let s = Sandbox::new();
    let mut command = s.command(&["--json", "config", "set", "config.app.who", "--value", "x"]);
    command.env_remove("USER");
    let out = Sandbox::run_command(command, None);
    let (stdout, _) = expect_code(out, 0, &["config set without USER"]);
    let record: Value = serde_json::from_str(&stdout).expect("a JSON record");
    let account = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .expect("the test runs as an account with a name");
    assert_eq!(record["author"], account.as_str());
    assert_ne!(record["author"], "unknown");
}

#[test]
fn metaconfig_create_show_list_remove() {
    let s = Sandbox::new();
    s.ok(&[
        "metaconfig",
        "create-config",
        LIST,
        "--max-random-delay-ms",
        "500",
    ]);
    s.ok(&["metaconfig", "create-serverset", "web", "prod"]);
    let shown = s.json(&["metaconfig", "show", LIST]);
    assert_eq!(shown["kind"], "config");
    assert_eq!(shown["node_path"], "/config/manageddata/spam/blacklist");
    assert_eq!(shown["max_random_delay_ms"], 500);
    let text = s.ok(&["metaconfig", "show", "discovery.web.prod"]);
    assert!(text.contains("kind: serverset"), "{text}");
    assert_eq!(
        s.ok(&["metaconfig", "list"]),
        format!("{LIST}\ndiscovery.web.prod\n")
    );
    // The same settings again are fine; different ones conflict.
    s.ok(&[
        "metaconfig",
        "create-config",
        LIST,
        "--max-random-delay-ms",
        "500",
    ]);
    s.fails(&["metaconfig", "create-config", LIST], 4);
    s.fails(&["metaconfig", "create-config", "web.dep"], 6);
    s.ok(&["metaconfig", "remove", LIST]);
    s.fails(&["metaconfig", "show", LIST], 3);
}

#[test]
fn dependencies_nest_and_resolve() {
    let s = Sandbox::new();
    for name in ["config.a", "config.b", "config.base"] {
        s.ok(&["metaconfig", "create-config", name]);
    }
    s.ok(&["metaconfig", "create-serverset", "web", "prod"]);
    for dep in ["web.dep", "shared.dep", "base.dep"] {
        s.ok(&["dep", "create", dep]);
    }
    assert_eq!(
        s.ok(&["dep", "add", "web.dep", "config.a", "shared.dep"]),
        "added 2 to web.dep\n"
    );
    s.ok(&[
        "dep",
        "add",
        "shared.dep",
        "config.b",
        "discovery.web.prod",
        "web.dep",
    ]);
    s.ok(&["dep", "add", "base.dep", "config.base"]);
    // A missing member adds none of the others.
    s.fails(&["dep", "add", "web.dep", "config.b", "config.ghost"], 3);
    s.fails(&["dep", "add", "nope.dep", "config.b"], 3);
    assert_eq!(s.ok(&["dep", "show", "web.dep"]), "config.a\nshared.dep\n");
    let resolved = s.json(&["dep", "show", "web.dep", "--resolved"]);
    let names: Vec<&str> = resolved["metaconfigs"]
        .as_array()
        .expect("metaconfigs")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["config.a", "config.b", "config.base", "discovery.web.prod"]
    );
    assert_eq!(
        resolved["dependencies"],
        serde_json::json!(["base.dep", "shared.dep", "web.dep"])
    );
    assert_eq!(resolved["missing"], serde_json::json!([]));
    let text = s.ok(&["dep", "show", "web.dep", "--resolved"]);
    assert!(
        text.contains("  discovery.web.prod (serverset)\n"),
        "{text}"
    );
    s.ok(&["dep", "remove", "web.dep", "shared.dep"]);
    assert_eq!(s.ok(&["dep", "show", "web.dep"]), "config.a\n");
    assert_eq!(s.ok(&["dep", "list"]), "base.dep\nshared.dep\nweb.dep\n");
    s.ok(&["dep", "delete", "shared.dep"]);
    s.fails(&["dep", "show", "shared.dep"], 3);
}

#[test]
fn json_output_and_json_errors_parse() {
    let s = Sandbox::new();
    let name = "config.app.x";
    let record = s.json(&["config", "set", name, "--value", "hello"]);
    assert_eq!(record["version"], 1);
    assert_eq!(record["author"], "tester");
    assert_eq!(record["size"], 5);
    let got = s.json(&["config", "get", name]);
    assert_eq!(got["content"], "hello");
    assert_eq!(got["name"], name);
    assert!(got["sha256"].as_str().is_some_and(|h| h.len() == 64));
    assert_eq!(s.json(&["config", "history", name])[0]["version"], 1);
    assert!(s.json(&["config", "diff", name])["diff"].is_string());
    assert_eq!(s.json(&["list", "add", LIST, "a"])["added"], 1);
    assert_eq!(s.json(&["list", "contains", LIST, "a"])["contains"], true);
    s.json(&["decider", "set", "f", "1"]);
    assert_eq!(s.json(&["decider", "list"])["f"], 1.0);
    assert_eq!(s.json(&["metaconfig", "list"]), serde_json::json!([]));
    assert_eq!(s.json(&["backends"])["coordinator"]["source"], "default");

    let out = s.run(&["--json", "config", "get", "config.missing"]);
    let (_, stderr) = expect_code(out, 3, &["--json config get"]);
    let err: Value = serde_json::from_str(&stderr).expect("a JSON error");
    assert_eq!(err["error"]["kind"], "not_found");
    assert!(err["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("config.missing")));
}

#[test]
fn help_completions_and_usage_errors() {
    let s = Sandbox::new();
    let help = s.ok(&["--help"]);
    assert!(
        help.contains("Exit codes:") && help.contains("4  conflict"),
        "{help}"
    );
    let script = s.ok(&["completions", "bash"]);
    assert!(script.contains("kingpin"), "{script}");
    s.fails(&["config"], 2);
    s.fails(&["list", "add", LIST], 2);
    s.fails(&["config", "set", LIST, "--file", "x", "--value", "y"], 2);
    s.fails(&["config", "set", LIST, "--file", "/nonexistent/file"], 6);
    assert!(!s.path().join(".kingpin").exists());
}

fn write_config(path: &Path, dir: &Path, tag: &str, author: &str) {
    let text = format!(
        "coordinator = \"sqlite://{dir}/{tag}/k.db\"\nblobstore = \"file://{dir}/{tag}/blobs\"\nauthor = \"{author}\"\n",
        dir = dir.display()
    );
    std::fs::write(path, text).expect("config written");
}

#[test]
fn a_config_file_selects_backends_and_author() {
    let s = Sandbox::new();
    let file = s.path().join("kingpin.toml");
    write_config(&file, s.path(), "fromfile", "filebot");
    let file_arg = file.to_str().expect("UTF-8");
    s.ok(&["--config", file_arg, "list", "add", LIST, "a"]);
    assert!(s.path().join("fromfile/k.db").is_file());
    assert!(s.path().join("fromfile/blobs").is_dir());
    assert!(!s.path().join(".kingpin").exists());
    let history = s.json(&["--config", file_arg, "config", "history", LIST]);
    assert_eq!(history[0]["author"], "filebot");
    // KINGPIN_CONFIG names the same file.
    let mut command = s.command(&["list", "get", LIST]);
    command.env("KINGPIN_CONFIG", &file);
    let (out, _) = expect_code(Sandbox::run_command(command, None), 0, &["KINGPIN_CONFIG"]);
    assert_eq!(out, "a\n");
    // And so does the XDG location.
    let xdg = s.path().join("xdg/kingpin");
    std::fs::create_dir_all(&xdg).expect("xdg dir");
    std::fs::copy(&file, xdg.join("config.toml")).expect("copied");
    assert_eq!(s.ok(&["list", "get", LIST]), "a\n");

    // Unknown keys are named; a missing named file is an error.
    let bad = s.path().join("bad.toml");
    std::fs::write(&bad, "coordinator = \"memory://\"\ncoordinatr = \"x\"\n").expect("written");
    let err = s.fails(&["--config", bad.to_str().expect("UTF-8"), "backends"], 6);
    assert!(err.contains("coordinatr"), "{err}");
    let err = s.fails(&["--config", "/nonexistent/kingpin.toml", "backends"], 6);
    assert!(err.contains("/nonexistent/kingpin.toml"), "{err}");
}

#[test]
fn flags_override_env_override_the_config_file() {
    let s = Sandbox::new();
    let file = s.path().join("kingpin.toml");
    write_config(&file, s.path(), "file", "filebot");
    let db = |tag: &str| -> PathBuf { s.path().join(tag).join("k.db") };
    let coordinator = |tag: &str| format!("sqlite://{}", db(tag).display());
    let blobstore = |tag: &str| format!("file://{}/{tag}/blobs", s.path().display());
    let run = |with_env: bool, flags: &[String], args: &[&str]| {
        let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let mut command = s.command(&all);
        command.env("KINGPIN_CONFIG", &file);
        if with_env {
            command
                .env("KINGPIN_COORDINATOR", coordinator("env"))
                .env("KINGPIN_BLOBSTORE", blobstore("env"))
                .env("KINGPIN_AUTHOR", "envbot");
        }
        expect_code(Sandbox::run_command(command, None), 0, &all).0
    };
    let backends = |with_env, flags: &[String]| -> Value {
        serde_json::from_str(&run(with_env, flags, &["--json", "backends"])).expect("JSON")
    };
    let flag = ["--coordinator".to_owned(), coordinator("flag")];
    let b = backends(true, &flag);
    assert_eq!(b["coordinator"]["source"], "flag");
    assert_eq!(b["coordinator"]["url"], coordinator("flag"));
    assert_eq!(b["blobstore"]["source"], "env");
    assert_eq!(b["author"]["source"], "env");
    let b = backends(true, &[]);
    assert_eq!(b["coordinator"]["source"], "env");
    assert_eq!(b["coordinator"]["url"], coordinator("env"));
    let b = backends(false, &flag);
    assert_eq!(b["coordinator"]["source"], "flag");
    assert_eq!(b["blobstore"]["source"], "config_file");
    assert_eq!(b["blobstore"]["url"], blobstore("file"));
    assert_eq!(b["author"]["name"], "filebot");
    let b = backends(false, &[]);
    assert_eq!(b["coordinator"]["source"], "config_file");

    // And the data really goes there.
    let both_flags = [
        flag[0].clone(),
        flag[1].clone(),
        "--blobstore".to_owned(),
        blobstore("flag"),
    ];
    run(true, &both_flags, &["list", "add", LIST, "flag"]);
    run(true, &[], &["list", "add", LIST, "env"]);
    run(false, &[], &["list", "add", LIST, "file"]);
    for tag in ["flag", "env", "file"] {
        assert!(db(tag).is_file(), "{tag}");
        assert!(s.path().join(tag).join("blobs").is_dir(), "{tag}");
    }
    assert_eq!(run(true, &both_flags, &["list", "get", LIST]), "flag\n");
    assert_eq!(run(true, &[], &["list", "get", LIST]), "env\n");
    assert_eq!(run(false, &[], &["list", "get", LIST]), "file\n");
    let author = |with_env| -> Value {
        let history: Value =
            serde_json::from_str(&run(with_env, &[], &["--json", "config", "history", LIST]))
                .expect("JSON");
        history[0]["author"].clone()
    };
    assert_eq!(author(true), "envbot");
    assert_eq!(author(false), "filebot");
    assert!(!s.path().join(".kingpin").exists());
}

#[test]
fn backends_never_print_url_options() {
    let s = Sandbox::new();
    let out = s.ok(&[
        "--blobstore",
        "s3://bucket/prefix?endpoint=http://127.0.0.1:1&region=secret-region",
        "--coordinator",
        "etcd://user:pw@127.0.0.1:1/kp",
        "backends",
    ]);
    assert!(
        !out.contains("secret-region") && !out.contains("pw@"),
        "{out}"
    );
    assert!(out.contains("s3://bucket/prefix?…"), "{out}");
}

/// Prints a skip, and appends it to `KINGPIN_TEST_SKIP_LOG` so the test
/// command lists it at the end of a run.
fn report_skip(what: &str) {
    let line = format!("SKIPPED {what}");
    println!("{line}");
    if let Ok(path) = std::env::var("KINGPIN_TEST_SKIP_LOG") {
        if let Ok(mut log) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(log, "{line}");
        }
    }
}

#[test]
fn against_zookeeper_and_s3() {
    let (zk, s3) = match (
        std::env::var("KINGPIN_TEST_ZK"),
        std::env::var("KINGPIN_TEST_S3"),
    ) {
        (Ok(zk), Ok(s3)) => (zk, s3),
        _ if std::env::var("KINGPIN_TEST_SKIP_EXTERNAL").as_deref() == Ok("1") => {
            report_skip("against_zookeeper_and_s3: KINGPIN_TEST_ZK or KINGPIN_TEST_S3 is unset");
            return;
        }
        _ => panic!(
            "against_zookeeper_and_s3 needs KINGPIN_TEST_ZK and KINGPIN_TEST_S3 (start them with \
             `cargo run -p kingpin-conformance-tests --bin kingpin-test-servers -- DIR zookeeper s3`), \
             or KINGPIN_TEST_SKIP_EXTERNAL=1 to skip"
        ),
    };
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set with KINGPIN_TEST_S3"))
    };
    let (access_key, secret_key) = (
        var("KINGPIN_TEST_S3_ACCESS_KEY"),
        var("KINGPIN_TEST_S3_SECRET_KEY"),
    );
    let unique = format!(
        "cli-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let coordinator = format!("zk://{zk}/kingpin-cli-test/{unique}");
    let blobstore = format!(
        "s3://kingpin-cli-test/{unique}?endpoint=http://{s3}&path_style=true&region=us-east-1"
    );
    // The bucket may not exist yet; kingpin never creates buckets itself.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let config = kingpin_s3::S3Config::from_url(&blobstore)
            .expect("the S3 URL")
            .with_credentials(&access_key, &secret_key);
        let store = kingpin_s3::S3BlobStore::connect(config)
            .await
            .expect("an S3 client");
        store.ensure_bucket().await.expect("the test bucket");
    });

    let s = Sandbox::new();
    let run = |args: &[&str], code: i32| {
        let mut all = vec!["--coordinator", &coordinator, "--blobstore", &blobstore];
        all.extend_from_slice(args);
        let mut command = s.command(&all);
        command
            .env("AWS_ACCESS_KEY_ID", &access_key)
            .env("AWS_SECRET_ACCESS_KEY", &secret_key);
        expect_code(Sandbox::run_command(command, None), code, args).0
    };
    assert_eq!(run(&["list", "add", LIST, "a", "b"], 0), "added 2\n");
    assert_eq!(run(&["config", "get", LIST], 0), r#"["a", "b"]"#);
    run(
        &[
            "config",
            "set",
            LIST,
            "--value",
            "[\"c\"]",
            "--if-version",
            "1",
        ],
        0,
    );
    run(
        &["config", "set", LIST, "--value", "x", "--if-version", "1"],
        4,
    );
    assert_eq!(run(&["list", "get", LIST], 0), "c\n");
    assert_eq!(run(&["config", "history", LIST], 0).lines().count(), 2);
    run(&["config", "rollback", LIST, "--to", "1"], 0);
    assert_eq!(run(&["config", "get", LIST], 0), r#"["a", "b"]"#);
    run(&["config", "get", "config.missing"], 3);
    run(&["metaconfig", "create-config", LIST], 0);
    run(&["dep", "create", "web.dep"], 0);
    run(&["dep", "add", "web.dep", LIST], 0);
    let resolved = run(&["dep", "show", "web.dep", "--resolved"], 0);
    assert!(resolved.contains(LIST), "{resolved}");
    run(&["decider", "set", "flag", "50"], 0);
    assert_eq!(run(&["decider", "get", "flag"], 0), "50\n");
    assert!(!s.path().join(".kingpin").exists());
}
