//! Contract tests: Heketi v10.4.1's recorded exchanges (tests/fixtures/heketi-samples,
//! recorded on a 6-node, 3-zone, 18-device topology) replayed against a three-replica Hekate
//! cluster loaded with the same topology, through a follower. Status codes, headers, exact
//! error texts (ids mapped to ours) and JSON shapes (keys, key order, value types) must match.

use std::collections::BTreeMap;

use hekate_testkit::{load_topology, run_async, wait_queue};
use regex::Regex;
use reqwest::Method;
use serde_json::{json, Value};

use crate::{cluster, serial, T};

fn fixture(name: &str) -> Value {
    let p = format!(
        "{}/tests/fixtures/heketi-samples/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))).unwrap()
}

/// Keys (in order) and value types, recursively; arrays by their first element.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => Value::Null,
    }
}

/// Maps the recorded ids to the ones this run made.
struct Ids(BTreeMap<String, String>);

impl Ids {
    fn map(&self, s: &str) -> String {
        let re = Regex::new("[0-9a-f]{32}").unwrap();
        re.replace_all(s, |c: &regex::Captures<'_>| {
            self.0.get(&c[0]).cloned().unwrap_or_else(|| c[0].to_string())
        })
        .into_owned()
    }
}

fn header<'a>(r: &'a hekate::client::Reply, name: &str) -> &'a str {
    r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Replays one recorded request and checks status, content type and body.
