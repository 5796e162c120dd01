//! `hekate-cli`: heketi-cli's commands, flags, environment and text output, so scripts written
//! for heketi-cli work unchanged; plus several server URLs with failover, quick queue polling,
//! a progress indicator on a terminal, and shell completions.

pub mod format;
pub mod topology;

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::{Args, CommandFactory, Parser, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Client;

#[derive(Parser)]
#[command(
    name = "hekate-cli",
    version,
    about = "Command line for Hekate (and Heketi): heketi-cli's commands"
)]
pub struct Cli {
    /// Server URL(s); several comma-separated URLs fail over in order.
    #[arg(
        short,
        long,
        global = true,
        env = "HEKETI_CLI_SERVER",
        value_delimiter = ',',
        default_value = "http://localhost:8080"
    )]
    pub server: Vec<String>,
    #[arg(long, global = true, env = "HEKETI_CLI_USER", default_value = "")]
    pub user: String,
    #[arg(long, global = true, env = "HEKETI_CLI_KEY", default_value = "")]
    pub secret: String,
    /// Print the server's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// A PEM file of a CA to trust for https:// servers (repeatable; heketi-cli's flag).
    #[arg(short = 'C', long = "tls-cert", global = true)]
    pub tls_cert: Vec<std::path::PathBuf>,
    /// Accept any server certificate (heketi-cli's flag; for tests only).
    #[arg(short = 'I', long = "insecure-tls", global = true)]
    pub insecure_tls: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Heketi cluster management
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Heketi node management
    #[command(subcommand)]
    Node(NodeCmd),
    /// Heketi device management
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Heketi volume management
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Heketi brick management
    #[command(subcommand)]
    Brick(BrickCmd),
    /// Heketi topology management
    #[command(subcommand)]
    Topology(TopologyCmd),
    /// Heketi database management
    #[command(subcommand)]
    Db(DbCmd),
    /// Heketi server log level
    #[command(subcommand)]
    Loglevel(LoglevelCmd),
    /// Server operations and modes
    #[command(subcommand)]
    Server(ServerCmd),
    /// Compare the state with the nodes (LVM, mounts, fstab, peers, Gluster volumes);
    /// `--repair` removes orphan volumes and bricks and re-reads drifted device sizes
    Reconcile {
        #[arg(long)]
        repair: bool,
    },
    /// Heketi block volume management (gluster-block volumes on block-hosting volumes)
    #[command(subcommand)]
    Blockvolume(BlockvolumeCmd),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completion { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
pub enum ClusterCmd {
    Create {
        #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "true")]
        block: bool,
        #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "true")]
        file: bool,
    },
    Delete {
        id: String,
    },
    Info {
        id: String,
    },
    List,
    Setflags {
        id: String,
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        block: Option<bool>,
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        file: Option<bool>,
    },
}

#[derive(Subcommand)]
pub enum NodeCmd {
    Add {
        #[arg(long, default_value_t = -1)]
        zone: i64,
        #[arg(long, default_value = "")]
        cluster: String,
        #[arg(long = "management-host-name", default_value = "")]
        management: String,
        #[arg(long = "storage-host-name", default_value = "")]
        storage: String,
    },
    Delete {
        id: String,
    },
    Info {
        id: String,
    },
    List,
    Enable {
        id: String,
    },
    Disable {
        id: String,
    },
    Remove {
        id: String,
    },
    Settags {
        id: String,
        tags: Vec<String>,
        #[arg(short, long)]
        exact: bool,
    },
    #[command(alias = "deltags", alias = "removetags")]
    Rmtags {
        id: String,
        keys: Vec<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
pub enum DeviceCmd {
    Add {
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = "")]
        node: String,
        #[arg(long = "destroy-existing-data")]
        destroy: bool,
    },
    Delete {
        id: String,
        #[arg(long = "force-forget")]
        force_forget: bool,
    },
    Remove {
        id: String,
        #[arg(long = "expert-option-disable-heal-check")]
        no_heal_check: bool,
    },
    Enable {
        id: String,
    },
    Disable {
        id: String,
    },
    Info {
        id: String,
    },
    Resync {
        id: String,
        #[arg(long)]
        cluster: bool,
    },
    Settags {
        id: String,
        tags: Vec<String>,
        #[arg(short, long)]
        exact: bool,
    },
    #[command(alias = "deltags", alias = "removetags")]
    Rmtags {
        id: String,
        keys: Vec<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args)]
pub struct VolumeCreate {
    #[arg(long, default_value_t = -1)]
    size: i64,
    #[arg(long, default_value = "")]
    name: String,
    #[arg(long, default_value = "replicate")]
    durability: String,
    #[arg(long, default_value_t = 3)]
    replica: i64,
    #[arg(long = "disperse-data", default_value_t = 4)]
    disperse_data: i64,
    #[arg(long, default_value_t = 2)]
    redundancy: i64,
    #[arg(long = "snapshot-factor", default_value_t = 1.0)]
    snapshot_factor: f64,
    #[arg(long, default_value_t = 0)]
    gid: i64,
    #[arg(long, default_value = "")]
    clusters: String,
    #[arg(long = "gluster-volume-options", default_value = "")]
    options: String,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    block: bool,
}

#[derive(Subcommand)]
pub enum VolumeCmd {
    Create(VolumeCreate),
    Delete {
        id: String,
    },
    Expand {
        id: Option<String>,
        #[arg(long)]
        volume: Option<String>,
        #[arg(long = "expand-size", default_value_t = -1)]
        expand_size: i64,
    },
    Info {
        id: String,
    },
    List,
    Clone {
        id: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    #[command(name = "set-block-hosting-restriction")]
    SetBlockHostingRestriction {
        restriction: String,
        id: String,
    },
}

/// heketi-cli's `blockvolume` flags: `--size` and `--ha` default to 0 (0 ha: the server picks
/// every node of the block-hosting volume), a negative `--ha` is refused before any request.
#[derive(Subcommand)]
pub enum BlockvolumeCmd {
    Create {
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        size: i64,
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        ha: i64,
        #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
        auth: bool,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = "")]
        clusters: String,
    },
    Delete {
        id: Option<String>,
    },
    Info {
        id: Option<String>,
    },
    List,
    Expand {
        id: Option<String>,
        #[arg(long)]
        blockvolume: Option<String>,
        #[arg(long = "new-size", default_value_t = 0, allow_negative_numbers = true)]
        new_size: i64,
    },
}

