//! `topology load` (heketi-cli's algorithm: idempotent by management hostname and device
//! name, same progress lines) and `topology info` (one `GET /topology` on Hekate; heketi-cli's
//! request-per-object assembly when the server is a Heketi without that endpoint).

use std::fmt::Write;

use anyhow::anyhow;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Client;

/// The whole topology: Hekate's one request, or heketi-cli's assembly against Heketi.
pub async fn info(c: &Client) -> anyhow::Result<Value> {
    let r = c.call(Method::GET, "/topology", None).await?;
    if r.status == 200 {
        return r.json();
    }
    let mut clusters = Vec::new();
    let list = c.expect_ok(Method::GET, "/clusters", None).await?.json()?;
    for id in list["clusters"].as_array().cloned().unwrap_or_default() {
        let id = id.as_str().unwrap_or_default();
        let ci = c
            .expect_ok(Method::GET, &format!("/clusters/{id}"), None)
            .await?
            .json()?;
        let mut volumes = Vec::new();
        for v in ci["volumes"].as_array().cloned().unwrap_or_default() {
            let v = c
                .expect_ok(
                    Method::GET,
                    &format!("/volumes/{}", v.as_str().unwrap_or_default()),
                    None,
                )
                .await?
                .json()?;
            if v["cluster"] == id {
                volumes.push(v);
            }
        }
        let mut nodes = Vec::new();
        for n in ci["nodes"].as_array().cloned().unwrap_or_default() {
            nodes.push(
                c.expect_ok(
                    Method::GET,
                    &format!("/nodes/{}", n.as_str().unwrap_or_default()),
                    None,
                )
                .await?
                .json()?,
            );
        }
        clusters.push(
            json!({"id": id, "volumes": volumes, "nodes": nodes, "block": ci["block"], "file": ci["file"]}),
        );
    }
    Ok(json!({"clusters": clusters}))
}

fn device_name(d: &Value) -> (String, Value, bool) {
    match d {
        Value::String(s) => (s.clone(), json!({}), false),
        o => (
            o["name"].as_str().unwrap_or_default().to_string(),
            o.get("tags").cloned().unwrap_or(json!({})),
            o["destroydata"].as_bool().unwrap_or(false),
        ),
    }
}

/// Prints each step as it happens (a topology load on real nodes takes a while).
struct Progress;

impl std::fmt::Write for Progress {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        use std::io::Write as _;
        print!("{s}");
        std::io::stdout().flush().map_err(|_| std::fmt::Error)
    }
}

impl Progress {
    fn push_str(&mut self, s: &str) {
        let _ = std::fmt::Write::write_str(self, s);
    }
}

