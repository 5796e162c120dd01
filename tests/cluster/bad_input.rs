//! Bad input gets a clear 4xx and commits nothing; bad config and bad data dirs refuse start.

use std::process::Command;

use reqwest::Method;
use serde_json::json;

use crate::{cluster, serial, BIN, T};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_and_commit_nothing() {
    let _g = serial();
    let (_d, c) = cluster(3, json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let follower = c.ids().into_iter().find(|i| *i != leader).unwrap();
    let applied = |st: serde_json::Value| st["last_log_index"].as_u64();
    let before = applied(c.status(leader).await.unwrap());
    let client = c.client(follower);
    let raw = |body: &str| json!(body);
    let cases: Vec<(Method, &str, Option<serde_json::Value>, u16, &str)> = vec![
        (Method::POST, "/clusters", None, 422, "unable to be parsed"),
        (
            Method::POST,
            "/clusters",
            Some(raw("{\"file\": \"yes\"}")),
            422,
            "unable to be parsed",
        ),
        (
            Method::POST,
            "/clusters",
            Some(raw("{\"fiel\": true}")),
            422,
            "fiel",
        ),
        (
            Method::GET,
            "/clusters/not-hex",
            None,
            404,
            "Invalid path or request",
        ),
        (
            Method::DELETE,
            "/clusters/0123456789abcdef0123456789abcdef",
            None,
            404,
            "Id not found",
        ),
        (
            Method::POST,
            "/clusters/abc/flags",
            Some(json!({})),
            404,
            "Id not found",
        ),
        (
            Method::POST,
            "/raft/members",
            Some(json!({"id": 9, "api": "no-port"})),
            400,
            "host:port",
        ),
        (Method::GET, "/nowhere", None, 404, "Invalid path or request"),
    ];
    for (m, path, body, status, msg) in cases {
        // `raw` bodies are JSON strings holding the literal text to send.
        let r = match &body {
            Some(serde_json::Value::String(s)) => send_raw(&c, follower, m.clone(), path, s).await,
            other => client.call(m.clone(), path, other.as_ref()).await.unwrap(),
        };
        assert_eq!(r.status, status, "{m} {path}: {}", r.body);
        assert!(r.body.contains(msg), "{m} {path}: {}", r.body);
    }
    // Oversized body.
    let big = format!("{{\"file\": true, \"pad\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r = send_raw(&c, follower, Method::POST, "/clusters", &big).await;
    assert_eq!(r.status, 413, "{}", r.body);
    // A body declared as something other than JSON.
    let token = hekate::auth::sign(
        "admin",
        &c.admin_key,
        "POST",
        "/clusters",
        hekate::auth::now_unix(),
        60,
    );
    let r = reqwest::Client::new()
        .post(format!("{}/clusters", c.url(follower)))
        .bearer_auth(token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("file=true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // No token, bad token, user token on an admin path.
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/clusters", c.url(follower)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let user = hekate::client::Client::new(vec![c.url(follower)], "user", &c.user_key);
    let r = user
        .call(Method::POST, "/clusters", Some(&json!({})))
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body.as_str()),
        (401, "Administrator access required\n")
    );

    assert_eq!(
        applied(c.status(leader).await.unwrap()),
        before,
        "nothing was committed"
    );
}

async fn send_raw(
    c: &hekate_testkit::ProcCluster,
    id: u64,
    m: Method,
    path: &str,
    body: &str,
) -> hekate::client::Reply {
    let token = hekate::auth::sign(
        "admin",
        &c.admin_key,
        m.as_str(),
        path,
        hekate::auth::now_unix(),
        60,
    );
    let r = reqwest::Client::new()
        .request(m, format!("{}{path}", c.url(id)))
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    hekate::client::Reply {
        status,
        headers,
        body: r.text().await.unwrap(),
    }
}

fn serve(config: &std::path::Path) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn corrupt_or_unwritable_data_dir_refuses_to_start() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let spec = hekate_testkit::ClusterSpec::new(BIN, 1);
    let c = hekate_testkit::ProcCluster::create(dir.path(), spec).unwrap();
    // Corrupt: a database whose CURRENT/MANIFEST are garbage.
    let db = c.data_dir(1).join("db");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(db.join("CURRENT"), "MANIFEST-000099\n").unwrap();
    std::fs::write(db.join("MANIFEST-000099"), "garbage").unwrap();
    let (code, err) = serve(&c.config_path(1));
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot open store") && err.contains(&c.data_dir(1).display().to_string()),
        "{err}"
    );
    // Unwritable: the data dir path is a regular file.
    std::fs::remove_dir_all(c.data_dir(1)).unwrap();
    std::fs::write(c.data_dir(1), "not a directory").unwrap();
    let (code, err) = serve(&c.config_path(1));
    assert_ne!(code, 0);
    assert!(err.contains(&c.data_dir(1).display().to_string()), "{err}");
}

#[test]
fn bad_config_refuses_to_start_naming_the_key() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let spec = hekate_testkit::ClusterSpec::new(BIN, 1);
    let c = hekate_testkit::ProcCluster::create(dir.path(), spec).unwrap();
    let path = c.config_path(1);
    let good: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let cases = [
        ("/raft/secret", json!(""), "raft.secret"),
        (
            "/raft/peers",
            json!([{"id": 1, "api": "127.0.0.1:1"}, {"id": 1, "api": "127.0.0.1:2"}]),
            "raft.peers[1].id",
        ),
        (
            "/raft/peers",
            json!([{"id": 1, "api": "localhost"}]),
            "raft.peers[0].api",
        ),
        ("/port", json!(8080), "port"),
    ];
    for (ptr, value, key) in cases {
        let mut cfg = good.clone();
        *cfg.pointer_mut(ptr).unwrap() = value;
        std::fs::write(&path, cfg.to_string()).unwrap();
        let (code, err) = serve(&path);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(key), "expected {key} in: {err}");
    }
    let mut cfg = good.clone();
    cfg["glusterfs"]["exectuor"] = json!("mock");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let (code, err) = serve(&path);
    assert_eq!(code, 1);
    assert!(err.contains("exectuor"), "{err}");
}
