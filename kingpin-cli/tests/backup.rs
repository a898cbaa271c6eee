//! `kingpin backup` and `kingpin restore` end to end: from the embedded
//! SQLite + local blob stack to etcd (KINGPIN_TEST_ETCD) + local files,
//! with the exit codes of a corrupt archive and a non-empty target.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use kingpin_conformance_tests::endpoints::shared_endpoint;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::unique_namespace;
use serde_json::Value;

fn kingpin(home: &Path, backends: &[&str], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kingpin"));
    command
        .args(backends)
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

fn expect(output: Output, code: i32, args: &[&str]) -> String {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert_eq!(
        output.status.code(),
        Some(code),
        "{args:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout + &stderr
}

#[tokio::test]
async fn backup_then_restore_on_other_backends_with_clear_refusals() {
    let case = "backup_then_restore_on_other_backends_with_clear_refusals";
    let Some(etcd) = shared_endpoint(ServerKind::Etcd, case).await else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let embedded: &[&str] = &[];
    let run = |args: &[&str], code| expect(kingpin(home, embedded, args), code, args);
    run(
        &[
            "config",
            "set",
            "config.app.limits",
            "--value",
            "{\"rps\": 1}",
        ],
        0,
    );
    run(
        &[
            "config",
            "set",
            "config.app.limits",
            "--value",
            "{\"rps\": 2}",
            "-m",
            "raise",
        ],
        0,
    );
    run(
        &[
            "list",
            "add",
            "config.manageddata.spam.blacklist",
            "203.0.113.7",
        ],
        0,
    );
    run(&["decider", "set", "new_feed", "20"], 0);
    run(&["metaconfig", "create-config", "config.app.limits"], 0);
    run(&["dep", "create", "web.dep"], 0);
    run(&["dep", "add", "web.dep", "config.app.limits"], 0);
    run(
        &[
            "env",
            "create",
            "shop",
            "/",
            "--value",
            "{\"db\": {\"pool\": 10}}",
        ],
        0,
    );
    run(
        &[
            "env",
            "create",
            "shop",
            "prod",
            "--value",
            "{\"db\": {\"pool\": 50}}",
        ],
        0,
    );

    let said = run(&["backup", "kingpin.backup"], 0);
    assert!(said.contains("backed up 7 configs"), "{said}");
    let archive = std::fs::read_to_string(home.join("kingpin.backup")).unwrap();
    assert!(archive.starts_with("{\"kind\":\"header\",\"format\":\"kingpin-backup/1\""));

    let blobs = tempfile::tempdir().unwrap();
    let coordinator = format!("etcd://{etcd}{}", unique_namespace());
    let blobstore = format!("file://{}", blobs.path().display());
    let target: &[&str] = &["--coordinator", &coordinator, "--blobstore", &blobstore];
    let on_target = |args: &[&str], code| expect(kingpin(home, target, args), code, args);

    // A corrupt archive: exit 6, nothing written.
    let corrupt = archive.replace("\"size\":10,", "\"size\":11,");
    assert_ne!(corrupt, archive);
    std::fs::write(home.join("corrupt.backup"), corrupt).unwrap();
    let said = on_target(&["restore", "corrupt.backup"], 6);
    assert!(
        said.contains("corrupt") && said.contains("nothing was restored"),
        "{said}"
    );
    assert_eq!(std::fs::read_dir(blobs.path()).unwrap().count(), 0);

    let said = on_target(&["restore", "kingpin.backup"], 0);
    assert!(said.contains("restored 7 configs (8 versions)"), "{said}");
    let history = |backends: &[&str]| -> Value {
        let out = expect(
            kingpin(
                home,
                backends,
                &["--json", "config", "history", "config.app.limits"],
            ),
            0,
            &[],
        );
        serde_json::from_str(&out).unwrap()
    };
    assert_eq!(history(embedded), history(target));
    assert_eq!(
        on_target(&["env", "view", "shop", "prod"], 0),
        run(&["env", "view", "shop", "prod"], 0)
    );
    assert_eq!(
        on_target(&["dep", "show", "web.dep"], 0),
        "config.app.limits\n"
    );

    // Again: the target is not empty now (exit 4), unless asked.
    let said = on_target(&["restore", "kingpin.backup"], 4);
    assert!(said.contains("not empty"), "{said}");
    let said = on_target(&["restore", "--allow-non-empty", "kingpin.backup"], 0);
    assert!(
        said.contains("restored 0 configs")
            && said.contains("left as it is: config config.app.limits (exists)"),
        "{said}"
    );
}