/// Loads the topology file, printing heketi-cli's progress lines as it goes; returns "".
pub async fn load(c: &Client, file: &str) -> anyhow::Result<String> {
    if file.is_empty() {
        return Err(anyhow!("Missing configuration file"));
    }
    let text = std::fs::read_to_string(file).map_err(|_| anyhow!("Unable to open config file"))?;
    let config: Value = serde_json::from_str(&text).map_err(|_| anyhow!("Unable to parse config file"))?;
    let current = info(c)
        .await
        .map_err(|e| anyhow!("Unable to get topology information: {e}"))?;
    let existing_node = |manage: &str| -> Option<Value> {
        current["clusters"]
            .as_array()?
            .iter()
            .flat_map(|cl| cl["nodes"].as_array().cloned().unwrap_or_default())
            .find(|n| n["hostnames"]["manage"][0] == manage)
    };
    let mut out = Progress;
    let mut created: Vec<String> = Vec::new();
    for cl in config["clusters"].as_array().cloned().unwrap_or_default() {
        let mut cluster_id: Option<String> = None;
        for entry in cl["nodes"].as_array().cloned().unwrap_or_default() {
            let node = &entry["node"];
            let manage = node["hostnames"]["manage"][0]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let node_id;
            if let Some(n) = existing_node(&manage) {
                let cid = n["cluster"].as_str().unwrap_or_default().to_string();
                let _ = writeln!(out, "\tFound node {manage} on cluster {cid}");
                cluster_id = Some(cid);
                node_id = n["id"].as_str().unwrap_or_default().to_string();
            } else {
                if cluster_id.is_none() {
                    let id = create_cluster(c, &cl, &mut out).await?;
                    created.push(id.clone());
                    cluster_id = Some(id);
                }
                let _ = write!(out, "\tCreating node {manage} ... ");
                let mut req = node.clone();
                req["cluster"] = json!(cluster_id.clone().unwrap_or_default());
                match c.run_async(Method::POST, "/nodes", Some(&req), &|_| {}).await {
                    Ok(Some(n)) => {
                        node_id = n["id"].as_str().unwrap_or_default().to_string();
                        let _ = writeln!(out, "ID: {node_id}");
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        let _ = writeln!(out, "Unable to create node: {e}");
                        continue;
                    }
                }
            }
            let known = existing_node(&manage);
            add_devices(c, &entry, &node_id, known.as_ref(), &mut out).await;
        }
    }
    drop_empty_clusters(c, created).await?;
    Ok(String::new())
}

/// Creates a cluster of the file (file and block volumes unless it says otherwise), printing
/// heketi-cli's lines; returns its id.
async fn create_cluster(c: &Client, cl: &Value, out: &mut Progress) -> anyhow::Result<String> {
    out.push_str("Creating cluster ... ");
    let file = cl["file"].as_bool().unwrap_or(true);
    let block = cl["block"].as_bool().unwrap_or(true);
    let r = c
        .expect_ok(
            Method::POST,
            "/clusters",
            Some(&json!({"file": file, "block": block})),
        )
        .await?
        .json()?;
    let id = r["id"].as_str().unwrap_or_default().to_string();
    let _ = writeln!(out, "ID: {id}");
    if file {
        out.push_str("\tAllowing file volumes on cluster.\n");
    }
    if block {
        out.push_str("\tAllowing block volumes on cluster.\n");
    }
    Ok(id)
}

/// Adds the entry's devices to node `node_id`, skipping those the node (`known`, as it was
/// before the load) already has; a device that fails is reported and the load goes on.
async fn add_devices(c: &Client, entry: &Value, node_id: &str, known: Option<&Value>, out: &mut Progress) {
    for d in entry["devices"].as_array().cloned().unwrap_or_default() {
        let (name, tags, destroy) = device_name(&d);
        let found = known
            .and_then(|n| n["devices"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .any(|x| x["name"] == name.as_str());
        if found {
            let _ = writeln!(out, "\t\tFound device {name}");
            continue;
        }
        let _ = write!(out, "\t\tAdding device {name} ... ");
        let mut body = json!({"name": name, "node": node_id, "destroydata": destroy});
        if tags.as_object().is_some_and(|m| !m.is_empty()) {
            body["tags"] = tags;
        }
        match c.run_async(Method::POST, "/devices", Some(&body), &|_| {}).await {
            Ok(_) => out.push_str("OK\n"),
            Err(e) => {
                let _ = writeln!(out, "Unable to add device: {e}");
            }
        }
    }
}

/// Clusters this run created but left empty are removed again, as heketi-cli does.
async fn drop_empty_clusters(c: &Client, created: Vec<String>) -> anyhow::Result<()> {
    for id in created {
        if let Ok(r) = c.expect_ok(Method::GET, &format!("/clusters/{id}"), None).await {
            let v = r.json()?;
            if v["nodes"].as_array().is_some_and(|n| n.is_empty())
                && v["volumes"].as_array().is_some_and(|n| n.is_empty())
            {
                let _ = c.call(Method::DELETE, &format!("/clusters/{id}"), None).await;
            }
        }
    }
    Ok(())
}