#[derive(Subcommand)]
pub enum BrickCmd {
    Evict {
        id: String,
        #[arg(long = "expert-option-disable-heal-check")]
        no_heal_check: bool,
    },
}

#[derive(Subcommand)]
pub enum TopologyCmd {
    Load {
        /// The topology file (heketi-cli's `--json=<file>`; see `rewrite_args`).
        #[arg(short = 'j', long = "file", default_value = "")]
        file: String,
    },
    Info,
}

#[derive(Subcommand)]
pub enum DbCmd {
    Dump,
    Check,
}

#[derive(Subcommand)]
pub enum LoglevelCmd {
    Get,
    Set { level: String },
}

#[derive(Subcommand)]
pub enum ServerCmd {
    #[command(subcommand)]
    Operations(OpsCmd),
    #[command(subcommand)]
    Mode(ModeCmd),
    #[command(subcommand)]
    State(StateCmd),
}

#[derive(Subcommand)]
pub enum StateCmd {
    #[command(subcommand)]
    Examine(ExamineCmd),
}

#[derive(Subcommand)]
pub enum ExamineCmd {
    /// Heketi's examiner: the state and the reconcile report, as JSON
    Gluster,
}

#[derive(Subcommand)]
pub enum OpsCmd {
    Info { id: Option<String> },
    List,
    Cleanup { ids: Vec<String> },
}

#[derive(Subcommand)]
pub enum ModeCmd {
    Get,
    Set { mode: String },
}

/// What one command prints on success.
struct Out(String);

fn text(s: impl Into<String>) -> Out {
    Out(s.into())
}

/// Runs the CLI; returns the process exit status (heketi-cli exits 255 on error).
pub async fn main() -> i32 {
    let cli = Cli::parse_from(rewrite_args(std::env::args().collect()));
    let tls = crate::client::ClientTls {
        ca_files: cli.tls_cert.clone(),
        insecure: cli.insecure_tls,
    };
    let client = match Client::with_tls(cli.server.clone(), &cli.user, &cli.secret, &tls) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e:#}");
            return 255;
        }
    };
    match run(&cli, &client).await {
        Ok(Out(s)) => {
            print!("{s}");
            0
        }
        Err(e) => {
            eprintln!("Error: {e}");
            255
        }
    }
}

/// heketi-cli spells the topology file `topology load --json=<file>`, while `--json` is also
/// the global "print JSON" switch; cobra lets the local flag win. clap cannot have both, so the
/// file flag is renamed `--file` and heketi-cli's spelling is rewritten before parsing.
pub fn rewrite_args(mut args: Vec<String>) -> Vec<String> {
    let Some(pos) = args.windows(2).position(|w| w[0] == "topology" && w[1] == "load") else {
        return args;
    };
    let mut i = pos + 2;
    while i < args.len() {
        if let Some(v) = args[i].strip_prefix("--json=") {
            args[i] = format!("--file={v}");
        } else if args[i] == "--json" && args.get(i + 1).is_some_and(|n| !n.starts_with('-')) {
            args[i] = "--file".into();
        }
        i += 1;
    }
    args
}