async fn replay(c: &hekate::client::Client, ids: &Ids, name: &str) -> hekate::client::Reply {
    let f = fixture(name);
    let req = &f["request"];
    let method = Method::from_bytes(req["method"].as_str().unwrap().as_bytes()).unwrap();
    let path = ids.map(req["path"].as_str().unwrap());
    let body: Option<Value> = match &req["body"] {
        Value::Null => None,
        b => Some(serde_json::from_str(&ids.map(&b.to_string())).unwrap()),
    };
    let r = c.call(method, &path, body.as_ref()).await.unwrap();
    let want = &f["response"];
    assert_eq!(
        r.status as u64,
        want["status"].as_u64().unwrap(),
        "{name}: {}",
        r.body
    );
    let want_ct = want["headers"]["content-type"].as_str().unwrap_or("");
    assert_eq!(header(&r, "content-type"), want_ct, "{name}: content-type");
    let raw = want["raw_body"].as_str().unwrap_or("");
    if want_ct.starts_with("text/plain") {
        assert_eq!(r.body, ids.map(raw), "{name}: error text");
    } else if want_ct.starts_with("application/json") && !raw.is_empty() {
        let ours: Value = serde_json::from_str(&r.body).unwrap();
        let theirs: Value = serde_json::from_str(raw).unwrap();
        // Compared as text: map equality ignores key order, Heketi's clients may not.
        let (a, b) = (shape(&ours).to_string(), shape(&theirs).to_string());
        assert_eq!(a, b, "{name}: JSON shape\nours:   {}\ntheirs: {raw}", r.body);
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heketi_recorded_exchanges_match() {
    let _g = serial();
    // The mock takes 300 ms for the verbs whose operations' "pending" answers are replayed,
    // longer than a poll is held (`queue_poll_hold_ms`), so the held poll answers "pending".
    let d = tempfile::tempdir().unwrap();
    let mut spec = hekate_testkit::ClusterSpec::new(crate::BIN, 3);
    spec.mockexec = json!({"latency_ms": {"volume_create": 300, "block_create": 300, "block_delete": 300}});
    spec.glusterfs = json!({"queue_poll_hold_ms": 50});
    let mut c = hekate_testkit::ProcCluster::create(d.path(), spec).unwrap();
    c.start_all().unwrap();
    c.wait_ready(&[1, 2, 3], T).await.unwrap();
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let via = c.ids().into_iter().find(|i| *i != leader).unwrap();
    let client = c.client(via);

    // The recorded topology, loaded through the API.
    let cid = load_topology(&client, &fixture("topology-6n3z.json"))
        .await
        .unwrap()
        .remove(0);
    let mut ids = BTreeMap::from([("3fd4d01e9e67a66335011ff5cb1cbdaa".to_string(), cid.clone())]);
    let ours = client
        .call(Method::GET, "/topology", None)
        .await
        .unwrap()
        .json()
        .unwrap();
    let theirs = fixture("topology-info.client-composed.json")["body"].clone();
    let by_host = |t: &Value| -> BTreeMap<String, Value> {
        t["clusters"][0]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["hostnames"]["manage"][0].as_str().unwrap().to_string(),
                    n.clone(),
                )
            })
            .collect()
    };
    let (ours_nodes, their_nodes) = (by_host(&ours), by_host(&theirs));
    assert_eq!(ours_nodes.len(), 6);
    for (host, tn) in &their_nodes {
        let on = &ours_nodes[host];
        ids.insert(
            tn["id"].as_str().unwrap().into(),
            on["id"].as_str().unwrap().into(),
        );
        for td in tn["devices"].as_array().unwrap() {
            let od = on["devices"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["name"] == td["name"])
                .unwrap();
            ids.insert(
                td["id"].as_str().unwrap().into(),
                od["id"].as_str().unwrap().into(),
            );
        }
    }
    let mut ids = Ids(ids);

    for name in [
        "cluster-info.json",
        "cluster-list.json",
        "node-info.json",
        "device-info-empty.json",
        "operations.json",
        "operations-pending.json",
    ] {
        replay(&client, &ids, name).await;
    }

    // Volume creates, as recorded: 202 + Location, then 303 to the volume, then its info.
    let queue_re = Regex::new("^/queue/[0-9a-f]{32}$").unwrap();
    for base in [
        "volume-create-defaults",
        "volume-create-none",
        "volume-create-replicate3",
        "volume-create-disperse4+2",
        "volume-create-snapshot-gid",
        "volume-create-arbiter",
    ] {
        let accepted = replay(&client, &ids, &format!("{base}.1-accepted.json")).await;
        let loc = header(&accepted, "location").to_string();
        assert!(queue_re.is_match(&loc), "{base}: {loc}");
        assert!(accepted.body.is_empty());
        let done = wait_queue(&client, &loc, T).await.unwrap();
        assert_eq!(done.status, 303, "{base}: {}", done.body);
        let vloc = header(&done, "location").to_string();
        assert_eq!(done.body, format!("<a href=\"{vloc}\">See Other</a>.\n\n"));
        assert_eq!(header(&done, "content-type"), "text/html; charset=utf-8");
        let recorded = fixture(&format!("{base}.json"));
        let their_id = recorded["response"]["body"]["id"].as_str().unwrap().to_string();
        ids.0
            .insert(their_id, vloc.trim_start_matches("/volumes/").to_string());
        let info = replay(&client, &ids, &format!("{base}.json"))
            .await
            .json()
            .unwrap();
        let want = &recorded["response"]["body"];
        for field in [
            "size",
            "durability",
            "glustervolumeoptions",
            "snapshot",
            "gid",
            "block",
            "blockinfo",
        ] {
            assert_eq!(info[field], want[field], "{base}: {field}");
        }
        assert_eq!(
            info["bricks"].as_array().unwrap().len(),
            want["bricks"].as_array().unwrap().len(),
            "{base}: bricks"
        );
        assert_eq!(info["mount"]["glusterfs"]["hosts"].as_array().unwrap().len(), 6);
        if base.ends_with("defaults") || base.ends_with("none") || base.ends_with("snapshot-gid") {
            assert!(info["name"].as_str().unwrap().starts_with("vol_"));
        }
    }

    // Expand the replica-3 volume, then delete the defaults volume.
    let r = replay(&client, &ids, "volume-expand.1-accepted.json").await;
    let done = wait_queue(&client, header(&r, "location"), T).await.unwrap();
    assert_eq!(done.status, 303);
    let expanded = replay(&client, &ids, "volume-expand.json").await.json().unwrap();
    assert_eq!(expanded["size"], 3);
    let r = replay(&client, &ids, "volume-delete.1-accepted.json").await;
    let done = wait_queue(&client, header(&r, "location"), T).await.unwrap();
    assert_eq!((done.status, done.body.as_str()), (204, ""));
    // Unlike Heketi, the result stays readable (not deleted on first read).
    assert_eq!(
        client
            .call(Method::GET, header(&r, "location"), None)
            .await
            .unwrap()
            .status,
        204
    );

    block_volumes(&client, &mut ids).await;

    for name in [
        "err-400-volume-size-zero.json",
        "err-400-volume-replica-4.json",
        "err-400-disperse-8+4-size-too-small.json",
        "err-400-volume-bad-durability.json",
        "err-400-volume-bad-name.json",
        "err-400-volume-bad-cluster-id.json",
        "err-400-volume-expand-zero.json",
        "err-400-node-add-invalid.json",
        "err-400-device-state-invalid.json",
        "err-400-device-delete-not-failed.json",
        "err-500-nospace-volume-huge.json",
        "err-500-nospace-disperse-8+4-on-6-nodes.json",
        "err-404-volume-not-found.json",
        "err-404-volume-delete-not-found.json",
        "err-404-node-not-found.json",
        "err-404-device-not-found.json",
        "err-404-cluster-not-found.json",
        "err-404-queue-not-found.json",
        "err-404-non-hex-id.json",
        "err-404-unknown-path.json",
        "err-405-wrong-method.json",
        "err-409-cluster-delete-has-nodes.json",
        "err-409-node-add-duplicate.json",
        "err-409-node-delete-has-devices.json",
        "volume-list.json",
    ] {
        replay(&client, &ids, name).await;
    }
    // A deliberate difference (docs/api-compatibility.md): a create naming an existing volume
    // with a different request is 409, not Heketi's 500 (a retry of the same request would
    // get the original operation instead).
    let f = fixture("err-500-volume-name-exists.json");
    let body: Value = serde_json::from_str(&ids.map(&f["request"]["body"].to_string())).unwrap();
    let r = client.call(Method::POST, "/volumes", Some(&body)).await.unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body.contains("Volume name 'arbitervol' already in use"),
        "{}",
        r.body
    );

    // Auth failures, with the tokens described by the recordings.
    let url = c.url(via);
    let http = reqwest::Client::new();
    let get = |auth: Option<String>| {
        let mut r = http.get(format!("{url}/clusters"));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let now = hekate::auth::now_unix();
    let cases = [
        (None, 401, "Required authorization token not found\n"),
        (
            Some("Token abc".to_string()),
            400,
            "Authorization header format must be Bearer {token}\n",
        ),
        (
            Some(format!(
                "bearer {}",
                hekate::auth::sign("admin", &c.admin_key, "GET", "/nodes", now, 60)
            )),
            401,
            "Invalid qsh claim in token\n",
        ),
        (
            Some(format!(
                "bearer {}",
                hekate::auth::sign("admin", "wrong", "GET", "/clusters", now, 60)
            )),
            401,
            "Invalid JWT token: signature is invalid (client and server secrets may not match)\n",
        ),
        (
            Some(format!(
                "bearer {}",
                hekate::auth::sign("admin", &c.admin_key, "GET", "/clusters", now - 600, 300)
            )),
            401,
            "Invalid JWT token: Token is expired by 5m0s\n",
        ),
        (
            Some(format!(
                "bearer {}",
                hekate::auth::sign("root", &c.admin_key, "GET", "/clusters", now, 60)
            )),
            401,
            "Invalid JWT token: Unknown user\n",
        ),
        (
            Some(format!(
                "bearer {}",
                hekate::auth::sign("user", &c.user_key, "GET", "/clusters", now, 60)
            )),
            401,
            "Administrator access required\n",
        ),
    ];
    for (auth, status, text) in cases {
        let r = get(auth.clone()).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{auth:?}");
        assert_eq!(r.text().await.unwrap(), text);
    }
    // A user creates a volume and (Hekate's fix) polls its own operation; not an admin's.
    let user = hekate::client::Client::new(vec![url.clone()], "user", &c.user_key);
    let loc = run_async(&user, Method::POST, "/volumes", Some(&json!({"size": 1})))
        .await
        .unwrap()
        .unwrap();
    let r = user.call(Method::GET, &loc, None).await.unwrap();
    assert_eq!(
        (r.status, r.body.as_str()),
        (401, "Administrator access required\n"),
        "user reading /volumes/{{id}}"
    );
    let admin_op = client
        .call(Method::POST, "/volumes", Some(&json!({"size": 1})))
        .await
        .unwrap();
    let r = user
        .call(Method::GET, header(&admin_op, "location"), None)
        .await
        .unwrap();
    assert_eq!(r.status, 401, "a user may not poll an admin's operation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_modes_logging_metrics_and_hello() {
    let _g = serial();
    let (_d, c) = cluster(3, json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let via = c.ids().into_iter().find(|i| *i != leader).unwrap();
    let client = c.client(via);
    let ids = Ids(BTreeMap::new());
    load_topology(&client, &fixture("topology-6n3z.json"))
        .await
        .unwrap();
    for name in [
        "hello.json",
        "admin-state-get.json",
        "loglevel-get.json",
        "admin-state-set-readonly.json",
    ] {
        replay(&client, &ids, name).await;
    }
    // Read-only is cluster-wide: every instance refuses writes once it has applied the switch.
    for id in c.ids() {
        hekate_testkit::wait_for(T, "read-only everywhere", || async {
            let v = c.local_get(id, "/admin").await.ok()?;
            (v["state"] == "read-only").then_some(())
        })
        .await
        .unwrap();
        let r = c
            .call(id, Method::POST, "/volumes", Some(&json!({"size": 1})))
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.body.as_str()),
            (503, "Service disabled for maintenance\n"),
            "replica {id}"
        );
        // GETs still work.
        assert_eq!(
            c.call(id, Method::GET, "/clusters", None).await.unwrap().status,
            200
        );
    }
    // Hekate's fix: maintenance can be left through the API (Heketi answered 503 here).
    let r = client
        .call(Method::POST, "/admin", Some(&json!({"state": "normal"})))
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    for name in [
        "admin-state-set-local-client.json",
        "admin-state-get-local-client.json",
        "admin-state-set-normal-from-local.json",
    ] {
        replay(&client, &ids, name).await;
    }
    let bad = client
        .call(Method::POST, "/admin", Some(&json!({"state": "bogus"})))
        .await
        .unwrap();
    assert_eq!(
        (bad.status, bad.body.as_str()),
        (400, "validation failed: state: must be a valid value.\n")
    );

    // Log level, per instance.
    let r = client
        .call(
            Method::POST,
            "/internal/logging",
            Some(&json!({"loglevel": {"glusterfs": "debug"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "{\"loglevel\":{\"glusterfs\":\"debug\"}}\n")
    );
    let r = client
        .call(
            Method::POST,
            "/internal/logging",
            Some(&json!({"loglevel": {"glusterfs": "loud"}})),
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (422, "invalid log level: loud\n"));
    let r = client
        .call(
            Method::POST,
            "/internal/logging",
            Some(&json!({"loglevel": {"api": "debug"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body.as_str()),
        (422, "Only \"glusterfs\" logger may be modified\n")
    );

    // Metrics, without auth, Heketi's names and labels plus Raft gauges.
    let r = reqwest::get(format!("{}/metrics", c.url(via))).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    for needle in [
        "heketi_up 1",
        "heketi_cluster_count 1",
        "heketi_nodes_count{cluster=",
        "heketi_device_count{cluster=",
        "heketi_device_size{cluster=",
        "heketi_device_free_bytes{cluster=",
        "heketi_operations_inFlight_count 0",
        "hekate_raft_term ",
        "hekate_raft_voters 3",
        "hekate_rocksdb_memtable_bytes ",
        "hekate_rocksdb_block_cache_bytes ",
        "hekate_footprint_raft_log_entries ",
        "hekate_footprint_retained_operations ",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    // The footprint gauges measure: the data directory holds at least the WAL of the writes above.
    let gauge = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    assert!(gauge("hekate_footprint_data_dir_bytes") > 0.0);
    assert!(gauge("hekate_footprint_data_dir_bytes") >= gauge("hekate_rocksdb_wal_bytes"));
    assert!(gauge("hekate_footprint_resident_bytes") > 0.0);
    let devices = text
        .lines()
        .filter(|l| l.starts_with("heketi_device_size{"))
        .count();
    assert_eq!(devices, 18);
}

/// Heketi's block-volume exchanges, in the order they were recorded: no block-hosting volume
/// (auto-create off), a BHV made by hand, a block volume in it, the BHV's info and its
/// refusal to be deleted, its restriction, and the block volume's delete.
async fn block_volumes(client: &hekate::client::Client, ids: &mut Ids) {
    replay(client, ids, "err-500-blockvolume-create-no-bhv.json").await;
    let bhv = created(client, ids, "volume-create-block-hosting", "/volumes/").await;
    let info = replay(client, ids, "volume-create-block-hosting.json")
        .await
        .json()
        .unwrap();
    assert_eq!(info["blockinfo"], json!({"freesize": 9, "reservedsize": 1}));
    let block = created(client, ids, "blockvolume-create", "/blockvolumes/").await;
    for name in [
        "blockvolume-create.json",
        "blockvolume-info.json",
        "blockvolume-list.json",
    ] {
        let r = replay(client, ids, name).await.json().unwrap();
        let want = &fixture(name)["response"]["body"];
        for field in ["size", "blockhostingvolume", "usablesize", "cluster"] {
            if !want[field].is_null() {
                assert_eq!(
                    r[field].to_string(),
                    ids.map(&want[field].to_string()),
                    "{name}: {field}"
                );
            }
        }
    }
    for name in [
        "volume-info-block-hosting.json",
        "err-409-delete-bhv-with-blockvolumes.json",
    ] {
        replay(client, ids, name).await;
    }
    let info: Value = client
        .call(Method::GET, &bhv, None)
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        info["blockinfo"],
        json!({"freesize": 8, "reservedsize": 1, "blockvolume": [block.trim_start_matches("/blockvolumes/")]})
    );
    for name in [
        "err-400-block-restriction-invalid.json",
        "err-500-block-restriction-on-file-volume.json",
    ] {
        replay(client, ids, name).await;
    }
    for base in [
        "volume-block-restriction-locked",
        "volume-block-restriction-unrestricted",
    ] {
        let r = replay(client, ids, &format!("{base}.1-accepted.json")).await;
        let done = wait_queue(client, header(&r, "location"), T).await.unwrap();
        assert_eq!(
            (done.status, header(&done, "location")),
            (303, bhv.as_str()),
            "{base}"
        );
        replay(client, ids, &format!("{base}.json")).await;
    }
    let r = replay(client, ids, "blockvolume-delete.1-accepted.json").await;
    pending(client, ids, "blockvolume-delete", &r).await;
    let done = wait_queue(client, header(&r, "location"), T).await.unwrap();
    assert_eq!((done.status, done.body.as_str()), (204, ""));
    assert_eq!(client.call(Method::GET, &block, None).await.unwrap().status, 404);
}

/// Maps the recorded queue id of `<base>.1-accepted.json` to this run's and, when the mock's
/// latency keeps the operation running, replays `<base>.2-queue-pending.json` (200,
/// `X-Pending: true`, empty body).
async fn pending(
    client: &hekate::client::Client,
    ids: &mut Ids,
    base: &str,
    accepted: &hekate::client::Reply,
) {
    let recorded = fixture(&format!("{base}.1-accepted.json"));
    let theirs = recorded["response"]["headers"]["location"]
        .as_str()
        .unwrap()
        .trim_start_matches("/queue/")
        .to_string();
    let ours = header(accepted, "location")
        .trim_start_matches("/queue/")
        .to_string();
    ids.0.insert(theirs, ours);
    let r = replay(client, ids, &format!("{base}.2-queue-pending.json")).await;
    assert_eq!(header(&r, "x-pending"), "true", "{base}: pending");
    assert!(r.body.is_empty(), "{base}: {}", r.body);
}

/// Replays `<base>.1-accepted.json`, waits for its 303 and maps the recorded object id (the
/// one in `<base>.json`) to the one made here; returns its location.
async fn created(client: &hekate::client::Client, ids: &mut Ids, base: &str, prefix: &str) -> String {
    let accepted = replay(client, ids, &format!("{base}.1-accepted.json")).await;
    pending(client, ids, base, &accepted).await;
    let done = wait_queue(client, header(&accepted, "location"), T)
        .await
        .unwrap();
    assert_eq!(done.status, 303, "{base}: {}", done.body);
    let loc = header(&done, "location").to_string();
    assert!(loc.starts_with(prefix), "{base}: {loc}");
    let theirs = fixture(&format!("{base}.json"))["response"]["body"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ids.0.insert(theirs, loc.trim_start_matches(prefix).to_string());
    loc
}
