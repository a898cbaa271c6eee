//! Compatibility with KingPin, checked against Python itself: the decider's
//! hashed buckets against `hashlib.md5`, and managed data files against
//! `json.dumps(..., sort_keys=True)`.

use std::io::Write;
use std::process::{Command, Stdio};

use kingpin_api::decider::Decider;
use kingpin_api::managed::to_kingpin_json;
use kingpin_conformance_tests::endpoints::{skip_external, SKIP_EXTERNAL_ENV};
use kingpin_conformance_tests::harness::skip;
use serde_json::{json, Value};

/// Runs `script` with `input` on stdin and returns stdout, or `None` when
/// Python is missing and the run opted out of external tools.
fn python(case: &str, script: &str, input: &str) -> Option<String> {
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if skip_external() => {
            skip("python3", case, &format!("python3 cannot run ({e})"));
            return None;
        }
        Err(e) => panic!(
            "{case} checks against Python, but python3 cannot run ({e}); \
             ./scripts/test installs it, or set {SKIP_EXTERNAL_ENV}=1 to opt out"
        ),
    };
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .expect("python reads its input");
    let output = child.wait_with_output().expect("python runs");
    assert!(output.status.success(), "python failed: {output:?}");
    Some(String::from_utf8(output.stdout).expect("python prints UTF-8"))
}

#[test]
fn hashed_buckets_match_pythons_hashlib() {
    let mut pairs = Vec::new();
    for name in ["new_feed", "search.ranking_v2", "a", "decider-with-dash"] {
        for id in (0..500u64).chain([u64::MAX, 1 << 40]) {
            pairs.push((name.to_owned(), id.to_string()));
        }
        pairs.push((name.to_owned(), "user-abc".to_owned()));
    }
    let input: String = pairs
        .iter()
        .map(|(name, id)| format!("{name}\t{id}\n"))
        .collect();
    let script = r#"
import hashlib, sys
for line in sys.stdin:
    name, uid = line.rstrip("\n").split("\t")
    print(int(hashlib.md5(("decider_%s%s" % (name, uid)).encode()).hexdigest(), 16) % 100)
"#;
    let Some(out) = python("hashed_buckets_match_pythons_hashlib", script, &input) else {
        return;
    };
    let expected: Vec<u8> = out.lines().map(|l| l.parse().expect("a bucket")).collect();
    assert_eq!(expected.len(), pairs.len());
    for ((name, id), python_bucket) in pairs.iter().zip(expected) {
        assert_eq!(
            Decider::kingpin_bucket(name, id),
            python_bucket,
            "{name} / {id}"
        );
        let at = |value: f64| Decider::from_values([(name.clone(), value)]);
        assert!(at(f64::from(python_bucket) + 1.0).is_hashed_id_in_experiment(id, name));
        assert!(!at(f64::from(python_bucket)).is_hashed_id_in_experiment(id, name));
    }
}

#[test]
fn managed_data_files_match_pythons_json_dumps() {
    let values: Vec<Value> = vec![
        json!(["b", "a", "b"]),
        json!([]),
        json!({}),
        json!({"zeta": 1, "alpha": [1, 2.5, -3], "Mid": {"y": null, "x": true}}),
        json!([
            "é",
            "日本",
            "😀",
            "tab\tquote\"back\\slash",
            "\u{7f}\u{1}",
            "/"
        ]),
        json!([
            0.1,
            1e16,
            1e15,
            1.5e-7,
            0.0001,
            0.00001,
            2.0,
            -0.0,
            123456789.125,
            1e300
        ]),
        json!([9007199254740993u64, -42, 0]),
        json!({"decider_a": 12.5, "decider_b": 100, "decider_c": 0}),
        json!({"east": ["h1:80", "h2:80"], "west": []}),
    ];
    let input: String = values.iter().map(|v| format!("{v}\n")).collect();
    let script = r#"
import json, sys
for line in sys.stdin:
    print(json.dumps(json.loads(line), sort_keys=True))
"#;
    let Some(out) = python(
        "managed_data_files_match_pythons_json_dumps",
        script,
        &input,
    ) else {
        return;
    };
    let expected: Vec<&str> = out.lines().collect();
    assert_eq!(expected.len(), values.len());
    for (value, python) in values.iter().zip(expected) {
        assert_eq!(to_kingpin_json(value), python, "{value}");
    }
}