/// A spinner on a terminal while an operation is pending, after half a second.
fn progress(label: &str) -> impl Fn(Duration) {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_message(label.to_string());
        b
    });
    move |elapsed: Duration| {
        if let Some(b) = &bar {
            if elapsed > Duration::from_millis(500) {
                b.tick();
            }
            if elapsed > Duration::from_secs(600) {
                b.finish_and_clear();
            }
        }
    }
}

fn raw(json_mode: bool, v: &Value, f: impl Fn(&Value) -> String) -> Out {
    if json_mode {
        Out(v.to_string())
    } else {
        Out(f(v))
    }
}

/// `settags`: merge the given tags (or replace them all with `--exact`).
fn settags_body(tags: &[String], exact: bool) -> anyhow::Result<Value> {
    Ok(json!({"change_type": if exact { "set" } else { "update" }, "tags": tag_map(tags)?}))
}

/// `rmtags`: delete the given keys (or every tag with `--all`).
fn rmtags_body(keys: &[String], all: bool) -> Value {
    if all {
        json!({"change_type": "set", "tags": {}})
    } else {
        let m: serde_json::Map<String, Value> = keys.iter().map(|k| (k.clone(), json!(""))).collect();
        json!({"change_type": "delete", "tags": m})
    }
}

fn tag_map(tags: &[String]) -> anyhow::Result<Value> {
    let mut m = serde_json::Map::new();
    for t in tags {
        let (k, v) = t
            .split_once(':')
            .ok_or_else(|| anyhow!("Tag '{t}' is not in key:value form"))?;
        m.insert(k.into(), json!(v));
    }
    Ok(Value::Object(m))
}

async fn run(cli: &Cli, c: &Client) -> anyhow::Result<Out> {
    let j = cli.json;
    match &cli.cmd {
        Cmd::Completion { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "hekate-cli", &mut out);
            Ok(text(String::from_utf8_lossy(&out)))
        }
        Cmd::Blockvolume(cmd) => blockvolume(cmd, c, j).await,
        Cmd::Cluster(cmd) => cluster(cmd, c, j).await,
        Cmd::Node(cmd) => node(cmd, c, j).await,
        Cmd::Device(cmd) => device(cmd, c, j).await,
        Cmd::Volume(cmd) => volume(cmd, c, j).await,
        Cmd::Brick(BrickCmd::Evict { id, no_heal_check }) => {
            let body = no_heal_check.then(|| json!({"healcheck": "disable"}));
            c.run_async(
                Method::POST,
                &format!("/bricks/to-evict/{id}"),
                body.as_ref(),
                &progress("evicting brick"),
            )
            .await?;
            Ok(text(format!("Brick {id} evicted\n")))
        }
        Cmd::Topology(TopologyCmd::Load { file }) => topology::load(c, file).await.map(Out),
        Cmd::Topology(TopologyCmd::Info) => {
            let t = topology::info(c).await?;
            Ok(raw(j, &t, format::topology))
        }
        Cmd::Db(DbCmd::Dump) => Ok(text(c.expect_ok(Method::GET, "/db/dump", None).await?.body)),
        Cmd::Db(DbCmd::Check) => Ok(text(c.expect_ok(Method::GET, "/db/check", None).await?.body)),
        Cmd::Loglevel(LoglevelCmd::Get) => {
            let v = c
                .expect_ok(Method::GET, "/internal/logging", None)
                .await?
                .json()?;
            Ok(text(format!(
                "{}\n",
                v["loglevel"]["glusterfs"].as_str().unwrap_or_default()
            )))
        }
        Cmd::Loglevel(LoglevelCmd::Set { level }) => {
            c.expect_ok(
                Method::POST,
                "/internal/logging",
                Some(&json!({"loglevel": {"glusterfs": level}})),
            )
            .await?;
            Ok(text("Server log level updated\n"))
        }
        Cmd::Server(ServerCmd::Mode(ModeCmd::Get)) => {
            let v = c.expect_ok(Method::GET, "/admin", None).await?.json()?;
            Ok(text(format!("{}\n", v["state"].as_str().unwrap_or_default())))
        }
        Cmd::Server(ServerCmd::Mode(ModeCmd::Set { mode })) => {
            c.expect_ok(Method::POST, "/admin", Some(&json!({"state": mode})))
                .await?;
            Ok(text(""))
        }
        Cmd::Server(ServerCmd::Operations(cmd)) => operations(cmd, c, j).await,
        Cmd::Server(ServerCmd::State(StateCmd::Examine(ExamineCmd::Gluster))) => Ok(text(
            c.expect_ok(Method::GET, "/internal/state/examine/gluster", None)
                .await?
                .body,
        )),
        Cmd::Reconcile { repair } => {
            let v = if *repair {
                c.expect_ok(Method::POST, "/reconcile", Some(&json!({"repair": true})))
                    .await?
            } else {
                c.expect_ok(Method::GET, "/reconcile", None).await?
            }
            .json()?;
            Ok(raw(j, &v, reconcile_text))
        }
    }
}

