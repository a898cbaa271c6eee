//! The typed readers over real files: KingPin's formats, reloads, the last
//! good snapshot on wrong shapes, the decider and serversets.

mod support;

use std::collections::BTreeMap;

use kingpin_client::{
    Decider, DeciderReader, Endpoint, Error, JsonReader, ManagedListReader, ManagedMapReader,
    ManagedMappedListReader, ServerSetReader, DECIDER_CONFIG,
};
use support::{changes, errors, replace, wait_for};

const BLACKLIST: &str = "config.manageddata.spam.blacklist";

#[test]
fn a_list_reader_reads_kingpins_array_and_keeps_the_last_good_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(BLACKLIST);
    std::fs::write(&path, r#"["a", "b"]"#).unwrap();
    let list = ManagedListReader::<String>::open_in(dir.path(), BLACKLIST).unwrap();
    assert_eq!(list.items(), ["a", "b"]);
    assert!(list.contains("a") && !list.contains("c"));
    assert_eq!(list.len(), 2);

    let (changes, errors) = (changes(list.file()), errors(list.file()));
    replace(&path, r#"{"a": 1}"#);
    wait_for(&errors, "the wrong shape", |e| e.contains("managed list"));
    assert_eq!(list.items(), ["a", "b"], "the last good list");

    replace(&path, "");
    wait_for(&changes, "the cleared list", |l| l.is_empty());
    assert!(list.is_empty());
}

#[test]
fn a_list_reader_opened_or_empty_waits_for_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(BLACKLIST);
    let list = ManagedListReader::<u64>::open_or_empty(&path).unwrap();
    assert!(list.is_empty());
    let changes = changes(list.file());
    replace(&path, "[3, 1]");
    wait_for(&changes, "the list", |l| l.contains(&3));
    assert_eq!(list.items(), [3, 1]);
}

