//! The provider through the OpenFeature client API: each test registers
//! its own named provider over files in its own directory.

use std::path::Path;
use std::time::{Duration, Instant};

use kingpin_client::{Decider, VersionStamp};
use kingpin_openfeature::{KingpinProvider, ProviderOptions, WithoutTargetingKey};
use open_feature::provider::{FeatureProvider, ProviderStatus};
use open_feature::{
    Client, EvaluationContext, EvaluationErrorCode, EvaluationReason, FlagMetadataValue,
    OpenFeature,
};

const DECIDER: &str = r#"{"off": 0, "on": 100, "half": 50, "fraction": 12.5}"#;
const VIEW: &str = r#"{"dark_mode": true, "max_items": 25, "ratio": 0.75,
    "greeting": "hello", "limits": {"rps": 10, "burst": [1, 2]}}"#;

fn options(dir: &Path) -> ProviderOptions {
    ProviderOptions {
        decider_file: Some(dir.join("config.manageddata.admin.decider")),
        environment_file: Some(dir.join("environment.api")),
        max_age: None,
        without_targeting_key: WithoutTargetingKey::Error,
    }
}

/// The files as the monitor leaves them: each with a version stamp (the
/// decider at version 12, the view at 4).
fn write_files(dir: &Path) {
    for (file, content, version) in [
        ("config.manageddata.admin.decider", DECIDER, 12),
        ("environment.api", VIEW, 4),
    ] {
        std::fs::write(dir.join(file), content).unwrap();
        stamp(dir, file, content, version);
    }
}

fn stamp(dir: &Path, file: &str, content: &str, version: u64) {
    std::fs::create_dir_all(dir.join(kingpin_client::STAMP_DIR)).unwrap();
    let stamp = VersionStamp {
        version,
        sha256: kingpin_client::content_sha256(content.as_bytes()),
    };
    std::fs::write(VersionStamp::path(dir, file), stamp.to_json()).unwrap();
}

/// Registers `provider` under `name` and gives its client.
async fn named_client(name: &str, provider: KingpinProvider) -> Client {
    let mut api = OpenFeature::singleton_mut().await;
    api.set_named_provider(name, provider).await;
    api.create_named_client(name)
}

fn user(id: &str) -> EvaluationContext {
    EvaluationContext::default().with_targeting_key(id)
}

#[tokio::test]
async fn decider_flags_are_static_at_0_and_100_and_split_by_kingpins_bucket() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path());
    let client = named_client(
        "decider",
        KingpinProvider::new(options(dir.path())).unwrap(),
    )
    .await;

    let on = client.get_bool_details("on", None, None).await.unwrap();
    assert!(on.value);
    assert_eq!(on.reason, Some(EvaluationReason::Static));
    let off = client.get_bool_details("off", None, None).await.unwrap();
    assert!(!off.value);
    assert_eq!(off.reason, Some(EvaluationReason::Static));

    // In between, every id lands where KingPin's hashed bucket puts it.
    let reference = Decider::from_values([("half".to_owned(), 50.0)]);
    let mut ins = 0;
    for id in 0..200 {
        let id = format!("user-{id}");
        let details = client
            .get_bool_details("half", Some(&user(&id)), None)
            .await
            .unwrap();
        assert_eq!(details.reason, Some(EvaluationReason::Split));
        assert_eq!(
            details.value,
            Decider::kingpin_bucket("half", &id) < 50,
            "{id}"
        );
        assert_eq!(
            details.value,
            reference.is_hashed_id_in_experiment(&id, "half")
        );
        assert_eq!(
            details.variant.as_deref(),
            Some(if details.value { "on" } else { "off" })
        );
        ins += usize::from(details.value);
    }
    assert!(
        (60..140).contains(&ins),
        "about half of 200 ids are in: {ins}"
    );

    let metadata = client
        .get_bool_details("half", Some(&user("u")), None)
        .await
        .unwrap()
        .flag_metadata;
    assert_eq!(
        metadata.values.get("percentage"),
        Some(&FlagMetadataValue::Float(50.0))
    );
    assert_eq!(
        metadata.values.get("source"),
        Some(&FlagMetadataValue::String("decider".to_owned()))
    );
    assert!(metadata.values.contains_key("age_seconds"), "{metadata:?}");
    assert_eq!(
        metadata.values.get("version"),
        Some(&FlagMetadataValue::Int(12))
    );

    // The integer resolution is the percentage; a fractional one is a
    // float.
    assert_eq!(client.get_int_value("half", None, None).await.unwrap(), 50);
    assert_eq!(
        client
            .get_int_value("fraction", None, None)
            .await
            .unwrap_err()
            .code,
        EvaluationErrorCode::TypeMismatch
    );
    assert_eq!(
        client
            .get_float_value("fraction", None, None)
            .await
            .unwrap(),
        12.5
    );
}

#[tokio::test]
async fn without_a_targeting_key_a_split_is_an_error_or_a_draw_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path());
    let strict = named_client(
        "no-key-error",
        KingpinProvider::new(options(dir.path())).unwrap(),
    )
    .await;
    let err = strict.get_bool_value("half", None, None).await.unwrap_err();
    assert_eq!(err.code, EvaluationErrorCode::TargetingKeyMissing);

    let drawing = KingpinProvider::new(ProviderOptions {
        without_targeting_key: WithoutTargetingKey::RandomDraw,
        ..options(dir.path())
    })
    .unwrap();
    let drawing = named_client("no-key-draw", drawing).await;
    let mut ins = 0;
    for _ in 0..400 {
        let details = drawing.get_bool_details("half", None, None).await.unwrap();
        assert_eq!(details.reason, Some(EvaluationReason::Split));
        ins += usize::from(details.value);
    }
    // 50% of 400: outside 120..280 is a 1-in-10^15 event.
    assert!((120..280).contains(&ins), "{ins} of 400 draws");
}

