//! Serverset files: sorted `host:port` lines of the alive members
//! (design.md §6), and the guard that refuses an update emptying a
//! serverset or, when configured, shrinking it too far at once.

use std::time::Duration;

use kingpin_api::discovery::ServerSet;
use kingpin_api::ConfigName;
use kingpin_client::Endpoint;

use crate::entry::SyncContext;

/// The file content: one `host:port` line per endpoint, given sorted and
/// distinct (as `kingpin_api::discovery::alive_endpoints` gives them).
pub fn serverset_file(endpoints: &[Endpoint]) -> Vec<u8> {
    let mut text = String::new();
    for endpoint in endpoints {
        text.push_str(&endpoint.to_string());
        text.push('\n');
    }
    text.into_bytes()
}

/// Why an update from `current` members on disk to `next` must not be
/// written, if it must not: it empties a non-empty serverset, or it
/// removes more than `max_shrink` (a fraction) of the members at once.
/// A serverset with no file yet takes anything.
pub(crate) fn refusal(
    current: Option<usize>,
    next: usize,
    max_shrink: Option<f64>,
) -> Option<String> {
    let current = current.filter(|&n| n > 0)?;
    if next == 0 {
        return Some(format!(
            "the update empties the serverset; keeping its {current} members"
        ));
    }
    let removed = current.saturating_sub(next);
    let limit = max_shrink?;
    let fraction = removed as f64 / current as f64;
    (fraction > limit).then(|| {
        format!(
            "the update removes {removed} of {current} members ({:.0}%), more than serverset_max_shrink ({:.0}%); keeping them",
            fraction * 100.0,
            limit * 100.0
        )
    })
}

/// Why a refused update is written all the same.
pub(crate) struct Accepted {
    /// `acceptance` (an operator's) or `hold` (refused long enough).
    pub by: &'static str,
    /// For the log and `/serverset/{name}`.
    pub why: String,
}

/// Whether a refused update is accepted anyway, and when to look again.
#[derive(Default)]
pub(crate) struct Decision {
    pub accepted: Option<Accepted>,
    pub recheck_in: Option<Duration>,
}

/// Decides on an update of `name` refused since `since_ms`: an operator's
/// valid acceptance (`kingpin serverset accept-next`) writes it; so does,
/// when configured, `serverset_accept_refused_after` having passed with
/// the same membership. Otherwise it stays refused, to be looked at again
/// when the hold time runs out.
pub(crate) async fn accept_anyway(
    ctx: &SyncContext,
    name: &ConfigName,
    since_ms: u64,
    now_ms: u64,
) -> Decision {
    let acceptance = match ServerSet::from_name(ctx.coordinator.clone(), name) {
        Ok(serverset) => serverset.acceptance().await,
        Err(e) => Err(e),
    };
    match acceptance {
        Ok(Some(a)) if a.is_valid_at(now_ms) => {
            let why = format!(
                "accepted by {} ({}), valid for {}s more",
                a.author,
                a.message,
                a.expires_ms.saturating_sub(now_ms) / 1000
            );
            let accepted = Accepted {
                by: "acceptance",
                why,
            };
            return Decision {
                accepted: Some(accepted),
                recheck_in: None,
            };
        }
        Ok(_) => {}
        Err(e) => {
            ctx.metrics.error("fetch");
            tracing::warn!(%name, error = %e, "cannot read the serverset's acceptance; the update stays refused");
        }
    }
    let Some(hold) = ctx.settings.serverset_accept_refused_after else {
        return Decision::default();
    };
    let held = Duration::from_millis(now_ms.saturating_sub(since_ms));
    if held >= hold {
        let why = format!(
            "the same membership was refused for {}s, at least serverset_accept_refused_after ({}s)",
            held.as_secs(),
            hold.as_secs()
        );
        return Decision {
            accepted: Some(Accepted { by: "hold", why }),
            recheck_in: None,
        };
    }
    Decision {
        accepted: None,
        // A little past the hold time, so the next look is past it.
        recheck_in: Some(hold - held + Duration::from_millis(10)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kingpin_api::discovery::{alive_endpoints, Member, MemberStatus};
    use kingpin_client::parse_serverset;

    #[test]
    fn files_are_the_sorted_distinct_alive_endpoints() {
        let member = |host: &str, port| Member::new(Endpoint::new(host, port));
        let members = [
            member("b", 1),
            member("a", 2),
            member("b", 1),
            member("c", 3).with_status(MemberStatus::Stopping),
            member("::1", 80),
        ];
        let file = serverset_file(&alive_endpoints(&members));
        assert_eq!(file, b"[::1]:80\na:2\nb:1\n");
        assert_eq!(parse_serverset(&file).unwrap().len(), 3);
        assert_eq!(parse_serverset(b"").unwrap().len(), 0);
    }

    #[test]
    fn emptying_is_refused_and_shrinking_only_past_the_limit() {
        assert!(refusal(Some(3), 0, None).unwrap().contains("empties"));
        assert_eq!(refusal(None, 0, None), None, "nothing on disk yet");
        assert_eq!(refusal(Some(0), 0, Some(0.1)), None, "already empty");
        assert_eq!(refusal(Some(10), 1, None), None, "no limit set");
        assert_eq!(refusal(Some(10), 5, Some(0.5)), None, "exactly the limit");
        let refused = refusal(Some(10), 4, Some(0.5)).unwrap();
        assert!(refused.contains("removes 6 of 10"), "{refused}");
        assert_eq!(refusal(Some(10), 12, Some(0.0)), None, "growing");
    }
}
