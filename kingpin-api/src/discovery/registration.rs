//! Registration that follows a health check: a member is in its serverset
//! while its service is healthy, leaves when the check has failed `fall`
//! times in a row, joins again after `rise` passes in a row, and leaves
//! when the registration stops.
//!
//! The first check runs at once. A registration starts unhealthy and
//! unregistered, and the first passing check registers it, as a Consul
//! check starts critical and one pass makes it passing: a process that has
//! never been healthy has no failures to confirm as over. After a
//! deregistration `rise` passes in a row are needed, as hysteresis against
//! a flapping service.
//!
//! Once joined, the member is kept through reconnects and session expiry
//! by its [`Membership`]. Joins and leaves that fail while the coordinator
//! is unreachable are retried with backoff while the checks go on.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::member::Member;
use super::serverset::{Membership, ServerSet};
use crate::backoff::Backoff;
use crate::coordinator::Coordinator;
use crate::error::{Error, ErrorKind, Result};
use crate::path::NodePath;

/// Whether a service is healthy: an HTTP request, a TCP connect, a local
/// command, or anything the service knows about itself.
///
/// A [`Registration`] calls [`check`](Self::check) once per
/// [`HealthPolicy::interval`] and drops the future when it takes longer
/// than [`HealthPolicy::timeout`]; a check holding a resource (a child
/// process, a connection) releases it on drop.
///
/// A service registering itself can check its own state:
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// use async_trait::async_trait;
/// use kingpin_api::discovery::HealthCheck;
///
/// /// Healthy once the caches are warm and until draining starts.
/// #[derive(Debug)]
/// struct Serving(Arc<AtomicBool>);
///
/// #[async_trait]
/// impl HealthCheck for Serving {
///     async fn check(&self) -> Result<(), String> {
///         match self.0.load(Ordering::Relaxed) {
///             true => Ok(()),
///             false => Err("not serving".to_owned()),
///         }
///     }
///
///     fn describe(&self) -> String {
///         "the serving flag".to_owned()
///     }
/// }
/// ```
#[async_trait]
pub trait HealthCheck: Send + Sync + fmt::Debug {
    /// `Ok` when healthy, otherwise why not (for logs and
    /// [`RegistrationState::last_check_error`]).
    async fn check(&self) -> std::result::Result<(), String>;

    /// What is checked, for logs: `GET http://127.0.0.1:8080/health`.
    fn describe(&self) -> String;
}

/// A check that always passes: the member is registered for as long as the
/// registration runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysHealthy;

#[async_trait]
impl HealthCheck for AlwaysHealthy {
    async fn check(&self) -> std::result::Result<(), String> {
        Ok(())
    }

    fn describe(&self) -> String {
        "no check (always healthy)".to_owned()
    }
}

/// How often to check and how many results in a row change the verdict,
/// as HAProxy's `inter`, `timeout check`, `rise` and `fall`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Time between the starts of two checks. Default 5 s.
    pub interval: Duration,
    /// How long one check may take before it counts as failed; at most
    /// `interval`. Default 2 s.
    pub timeout: Duration,
    /// Passes in a row that make a deregistered member join again
    /// (at least 1). Default 2.
    pub rise: u32,
    /// Failures in a row that make a registered member leave (at least 1).
    /// Default 3.
    pub fall: u32,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 3,
        }
    }
}

impl HealthPolicy {
    /// Checks that the policy makes sense.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` when `interval` or `timeout` is zero, `timeout`
    /// is longer than `interval`, or `rise` or `fall` is zero.
    pub fn validate(&self) -> Result<()> {
        if self.interval.is_zero() || self.timeout.is_zero() {
            return Err(Error::invalid(
                "the check interval and timeout must be longer than zero",
            ));
        }
        if self.timeout > self.interval {
            return Err(Error::invalid(format!(
                "the check timeout ({:?}) must not be longer than the interval ({:?})",
                self.timeout, self.interval
            )));
        }
        if self.rise == 0 || self.fall == 0 {
            return Err(Error::invalid("rise and fall must be at least 1"));
        }
        Ok(())
    }
}

