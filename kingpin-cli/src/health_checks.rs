//! The health checks `kingpin register` runs: an HTTP GET, a TCP connect,
//! or a local command. Each is a [`HealthCheck`]; the registration bounds
//! every call by its timeout and drops a late one.

use std::fmt;
use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use kingpin::kingpin_api::discovery::{AlwaysHealthy, HealthCheck};
use kingpin::kingpin_api::Error;
use kingpin_client::Endpoint;
use url::Url;

/// The longest piece of a failed command's output kept in its error.
const MAX_OUTPUT_IN_ERROR: usize = 200;

/// `--check` as given: what to check, before the host and command are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckSpec {
    /// `http://HOST:PORT/PATH`: GET, 2xx is healthy.
    Http(Url),
    /// `tcp` (the registered endpoint) or `tcp:HOST:PORT`.
    Tcp(Option<Endpoint>),
    /// `cmd`: the command after `--`.
    Command,
}

impl CheckSpec {
    /// Parses `--check`'s value.
    ///
    /// # Errors
    ///
    /// A message saying what is accepted.
    pub fn parse(text: &str) -> Result<CheckSpec, String> {
        const ACCEPTED: &str = "expected http://HOST:PORT/PATH, tcp, tcp:HOST:PORT or cmd";
        match text {
            "tcp" => return Ok(CheckSpec::Tcp(None)),
            "cmd" => return Ok(CheckSpec::Command),
            _ => {}
        }
        if let Some(endpoint) = text.strip_prefix("tcp:") {
            return endpoint
                .parse()
                .map(|endpoint| CheckSpec::Tcp(Some(endpoint)))
                .map_err(|e| format!("{e}; {ACCEPTED}"));
        }
        let url = Url::parse(text).map_err(|_| format!("unknown check {text:?}; {ACCEPTED}"))?;
        match url.scheme() {
            "http" if url.host().is_some() => Ok(CheckSpec::Http(url)),
            "http" => Err(format!("{text:?} has no host; {ACCEPTED}")),
            "https" => Err(format!(
                "https checks are not supported: check the service over http:// on its \
                 own host; {ACCEPTED}"
            )),
            scheme => Err(format!("unknown check scheme {scheme}:; {ACCEPTED}")),
        }
    }

    /// The check to run for a service registered at `endpoint`; `command`
    /// is what followed `--`.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for `cmd` without a command, or a command without
    /// `cmd`.
    pub fn build(
        spec: Option<&CheckSpec>,
        endpoint: &Endpoint,
        command: &[String],
    ) -> Result<Arc<dyn HealthCheck>, Error> {
        if !command.is_empty() && spec != Some(&CheckSpec::Command) {
            return Err(Error::invalid(
                "a command after `--` is only run with --check cmd",
            ));
        }
        Ok(match spec {
            None => Arc::new(AlwaysHealthy),
            Some(CheckSpec::Http(url)) => Arc::new(HttpCheck::new(url.clone())?),
            Some(CheckSpec::Tcp(target)) => Arc::new(TcpCheck {
                target: target.clone().unwrap_or_else(|| endpoint.clone()),
            }),
            Some(CheckSpec::Command) => Arc::new(CommandCheck::new(command.to_vec())?),
        })
    }
}

/// GET a URL; any 2xx answer is healthy. Redirects are not followed, no
/// proxy is used, and every check opens a new connection, as a load
/// balancer's check does.
pub struct HttpCheck {
    client: reqwest::Client,
    url: Url,
    /// The URL without credentials, for logs and errors.
    shown: String,
}

impl fmt::Debug for HttpCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCheck")
            .field("url", &self.shown)
            .finish()
    }
}

impl HttpCheck {
    /// A check of `url` (`http://` only).
    ///
    /// # Errors
    ///
    /// `InvalidArgument` when the HTTP client cannot be built.
    pub fn new(url: Url) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .user_agent(concat!("kingpin-register/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::invalid("cannot build the HTTP client").with_source(e))?;
        let mut shown = url.clone();
        // Only fails for URLs that cannot have credentials.
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        Ok(HttpCheck {
            client,
            url,
            shown: shown.to_string(),
        })
    }
}

#[async_trait]
impl HealthCheck for HttpCheck {
    async fn check(&self) -> Result<(), String> {
        let response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| error_chain(&e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }

    fn describe(&self) -> String {
        format!("GET {}", self.shown)
    }
}

/// Connect over TCP; an accepted connection is healthy.
#[derive(Debug)]
pub struct TcpCheck {
    target: Endpoint,
}

#[async_trait]
impl HealthCheck for TcpCheck {
    async fn check(&self) -> Result<(), String> {
        tokio::net::TcpStream::connect((self.target.host.as_str(), self.target.port))
            .await
            .map(drop)
            .map_err(|e| format!("cannot connect: {e}"))
    }