#[tokio::test]
async fn typed_flags_come_from_the_environments_view() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path());
    let client = named_client("view", KingpinProvider::new(options(dir.path())).unwrap()).await;

    assert!(client
        .get_bool_value("dark_mode", None, None)
        .await
        .unwrap());
    assert_eq!(
        client.get_int_value("max_items", None, None).await.unwrap(),
        25
    );
    assert_eq!(
        client.get_float_value("ratio", None, None).await.unwrap(),
        0.75
    );
    let greeting = client
        .get_string_details("greeting", None, None)
        .await
        .unwrap();
    assert_eq!(greeting.value, "hello");
    assert_eq!(
        greeting.flag_metadata.values.get("source"),
        Some(&FlagMetadataValue::String("environment".to_owned()))
    );
    assert_eq!(
        greeting.flag_metadata.values.get("version"),
        Some(&FlagMetadataValue::Int(4))
    );
    let limits = client
        .get_struct_details::<open_feature::StructValue>("limits", None, None)
        .await
        .unwrap()
        .value;
    assert_eq!(
        limits.fields.get("rps"),
        Some(&open_feature::Value::Int(10))
    );
    assert_eq!(limits.fields.len(), 2);

    let err = client
        .get_int_value("greeting", None, None)
        .await
        .unwrap_err();
    assert_eq!(err.code, EvaluationErrorCode::TypeMismatch);
}

#[tokio::test]
async fn a_missing_flag_is_not_found_so_the_callers_default_applies() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path());
    let client = named_client(
        "missing",
        KingpinProvider::new(options(dir.path())).unwrap(),
    )
    .await;
    let err = client.get_bool_value("nope", None, None).await.unwrap_err();
    assert_eq!(err.code, EvaluationErrorCode::FlagNotFound);
    assert!(client
        .get_bool_value("nope", Some(&user("u")), None)
        .await
        .unwrap_or(true));
    let err = client
        .get_string_value("nope", None, None)
        .await
        .unwrap_err();
    assert_eq!(err.code, EvaluationErrorCode::FlagNotFound);
}

#[tokio::test]
async fn not_ready_until_the_files_are_loaded_then_stale_when_too_old() {
    let dir = tempfile::tempdir().unwrap();
    let provider = KingpinProvider::new(ProviderOptions {
        max_age: Some(Duration::from_secs(3600)),
        ..options(dir.path())
    })
    .unwrap();
    assert_eq!(provider.status(), ProviderStatus::NotReady);
    let client = named_client("readiness", provider).await;
    let err = client.get_bool_value("on", None, None).await.unwrap_err();
    assert_eq!(err.code, EvaluationErrorCode::ProviderNotReady);
    let err = client
        .get_string_value("greeting", None, None)
        .await
        .unwrap_err();
    assert_eq!(err.code, EvaluationErrorCode::ProviderNotReady);

    // The monitor writes the files: the provider picks them up.
    write_files(dir.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.get_bool_value("on", None, None).await.is_err()
        || client
            .get_string_value("greeting", None, None)
            .await
            .is_err()
    {
        assert!(Instant::now() < deadline, "the files were never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(client.get_bool_value("on", None, None).await.unwrap());

    // Freshly written: ready. Last replaced two hours ago: stale, and
    // still served.
    let fresh = KingpinProvider::new(ProviderOptions {
        max_age: Some(Duration::from_secs(3600)),
        ..options(dir.path())
    })
    .unwrap();
    assert_eq!(fresh.status(), ProviderStatus::Ready);
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("config.manageddata.admin.decider"))
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    assert_eq!(fresh.status(), ProviderStatus::STALE);
    let stale = named_client("stale", fresh).await;
    let on = stale.get_bool_details("on", None, None).await.unwrap();
    assert!(on.value);
    match on.flag_metadata.values.get("age_seconds") {
        Some(&FlagMetadataValue::Float(age)) => assert!(age >= 7200.0, "{age}"),
        other => panic!("age_seconds: {other:?}"),
    }
}

#[tokio::test]
async fn the_version_is_told_only_for_the_content_its_stamp_names() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path());
    let client = named_client("stamps", KingpinProvider::new(options(dir.path())).unwrap()).await;
    let version = || async {
        let details = client.get_bool_details("on", None, None).await.unwrap();
        assert!(details.value);
        details.flag_metadata.values.get("version").cloned()
    };
    assert_eq!(version().await, Some(FlagMetadataValue::Int(12)));

    // A stamp for content that is not on disk (the monitor stamps a version
    // before it replaces the file; that write may not have landed): the
    // value is served, its version is not guessed.
    let file = "config.manageddata.admin.decider";
    stamp(dir.path(), file, r#"{"on": 0}"#, 13);
    assert_eq!(version().await, None);

    // A new version with the same content (a rollback, say) is told.
    stamp(dir.path(), file, DECIDER, 14);
    assert_eq!(version().await, Some(FlagMetadataValue::Int(14)));
}