/// What a [`Registration`] is doing, published on every change through
/// [`Registration::state`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistrationState {
    /// The verdict after `rise`/`fall`: the member should be registered.
    pub healthy: bool,
    /// The member is joined and kept in the serverset.
    pub registered: bool,
    /// Checks passed in a row, up to the latest.
    pub passes: u32,
    /// Checks failed in a row, up to the latest.
    pub failures: u32,
    /// Checks run so far. Published after the check's effect (a join or a
    /// leave) has happened, so waiting for a count sees its outcome.
    pub checks: u64,
    /// Times the member joined.
    pub registrations: u64,
    /// Times the member left (not counting the leave on stop).
    pub deregistrations: u64,
    /// Why the latest check failed; `None` when it passed.
    pub last_check_error: Option<String>,
    /// Why the latest join or leave on the coordinator failed (it is being
    /// retried); `None` once one succeeds.
    pub last_coordinator_error: Option<String>,
    /// The registration has ended: stopped, or a join failed in a way no
    /// retry fixes.
    pub stopped: bool,
}

/// Keeps a member in its serverset while a [`HealthCheck`] passes, until
/// [`stop`](Self::stop). Dropping it stops the checks and removes the
/// member in the background.
///
/// ```no_run
/// # async fn run(coordinator: std::sync::Arc<dyn kingpin_api::Coordinator>) -> kingpin_api::Result<()> {
/// use kingpin_api::discovery::{AlwaysHealthy, HealthPolicy, Member, Registration};
/// use kingpin_client::Endpoint;
///
/// let registration = Registration::builder(
///     coordinator,
///     "api",
///     "prod",
///     Member::new(Endpoint::new("10.0.0.7", 8080)),
/// )?
/// .check(AlwaysHealthy)
/// .policy(HealthPolicy::default())
/// .start()?;
/// // ... serve ...
/// registration.stop().await?; // leaves the serverset
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Registration {
    state: watch::Receiver<RegistrationState>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<()>>>,
}

/// Settings of a [`Registration`], from [`Registration::builder`].
#[derive(Debug)]
pub struct RegistrationBuilder {
    coordinator: Arc<dyn Coordinator>,
    serverset: ServerSet,
    member: Member,
    check: Arc<dyn HealthCheck>,
    policy: HealthPolicy,
}

impl Registration {
    /// A registration of `member` in `discovery.<service>.<env>`, by
    /// default with [`AlwaysHealthy`] and [`HealthPolicy::default`].
    ///
    /// # Errors
    ///
    /// `InvalidArgument`, before any I/O, when `service` or `env` is not
    /// one name component.
    pub fn builder(
        coordinator: Arc<dyn Coordinator>,
        service: &str,
        env: &str,
        member: Member,
    ) -> Result<RegistrationBuilder> {
        Ok(RegistrationBuilder {
            serverset: ServerSet::new(coordinator.clone(), service, env)?,
            coordinator,
            member,
            check: Arc::new(AlwaysHealthy),
            policy: HealthPolicy::default(),
        })
    }

    /// The state now and its changes.
    pub fn state(&self) -> watch::Receiver<RegistrationState> {
        self.state.clone()
    }

