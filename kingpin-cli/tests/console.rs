//! `kingpin console` end to end, on the embedded SQLite + local blob stack
//! in a temporary directory: it refuses to run without a way to sign in,
//! binds loopback by default, and serves a page to a user signed in from
//! a users file.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use tempfile::TempDir;

/// Environment variables that would pick other backends or settings.
const SETTINGS_VARS: [&str; 5] = [
    "KINGPIN_COORDINATOR",
    "KINGPIN_BLOBSTORE",
    "KINGPIN_CONFIG",
    "KINGPIN_CONSOLE_SETTINGS",
    "XDG_CONFIG_HOME",
];

const PASSWORD: &str = "correct horse battery";

fn kingpin(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kingpin"));
    command
        .args(args)
        .current_dir(dir)
        .env("KINGPIN_HOME", dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    for var in SETTINGS_VARS {
        command.env_remove(var);
    }
    command.env("XDG_CONFIG_HOME", dir.join("xdg"));
    command
}

fn refused(dir: &Path, args: &[&str]) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = kingpin(dir, args).output().expect("kingpin runs");
    assert!(!status.success(), "kingpin {args:?} should refuse to serve");
    assert!(
        !String::from_utf8_lossy(&stdout).contains("http://"),
        "kingpin {args:?} printed an address"
    );
    String::from_utf8_lossy(&stderr).into_owned()
}

#[test]
fn console_refuses_production_mode_without_a_way_to_sign_in() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let stderr = refused(dir.path(), &["console"]);
    assert!(
        stderr.contains("--settings") && stderr.contains("users_file"),
        "{stderr}"
    );
    let settings = dir.path().join("console.toml");
    std::fs::write(&settings, "listen = \"127.0.0.1:0\"\n").expect("settings");
    let stderr = refused(dir.path(), &["console", "--settings", path(&settings)]);
    assert!(
        stderr.contains("set users_file (passwords) or proxy_header with trusted_proxies"),
        "{stderr}"
    );
    std::fs::write(&settings, "proxy_header = \"X-Forwarded-User\"\n").expect("settings");
    let stderr = refused(dir.path(), &["console", "--settings", path(&settings)]);
    assert!(
        stderr.contains("proxy_header needs trusted_proxies"),
        "{stderr}"
    );
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// A running `kingpin console`, killed when dropped.
struct Served {
    child: Child,
    address: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the console; `Err(stderr)` when it exits instead of printing its
/// address.
fn serve(dir: &Path, args: &[&str]) -> Result<Served, String> {
    let mut child = kingpin(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kingpin runs");
    let stdout = child.stdout.take().expect("stdout");
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("stdout");
        if let Some(at) = line.find("http://") {
            let address = line[at + "http://".len()..]
                .trim_end_matches('/')
                .to_owned();
            return Ok(Served { child, address });
        }
    }
    let output = child.wait_with_output().expect("kingpin exits");
    Err(String::from_utf8_lossy(&output.stderr).into_owned())
}

/// `name=value` of every cookie a response sets.
fn cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn console_binds_loopback_and_serves_a_user_signed_in_from_a_users_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let settings = users_settings(&dir);
    // No listen setting: the default, 127.0.0.1:9900. If another console
    // holds that port, the refusal names the same address; the rest runs on
    // a port of the system's choosing.
    let console = match serve(dir.path(), &["console", "--settings", path(&settings)]) {
        Ok(console) => {
            assert_eq!(console.address, "127.0.0.1:9900");
            console
        }
        Err(stderr) => {
            assert!(
                stderr.contains("cannot listen on 127.0.0.1:9900"),
                "{stderr}"
            );
            serve(
                dir.path(),
                &[
                    "console",
                    "--settings",
                    path(&settings),
                    "--listen",
                    "127.0.0.1:0",
                ],
            )
            .expect("the console starts on another port")
        }
    };
    let base = format!("http://{}", console.address);
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");

    let first = client
        .get(format!("{base}/configs"))
        .send()
        .await
        .expect("GET");
    assert_eq!(first.status(), reqwest::StatusCode::SEE_OTHER);

    let form = client
        .get(format!("{base}/signin"))
        .send()
        .await
        .expect("GET");
    let signin_cookies = cookies(&form);
    let page = form.text().await.expect("the sign-in form");
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    let token = page[at..].split('"').next().unwrap_or_default().to_owned();
    let signed_in = client
        .post(format!("{base}/signin"))
        .header(reqwest::header::COOKIE, signin_cookies.join("; "))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("csrf", token.as_str()),
                    ("user", "alice"),
                    ("password", PASSWORD),
                    ("next", "/configs"),
                ])
                .finish(),
        )
        .send()
        .await
        .expect("POST /signin");
    assert_eq!(signed_in.status(), reqwest::StatusCode::SEE_OTHER);
    let session = cookies(&signed_in);
    assert!(!session.is_empty(), "signing in sets a session cookie");

    let configs = client
        .get(format!("{base}/configs"))
        .header(reqwest::header::COOKIE, session.join("; "))
        .send()
        .await
        .expect("GET /configs");
    assert_eq!(configs.status(), reqwest::StatusCode::OK);
    let body = configs.text().await.expect("the page");
    assert!(body.contains("alice (viewer)"), "{body}");
    assert!(!body.contains(PASSWORD));
}

/// A users file with alice's hash, made by `kingpin console hash-password`,
/// and settings naming it with a viewer grant.
fn users_settings(dir: &TempDir) -> std::path::PathBuf {
    let mut hashing = kingpin(dir.path(), &["console", "hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("kingpin runs");
    writeln!(hashing.stdin.take().expect("stdin"), "{PASSWORD}").expect("the password");
    let output = hashing.wait_with_output().expect("kingpin exits");
    assert!(output.status.success(), "hash-password failed");
    let hash = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(hash.trim().starts_with("$argon2id$"), "{hash}");
    let users = dir.path().join("users");
    std::fs::write(&users, format!("alice:{}\n", hash.trim())).expect("users file");
    let settings = dir.path().join("console.toml");
    std::fs::write(
        &settings,
        format!(
            "users_file = \"{}\"\n\n[[grants]]\nusers = [\"alice\"]\nprefix = \"\"\nrole = \"viewer\"\n",
            users.display()
        ),
    )
    .expect("settings");
    settings
}