/// Hekate's list of operations that ended failed (cleanup done), with their reasons.
fn recent_failures_text(v: &Value) -> String {
    let Some(list) = v["recent_failures"].as_array().filter(|l| !l.is_empty()) else {
        return String::new();
    };
    let mut out = "Recent failures (cleaned up):\n".to_string();
    for f in list {
        out += &format!(
            "  {} {}: {}\n",
            f["id"].as_str().unwrap_or_default(),
            f["type_name"].as_str().unwrap_or_default(),
            f["error"].as_str().unwrap_or_default()
        );
    }
    out
}

/// The reconcile report for people: one line per finding, then what was repaired.
fn reconcile_text(v: &Value) -> String {
    let empty = Vec::new();
    let findings = v["findings"].as_array().unwrap_or(&empty);
    let mut out = format!(
        "Reconcile (term {}): {} nodes examined, {} operations in flight, {} findings\n",
        v["term"],
        v["nodes_examined"],
        v["pending_operations"],
        findings.len()
    );
    for f in findings {
        let fix = if f["repair"].is_object() {
            " [repairable]"
        } else {
            ""
        };
        out += &format!(
            "  {}: {}{fix}\n",
            f["kind"].as_str().unwrap_or_default(),
            f["detail"].as_str().unwrap_or_default()
        );
    }
    for r in v["repairs"].as_array().unwrap_or(&empty) {
        out += &format!(
            "  repaired {}: {}\n",
            r["repair"]["action"].as_str().unwrap_or_default(),
            r["result"].as_str().unwrap_or_default()
        );
    }
    out
}

async fn cluster(cmd: &ClusterCmd, c: &Client, j: bool) -> anyhow::Result<Out> {
    match cmd {
        ClusterCmd::Create { block, file } => {
            let v = c
                .expect_ok(
                    Method::POST,
                    "/clusters",
                    Some(&json!({"block": block, "file": file})),
                )
                .await?
                .json()?;
            Ok(raw(j, &v, |v| {
                format!("Cluster id: {}\n", v["id"].as_str().unwrap_or_default())
            }))
        }
        ClusterCmd::Delete { id } => {
            c.expect_ok(Method::DELETE, &format!("/clusters/{id}"), None)
                .await?;
            Ok(text(format!("Cluster {id} deleted\n")))
        }
        ClusterCmd::Info { id } => {
            let v = c
                .expect_ok(Method::GET, &format!("/clusters/{id}"), None)
                .await?
                .json()?;
            Ok(raw(j, &v, format::cluster))
        }
        ClusterCmd::List => {
            let v = c.expect_ok(Method::GET, "/clusters", None).await?.json()?;
            if j {
                return Ok(Out(v.to_string()));
            }
            let mut o = String::from("Clusters:\n");
            for id in v["clusters"].as_array().cloned().unwrap_or_default() {
                let id = id.as_str().unwrap_or_default();
                let info = c
                    .expect_ok(Method::GET, &format!("/clusters/{id}"), None)
                    .await?
                    .json()?;
                let file = if info["file"] == true { "[file]" } else { "" };
                let block = if info["block"] == true { "[block]" } else { "" };
                let flags = if file.is_empty() && block.is_empty() {
                    "[]".to_string()
                } else {
                    format!("{file}{block}")
                };
                o.push_str(&format!("Id:{id} {flags}\n"));
            }
            Ok(Out(o))
        }
        ClusterCmd::Setflags { id, block, file } => {
            if block.is_none() && file.is_none() {
                bail!("At least one of --block or --file must be given");
            }
            let cur = c
                .expect_ok(Method::GET, &format!("/clusters/{id}"), None)
                .await?
                .json()?;
            let body = json!({
                "block": block.unwrap_or(cur["block"] == true),
                "file": file.unwrap_or(cur["file"] == true),
            });
            c.expect_ok(Method::POST, &format!("/clusters/{id}/flags"), Some(&body))
                .await?;
            Ok(text(""))
        }
    }
}