    /// Stops checking and leaves the serverset (deletes the member node).
    ///
    /// # Errors
    ///
    /// The coordinator's when the delete fails (the node still goes when
    /// the session ends), or the error that ended the registration early
    /// (a join no retry fixes: `Unauthorized`, `TooLarge`, …).
    pub async fn stop(mut self) -> Result<()> {
        self.stop.send_replace(true);
        match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|e| {
                Err(Error::new(
                    ErrorKind::Backend,
                    format!("the registration task failed: {e}"),
                ))
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Dropping the task's future drops its membership, which deletes
        // the member node in the background.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl RegistrationBuilder {
    /// Registers only while `check` passes.
    pub fn check(mut self, check: impl HealthCheck + 'static) -> Self {
        self.check = Arc::new(check);
        self
    }

    /// [`check`](Self::check) for a check already behind an `Arc`, e.g.
    /// shared with the service it checks.
    pub fn shared_check(mut self, check: Arc<dyn HealthCheck>) -> Self {
        self.check = check;
        self
    }

    /// How often to check and how many results change the verdict.
    pub fn policy(mut self, policy: HealthPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Starts checking (the first check runs at once) on the current Tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for a policy [`HealthPolicy::validate`] refuses.
    pub fn start(self) -> Result<Registration> {
        self.policy.validate()?;
        let (state, state_rx) = watch::channel(RegistrationState::default());
        let (stop, stop_rx) = watch::channel(false);
        tracing::info!(
            serverset = %self.serverset.name(),
            member = %self.member.endpoint,
            check = %self.check.describe(),
            "registering while the check passes"
        );
        let runner = Runner {
            coordinator: self.coordinator,
            serverset: self.serverset,
            member: self.member,
            check: self.check,
            verdict: Verdict::new(&self.policy),
            policy: self.policy,
            state,
            status: RegistrationState::default(),
            membership: None,
            orphan: None,
            backoff: Backoff::default(),
            retry_at: None,
        };
        Ok(Registration {
            state: state_rx,
            stop,
            task: Some(tokio::spawn(runner.run(stop_rx))),
        })
    }

    /// [`start`](Self::start)s, runs until `shutdown` completes (or the
    /// registration ends by itself), then [`stop`](Registration::stop)s.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start) and [`Registration::stop`].
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let registration = self.start()?;
        let mut state = registration.state();
        tokio::select! {
            () = shutdown => {}
            _ = state.wait_for(|s| s.stopped) => {}
        }
        registration.stop().await
    }
}

/// The task behind a [`Registration`].
struct Runner {
    coordinator: Arc<dyn Coordinator>,
    serverset: ServerSet,
    member: Member,
    check: Arc<dyn HealthCheck>,
    policy: HealthPolicy,
    state: watch::Sender<RegistrationState>,
    verdict: Verdict,
    /// The state as the task sees it, published at the end of each step.
    status: RegistrationState,
    membership: Option<Membership>,
    /// A member node whose delete failed; deleted on the next retry.
    orphan: Option<NodePath>,
    backoff: Backoff,
    /// When to retry a failed join or delete.
    retry_at: Option<Instant>,
}

impl Runner {
    async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<()> {
        let mut ticks = tokio::time::interval(self.policy.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let outcome = 'run: loop {
            let retry_at = self.retry_at;
            tokio::select! {
                biased;
                () = stop_requested(&mut stop) => break 'run Ok(()),
                _ = ticks.tick() => {
                    let result = tokio::select! {
                        biased;
                        () = stop_requested(&mut stop) => break 'run Ok(()),
                        result = self.check_once() => result,
                    };
                    if let Err(e) = self.observe(result).await {
                        break 'run Err(e);
                    }
                }
                () = sleep_until(retry_at) => {
                    if let Err(e) = self.reconcile().await {
                        break 'run Err(e);
                    }
                }
            }
            self.publish();
        };
        let left = match (self.membership.take(), self.orphan.take()) {
            (Some(membership), _) => self.leave(membership, "stopping").await,
            // One more try at a node a failed leave left behind; it goes
            // with the session anyway.
            (None, Some(path)) => match self.coordinator.delete(&path, None).await {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            (None, None) => Ok(()),
        };
        self.status.registered = false;
        self.status.stopped = true;
        self.publish();
        outcome.and(left)
    }

    fn publish(&self) {
        self.state.send_if_modified(|state| {
            let changed = *state != self.status;
            if changed {
                *state = self.status.clone();
            }
            changed
        });
    }

    async fn check_once(&self) -> std::result::Result<(), String> {
        match tokio::time::timeout(self.policy.timeout, self.check.check()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no result within {:?}", self.policy.timeout)),
        }
    }

    /// Counts a check's result and joins or leaves when the verdict flips.
    async fn observe(&mut self, result: std::result::Result<(), String>) -> Result<()> {
        let flip = self.verdict.observe(result.is_ok());
        let status = &mut self.status;
        status.checks += 1;
        status.healthy = self.verdict.healthy;
        status.passes = self.verdict.passes;
        status.failures = self.verdict.failures;
        let previous_error = std::mem::replace(&mut status.last_check_error, result.err());
        let error_changed = status.last_check_error != previous_error;
        let error = status.last_check_error.clone().unwrap_or_default();
        let (serverset, member) = (self.serverset.name(), &self.member.endpoint);
        let failures = self.verdict.failures;
        match flip {
            Some(true) => {
                let passes = self.verdict.passes;
                tracing::info!(%serverset, %member, passes, "check passed; registering");
                self.reconcile().await
            }
            Some(false) => {
                tracing::warn!(
                    %serverset,
                    %member,
                    %error,
                    "check failed {failures} times in a row; deregistering"
                );
                self.reconcile().await
            }
            None if failures > 0 && self.verdict.healthy => {
                let fall = self.policy.fall;
                tracing::warn!(
                    %serverset,
                    %error,
                    "check failed ({failures} of {fall} before deregistering)"
                );
                Ok(())
            }
            // Unhealthy: say why, but not again on every check.
            None if failures > 0 && error_changed => {
                tracing::info!(%serverset, %member, %error, "check failed; not registered");
                Ok(())
            }
            None if failures > 0 => {
                tracing::debug!(%serverset, %error, "check failed; not registered");
                Ok(())
            }
            None if previous_error.is_some() && self.verdict.healthy => {
                tracing::info!(%serverset, %member, "check passed again; still registered");
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Brings the serverset in line with the verdict: deletes a node left
    /// behind, joins when healthy, leaves when not. Failures that a retry
    /// may fix are retried with backoff.
    async fn reconcile(&mut self) -> Result<()> {
        self.retry_at = None;
        if let Some(path) = self.orphan.clone() {
            match self.coordinator.delete(&path, None).await {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    self.retry_later("cannot delete the member node", &e);
                    return Ok(());
                }
                _ => {
                    tracing::info!(node = %path, "deleted the member node left behind");
                    self.orphan = None;
                    self.backoff.reset();
                    self.status.last_coordinator_error = None;
                }
            }
        }
        match (self.status.healthy, self.membership.take()) {
            (true, None) => self.join().await,
            (false, Some(membership)) => {
                self.status.deregistrations += 1;
                // A failed leave is retried through the orphan.
                let _ = self.leave(membership, "unhealthy").await;
                Ok(())
            }
            (_, membership) => {
                self.membership = membership;
                Ok(())
            }
        }
    }

    async fn join(&mut self) -> Result<()> {
        match self.serverset.join(self.member.clone()).await {
            Ok(membership) => {
                tracing::info!(
                    serverset = %self.serverset.name(),
                    member = %self.member.endpoint,
                    node = %membership.path().map(|p| p.to_string()).unwrap_or_default(),
                    "registered"
                );
                self.membership = Some(membership);
                self.backoff.reset();
                self.status.registered = true;
                self.status.registrations += 1;
                self.status.last_coordinator_error = None;
                Ok(())
            }
            Err(e) if is_permanent(&e) => {
                tracing::error!(
                    serverset = %self.serverset.name(),
                    error = %e,
                    "cannot join the serverset; giving up"
                );
                self.status.last_coordinator_error = Some(format!("cannot join: {e}"));
                Err(e)
            }
            Err(e) => {
                self.retry_later("cannot join the serverset", &e);
                Ok(())
            }
        }
    }

    /// Leaves; a node whose delete failed is remembered and deleted on the
    /// next retry.
    async fn leave(&mut self, membership: Membership, why: &str) -> Result<()> {
        self.status.registered = false;
        let path = membership.path();
        let node = path.as_ref().map(ToString::to_string).unwrap_or_default();
        match membership.leave().await {
            Ok(()) => {
                tracing::info!(
                    serverset = %self.serverset.name(),
                    member = %self.member.endpoint,
                    %node,
                    "deregistered ({why})"
                );
                Ok(())
            }
            Err(e) => {
                self.orphan = path;
                self.retry_later("cannot delete the member node", &e);
                Err(e)
            }
        }
    }

    fn retry_later(&mut self, what: &str, error: &Error) {
        let delay = self.backoff.next_delay();
        tracing::warn!(serverset = %self.serverset.name(), %error, ?delay, "{what}; retrying");
        self.status.last_coordinator_error = Some(format!("{what}: {error}"));
        self.retry_at = Some(Instant::now() + delay);
    }
}

/// The rise/fall verdict over a run of check results (see the module docs
/// for the first registration).
#[derive(Debug, Clone)]
struct Verdict {
    rise: u32,
    fall: u32,
    healthy: bool,
    /// Whether it has ever been healthy: until then one pass is enough.
    ever_healthy: bool,
    passes: u32,
    failures: u32,
}

impl Verdict {
    fn new(policy: &HealthPolicy) -> Self {
        Verdict {
            rise: policy.rise,
            fall: policy.fall,
            healthy: false,
            ever_healthy: false,
            passes: 0,
            failures: 0,
        }
    }

    /// Counts one result; `Some(healthy)` when the verdict flips.
    fn observe(&mut self, passed: bool) -> Option<bool> {
        if passed {
            self.passes = self.passes.saturating_add(1);
            self.failures = 0;
            let needed = if self.ever_healthy { self.rise } else { 1 };
            if !self.healthy && self.passes >= needed {
                self.healthy = true;
                self.ever_healthy = true;
                return Some(true);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.passes = 0;
            if self.healthy && self.failures >= self.fall {
                self.healthy = false;
                return Some(false);
            }
        }
        None
    }
}

/// Errors no retry fixes: the operator has to change something.
fn is_permanent(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::InvalidArgument
            | ErrorKind::TooLarge
            | ErrorKind::Unauthorized
            | ErrorKind::Unsupported
    )
}

/// Completes when a stop is asked for, or when the [`Registration`] is gone.
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use kingpin_client::Endpoint;

    use super::*;
    use crate::memory::MemoryCoordinator;

    // The verdict is a pure state machine, tested result by result; the
    // registration around it is tested on the memory coordinator by
    // awaiting states that hold until the test changes something, so real
    // time at short intervals is enough.

    const POLICY: HealthPolicy = HealthPolicy {
        interval: Duration::from_millis(10),
        timeout: Duration::from_millis(5),
        rise: 2,
        fall: 3,
    };

    /// Runs `results` ('+' pass, '-' fail) through a verdict and returns
    /// the verdict after each: 'H' healthy, '.' not.
    fn verdicts(policy: HealthPolicy, results: &str) -> String {
        let mut verdict = Verdict::new(&policy);
        results
            .chars()
            .map(|c| {
                verdict.observe(c == '+');
                if verdict.healthy {
                    'H'
                } else {
                    '.'
                }
            })
            .collect()
    }

    #[test]
    fn the_first_pass_is_healthy_then_fall_and_rise_apply() {
        // rise 2, fall 3.
        assert_eq!(verdicts(POLICY, "--+"), "..H");
        assert_eq!(verdicts(POLICY, "+--+---"), "HHHHHH.");
        assert_eq!(
            verdicts(POLICY, "+---+-+"),
            "HHH....",
            "rise needs passes in a row"
        );
        assert_eq!(verdicts(POLICY, "+---++"), "HHH..H");
        let flappy = HealthPolicy {
            rise: 1,
            fall: 1,
            ..POLICY
        };
        assert_eq!(verdicts(flappy, "+-+-"), "H.H.");
    }

    #[test]
    fn verdict_flips_are_reported_once() {
        let mut verdict = Verdict::new(&POLICY);
        let flips: Vec<Option<bool>> = "+++---++-+"
            .chars()
            .map(|c| verdict.observe(c == '+'))
            .collect();
        let expected = [
            Some(true),
            None,
            None,
            None,
            None,
            Some(false),
            None,
            Some(true),
            None,
            None,
        ];
        assert_eq!(flips, expected);
        assert_eq!((verdict.passes, verdict.failures), (1, 0));
    }

    /// Passes or fails as the test says.
    #[derive(Debug, Clone, Default)]
    struct Switch(Arc<AtomicBool>);

    impl Switch {
        fn set(&self, healthy: bool) {
            self.0.store(healthy, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl HealthCheck for Switch {
        async fn check(&self) -> std::result::Result<(), String> {
            if self.0.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("switched off".to_owned())
            }
        }

        fn describe(&self) -> String {
            "the test's switch".to_owned()
        }
    }

    /// Never answers.
    #[derive(Debug)]
    struct Hangs;

    #[async_trait]
    impl HealthCheck for Hangs {
        async fn check(&self) -> std::result::Result<(), String> {
            std::future::pending().await
        }

        fn describe(&self) -> String {
            "a check that hangs".to_owned()
        }
    }

    fn member() -> Member {
        Member::new(Endpoint::new("10.0.0.1", 8080))
    }

    fn start(
        coordinator: &Arc<MemoryCoordinator>,
        check: impl HealthCheck + 'static,
    ) -> Registration {
        Registration::builder(coordinator.clone(), "api", "test", member())
            .unwrap()
            .check(check)
            .policy(POLICY)
            .start()
            .unwrap()
    }

    async fn members(coordinator: &Arc<MemoryCoordinator>) -> Vec<Member> {
        ServerSet::new(coordinator.clone(), "api", "test")
            .unwrap()
            .members()
            .await
            .unwrap()
    }

    /// Waits (at most 10 s) for a state that satisfies `done`.
    async fn until(
        state: &mut watch::Receiver<RegistrationState>,
        what: &str,
        done: impl FnMut(&RegistrationState) -> bool,
    ) -> RegistrationState {
        let found = tokio::time::timeout(Duration::from_secs(10), state.wait_for(done))
            .await
            .map(|s| s.map(|s| s.clone()));
        match found {
            Ok(Ok(s)) => s,
            _ => panic!("{what}: never happened; last state {:?}", *state.borrow()),
        }
    }

    #[tokio::test]
    async fn follows_the_check_in_and_out_of_the_serverset() {
        let coordinator = Arc::new(MemoryCoordinator::new());
        let switch = Switch::default();
        let registration = start(&coordinator, switch.clone());
        let mut state = registration.state();

        let s = until(&mut state, "failed checks", |s| s.failures >= 2).await;
        assert!(!s.registered && !s.healthy, "{s:?}");
        assert_eq!(s.last_check_error.as_deref(), Some("switched off"));
        assert!(members(&coordinator).await.is_empty());

        switch.set(true);
        until(&mut state, "registered", |s| s.registered).await;
        assert_eq!(members(&coordinator).await, vec![member()]);

        switch.set(false);
        let s = until(&mut state, "deregistered", |s| !s.registered).await;
        assert!(s.failures >= POLICY.fall, "{s:?}");
        assert_eq!(s.deregistrations, 1);
        assert!(members(&coordinator).await.is_empty());

        switch.set(true);
        let s = until(&mut state, "registered again", |s| s.registered).await;
        assert!(s.passes >= POLICY.rise, "{s:?}");
        assert_eq!(s.registrations, 2);
        assert_eq!(members(&coordinator).await, vec![member()]);

        registration.stop().await.unwrap();
        assert!(state.borrow().stopped && !state.borrow().registered);
        assert!(members(&coordinator).await.is_empty(), "stop leaves");
    }

    #[tokio::test]
    async fn a_check_past_its_timeout_fails() {
        let coordinator = Arc::new(MemoryCoordinator::new());
        let registration = start(&coordinator, Hangs);
        let mut state = registration.state();
        let s = until(&mut state, "failed checks", |s| s.failures >= 2).await;
        assert!(!s.registered);
        let error = s.last_check_error.unwrap_or_default();
        assert!(error.contains("within 5ms"), "{error}");
        registration.stop().await.unwrap();
    }

    #[tokio::test]
    async fn joins_are_retried_through_an_outage() {
        let coordinator = Arc::new(MemoryCoordinator::new());
        coordinator.server().stop();
        let registration = start(&coordinator, AlwaysHealthy);
        let mut state = registration.state();
        let s = until(&mut state, "a failed join", |s| {
            s.last_coordinator_error.is_some() && s.checks >= 3
        })
        .await;
        assert!(s.healthy && !s.registered, "{s:?}");

        coordinator.server().start();
        let s = until(&mut state, "registered", |s| s.registered).await;
        assert_eq!(s.last_coordinator_error, None);
        assert_eq!(s.registrations, 1);
        assert_eq!(members(&coordinator).await, vec![member()]);
        registration.stop().await.unwrap();
        assert!(members(&coordinator).await.is_empty());
    }

    #[tokio::test]
    async fn a_leave_during_an_outage_is_retried() {
        let coordinator = Arc::new(MemoryCoordinator::new());
        let switch = Switch::default();
        switch.set(true);
        let registration = start(&coordinator, switch.clone());
        let mut state = registration.state();
        until(&mut state, "registered", |s| s.registered).await;

        coordinator.server().stop();
        switch.set(false);
        let s = until(&mut state, "a failed leave", |s| {
            !s.healthy && s.last_coordinator_error.is_some()
        })
        .await;
        assert!(!s.registered, "{s:?}");
        coordinator.server().start();
        until(&mut state, "the delete retried", |s| {
            s.last_coordinator_error.is_none()
        })
        .await;
        assert!(members(&coordinator).await.is_empty(), "the node is gone");
        registration.stop().await.unwrap();
    }

    #[tokio::test]
    async fn the_member_is_kept_through_session_expiry() {
        let coordinator = Arc::new(MemoryCoordinator::new());
        let registration = start(&coordinator, AlwaysHealthy);
        let mut state = registration.state();
        until(&mut state, "registered", |s| s.registered).await;
        let reader = ServerSet::new(coordinator.clone(), "api", "test").unwrap();
        let mut watch = reader.watch().await.unwrap();
        coordinator.expire_session();
        while reader.members().await.unwrap() != vec![member()] {
            futures::StreamExt::next(&mut watch).await;
        }
        let s = state.borrow().clone();
        assert!(
            s.registered && s.registrations == 1,
            "kept, not joined again: {s:?}"
        );
        registration.stop().await.unwrap();
        assert!(members(&coordinator).await.is_empty());
    }

    #[tokio::test]
    async fn a_join_no_retry_fixes_ends_the_registration() {
        let coordinator = Arc::new(MemoryCoordinator::new().with_max_data_size(8));
        let registration = start(&coordinator, AlwaysHealthy);
        let mut state = registration.state();
        let s = until(&mut state, "the end", |s| s.stopped).await;
        assert!(s.last_coordinator_error.is_some(), "{s:?}");
        let err = registration.stop().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
    }

    #[tokio::test]
    async fn run_until_leaves_on_shutdown() {
        let coordinator = Arc::new(MemoryCoordinator::new());
        let reader = ServerSet::new(coordinator.clone(), "api", "test").unwrap();
        let mut watch = reader.watch().await.unwrap();
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let builder = Registration::builder(coordinator.clone(), "api", "test", member())
            .unwrap()
            .policy(POLICY);
        let run = tokio::spawn(builder.run_until(async move {
            let _ = shutdown_rx.await;
        }));
        while reader.members().await.unwrap().is_empty() {
            futures::StreamExt::next(&mut watch).await;
        }
        shutdown.send(()).unwrap();
        run.await.unwrap().unwrap();
        assert!(members(&coordinator).await.is_empty());
    }

    #[tokio::test]
    async fn dropping_the_registration_removes_the_member() {
        let coordinator = Arc::new(MemoryCoordinator::new());
        let reader = ServerSet::new(coordinator.clone(), "api", "test").unwrap();
        let registration = start(&coordinator, AlwaysHealthy);
        let mut state = registration.state();
        until(&mut state, "registered", |s| s.registered).await;
        let mut watch = reader.watch().await.unwrap();
        drop(registration);
        while !reader.members().await.unwrap().is_empty() {
            futures::StreamExt::next(&mut watch).await;
        }
    }

    #[test]
    fn policies_are_validated() {
        assert!(HealthPolicy::default().validate().is_ok());
        assert!(POLICY.validate().is_ok());
        let bad = [
            HealthPolicy { rise: 0, ..POLICY },
            HealthPolicy { fall: 0, ..POLICY },
            HealthPolicy {
                timeout: POLICY.interval * 2,
                ..POLICY
            },
            HealthPolicy {
                interval: Duration::ZERO,
                ..POLICY
            },
            HealthPolicy {
                timeout: Duration::ZERO,
                ..POLICY
            },
        ];
        for policy in bad {
            let err = policy.validate().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{policy:?}");
        }
    }

    #[test]
    fn bad_names_are_refused_before_any_io() {
        let coordinator = Arc::new(MemoryCoordinator::new());
        let err = Registration::builder(coordinator, "a.b", "test", member()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
}
