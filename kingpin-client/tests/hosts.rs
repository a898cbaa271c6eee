//! `HostsProvider` over real serverset files and the real file watcher:
//! following replacements, keeping the hosts on an emptied file, the
//! fallback while the file is missing, static lists.

// Not every test file uses every helper.
#[allow(dead_code)]
mod support;

use std::sync::mpsc::{self, Receiver};
use std::thread;

use kingpin_client::{Endpoint, Error, HostsError, HostsOrigin, HostsProvider, Selector};
use support::{errors, replace, wait_for};

const API: &str = "discovery.api.prod";

/// Every list of hosts `provider` changes to from now on.
fn host_changes(provider: &HostsProvider) -> Receiver<Vec<Endpoint>> {
    let (sender, receiver) = mpsc::channel();
    provider.on_change(move |hosts| {
        let _ = sender.send(hosts.to_vec());
    });
    receiver
}

/// `count` endpoints on 10.0.0.1, from port `first` on.
fn endpoints(first: u16, count: u16) -> Vec<Endpoint> {
    (first..first + count)
        .map(|port| Endpoint::new("10.0.0.1", port))
        .collect()
}

/// A serverset file's content: one `host:port` per line.
fn lines(endpoints: &[Endpoint]) -> String {
    endpoints.iter().map(|e| format!("{e}\n")).collect()
}

#[test]
fn the_provider_follows_a_serverset_file_replaced_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(API);
    let first = endpoints(1, 10);
    std::fs::write(&path, lines(&first)).unwrap();
    let api = HostsProvider::builder()
        .selector(Selector::RoundRobin)
        .serverset_in(dir.path(), API)
        .unwrap();
    assert_eq!((api.origin(), &*api.hosts()), (HostsOrigin::Source, &first));
    assert!(api.source_status().last_loaded.is_some());
    assert!(api.source_name().contains(API), "{}", api.source_name());
    let changes = host_changes(&api);

    // An invalidated host that stays in the file stays invalid.
    assert!(api.invalidate(&first[0]));
    let second = endpoints(1, 12);
    replace(&path, &lines(&second));
    wait_for(&changes, "twelve hosts", |hosts| *hosts == second);
    assert_eq!(*api.hosts(), second);
    assert_eq!(api.invalid_hosts(), [first[0].clone()]);
    for _ in 0..second.len() * 2 {
        assert_ne!(*api.select().unwrap(), first[0]);
    }

    // One that leaves the file is forgotten.
    let third = endpoints(2, 11);
    replace(&path, &lines(&third));
    wait_for(&changes, "without the invalid host", |hosts| {
        *hosts == third
    });
    assert!(api.invalid_hosts().is_empty());
    assert_eq!(api.healthy_hosts(), third);
}

#[test]
fn an_emptied_serverset_file_keeps_the_previous_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(API);
    let hosts = endpoints(1, 3);
    std::fs::write(&path, lines(&hosts)).unwrap();
    let api = HostsProvider::builder()
        .fallback(endpoints(100, 1))
        .serverset_file(&path)
        .unwrap();
    let reader = api.serverset().expect("a serverset file source");
    let errors = errors(reader.file());

    replace(&path, "");
    wait_for(&errors, "the refused update", |e| e.contains("empties"));
    assert_eq!((api.origin(), &*api.hosts()), (HostsOrigin::Source, &hosts));
    let status = api.source_status();
    assert!(status.last_error.is_some_and(|e| e.contains("empties")));
    assert!(hosts.contains(&api.select().unwrap()));

    // A later list is taken as usual.
    let changes = host_changes(&api);
    replace(&path, &lines(&hosts[..1]));
    wait_for(&changes, "one host", |h| h.len() == 1);
    assert!(api.source_status().last_error.is_none());
}

#[test]
fn a_missing_serverset_file_uses_the_fallback_until_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(API);
    let fallback = vec![Endpoint::new("api.example", 8080)];
    let api = HostsProvider::builder()
        .fallback(fallback.clone())
        .serverset_file(&path)
        .unwrap();
    assert_eq!(
        (api.origin(), &*api.hosts()),
        (HostsOrigin::Fallback, &fallback)
    );
    assert_eq!(*api.select().unwrap(), fallback[0]);
    let status = api.source_status();
    assert!(status.last_loaded.is_none());
    assert!(status.last_error.is_some(), "says why: {status:?}");

    let changes = host_changes(&api);
    let hosts = endpoints(1, 2);
    replace(&path, &lines(&hosts));
    wait_for(&changes, "the file's hosts", |h| *h == hosts);
    assert_eq!(api.origin(), HostsOrigin::Source);
    assert!(hosts.contains(&api.select().unwrap()));
}

#[test]
fn a_missing_serverset_file_without_a_fallback_has_no_host_to_select() {
    let dir = tempfile::tempdir().unwrap();
    let api = HostsProvider::builder()
        .serverset_in(dir.path(), API)
        .unwrap();
    assert_eq!(api.origin(), HostsOrigin::NoHosts);
    let error = api.select().unwrap_err();
    assert!(matches!(error, HostsError::NoHosts { .. }));
    assert!(error.to_string().contains(API), "names the file: {error}");
}

#[test]
fn a_name_that_is_not_a_plain_file_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let error = HostsProvider::builder()
        .serverset_in(dir.path(), "../discovery.api.prod")
        .unwrap_err();
    assert!(matches!(error, Error::InvalidName { .. }), "{error}");
}

#[test]
fn a_static_list_is_the_source() {
    let hosts = endpoints(1, 5);
    let api = HostsProvider::builder()
        .selector(Selector::PowerOfTwoChoices)
        .fallback(endpoints(100, 1))
        .static_hosts(hosts.clone());
    assert_eq!((api.origin(), &*api.hosts()), (HostsOrigin::Source, &hosts));
    assert!(api.serverset().is_none());
    assert!(api.source_status().last_loaded.is_some());
    let lease = api.select().unwrap();
    assert!(hosts.contains(lease.endpoint()));

    let empty = HostsProvider::builder()
        .fallback(endpoints(100, 1))
        .static_hosts([]);
    assert_eq!(empty.origin(), HostsOrigin::Fallback);
}

#[test]
fn clones_share_invalidations_across_threads() {
    let hosts = endpoints(1, 10);
    let api = HostsProvider::builder().static_hosts(hosts.clone());
    let client = api.clone();
    let invalidated = thread::spawn(move || client.invalidate(&hosts[3]))
        .join()
        .unwrap();
    assert!(invalidated);
    assert_eq!(api.invalid_hosts(), [Endpoint::new("10.0.0.1", 4)]);
}