async fn set_state(
    c: &Client,
    kind: &str,
    id: &str,
    state: &str,
    body_extra: Option<(&str, &str)>,
) -> anyhow::Result<()> {
    let mut body = json!({"state": state});
    if let Some((k, v)) = body_extra {
        body[k] = json!(v);
    }
    c.run_async(
        Method::POST,
        &format!("/{kind}/{id}/state"),
        Some(&body),
        &progress(&format!("{kind} {id} -> {state}")),
    )
    .await?;
    Ok(())
}

async fn tags_cmd(c: &Client, kind: &str, id: &str, body: Value, j: bool) -> anyhow::Result<Out> {
    let v = c
        .expect_ok(Method::POST, &format!("/{kind}/{id}/tags"), Some(&body))
        .await?
        .json()?;
    Ok(raw(j, &v, |_| String::new()))
}

async fn node(cmd: &NodeCmd, c: &Client, j: bool) -> anyhow::Result<Out> {
    match cmd {
        NodeCmd::Add {
            zone,
            cluster,
            management,
            storage,
        } => {
            if *zone == -1 {
                bail!("Missing zone");
            }
            if management.is_empty() {
                bail!("Missing management hostname");
            }
            if storage.is_empty() {
                bail!("Missing storage hostname");
            }
            if cluster.is_empty() {
                bail!("Missing cluster id");
            }
            let body = json!({"zone": zone, "cluster": cluster, "hostnames": {"manage": [management], "storage": [storage]}});
            let v = c
                .run_async(Method::POST, "/nodes", Some(&body), &progress("adding node"))
                .await?
                .unwrap_or_default();
            Ok(raw(j, &v, |v| format!("Node information:\n{}", format::node(v))))
        }
        NodeCmd::Delete { id } => {
            c.run_async(
                Method::DELETE,
                &format!("/nodes/{id}"),
                None,
                &progress("deleting node"),
            )
            .await?;
            Ok(text(format!("Node {id} deleted\n")))
        }
        NodeCmd::Info { id } => {
            let v = c
                .expect_ok(Method::GET, &format!("/nodes/{id}"), None)
                .await?
                .json()?;
            Ok(raw(j, &v, format::node))
        }
        NodeCmd::List => {
            let mut o = String::new();
            let clusters = c.expect_ok(Method::GET, "/clusters", None).await?.json()?;
            for cid in clusters["clusters"].as_array().cloned().unwrap_or_default() {
                let cid = cid.as_str().unwrap_or_default();
                let info = c
                    .expect_ok(Method::GET, &format!("/clusters/{cid}"), None)
                    .await?
                    .json()?;
                for n in info["nodes"].as_array().cloned().unwrap_or_default() {
                    o.push_str(&format!("Id:{}\tCluster:{cid}\n", n.as_str().unwrap_or_default()));
                }
            }
            Ok(Out(o))
        }
        NodeCmd::Enable { id } => {
            set_state(c, "nodes", id, "online", None).await?;
            Ok(text(format!("Node {id} is now online\n")))
        }
        NodeCmd::Disable { id } => {
            set_state(c, "nodes", id, "offline", None).await?;
            Ok(text(format!("Node {id} is now offline\n")))
        }
        NodeCmd::Remove { id } => {
            set_state(c, "nodes", id, "failed", None).await?;
            Ok(text(format!("Node {id} is now removed\n")))
        }
        NodeCmd::Settags { id, tags, exact } => {
            tags_cmd(c, "nodes", id, settags_body(tags, *exact)?, j).await
        }
        NodeCmd::Rmtags { id, keys, all } => tags_cmd(c, "nodes", id, rmtags_body(keys, *all), j).await,
    }
}

