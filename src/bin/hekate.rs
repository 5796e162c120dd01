//! `hekate`: the server (`serve`, or Heketi's `--config FILE`), the local dev cluster
//! (`dev`) and its simulated nodes (`mock-nodes`), and replica administration
//! (`replica status|add|remove|transfer-leader`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use hekate::client::Client;
use reqwest::Method;

/// jemalloc for Rust's allocations too (the C `malloc` is jemalloc's already: src/heap.rs).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "hekate",
    version,
    about = "Highly available, drop-in successor to Heketi"
)]
struct Cli {
    /// Heketi compatibility: `hekate --config FILE` is `hekate serve --config FILE`.
    #[arg(long, global = false)]
    config: Option<PathBuf>,
    /// Heketi compatibility: turn JWT authentication off.
    #[arg(long)]
    disable_auth: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one replica from a heketi.json with a `raft` section.
    Serve {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        disable_auth: bool,
    },
    /// Start a local cluster of replicas (separate processes, mock executor, auth on).
    Dev {
        #[arg(long, default_value_t = 3)]
        replicas: u64,
        #[arg(long, default_value_t = 8080)]
        base_port: u16,
        /// Where the replicas' configs and data live [default: .hekate-dev, or
        /// .hekate-dev-testbed with --testbed: a cluster keeps the executor it was made with].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        admin_key: Option<String>,
        #[arg(long)]
        user_key: Option<String>,
        /// A JSON file whose object replaces the replicas' `glusterfs` section (for example
        /// `{"executor": "ssh", "sshexec": {...}}` to drive real nodes).
        #[arg(long, conflicts_with = "testbed")]
        glusterfs: Option<PathBuf>,
        /// Drive the project's testbed of real gluster nodes (`tests/testbed/testbed.sh up`)
        /// with the SSH executor, instead of simulated storage.
        #[arg(long)]
        testbed: bool,
        /// HTTPS on the API and mutual TLS between replicas, with a generated CA and
        /// certificates in DATA_DIR/tls (the production transport).
        #[arg(long)]
        tls: bool,
        /// How often the simulated nodes are written to DATA_DIR/mock-nodes.json when they
        /// changed (ms; they are written at exit too).
        #[arg(long, default_value_t = hekate::dev::MOCK_PERSIST_MS)]
        mock_persist_ms: u64,
    },
    /// Simulated Gluster nodes shared by a local cluster's replicas (their mock executor's
    /// `nodes_url`); `hekate dev` starts one. Persists the nodes to --state.
    MockNodes {
        /// `unix:/absolute/path` (a 0600 socket), or a loopback `127.0.0.1:PORT` (needs
        /// --token-file).
        #[arg(long)]
        listen: String,
        /// The nodes' file: read at start, written when changed (every --persist-ms) and at exit.
        #[arg(long)]
        state: Option<PathBuf>,
        /// A file holding the token every request must carry (`mockexec.nodes_token`).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Verbs kept in the command record (the newest).
        #[arg(long, default_value_t = hekate::executor::mock::DEFAULT_COMMAND_LOG_MAX)]
        command_log_max: usize,
        #[arg(long, default_value_t = 1000)]
        persist_ms: u64,
    },
    /// Heketi's JSON dump: export from, or import into (an empty), running cluster.
    Db {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        action: DbCmd,
    },
    /// Replica (Raft member) administration against a running cluster.
    Replica {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        action: ReplicaCmd,
    },
}

#[derive(Args)]
struct Conn {
    /// Server URL(s), comma separated; the first reachable one is used.
    #[arg(
        long,
        env = "HEKETI_CLI_SERVER",
        value_delimiter = ',',
        default_value = "http://localhost:8080"
    )]
    server: Vec<String>,
    #[arg(long, env = "HEKETI_CLI_USER", default_value = "admin")]
    user: String,
    #[arg(long, env = "HEKETI_CLI_KEY", default_value = "")]
    secret: String,
    /// A PEM file of a CA to trust for https:// servers (repeatable).
    #[arg(short = 'C', long = "tls-cert")]
    tls_cert: Vec<PathBuf>,
    /// Accept any server certificate (tests only).
    #[arg(short = 'I', long = "insecure-tls")]
    insecure_tls: bool,
}

