//! Moving services from Jones: Python's kazoo (Debian's `python3-kazoo`)
//! writes two services in Jones's ZooKeeper layout — contents, the views
//! Jones materialized with its top-level merge (one of them stale, as a
//! clobbered Jones view is), nodemaps as a JSON object and as older
//! `host -> path` lines — and the import into ZooKeeper + S3 must give
//! every environment the view Jones had materialized for it, and every
//! host the view its Jones association gave it.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use kingpin_api::environment::{
    content_of, plan_jones_import, read_jones, Content, EnvPath, Environments, HostId,
    JonesDifference, ServiceName,
};
use kingpin_api::{ChangeInfo, ConfigStore};
use kingpin_conformance_tests::endpoints::{
    shared_endpoint, shared_s3, skip_external, SKIP_EXTERNAL_ENV,
};
use kingpin_conformance_tests::harness::skip;
use kingpin_conformance_tests::s3::aws_sdk_store;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{unique_namespace, unique_suffix};
use serde_json::Value;

/// `python3` on `PATH` first, then Debian's own interpreter (where
/// `python3-kazoo` is installed even under a pyenv or venv).
const PYTHONS: [&str; 2] = ["python3", "/usr/bin/python3"];

/// Writes the Jones layout under BASE, as Jones's server did: each
/// environment's content at /services/<svc>/conf[/env], each view at
/// /services/<svc>/views[/env] as the top-level merge (`dict.update`) of
/// its chain, and the nodemaps. Prints the views it wrote, by view path.
const WRITE_JONES: &str = r#"
import json, sys
from kazoo.client import KazooClient

hosts, base = sys.argv[1:3]
zk = KazooClient(hosts=hosts)
zk.start(timeout=15)

def write(path, value):
    zk.ensure_path(base + path)
    zk.set(base + path, value.encode())

def service(name, contents, nodemaps, stale=None):
    written = {}
    for env in sorted(contents, key=lambda e: e.count("/") if e else -1):
        write("/services/%s/conf%s" % (name, env), json.dumps(contents[env]))
    for env in contents:
        chain = [""] + ["/" + "/".join(env.strip("/").split("/")[:n]) for n in range(1, env.count("/") + 1)] if env else [""]
        view = {}
        for link in chain:
            view.update(contents[link])
        if stale and env in stale:
            view = stale[env]
        path = "/services/%s/views%s" % (name, env)
        write(path, json.dumps(view))
        written[path] = view
    write("/services/%s/nodemaps" % name, nodemaps)
    return written

views = {}
views.update(service("shop", {
    "": {"db": {"host": "db1", "pool": 5, "timeout": 30}, "features": {"a": True, "b": False}, "name": "shop"},
    "/prod": {"db": {"host": "db-prod"}, "replicas": 3},
    "/prod/east": {"features": {"b": True}, "region": "east"},
    "/staging": {"name": "shop-staging"},
}, json.dumps({
    "web1.example.com": "/services/shop/views/prod/east",
    "Web2.Example.com": "/services/shop/views/prod",
    "web3.example.com": "/services/shop/views",
    "stage1.example.com": "/services/shop/views/staging",
}), stale={"/staging": {"name": "clobbered", "db": {"host": "db1"}}}))
views.update(service("legacy", {
    "": {"x": 1, "nested": {"k": 1, "j": 2}},
    "/dev": {"nested": {"k": 9}},
}, "h1.example.com -> /services/legacy/views/dev\nh2.example.com -> /services/legacy/views\n"))
print(json.dumps(views), flush=True)
zk.stop()
zk.close()
"#;

fn python_with_kazoo(case: &str) -> Option<&'static str> {
    let mut tried = Vec::new();
    for python in PYTHONS {
        match Command::new(python).args(["-c", "import kazoo"]).output() {
            Ok(output) if output.status.success() => return Some(python),
            Ok(output) => tried.push(format!(
                "{python}: {}",
                String::from_utf8_lossy(&output.stderr)
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or_default()
            )),
            Err(e) => tried.push(format!("{python}: {e}")),
        }
    }
    let why = format!("no Python imports kazoo ({})", tried.join("; "));
    if skip_external() {
        skip("kazoo", case, &format!("{why}; {SKIP_EXTERNAL_ENV}=1"));
        return None;
    }
    panic!("{case} needs Python's kazoo, but {why}. ./scripts/test installs it (apt-get install python3-kazoo), or set {SKIP_EXTERNAL_ENV}=1");
}