async fn device(cmd: &DeviceCmd, c: &Client, j: bool) -> anyhow::Result<Out> {
    match cmd {
        DeviceCmd::Add { name, node, destroy } => {
            if name.is_empty() {
                bail!("Missing device name");
            }
            if node.is_empty() {
                bail!("Missing node id");
            }
            let body = json!({"name": name, "node": node, "destroydata": destroy});
            c.run_async(Method::POST, "/devices", Some(&body), &progress("adding device"))
                .await?;
            Ok(text("Device added successfully\n"))
        }
        DeviceCmd::Delete { id, force_forget } => {
            let body = force_forget.then(|| json!({"forceforget": true}));
            c.run_async(
                Method::DELETE,
                &format!("/devices/{id}"),
                body.as_ref(),
                &progress("deleting device"),
            )
            .await?;
            Ok(text(format!("Device {id} deleted\n")))
        }
        DeviceCmd::Remove { id, no_heal_check } => {
            let extra = no_heal_check.then_some(("healcheck", "disable"));
            set_state(c, "devices", id, "failed", extra).await?;
            Ok(text(format!("Device {id} is now removed\n")))
        }
        DeviceCmd::Enable { id } => {
            set_state(c, "devices", id, "online", None).await?;
            Ok(text(format!("Device {id} is now online\n")))
        }
        DeviceCmd::Disable { id } => {
            set_state(c, "devices", id, "offline", None).await?;
            Ok(text(format!("Device {id} is now offline\n")))
        }
        DeviceCmd::Info { id } => {
            let v = c
                .expect_ok(Method::GET, &format!("/devices/{id}"), None)
                .await?
                .json()?;
            Ok(raw(j, &v, format::device))
        }
        DeviceCmd::Resync { id, cluster } => {
            if !cluster {
                c.run_async(
                    Method::GET,
                    &format!("/devices/{id}/resync"),
                    None,
                    &progress("resyncing device"),
                )
                .await?;
                return Ok(text(format!("Device {id} updated\n")));
            }
            resync_cluster(c, id).await
        }
        DeviceCmd::Settags { id, tags, exact } => {
            tags_cmd(c, "devices", id, settags_body(tags, *exact)?, j).await
        }
        DeviceCmd::Rmtags { id, keys, all } => tags_cmd(c, "devices", id, rmtags_body(keys, *all), j).await,
    }
}

/// `device resync --cluster`: every device of cluster `id`, one after the other; a device
/// that fails is left out of the report.
async fn resync_cluster(c: &Client, id: &str) -> anyhow::Result<Out> {
    let mut o = String::new();
    let t = topology::info(c).await?;
    for cl in t["clusters"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|cl| cl["id"] == id)
    {
        for n in cl["nodes"].as_array().cloned().unwrap_or_default() {
            for d in n["devices"].as_array().cloned().unwrap_or_default() {
                let did = d["id"].as_str().unwrap_or_default();
                o.push_str(&format!("Now resyncing device {did}..\n"));
                if c.run_async(
                    Method::GET,
                    &format!("/devices/{did}/resync"),
                    None,
                    &progress("resync"),
                )
                .await
                .is_ok()
                {
                    o.push_str(&format!(
                        "Device {did} (node {}) in cluster {id} updated\n",
                        n["id"].as_str().unwrap_or_default()
                    ));
                }
            }
        }
    }
    Ok(Out(o))
}

async fn volume(cmd: &VolumeCmd, c: &Client, j: bool) -> anyhow::Result<Out> {
    match cmd {
        VolumeCmd::Create(a) => {
            let body = volume_create_body(a)?;
            let v = c
                .run_async(
                    Method::POST,
                    "/volumes",
                    Some(&body),
                    &progress("creating volume"),
                )
                .await?
                .unwrap_or_default();
            Ok(raw(j, &v, format::volume))
        }
        VolumeCmd::Delete { id } => {
            c.run_async(
                Method::DELETE,
                &format!("/volumes/{id}"),
                None,
                &progress("deleting volume"),
            )
            .await?;
            Ok(text(format!("Volume {id} deleted\n")))
        }
        VolumeCmd::Expand {
            id,
            volume,
            expand_size,
        } => {
            // heketi-cli takes the id as --volume or as the argument.
            let id = volume
                .clone()
                .or(id.clone())
                .ok_or_else(|| anyhow!("Missing volume id"))?;
            volume_expand(c, &id, *expand_size, j).await
        }
        VolumeCmd::Info { id } => {
            let v = c
                .expect_ok(Method::GET, &format!("/volumes/{id}"), None)
                .await?
                .json()?;
            Ok(raw(j, &v, format::volume))
        }
        VolumeCmd::List => volume_list(c, j).await,
        VolumeCmd::Clone { id, name } => {
            let body = (!name.is_empty()).then(|| json!({"name": name}));
            let v = c
                .run_async(
                    Method::POST,
                    &format!("/volumes/{id}/clone"),
                    body.as_ref(),
                    &progress("cloning volume"),
                )
                .await?;
            Ok(raw(j, &v.unwrap_or_default(), format::volume))
        }
        VolumeCmd::SetBlockHostingRestriction { restriction, id } => {
            let r = match restriction.as_str() {
                "locked" => "locked",
                "unlocked" => "",
                other => bail!("Unknown restriction {other:?} (locked or unlocked)"),
            };
            let v = c
                .run_async(
                    Method::POST,
                    &format!("/volumes/{id}/block-restriction"),
                    Some(&json!({"restriction": r})),
                    &progress("restricting"),
                )
                .await?;
            Ok(raw(j, &v.unwrap_or_default(), format::volume))
        }
    }
}