impl Conn {
    fn client(self) -> anyhow::Result<Client> {
        let tls = hekate::client::ClientTls {
            ca_files: self.tls_cert,
            insecure: self.insecure_tls,
        };
        Client::with_tls(self.server, &self.user, &self.secret, &tls)
    }
}

#[derive(Subcommand)]
enum DbCmd {
    /// Write the cluster's state as Heketi's dump (`-` for stdout; an existing file is refused).
    Export {
        #[arg(long)]
        jsonfile: String,
        /// Read this replica's own state, without a leader (lost-quorum recovery).
        #[arg(long)]
        local: bool,
    },
    /// Load a dump made by `heketi db export` (or `hekate db export`) into an empty cluster.
    Import {
        #[arg(long)]
        jsonfile: PathBuf,
    },
}

#[derive(Subcommand)]
enum ReplicaCmd {
    /// Show the Raft status of every member.
    Status,
    /// Add a replica online (learner until caught up, then voter).
    Add {
        #[arg(long)]
        id: u64,
        /// host:port of its API.
        #[arg(long)]
        api: String,
        /// host:port of its peer listener (default: the API address).
        #[arg(long, default_value = "")]
        peer: String,
    },
    /// Remove a replica (transfers leadership away first if it is the leader).
    Remove {
        #[arg(long)]
        id: u64,
    },
    /// Move leadership to another voter.
    TransferLeader {
        #[arg(long)]
        id: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    hekate::heap::init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ERROR: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(dispatch(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match (cli.cmd, cli.config) {
        (Some(Cmd::Serve { config, disable_auth }), _) => {
            serve(config, disable_auth || cli.disable_auth).await
        }
        (None, Some(config)) => serve(config, cli.disable_auth).await,
        (None, None) => {
            anyhow::bail!("Please provide configuration file (hekate serve --config FILE, or hekate dev)")
        }
        (
            Some(Cmd::Dev {
                replicas,
                base_port,
                data_dir,
                admin_key,
                user_key,
                glusterfs,
                testbed,
                tls,
                mock_persist_ms,
            }),
            _,
        ) => {
            hekate::logging::init_logging("warning");
            let glusterfs = dev_glusterfs(glusterfs, testbed)?;
            let data_dir = data_dir.unwrap_or_else(|| {
                if testbed {
                    ".hekate-dev-testbed"
                } else {
                    ".hekate-dev"
                }
                .into()
            });
            hekate::dev::run(hekate::dev::DevOptions {
                replicas,
                base_port,
                data_dir,
                admin_key,
                user_key,
                glusterfs,
                tls,
                mock_persist_ms,
            })
            .await
        }
        (
            Some(Cmd::MockNodes {
                listen,
                state,
                token_file,
                command_log_max,
                persist_ms,
            }),
            _,
        ) => mock_nodes(listen, state, token_file, command_log_max, persist_ms).await,
        (Some(Cmd::Replica { conn, action }), _) => replica(conn, action).await,
        (Some(Cmd::Db { conn, action }), _) => db(conn, action).await,
    }
}

/// `hekate dev --glusterfs FILE` (a JSON object) or `--testbed` (the SSH executor on the
/// testbed's nodes); None: the mock.
fn dev_glusterfs(glusterfs: Option<PathBuf>, testbed: bool) -> anyhow::Result<Option<serde_json::Value>> {
    Ok(match (glusterfs, testbed) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", path.display()))?;
            anyhow::ensure!(v.is_object(), "{}: expected a JSON object", path.display());
            Some(v)
        }
        (None, true) => Some(hekate::dev::TestbedEnv::read()?.glusterfs_config()),
        (None, false) => None,
    })
}

/// `hekate mock-nodes`: serves a local cluster's simulated nodes until SIGINT/SIGTERM.
async fn mock_nodes(
    listen: String,
    state: Option<PathBuf>,
    token_file: Option<PathBuf>,
    command_log_max: usize,
    persist_ms: u64,
) -> anyhow::Result<()> {
    hekate::logging::init_logging("info");
    let token = match token_file {
        Some(p) => Some(
            std::fs::read_to_string(&p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let opts = hekate::executor::mock::server::NodesOptions {
        listen: listen.clone(),
        state,
        token,
        command_log_max: command_log_max.max(1),
        persist_every: std::time::Duration::from_millis(persist_ms.max(10)),
    };
    let bound = hekate::executor::mock::server::bind(opts).await?;
    println!("Hekate mock nodes on {listen}");
    bound.run(hekate::server::shutdown_signal()).await
}

async fn serve(config: PathBuf, disable_auth: bool) -> anyhow::Result<()> {
    println!("Hekate {}", env!("CARGO_PKG_VERSION"));
    let settings = hekate::config::load(&config, &|k| std::env::var(k).ok())
        .map_err(|e| anyhow::anyhow!("Unable to parse configuration: {e}"))?;
    let log = hekate::logging::init_logging(&settings.file.glusterfs.loglevel);
    hekate::server::run(
        settings,
        hekate::server::ServeOptions { disable_auth, log },
        hekate::server::shutdown_signal(),
    )
    .await
}

async fn replica(conn: Conn, action: ReplicaCmd) -> anyhow::Result<()> {
    let client = conn.client()?;
    match action {
        ReplicaCmd::Status => {
            let st = client
                .call(Method::GET, "/raft/status", None)
                .await?
                .ok()?
                .json()?;
            println!("{}", serde_json::to_string_pretty(&st)?);
        }
        ReplicaCmd::Add { id, api, peer } => {
            let body = serde_json::json!({"id": id, "api": api, "peer": peer});
            let r = client
                .call(Method::POST, "/raft/members", Some(&body))
                .await?
                .ok()?;
            println!("{}", serde_json::to_string_pretty(&r.json()?)?);
        }
        ReplicaCmd::Remove { id } => {
            let st = client
                .call(Method::GET, "/raft/status", None)
                .await?
                .ok()?
                .json()?;
            if st["leader"].as_u64() == Some(id) {
                let other = st["members"]
                    .as_array()
                    .and_then(|m| {
                        m.iter()
                            .find(|m| m["voter"] == true && m["id"].as_u64() != Some(id))
                    })
                    .and_then(|m| m["id"].as_u64())
                    .ok_or_else(|| anyhow::anyhow!("replica {id} is the only voter"))?;
                println!("replica {id} is the leader; transferring leadership to {other}");
                client
                    .call(
                        Method::POST,
                        "/raft/leader",
                        Some(&serde_json::json!({"id": other})),
                    )
                    .await?
                    .ok()?;
            }
            let r = client
                .call(Method::DELETE, &format!("/raft/members/{id}"), None)
                .await?
                .ok()?;
            println!("{}", serde_json::to_string_pretty(&r.json()?)?);
        }
        ReplicaCmd::TransferLeader { id } => {
            let r = client
                .call(Method::POST, "/raft/leader", Some(&serde_json::json!({"id": id})))
                .await?
                .ok()?;
            println!("{}", r.body.trim());
        }
    }
    Ok(())
}

async fn db(conn: Conn, action: DbCmd) -> anyhow::Result<()> {
    use std::io::Write;
    let client = conn.client()?;
    match action {
        DbCmd::Export { jsonfile, local } => {
            let mut out: Box<dyn Write> = if jsonfile == "-" {
                Box::new(std::io::stdout())
            } else {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&jsonfile)
                    .map_err(|e| anyhow::anyhow!("Could not create json file: {e}"))?;
                Box::new(f)
            };
            let r = if local {
                client.call_local_get("/db/dump").await?.ok()?
            } else {
                client.call(Method::GET, "/db/dump", None).await?.ok()?
            };
            out.write_all(r.body.as_bytes())?;
            if jsonfile != "-" {
                eprintln!("DB exported to {jsonfile}");
            }
        }
        DbCmd::Import { jsonfile } => {
            let text = std::fs::read_to_string(&jsonfile)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", jsonfile.display()))?;
            let dump: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", jsonfile.display()))?;
            let r = client.call(Method::POST, "/db/import", Some(&dump)).await?.ok()?;
            eprintln!("DB imported: {}", r.body.trim());
        }
    }
    Ok(())
}
