//! The Heketi API exchanges tests and benchmarks repeat: create a cluster, run an async
//! request to its end through the queue, set a node's or device's state, load and unload a
//! heketi-cli topology.

use std::time::{Duration, Instant};

use anyhow::bail;
use reqwest::Method;
use serde_json::{json, Value};

use hekate::client::{Client, Reply};

/// The POST-cluster write used by tests and benchmarks: returns the new cluster id.
pub async fn create_cluster(c: &Client) -> anyhow::Result<String> {
    let r = c
        .call(
            Method::POST,
            "/clusters",
            Some(&json!({"file": true, "block": true})),
        )
        .await?;
    if r.status != 201 {
        bail!("POST /clusters: {} {}", r.status, r.body.trim());
    }
    Ok(r.json()?["id"].as_str().unwrap_or_default().to_string())
}

/// Polls an async operation's `/queue/...` location until it is no longer pending; returns
/// the final reply (303, 204 or 500). A 404 while polling is an error: the queue lost it;
/// transport errors are polled through until `within`.
pub async fn wait_queue(c: &Client, location: &str, within: Duration) -> anyhow::Result<Reply> {
    wait_queue_every(c, location, within, None).await
}

/// `wait_queue`, polling every `every` (None: quick first polls, then every 20 ms).
pub async fn wait_queue_every(
    c: &Client,
    location: &str,
    within: Duration,
    every: Option<Duration>,
) -> anyhow::Result<Reply> {
    let deadline = Instant::now() + within;
    // Quick first polls (benchmarks time operations through this), then every 20 ms.
    let mut nap = every.unwrap_or(Duration::from_millis(1));
    loop {
        // A GET is safe to repeat: a connection cut by the balancer is polled again.
        let r = match c.call(Method::GET, location, None).await {
            Ok(r) => r,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if r.status == 404 {
            bail!("{location}: 404 while polling ({})", r.body.trim());
        }
        if !(r.status == 200 && r.headers.contains_key("x-pending")) && r.status != 503 {
            return Ok(r);
        }
        if Instant::now() > deadline {
            bail!("{location}: still pending after {within:?}");
        }
        tokio::time::sleep(nap).await;
        if every.is_none() {
            nap = (nap * 2).min(Duration::from_millis(20));
        }
    }
}

/// `POST /<kind>/<id>/state` (`kind`: `nodes` or `devices`) and its operation's outcome.
pub async fn set_state(c: &Client, kind: &str, id: &str, state: &str) -> anyhow::Result<Option<String>> {
    let body = json!({ "state": state });
    run_async(c, Method::POST, &format!("/{kind}/{id}/state"), Some(&body)).await
}

/// Starts an async request and waits for its outcome: Ok(Some(resource path)) on 303,
/// Ok(None) on 204; the error text on a synchronous refusal or a 500 from the queue.
pub async fn run_async(
    c: &Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Option<String>> {
    run_async_every(c, method, path, body, None).await
}

/// `run_async`, polling the queue every `every` (see `wait_queue_every`).
pub async fn run_async_every(
    c: &Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
    every: Option<Duration>,
) -> anyhow::Result<Option<String>> {
    let r = c.call(method.clone(), path, body).await?;
    if r.status != 202 {
        bail!("{method} {path}: {} {}", r.status, r.body.trim());
    }
    let loc = r.location();
    let done = wait_queue_every(c, &loc, Duration::from_secs(60), every).await?;
    match done.status {
        303 => Ok(done
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(String::from)),
        204 => Ok(None),
        s => bail!("{method} {path}: operation ended {s}: {}", done.body.trim()),
    }
}

/// Removes everything through the API, the Heketi way: every volume, then per cluster each
/// device (offline, failed, delete), each node (offline, delete), the cluster. Leaves the
/// nodes as they were before the topology was loaded (benchmarks on the testbed end with it).
pub async fn unload_topology(c: &Client) -> anyhow::Result<()> {
    let vols = c.call(Method::GET, "/volumes", None).await?.json()?;
    for v in vols["volumes"].as_array().cloned().unwrap_or_default() {
        run_async(
            c,
            Method::DELETE,
            &format!("/volumes/{}", v.as_str().unwrap_or_default()),
            None,
        )
        .await?;
    }
    let topo = c.call(Method::GET, "/topology", None).await?.json()?;
    for cl in topo["clusters"].as_array().cloned().unwrap_or_default() {
        for n in cl["nodes"].as_array().cloned().unwrap_or_default() {
            for d in n["devices"].as_array().cloned().unwrap_or_default() {
                let id = d["id"].as_str().unwrap_or_default();
                for state in ["offline", "failed"] {
                    set_state(c, "devices", id, state).await?;
                }
                run_async(c, Method::DELETE, &format!("/devices/{id}"), None).await?;
            }
            let id = n["id"].as_str().unwrap_or_default();
            set_state(c, "nodes", id, "offline").await?;
            run_async(c, Method::DELETE, &format!("/nodes/{id}"), None).await?;
        }
        let r = c
            .call(
                Method::DELETE,
                &format!("/clusters/{}", cl["id"].as_str().unwrap_or_default()),
                None,
            )
            .await?;
        if r.status != 200 {
            bail!("cluster delete: {} {}", r.status, r.body.trim());
        }
    }
    Ok(())
}

/// Loads a heketi-cli topology file (`{"clusters":[{"nodes":[{"node":{...},"devices":[...]}]}]}`)
/// through the API; returns the new cluster ids.
pub async fn load_topology(c: &Client, topology: &Value) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for cl in topology["clusters"].as_array().cloned().unwrap_or_default() {
        let r = c
            .call(
                Method::POST,
                "/clusters",
                Some(&json!({"file": true, "block": true})),
            )
            .await?;
        let cid = r.json()?["id"].as_str().unwrap_or_default().to_string();
        for n in cl["nodes"].as_array().cloned().unwrap_or_default() {
            let mut node = n["node"].clone();
            node["cluster"] = json!(cid);
            let loc = run_async(c, Method::POST, "/nodes", Some(&node))
                .await?
                .unwrap_or_default();
            let nid = loc.trim_start_matches("/nodes/").to_string();
            for d in n["devices"].as_array().cloned().unwrap_or_default() {
                let body = json!({"node": nid, "name": d["name"], "destroydata": d["destroydata"].as_bool().unwrap_or(false)});
                run_async(c, Method::POST, "/devices", Some(&body)).await?;
            }
        }
        ids.push(cid);
    }
    Ok(ids)
}