async fn blockvolume(cmd: &BlockvolumeCmd, c: &Client, j: bool) -> anyhow::Result<Out> {
    match cmd {
        BlockvolumeCmd::Create { .. } => {
            let body = blockvolume_create_body(cmd)?;
            let v = c
                .run_async(
                    Method::POST,
                    "/blockvolumes",
                    Some(&body),
                    &progress("creating block volume"),
                )
                .await?
                .unwrap_or_default();
            Ok(raw(j, &v, format::blockvolume))
        }
        BlockvolumeCmd::Delete { id } => {
            let id = id.as_deref().ok_or_else(|| anyhow!("Volume id missing"))?;
            c.run_async(
                Method::DELETE,
                &format!("/blockvolumes/{id}"),
                None,
                &progress("deleting block volume"),
            )
            .await?;
            Ok(text(format!("Volume {id} deleted\n")))
        }
        BlockvolumeCmd::Info { id } => {
            let id = id.as_deref().ok_or_else(|| anyhow!("Volume id missing"))?;
            let v = c
                .expect_ok(Method::GET, &format!("/blockvolumes/{id}"), None)
                .await?
                .json()?;
            Ok(raw(j, &v, format::blockvolume))
        }
        BlockvolumeCmd::List => {
            let v = c.expect_ok(Method::GET, "/blockvolumes", None).await?.json()?;
            if j {
                return Ok(Out(v.to_string()));
            }
            let mut infos = Vec::new();
            for id in v["blockvolumes"].as_array().cloned().unwrap_or_default() {
                let id = id.as_str().unwrap_or_default();
                infos.push(
                    c.expect_ok(Method::GET, &format!("/blockvolumes/{id}"), None)
                        .await?
                        .json()?,
                );
            }
            Ok(Out(format::blockvolume_list(&infos)))
        }
        BlockvolumeCmd::Expand {
            id,
            blockvolume,
            new_size,
        } => {
            // heketi-cli takes the id as --blockvolume or as the argument.
            let id = blockvolume
                .clone()
                .or(id.clone())
                .ok_or_else(|| anyhow!("Volume id missing"))?;
            if *new_size == 0 {
                bail!("Missing new size");
            }
            let v = c
                .run_async(
                    Method::POST,
                    &format!("/blockvolumes/{id}/expand"),
                    Some(&json!({"new_size": new_size})),
                    &progress("expanding block volume"),
                )
                .await?
                .unwrap_or_default();
            Ok(raw(j, &v, format::blockvolume))
        }
    }
}

/// heketi-cli's block volume create body: `size`, `auth` always; `clusters`, `name` when
/// given; `hacount` when not negative (negative is refused here, as heketi-cli does).
fn blockvolume_create_body(cmd: &BlockvolumeCmd) -> anyhow::Result<Value> {
    let BlockvolumeCmd::Create {
        size,
        ha,
        auth,
        name,
        clusters,
    } = cmd
    else {
        bail!("not a create");
    };
    if *size == 0 {
        bail!("Missing volume size");
    }
    if *ha < 0 {
        bail!("Invalid HA count");
    }
    let mut body = json!({"size": size, "auth": auth});
    if !clusters.is_empty() {
        body["clusters"] = json!(clusters.split(',').collect::<Vec<_>>());
    }
    if !name.is_empty() {
        body["name"] = json!(name);
    }
    if *ha > 0 {
        body["hacount"] = json!(ha);
    }
    Ok(body)
}

async fn volume_expand(c: &Client, id: &str, expand_size: i64, j: bool) -> anyhow::Result<Out> {
    if expand_size == -1 {
        bail!("Missing volume amount to expand");
    }
    let body = json!({"expand_size": expand_size});
    let v = c
        .run_async(
            Method::POST,
            &format!("/volumes/{id}/expand"),
            Some(&body),
            &progress("expanding volume"),
        )
        .await?;
    Ok(raw(j, &v.unwrap_or_default(), format::volume))
}

/// heketi-cli's create body from its flags (only what was given, as heketi-cli sends it).
fn volume_create_body(a: &VolumeCreate) -> anyhow::Result<serde_json::Value> {
    if a.size == -1 {
        bail!("Missing volume size");
    }
    let mut body = json!({
        "size": a.size,
        "durability": {"type": a.durability, "replicate": {"replica": a.replica},
                       "disperse": {"data": a.disperse_data, "redundancy": a.redundancy}},
    });
    if !a.name.is_empty() {
        body["name"] = json!(a.name);
    }
    if a.gid != 0 {
        body["gid"] = json!(a.gid);
    }
    if a.block {
        body["block"] = json!(true);
    }
    if a.snapshot_factor > 1.0 {
        body["snapshot"] = json!({"enable": true, "factor": a.snapshot_factor});
    }
    if !a.clusters.is_empty() {
        body["clusters"] = json!(a.clusters.split(',').collect::<Vec<_>>());
    }
    if !a.options.is_empty() {
        body["glustervolumeoptions"] = json!(a.options.split(',').collect::<Vec<_>>());
    }
    Ok(body)
}