fn env(path: &str) -> EnvPath {
    EnvPath::parse(path).unwrap()
}

fn object(value: &Value) -> Content {
    content_of("a Jones view", value.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jones_services_import_with_the_views_jones_gave() {
    let case = "jones_services_import_with_the_views_jones_gave";
    let Some(hosts) = shared_endpoint(ServerKind::ZooKeeper, case).await else {
        return;
    };
    let Some(python) = python_with_kazoo(case) else {
        return;
    };
    let Some((endpoint, credentials)) = shared_s3(case).await else {
        return;
    };
    let base = unique_namespace();
    let output = Command::new(python)
        .arg("-c")
        .arg(WRITE_JONES)
        .args([&hosts, &base])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "the kazoo script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let jones_views: BTreeMap<String, Value> =
        serde_json::from_slice(&output.stdout).expect("the script prints the views");

    let jones = kingpin::open_coordinator(&format!("zk://{hosts}{base}"))
        .await
        .unwrap();
    let blobs = aws_sdk_store(
        &endpoint,
        &credentials,
        "kingpin-test",
        &format!("jones-{}", unique_suffix()),
    )
    .await;
    let ours = kingpin::open_coordinator(&format!("zk://{hosts}{}", unique_namespace()))
        .await
        .unwrap();
    let envs = Environments::new(ConfigStore::new(ours, Arc::new(blobs)));
    let change = ChangeInfo::new("conformance", "from Jones");

    // shop: nested objects partially overridden, a stale view, JSON nodemaps.
    let shop = ServiceName::parse("shop").unwrap();
    let read = read_jones(jones.as_ref(), &shop).await.unwrap();
    assert_eq!(read.contents.len(), 4);
    let kept = plan_jones_import(&read, true).unwrap();
    let changed: Vec<String> = kept
        .adjustments
        .iter()
        .map(|a| a.environment.to_string())
        .collect();
    assert_eq!(
        changed,
        ["/prod", "/prod/east", "/staging"],
        "deep merge alone would change these views"
    );
    let plan = plan_jones_import(&read, false).unwrap();
    let by_env: BTreeMap<String, (JonesDifference, Vec<String>)> = plan
        .adjustments
        .iter()
        .map(|a| (a.environment.to_string(), (a.difference, a.places.clone())))
        .collect();
    assert_eq!(
        by_env["/prod"],
        (
            JonesDifference::NestedOverride,
            vec!["/db/pool".to_owned(), "/db/timeout".to_owned()]
        )
    );
    assert_eq!(
        by_env["/prod/east"],
        (
            JonesDifference::NestedOverride,
            vec!["/features/a".to_owned()]
        )
    );
    assert_eq!(by_env["/staging"].0, JonesDifference::StaleView);
    let report = envs.import(&plan.document, &change).await.unwrap();
    assert_eq!((report.environments.len(), report.hosts), (4, 4));
    for (view_path, env_path) in [
        ("", "/"),
        ("/prod", "/prod"),
        ("/prod/east", "/prod/east"),
        ("/staging", "/staging"),
    ] {
        let jones_view = &jones_views[&format!("/services/shop/views{view_path}")];
        let view = envs.view(&shop, &env(env_path)).await.unwrap().unwrap();
        assert_eq!(view.content, object(jones_view), "the view of {env_path}");
    }
    for (host, view_path) in [
        ("web1.example.com", "/services/shop/views/prod/east"),
        ("web2.example.com", "/services/shop/views/prod"),
        ("web3.example.com", "/services/shop/views"),
        ("stage1.example.com", "/services/shop/views/staging"),
    ] {
        let (association, _) = envs
            .association(&shop, &HostId::parse(host).unwrap())
            .await
            .unwrap()
            .unwrap();
        let view = envs
            .view(&shop, &association.environment)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            view.content,
            object(&jones_views[view_path]),
            "what {host} reads"
        );
    }

    // legacy: `host -> path` nodemaps.
    let legacy = ServiceName::parse("legacy").unwrap();
    let plan =
        plan_jones_import(&read_jones(jones.as_ref(), &legacy).await.unwrap(), false).unwrap();
    envs.import(&plan.document, &change).await.unwrap();
    let (association, _) = envs
        .association(&legacy, &HostId::parse("h1.example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(association.environment, env("/dev"));
    let view = envs.view(&legacy, &env("/dev")).await.unwrap().unwrap();
    assert_eq!(
        view.content,
        object(&jones_views["/services/legacy/views/dev"])
    );
    let _ = jones.close().await;
}
