//! Property test of the HTTP edge, in process: one replica's whole router (API with its
//! limits, peer RPC routes and the forwarding entry, mounted as `hekate serve` mounts them on a
//! shared listener) gets arbitrary methods, paths, query strings, headers, JWTs (garbage,
//! wrong key, wrong qsh, expired, valid admin and user tokens) and bodies (bytes and JSON
//! shaped like the API's). It must never panic, never answer 5xx except 503 (and two
//! documented ones: `/backup/db`'s 501, Heketi's 500 for an allocation without room), and a
//! 4xx must leave the replicated state byte for byte as it was.
//!
//! 256 cases by default; `PROPTEST_CASES=1000000 cargo test --test router_fuzz`
//! for the long run (docs/security.md has its figures). The operation runner is not started,
//! so nothing commits in the background between cases.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hekate::api::{self, AppState, StateOptions};
use hekate::auth::{now_unix, sign, Verifier};
use hekate::config::{GlusterfsConfig, Limits, Policy};
use hekate::executor::mock::{MockConfig, MockExecutor};
use hekate::state::{HekateApp, HekateReplica};
use hekate_raft::replica::ReplicaConfig;
use hekate_raft::{Member, Replica, StateReader};
use proptest::prelude::*;
use tower::ServiceExt;

const ADMIN_KEY: &str = "fuzz-admin-key-0123456789";
const USER_KEY: &str = "fuzz-user-key-0123456789";
const SECRET: &str = "fuzz-cluster-secret-0123456789";

struct Harness {
    rt: tokio::runtime::Runtime,
    app: Router,
    replica: HekateReplica,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = hekate::logging::init_logging("none");
        let (app, replica) = rt.block_on(async {
            let member = Member {
                api_addr: "127.0.0.1:1".into(),
                peer_addr: "127.0.0.1:1".into(),
            };
            let replica = Replica::start(
                ReplicaConfig {
                    id: 1,
                    data_dir: dir.path().join("data"),
                    settings: Default::default(),
                    initial_members: [(1, member)].into(),
                    join: false,
                    secret: SECRET.into(),
                    tls: None,
                    store: Default::default(),
                },
                Arc::new(HekateApp),
            )
            .await
            .unwrap();
            replica.bootstrap().await;
            let st = AppState::new(
                replica.clone(),
                StateOptions {
                    verifier: Some(Verifier {
                        admin_key: ADMIN_KEY.into(),
                        user_key: USER_KEY.into(),
                        iat_leeway_secs: 120,
                    }),
                    forward_timeout: Duration::from_millis(500),
                    exec: Arc::new(MockExecutor::in_memory(MockConfig::default())),
                    policy: Policy::from_config(&GlusterfsConfig::default()),
                    default_admin_state: String::new(),
                    log,
                    failpoints: Arc::new(hekate::ops::failpoint::Failpoints::new(false)),
                },
            );
            // As `hekate serve` builds it with the peer routes on the API listener.
            let api_app = hekate::listen::limit(
                api::router(st),
                hekate::listen::RequestLimits::new(&Limits::default()),
            );
            let app = api_app.clone().merge(
                replica
                    .peer_router()
                    .merge(api::forward::peer_entry(api_app, SECRET)),
            );
            // Ready: this replica leads and has applied an entry of its term.
            hekate_testkit::wait_for(Duration::from_secs(30), "the replica to lead", || async {
                replica.ready().await.ok()
            })
            .await
            .unwrap();
            (app, replica)
        });
        Harness {
            rt,
            app,
            replica,
            _dir: dir,
        }
    })
}

const ROUTES: &[&str] = &[
    "/hello",
    "/metrics",
    "/admin",
    "/internal/logging",
    "/readyz",
    "/raft/status",
    "/raft/members",
    "/raft/members/{id}",
    "/raft/leader",
    "/raft/rpc/vote",
    "/raft/rpc/append",
    "/raft/rpc/status",
    "/raft/forward/clusters",
    "/raft/forward/volumes/{id}",
    "/clusters",
    "/clusters/{id}",
    "/clusters/{id}/flags",
    "/nodes",
    "/nodes/{id}",
    "/nodes/{id}/state",
    "/nodes/{id}/tags",
    "/devices",
    "/devices/{id}",
    "/devices/{id}/state",
    "/devices/{id}/resync",
    "/devices/{id}/tags",
    "/volumes",
    "/volumes/{id}",
    "/volumes/{id}/expand",
    "/volumes/{id}/clone",
    "/volumes/{id}/block-restriction",
    "/operations",
    "/operations/pending",
    "/operations/pending/{id}",
    "/operations/pending/cleanup",
    "/queue/{id}",
    "/bricks/to-evict/{id}",
    "/topology",
    "/db/dump",
    "/db/check",
    "/db/import",
    "/backup/db",
    "/internal/state/examine/gluster",
    "/reconcile",
];

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["GET", "POST", "DELETE"]).prop_map(String::from),
        1 => prop::sample::select(vec!["PUT", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT"])
            .prop_map(String::from),
        1 => "[A-Za-z!#$%&'*+.^_`|~-]{1,12}",
    ]
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{32}",
        "[0-9a-fA-F]{1,40}",
        "[A-Za-z0-9._~%-]{0,40}",
        Just("..".to_string()),
        Just("%2e%2e%2f".to_string()),
    ]
}