/// Volume infos `volume list` asks for at once: one request at a time, as heketi-cli does,
/// took 60-78 s at 100,000 volumes.
const VOLUME_LIST_CONCURRENCY: usize = 8;

/// `volume list`: one line per volume (its info read for cluster and name), or the JSON list.
/// The infos are read several at once and printed in the list's order.
async fn volume_list(c: &Client, j: bool) -> anyhow::Result<Out> {
    use futures::stream::{StreamExt, TryStreamExt};
    let v = c.expect_ok(Method::GET, "/volumes", None).await?.json()?;
    if j {
        return Ok(Out(v.to_string()));
    }
    let ids: Vec<String> = v["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|id| id.as_str().unwrap_or_default().to_string())
        .collect();
    let infos: Vec<serde_json::Value> = futures::stream::iter(ids.iter())
        .map(|id| async move {
            c.expect_ok(Method::GET, &format!("/volumes/{id}"), None)
                .await?
                .json()
        })
        .buffered(VOLUME_LIST_CONCURRENCY)
        .try_collect()
        .await?;
    let mut o = String::new();
    for (id, info) in ids.iter().zip(&infos) {
        let block = if info["block"] == true { " [block]" } else { "" };
        o.push_str(&format!(
            "Id:{:<35} Cluster:{:<35} Name:{}{block}\n",
            id,
            info["cluster"].as_str().unwrap_or_default(),
            info["name"].as_str().unwrap_or_default()
        ));
    }
    Ok(Out(o))
}

async fn operations(cmd: &OpsCmd, c: &Client, j: bool) -> anyhow::Result<Out> {
    match cmd {
        OpsCmd::Info { id: None } => {
            let v = c.expect_ok(Method::GET, "/operations", None).await?.json()?;
            Ok(raw(j, &v, |v| {
                format!(
                    "Operation Counts:\n  Total: {}\n  In-Flight: {}\n  New: {}\n  Failed: {}\n  Stale: {}\n{}",
                    v["total"], v["in_flight"], v["new"], v["failed"], v["stale"],
                    recent_failures_text(v)
                )
            }))
        }
        OpsCmd::Info { id: Some(id) } => {
            let v = c
                .expect_ok(Method::GET, &format!("/operations/pending/{id}"), None)
                .await?
                .json()?;
            Ok(raw(j, &v, |v| {
                let status = match v["status"].as_str() {
                    Some("") | None => "New",
                    Some(s) => s,
                };
                let mut o = format!(
                    "Id: {}\nType: {}\nStatus: {} {}\nChanges:\n",
                    v["id"].as_str().unwrap_or_default(),
                    v["type_name"].as_str().unwrap_or_default(),
                    status,
                    v["sub_status"].as_str().unwrap_or_default()
                );
                for ch in v["changes"].as_array().cloned().unwrap_or_default() {
                    o.push_str(&format!(
                        "    {}: {}\n",
                        ch["description"].as_str().unwrap_or_default(),
                        ch["id"].as_str().unwrap_or_default()
                    ));
                }
                o
            }))
        }
        OpsCmd::List => {
            let v = c
                .expect_ok(Method::GET, "/operations/pending", None)
                .await?
                .json()?;
            Ok(raw(j, &v, |v| {
                let mut o = String::new();
                for op in v["pendingoperations"].as_array().cloned().unwrap_or_default() {
                    let status = match op["status"].as_str() {
                        Some("") | None => "New",
                        Some(s) => s,
                    };
                    o.push_str(&format!(
                        "Id:{}  Type:{}  Status:{} {}\n",
                        op["id"].as_str().unwrap_or_default(),
                        op["type_name"].as_str().unwrap_or_default(),
                        status,
                        op["sub_status"].as_str().unwrap_or_default()
                    ));
                }
                o
            }))
        }
        OpsCmd::Cleanup { ids } => {
            let body = if ids.is_empty() {
                json!({})
            } else {
                json!({"operations": ids})
            };
            c.run_async(
                Method::POST,
                "/operations/pending/cleanup",
                Some(&body),
                &progress("cleaning up"),
            )
            .await?;
            Ok(text(""))
        }
    }
}
