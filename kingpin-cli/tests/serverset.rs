//! `kingpin serverset`: an acceptance written, shown and cancelled, on the
//! embedded SQLite + local blob stack in a temporary directory.

use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn kingpin(home: &std::path::Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kingpin"));
    command
        .args(args)
        .current_dir(home)
        .env("KINGPIN_HOME", home)
        .env("XDG_CONFIG_HOME", home.join("xdg"))
        .env("USER", "tester")
        .stdin(Stdio::null());
    for var in [
        "KINGPIN_COORDINATOR",
        "KINGPIN_BLOBSTORE",
        "KINGPIN_CONFIG",
        "KINGPIN_AUTHOR",
    ] {
        command.env_remove(var);
    }
    command.output().expect("kingpin runs")
}

fn json(home: &std::path::Path, args: &[&str]) -> Value {
    let mut with_json = vec!["--json"];
    with_json.extend_from_slice(args);
    let out = kingpin(home, &with_json);
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out:?}"))
}

#[test]
fn an_acceptance_is_written_shown_and_cancelled() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let name = "discovery.api.prod";

    let shown = json(home, &["serverset", "show", name]);
    assert_eq!(shown["members"], serde_json::json!([]));
    assert_eq!(shown["acceptance"], Value::Null);

    let accepted = json(
        home,
        &[
            "serverset",
            "accept-next",
            name,
            "--for",
            "2h",
            "-m",
            "api retired",
        ],
    );
    assert_eq!(accepted["serverset"], name);
    assert_eq!(accepted["author"], "tester");
    assert_eq!(accepted["message"], "api retired");
    let lasts = accepted["expires_ms"].as_u64().unwrap() - accepted["created_ms"].as_u64().unwrap();
    assert_eq!(lasts, 2 * 3600 * 1000);
    let shown = json(home, &["serverset", "show", name]);
    assert_eq!(shown["acceptance"], accepted);
    let text = kingpin(home, &["serverset", "show", name]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("accepted by tester: api retired"), "{text}");

    let cancelled = json(home, &["serverset", "cancel-accept", name]);
    assert_eq!(cancelled["removed"], true);
    let cancelled = json(home, &["serverset", "cancel-accept", name]);
    assert_eq!(cancelled["removed"], false);
    assert_eq!(
        json(home, &["serverset", "show", name])["acceptance"],
        Value::Null
    );
}

#[test]
fn bad_names_and_durations_are_refused_before_anything_is_opened() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    for args in [
        &["serverset", "accept-next", "config.manageddata.x.y"][..],
        &[
            "serverset",
            "accept-next",
            "discovery.api.prod",
            "--for",
            "8d",
        ][..],
    ] {
        let out = kingpin(home, args);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {out:?}");
    }
    assert!(
        !home.join(".kingpin").exists(),
        "refused before the embedded stack was opened"
    );
}