fn path() -> impl Strategy<Value = String> {
    let templated = (prop::sample::select(ROUTES), segment()).prop_map(|(r, id)| r.replace("{id}", &id));
    let query = prop_oneof![
        3 => Just(String::new()),
        1 => "\\?[A-Za-z0-9=&%._-]{0,40}",
    ];
    let raw = "/[A-Za-z0-9/._~%!$&'()*+,;=:@-]{0,60}";
    (
        prop_oneof![8 => templated, 2 => raw, 1 => Just("*".to_string())],
        query,
    )
        .prop_map(|(p, q)| format!("{p}{q}"))
}

/// An `Authorization` value: none, garbage, or a token that is valid, almost valid, or
/// signed for something else.
fn jwt(method: String, path: String) -> impl Strategy<Value = Option<String>> {
    let p = path.split('?').next().unwrap_or("").to_string();
    let (m1, p1) = (method.clone(), p.clone());
    let (m2, p2) = (method.clone(), p.clone());
    let signed = (
        prop::sample::select(vec!["admin", "user", "root", ""]),
        prop::sample::select(vec![ADMIN_KEY, USER_KEY, "wrong-key"]),
        any::<bool>(), // qsh over this request, or another
        prop::sample::select(vec![0i64, -3600, 3600, -100_000]),
        prop::sample::select(vec![600i64, -10, 1]),
    )
        .prop_map(move |(iss, key, same, skew, ttl)| {
            let p = path.split('?').next().unwrap_or("").to_string();
            let (m, p) = if same {
                (method.clone(), p)
            } else {
                ("GET".to_string(), "/clusters".to_string())
            };
            Some(format!(
                "Bearer {}",
                sign(iss, key, &m, &p, now_unix() + skew, ttl)
            ))
        });
    let valid_admin = Just(()).prop_map(move |_| {
        Some(format!(
            "Bearer {}",
            sign("admin", ADMIN_KEY, &m1, &p1, now_unix(), 600)
        ))
    });
    let valid_user = Just(()).prop_map(move |_| {
        Some(format!(
            "Bearer {}",
            sign("user", USER_KEY, &m2, &p2, now_unix(), 600)
        ))
    });
    prop_oneof![
        2 => Just(None),
        1 => "[ -~]{0,120}".prop_map(Some),
        1 => "Bearer [A-Za-z0-9._-]{0,200}".prop_map(Some),
        3 => signed,
        6 => valid_admin,
        2 => valid_user,
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let known = prop_oneof![
        Just(("content-type".to_string(), "application/json".to_string())),
        "[ -~]{0,40}".prop_map(|v| ("content-type".to_string(), v)),
        Just(("x-hekate-read".to_string(), "local".to_string())),
        "[0-9]{1,4}".prop_map(|v| ("x-hekate-hops".to_string(), v)),
        "[ -~]{0,40}".prop_map(|v| ("x-hekate-secret".to_string(), v)),
        "[ -~]{0,40}".prop_map(|v| ("x-hekate-forwarded-by".to_string(), v)),
        "[0-9]{0,12}".prop_map(|v| ("content-length".to_string(), v)),
        Just(("transfer-encoding".to_string(), "chunked".to_string())),
        ("[a-z][a-z0-9-]{0,20}", "[ -~]{0,60}"),
    ];
    prop::collection::vec(known, 0..5)
}

fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let s = "[ -~]{0,24}";
    let n = prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        Just("1e400".to_string()),
        Just("-0".to_string()),
        Just("18446744073709551616".to_string())
    ];
    prop_oneof![
        Just("{}".to_string()),
        (n.clone(), s).prop_map(|(n, s)| format!(r#"{{"size":{n},"name":{s:?}}}"#)),
        (n.clone(), s, s).prop_map(|(n, d, t)| format!(
            r#"{{"size":{n},"durability":{{"type":{d:?},"replicate":{{"replica":{n}}}}},"clusters":[{t:?}]}}"#
        )),
        (s, s).prop_map(|(st, h)| format!(r#"{{"state":{st:?},"healcheck":{h:?}}}"#)),
        (s, s, n.clone()).prop_map(|(c, h, z)| format!(
            r#"{{"cluster":{c:?},"hostnames":{{"manage":[{h:?}],"storage":[{h:?}]}},"zone":{z}}}"#
        )),
        (s, s).prop_map(|(node, name)| format!(r#"{{"node":{node:?},"name":{name:?}}}"#)),
        s.prop_map(|l| format!(r#"{{"loglevel":{{"glusterfs":{l:?}}}}}"#)),
        (s, s).prop_map(|(k, v)| format!(r#"{{"change_type":"set","tags":{{{k:?}:{v:?}}}}}"#)),
        (any::<u64>(), s, s).prop_map(|(id, a, p)| format!(r#"{{"id":{id},"api":{a:?},"peer":{p:?}}}"#)),
        "[ -~]{0,200}",
    ]
    .prop_map(String::into_bytes)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(Vec::new()),
        4 => json_body(),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    method: String,
    path: String,
    auth: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn case() -> impl Strategy<Value = Case> {
    (method(), path())
        .prop_flat_map(|(m, p)| (Just(m.clone()), Just(p.clone()), jwt(m, p), headers(), body()))
        .prop_map(|(method, path, auth, headers, body)| Case {
            method,
            path,
            auth,
            headers,
            body,
        })
}

fn snapshot(r: &HekateReplica) -> Vec<(Vec<u8>, Vec<u8>)> {
    r.read(|v| v.scan_prefix(b"")).unwrap()
}

fn run(c: &Case) -> Result<(), TestCaseError> {
    let h = harness();
    let mut b = axum::http::Request::builder()
        .method(c.method.as_str())
        .uri(c.path.as_str());
    if let Some(a) = &c.auth {
        b = b.header("authorization", a.as_str());
    }
    for (k, v) in &c.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let Ok(req) = b.body(Body::from(c.body.clone())) else {
        // Not a representable HTTP request (hyper refuses it before the router).
        return Ok(());
    };
    let before = snapshot(&h.replica);
    let resp = h
        .rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), h.app.clone().oneshot(req)).await });
    let resp = match resp {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => match e {},
        Err(_) => return Err(TestCaseError::fail(format!("no answer within 30 s: {c:?}"))),
    };
    let status = resp.status();
    if let Ok(mut h) = histogram().lock() {
        *h.entry(status.as_u16()).or_default() += 1;
    }
    let text = h.rt.block_on(async {
        let b = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        String::from_utf8_lossy(&b).into_owned()
    });
    // Deliberate 5xx besides 503: `/backup/db` answers 501 to an authorized caller (no
    // BoltDB file; docs/api-compatibility.md), and an allocation that finds no room answers
    // 500 "Failed to allocate new volume: ..." as Heketi's OperationHttpErrorf does.
    let path = c.path.split('?').next();
    let documented = (status.as_u16() == 501 && path == Some("/backup/db"))
        || (status.as_u16() == 500 && text.starts_with("Failed to allocate new volume: "));
    prop_assert!(
        !status.is_server_error() || status.as_u16() == 503 || documented,
        "{status} {text:?} for {c:?}"
    );
    if status.is_client_error() {
        let after = snapshot(&h.replica);
        prop_assert!(before == after, "{status} {text:?} changed the state: {c:?}");
    }
    Ok(())
}

/// Answers seen, by status: the run's figures (docs/security.md).
fn histogram() -> &'static std::sync::Mutex<std::collections::BTreeMap<u16, u64>> {
    static H: OnceLock<std::sync::Mutex<std::collections::BTreeMap<u16, u64>>> = OnceLock::new();
    H.get_or_init(Default::default)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

#[test]
fn router_never_panics_never_5xx_and_4xx_changes_nothing() {
    let cfg = ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(cfg);
    let started = std::time::Instant::now();
    runner.run(&case(), |c| run(&c)).unwrap();
    eprintln!(
        "router fuzz: {} cases in {:.1} s; statuses {:?}",
        cases(),
        started.elapsed().as_secs_f64(),
        histogram().lock().map(|h| h.clone()).unwrap_or_default()
    );
}
