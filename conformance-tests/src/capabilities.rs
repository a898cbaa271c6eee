//! What each coordinator case relies on, the skips that follow, and the
//! cases that check the declared capabilities themselves.

use kingpin_api::{Capabilities, Coordinator, CreateMode, ErrorKind, Op, WatchKind};

use crate::coordinator::p;
use crate::harness::{missing, skip_unless, uncaptured, Capability, Harness};

use Capability::{EphemeralNodes, SequentialNodes, Transactions, Watches};

/// What each case of the coordinator suite (discovery cases included)
/// relies on beyond reads and writes: a case whose backend lacks one is
/// skipped, and says so.
pub const CASE_NEEDS: &[(&str, &[Capability])] = &[
    ("create_get_set_delete", &[]),
    ("create_makes_missing_parents", &[]),
    ("ephemeral_leaf_gets_persistent_parents", &[EphemeralNodes]),
    ("compare_and_set_conflicts", &[]),
    ("sequential_ordering", &[SequentialNodes]),
    ("children_listing", &[]),
    ("transactions_all_or_nothing", &[Transactions]),
    ("ephemeral_removed_on_close", &[EphemeralNodes, Watches]),
    ("ephemeral_removed_on_expiry", &[EphemeralNodes, Watches]),
    ("data_watch_events", &[Watches]),
    ("children_watch_events", &[Watches]),
    ("every_change_reported_promptly", &[Watches]),
    ("watch_survives_session_expiry", &[Watches]),
    ("watch_survives_server_restart", &[Watches]),
    ("outage_gives_retryable_errors", &[]),
    ("concurrent_cas_increments", &[]),
    ("bad_input_rejected", &[]),
    ("oversized_operation_fails_its_transaction", &[Transactions]),
    ("close_ends_watches", &[Watches]),
    ("missing_capabilities_are_unsupported", &[]),
    (
        "sessions_share_the_namespace",
        &[Capability::SharedBetweenProcesses, EphemeralNodes],
    ),
    (
        "serverset_join_and_leave",
        &[EphemeralNodes, SequentialNodes, Watches],
    ),
    (
        "serverset_member_survives_session_expiry",
        &[EphemeralNodes, SequentialNodes, Watches],
    ),
    (
        "serverset_member_survives_server_restart",
        &[EphemeralNodes, SequentialNodes, Watches],
    ),
    (
        "serverset_reads_members_of_other_clients",
        &[EphemeralNodes, SequentialNodes],
    ),
    (
        "serverset_hosts_provider_follows_members",
        &[EphemeralNodes, SequentialNodes, Watches],
    ),
];

/// Skips `case` (and says so) when the session's backend lacks a capability
/// the case relies on, as listed in [`CASE_NEEDS`].
pub(crate) fn skipped(h: &dyn Harness, c: &dyn Coordinator, case: &str) -> bool {
    let needs = CASE_NEEDS
        .iter()
        .find(|(name, _)| *name == case)
        .map_or(&[][..], |(_, needs)| needs);
    skip_unless(h.name(), case, &c.capabilities(), needs)
}

/// The cases in [`CASE_NEEDS`] that `capabilities` skip.
pub fn skipped_cases(capabilities: &Capabilities) -> Vec<&'static str> {
    CASE_NEEDS
        .iter()
        .filter(|(_, needs)| !missing(capabilities, needs).is_empty())
        .map(|(name, _)| *name)
        .collect()
}

/// Prints, past the test harness's capture, one line with the backend's
/// declared capabilities and the cases they skip.
pub async fn print_capabilities_summary(h: &dyn Harness) {
    let c = h.connect().await;
    let caps = c.capabilities();
    let declared: Vec<String> = Capability::ALL
        .iter()
        .map(|cap| format!("{}={}", cap.name(), cap.holds(&caps)))
        .collect();
    let skipped = skipped_cases(&caps);
    let mut line = format!(
        "CAPABILITIES {}: {}, max_data_size={}; {} of {} coordinator cases skip",
        h.name(),
        declared.join(", "),
        caps.max_data_size,
        skipped.len(),
        CASE_NEEDS.len()
    );
    if !skipped.is_empty() {
        line.push_str(&format!(": {}", skipped.join(", ")));
    }
    uncaptured(&line);
}

/// Every capability a backend declares off is refused as `Unsupported`
/// and writes nothing; every one it declares on works.
pub async fn missing_capabilities_are_unsupported(h: &dyn Harness) {
    let c = h.connect().await;
    let caps = c.capabilities();
    assert!(caps.max_data_size > 0, "{caps:?}");
    let outcome = |declared: bool, what: &str, result: Result<(), kingpin_api::Error>| match (
        declared, result,
    ) {
        (true, Ok(())) => {}
        (true, Err(e)) => panic!("{what} is declared but failed: {e}"),
        (false, Ok(())) => panic!("{what} is declared off but worked"),
        (false, Err(e)) => assert_eq!(e.kind(), ErrorKind::Unsupported, "{what}: {e}"),
    };
    let result = c
        .create(&p("/caps-ephemeral/node"), b"", CreateMode::Ephemeral)
        .await
        .map(drop);
    outcome(caps.ephemeral_nodes, "an ephemeral node", result);
    let result = c
        .create(
            &p("/caps-sequential/n-"),
            b"",
            CreateMode::PersistentSequential,
        )
        .await
        .map(drop);
    outcome(caps.sequential_nodes, "a sequential node", result);
    let result = c
        .transaction(vec![
            Op::Create {
                path: p("/caps-transaction/a"),
                data: vec![],
                mode: CreateMode::Persistent,
            },
            Op::Create {
                path: p("/caps-transaction/b"),
                data: vec![],
                mode: CreateMode::Persistent,
            },
        ])
        .await
        .map(drop);
    outcome(caps.transactions, "a transaction", result);
    let result = c.watch(&p("/caps-watch"), WatchKind::Data).await.map(drop);
    outcome(caps.watches, "a watch", result);
    for (declared, parent) in [
        (caps.ephemeral_nodes, "/caps-ephemeral"),
        (caps.sequential_nodes, "/caps-sequential"),
        (caps.transactions, "/caps-transaction"),
    ] {
        if !declared {
            assert_eq!(
                c.exists(&p(parent)).await.unwrap(),
                None,
                "a refused call wrote {parent}"
            );
        }
    }
}

/// A backend shared between processes gives each session its own identity
/// on one namespace: what one session writes another sees at once, an
/// ephemeral node carrying its writer's session as owner.
pub async fn sessions_share_the_namespace(h: &dyn Harness) {
    let writer = h.connect().await;
    if skipped(h, &*writer, "sessions_share_the_namespace") {
        return;
    }
    let reader = h.connect().await;
    assert!(writer.session_id().is_some());
    assert_ne!(
        writer.session_id(),
        reader.session_id(),
        "separate sessions"
    );
    let path = p("/shared/ephemeral");
    writer
        .create(&path, b"mine", CreateMode::Ephemeral)
        .await
        .unwrap();
    let node = reader.get(&path).await.unwrap();
    assert_eq!(node.data, b"mine");
    assert_eq!(node.stat.ephemeral_owner, writer.session_id());
}