    fn describe(&self) -> String {
        format!("TCP connect to {}", self.target)
    }
}

/// Run a local command given on the command line (no shell); exit status 0
/// is healthy. The command runs in a process group of its own, killed
/// whole when the check is dropped (its timeout passed, or kingpin stops).
#[derive(Debug)]
pub struct CommandCheck {
    argv: Vec<String>,
}

impl CommandCheck {
    /// A check running `argv[0]` with the rest as arguments.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for an empty `argv`.
    pub fn new(argv: Vec<String>) -> Result<Self, Error> {
        if argv.first().is_none_or(String::is_empty) {
            return Err(Error::invalid(
                "--check cmd needs the command after `--`: --check cmd -- COMMAND [ARG]...",
            ));
        }
        Ok(CommandCheck { argv })
    }
}

#[async_trait]
impl HealthCheck for CommandCheck {
    async fn check(&self) -> Result<(), String> {
        let program = &self.argv[0];
        let child = tokio::process::Command::new(program)
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        let mut group = ProcessGroup(child.id());
        let output = child.wait_with_output().await;
        // Finished: what is left of the group is not ours to kill.
        group.0 = None;
        let output = output.map_err(|e| format!("cannot wait for {program}: {e}"))?;
        if output.status.success() {
            return Ok(());
        }
        let said = last_line(&output.stderr)
            .or_else(|| last_line(&output.stdout))
            .map(|line| format!(": {line}"))
            .unwrap_or_default();
        Err(format!("{program} {}{said}", output.status))
    }

    fn describe(&self) -> String {
        format!("command {:?}", self.argv)
    }
}

/// The process group of a running check command, killed when dropped
/// before the command finished.
struct ProcessGroup(Option<u32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        if let Some(Ok(pid)) = self.0.map(i32::try_from) {
            // The leader is not reaped yet (kill_on_drop reaps it later),
            // so the group id still names this group.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// The last non-empty line of a command's output, shortened.
fn last_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let line = text.lines().map(str::trim).rfind(|line| !line.is_empty())?;
    let mut line = line.to_owned();
    if line.len() > MAX_OUTPUT_IN_ERROR {
        let mut end = MAX_OUTPUT_IN_ERROR;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    Some(line)
}

/// An error and its sources, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_specs_parse() {
        assert_eq!(CheckSpec::parse("tcp"), Ok(CheckSpec::Tcp(None)));
        assert_eq!(
            CheckSpec::parse("tcp:127.0.0.1:80"),
            Ok(CheckSpec::Tcp(Some(Endpoint::new("127.0.0.1", 80))))
        );
        assert_eq!(CheckSpec::parse("cmd"), Ok(CheckSpec::Command));
        assert!(matches!(
            CheckSpec::parse("http://localhost:8080/health"),
            Ok(CheckSpec::Http(_))
        ));
        for bad in ["ftp://x", "https://h/health", "tcp:nope", "http://", "disk"] {
            let err = CheckSpec::parse(bad).unwrap_err();
            assert!(err.contains("expected http://"), "{bad}: {err}");
        }
    }

    #[test]
    fn commands_go_with_cmd_only() {
        let endpoint = Endpoint::new("h", 1);
        let argv = vec!["true".to_owned()];
        assert!(CheckSpec::build(Some(&CheckSpec::Command), &endpoint, &[]).is_err());
        assert!(CheckSpec::build(None, &endpoint, &argv).is_err());
        assert!(CheckSpec::build(Some(&CheckSpec::Command), &endpoint, &argv).is_ok());
        let tcp = CheckSpec::build(Some(&CheckSpec::Tcp(None)), &endpoint, &[]).unwrap();
        assert_eq!(tcp.describe(), "TCP connect to h:1");
    }

    #[test]
    fn credentials_stay_out_of_descriptions() {
        let url = Url::parse("http://user:secret@127.0.0.1:8080/health").unwrap();
        let check = HttpCheck::new(url).unwrap();
        assert_eq!(check.describe(), "GET http://127.0.0.1:8080/health");
        assert!(!format!("{check:?}").contains("secret"));
    }

    #[tokio::test]
    async fn commands_pass_on_exit_status_zero() {
        let check = |argv: &[&str]| CommandCheck::new(argv.iter().map(|a| a.to_string()).collect());
        assert_eq!(check(&["true"]).unwrap().check().await, Ok(()));
        let err = check(&["sh", "-c", "echo out; echo broken >&2; exit 3"])
            .unwrap()
            .check()
            .await
            .unwrap_err();
        assert!(
            err.contains("exit status: 3") && err.ends_with(": broken"),
            "{err}"
        );
        let err = check(&["/nonexistent/check"])
            .unwrap()
            .check()
            .await
            .unwrap_err();
        assert!(err.contains("cannot run /nonexistent/check"), "{err}");
    }

    #[tokio::test]
    async fn a_dropped_command_is_killed_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
        let check = CommandCheck::new(vec!["sh".into(), "-c".into(), script]).unwrap();
        let run = check.check();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(500), run).await;
        assert!(waited.is_err(), "the command runs past the timeout");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild is gone (or a zombie of an exited parent).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|stat| !stat.contains(") Z "))
                .unwrap_or(false);
            if !alive {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "sleep {pid} survived");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