#[test]
fn a_map_reader_reads_kingpins_object() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.manageddata.app.limits");
    std::fs::write(&path, r#"{"a": 1}"#).unwrap();
    let map = ManagedMapReader::<i64>::open(&path).unwrap();
    assert_eq!(map.get("a"), Some(1));
    assert_eq!(map.get("b"), None);
    assert!(map.contains_key("a"));
    assert_eq!((map.keys(), map.len()), (vec!["a".to_owned()], 1));

    let (changes, errors) = (changes(map.file()), errors(map.file()));
    replace(&path, r#"["a"]"#);
    wait_for(&errors, "the wrong shape", |e| e.contains("managed map"));
    assert_eq!(map.get("a"), Some(1));
    replace(&path, r#"{"b": 2, "a": 3}"#);
    wait_for(&changes, "the new map", |m| m.contains_key("b"));
    assert_eq!(map.keys(), ["a", "b"]);
    assert_eq!(
        map.snapshot().entries(),
        &BTreeMap::from([("a".to_owned(), 3), ("b".to_owned(), 2)])
    );
}

#[test]
fn a_mapped_list_reader_reads_kingpins_object_of_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.manageddata.app.owners");
    std::fs::write(&path, r#"{"k": ["x"]}"#).unwrap();
    let lists = ManagedMappedListReader::<String>::open(&path).unwrap();
    assert_eq!(lists.get("k"), ["x"]);
    assert!(lists.get("other").is_empty());
    assert!(lists.contains("k", "x") && !lists.contains("k", "y"));
    assert_eq!(lists.keys(), ["k"]);

    let (changes, errors) = (changes(lists.file()), errors(lists.file()));
    replace(&path, r#"{"k": "x"}"#);
    wait_for(&errors, "the wrong shape", |e| e.contains("mapped list"));
    assert_eq!(lists.get("k"), ["x"]);
    replace(&path, r#"{"k": ["x", "y"], "m": []}"#);
    wait_for(&changes, "the new lists", |l| l.contains_key("m"));
    assert!(lists.contains("k", "y"));
}

#[test]
fn a_json_reader_reads_any_serde_type() {
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Limits {
        rate: u32,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.app.limits");
    std::fs::write(&path, r#"{"rate": 5}"#).unwrap();
    let limits = JsonReader::<Limits>::open(&path).unwrap();
    assert_eq!(limits.get().rate, 5);

    let (changes, errors) = (changes_of_rate(&limits), errors(limits.file()));
    replace(&path, r#"{"rate": "fast"}"#);
    wait_for(&errors, "the wrong type", |e| e.contains("cannot parse"));
    assert_eq!(limits.get().rate, 5);
    replace(&path, r#"{"rate": 6}"#);
    wait_for(&changes, "the new rate", |rate| *rate == 6);

    fn changes_of_rate(limits: &JsonReader<Limits>) -> std::sync::mpsc::Receiver<u32> {
        let (sender, receiver) = std::sync::mpsc::channel();
        limits.file().on_change(move |l: &Limits| {
            let _ = sender.send(l.rate);
        });
        receiver
    }
}

#[test]
fn a_cleared_json_config_reads_as_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.app.optional");
    std::fs::write(&path, "").unwrap();
    let value = JsonReader::<Option<Vec<u8>>>::open(&path).unwrap();
    assert_eq!(*value.get(), None);
    let fallback = JsonReader::open_or(dir.path().join("missing"), 7u8).unwrap();
    assert_eq!(*fallback.get(), 7);
}

#[test]
fn decider_reader_decides_as_the_decider_does() {
    let dir = tempfile::tempdir().unwrap();
    let content = r#"{"new_feed": 80, "half": 50, "off": 0, "on": 100}"#;
    std::fs::write(dir.path().join(DECIDER_CONFIG), content).unwrap();
    let reader = DeciderReader::open_in(dir.path()).unwrap();
    let decider = Decider::from_json(content.as_bytes()).unwrap();

    // int(hashlib.md5(b"decider_new_feed42").hexdigest(), 16) % 100, by
    // python3: KingPin puts id 42 in bucket 79 of "new_feed".
    assert_eq!(Decider::kingpin_bucket("new_feed", 42), 79);
    assert!(reader.is_hashed_id_in_experiment(42, "new_feed"), "79 < 80");
    assert_eq!(reader.value("new_feed"), Some(80.0));
    for id in 0..500 {
        for name in ["new_feed", "half", "off", "unset"] {
            assert_eq!(reader.decide_for(name, id), decider.decide_for(name, id));
            assert_eq!(
                reader.is_hashed_id_in_experiment(id, name),
                decider.is_hashed_id_in_experiment(id, name)
            );
        }
    }
    assert!(reader.decide("on") && !reader.decide("off"));
    assert!(reader.decide_or("unset", true) && !reader.decide("unset"));
    assert_eq!(*reader.snapshot(), decider);
}

#[test]
fn decider_reader_never_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DECIDER_CONFIG);
    let reader = DeciderReader::open(&path).unwrap();
    assert!(!reader.decide_for("new_feed", 42), "no file yet: unset");
    assert!(
        reader.decide_or("new_feed", true),
        "no file yet: the default"
    );

    let (changes, errors) = (changes(reader.file()), errors(reader.file()));
    replace(&path, r#"{"new_feed": 80}"#);
    wait_for(&changes, "the values", |d| d.value("new_feed").is_some());
    assert!(reader.decide_for("new_feed", 42));

    replace(&path, r#"{"new_feed": "lots"}"#);
    wait_for(&errors, "the broken file", |e| {
        e.contains("decider content")
    });
    assert!(reader.decide_for("new_feed", 42), "the last good values");
    assert_eq!(reader.value("new_feed"), Some(80.0));

    replace(&path, " ");
    wait_for(&changes, "the cleared values", |d| d.values().is_empty());
    assert!(!reader.decide_for("new_feed", 42));
}

#[test]
fn serverset_reader_reads_host_port_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("discovery.api.prod");
    std::fs::write(&path, "# api\n10.0.0.1:8080\n\n[::1]:8081\n").unwrap();
    let api = ServerSetReader::open_in(dir.path(), "discovery.api.prod").unwrap();
    assert_eq!(
        *api.endpoints(),
        [Endpoint::new("10.0.0.1", 8080), Endpoint::new("::1", 8081)]
    );

    let changes = changes(api.file());
    replace(&path, "10.0.0.2:8080\n");
    wait_for(&changes, "the new members", |e| e.len() == 1);
    assert_eq!(*api.endpoints(), [Endpoint::new("10.0.0.2", 8080)]);
}

#[test]
fn serverset_reader_keeps_the_previous_members_when_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("discovery.api.prod");
    std::fs::write(&path, "10.0.0.1:8080\n10.0.0.2:8080\n").unwrap();
    let api = ServerSetReader::open(&path).unwrap();
    let (changes, errors) = (changes(api.file()), errors(api.file()));

    replace(&path, "");
    let error = wait_for(&errors, "the refusal", |e| e.contains("empties"));
    assert!(error.contains("keeping its 2 endpoints"), "{error}");
    assert_eq!(api.endpoints().len(), 2);
    assert_eq!(api.file().last_error(), Some(error));

    replace(&path, "not an endpoint\n");
    wait_for(&errors, "the bad line", |e| e.contains("line 1"));
    assert_eq!(api.endpoints().len(), 2);

    replace(&path, "10.0.0.3:8080\n");
    wait_for(&changes, "the new member", |e| e.len() == 1);
    assert_eq!(api.file().last_error(), None);
}

#[test]
fn a_serverset_that_starts_empty_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("discovery.new.prod");
    std::fs::write(&path, "").unwrap();
    let api = ServerSetReader::open(&path).unwrap();
    assert!(api.endpoints().is_empty());
    let later = ServerSetReader::open_or_empty(dir.path().join("discovery.later.prod")).unwrap();
    assert!(later.endpoints().is_empty());
}

#[test]
fn invalid_names_are_refused_before_any_io() {
    // The directory does not exist: any I/O would fail with another error.
    let nowhere = "/nonexistent-kingpin-client-test";
    for bad in ["", ".", "..", "../etc/passwd", "a/b", "nul\0"] {
        let errors = [
            ManagedListReader::<String>::open_in(nowhere, bad).err(),
            ManagedMapReader::<String>::open_in(nowhere, bad).err(),
            ManagedMappedListReader::<String>::open_in(nowhere, bad).err(),
            JsonReader::<u8>::open_in(nowhere, bad).err(),
            ServerSetReader::open_in(nowhere, bad).err(),
        ];
        for error in errors {
            assert!(
                matches!(error, Some(Error::InvalidName { .. })),
                "{bad:?}: {error:?}"
            );
        }
    }
}

#[test]
fn an_environment_reader_follows_the_view_and_keeps_the_last_good_one() {
    use kingpin_client::EnvironmentReader;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("environments.web");
    std::fs::write(&path, r#"{"db": {"pool_size": 20}, "debug": false}"#).unwrap();
    let web = EnvironmentReader::open_in(dir.path(), "web").unwrap();
    assert_eq!(web.get::<u32>("db.pool_size"), Some(20));
    assert_eq!(web.get_or("db.timeout_ms", 250u32), 250);
    assert!(web.try_get::<String>("db.pool_size").is_err());

    let (changes, errors) = (changes(web.file()), errors(web.file()));
    replace(&path, r#"{"db": {"pool_size": 50}}"#);
    wait_for(&changes, "the new view", |v| {
        v.get::<u32>("db.pool_size") == Some(50)
    });
    assert_eq!(web.get::<u32>("db.pool_size"), Some(50));
    replace(&path, "[1, 2]");
    wait_for(&errors, "the wrong shape", |e| e.contains("JSON object"));
    assert_eq!(
        web.get::<u32>("db.pool_size"),
        Some(50),
        "the last good view"
    );
    assert!(matches!(
        EnvironmentReader::open_in(dir.path(), "../etc"),
        Err(Error::InvalidName { .. })
    ));
}
