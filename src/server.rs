//! `hekate serve`: the linear boot of one replica. Open the store, start Raft, bind the
//! listeners, bootstrap (once), serve until a shutdown signal, then stop in reverse order.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hekate_raft::replica::ReplicaConfig;
use hekate_raft::Replica;
use tokio::net::TcpListener;

use crate::api::{self, AppState, StateOptions};
use crate::auth::Verifier;
use crate::config::Policy;
use crate::config::Settings;
use crate::executor::mock::MockExecutor;
use crate::executor::Executor;
use crate::logging::LogControl;
use crate::ops::runner::Runner;
use crate::state::HekateApp;

pub struct ServeOptions {
    pub disable_auth: bool,
    pub log: Option<LogControl>,
}

pub async fn run(
    settings: Settings,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let verifier = verifier(&settings, &opts)?;
    let raft = &settings.file.raft;
    let tls = Tls::load(&settings)?;
    warn_on_fd_limit(&raft.limits);
    let replica = start_replica(&settings, tls.peer_client).await?;

    let api_listener = TcpListener::bind(&settings.api_listen).await.with_context(|| {
        format!(
            "cannot listen on {} (raft.api_listen / port)",
            settings.api_listen
        )
    })?;
    let Api {
        app: api_app,
        runner,
        monitor,
    } = build_api(&settings, &replica, verifier, opts.log.clone())?;
    let conn_limits = crate::listen::ConnLimits::from(&raft.limits);
    let peer_app = replica
        .peer_router()
        .merge(api::forward::peer_entry(api_app.clone(), &settings.secret));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut app = api_app;
    let peer_task = match &settings.peer_listen {
        None => {
            app = app.merge(peer_app);
            None
        }
        Some(addr) => Some(
            spawn_peer_listener(
                addr,
                peer_app,
                tls.peer_server,
                conn_limits.clone(),
                stop_rx.clone(),
            )
            .await?,
        ),
    };
    let boot = replica.clone();
    tokio::spawn(async move { boot.bootstrap().await });
    let runner_task = spawn_background(&replica, runner, monitor, &stop_rx);
    announce(&settings.api_listen, tls.api.is_some());
    // A graceful stop hands leadership over while this replica still serves (requests
    // arriving meanwhile are forwarded to the successor), then closes the listeners.
    let handing = replica.clone();
    let handoff_bound = Duration::from_millis(raft.timeouts.election_timeout_max_ms * 4);
    let shutdown = async move {
        shutdown.await;
        handoff(&handing, handoff_bound).await;
    };
    crate::listen::serve(api_listener, app, tls.api, conn_limits, shutdown).await;
    println!("Shutting down...");
    let _ = stop_tx.send(true);
    let _ = runner_task.await;
    if let Some(t) = peer_task {
        let _ = t.await;
    }
    replica.shutdown().await;
    Ok(())
}

/// Opens the store and starts Raft (not yet bootstrapped).
async fn start_replica(
    settings: &Settings,
    peer_tls: Option<hekate_raft::network::PeerTls>,
) -> anyhow::Result<crate::state::HekateReplica> {
    let raft = &settings.file.raft;
    tracing::info!(id = raft.id, dir = %settings.data_dir.display(), "opening store");
    Replica::start(
        ReplicaConfig {
            id: raft.id,
            data_dir: settings.data_dir.clone(),
            settings: raft.timeouts.clone(),
            initial_members: settings.members(),
            join: raft.join,
            secret: settings.secret.clone(),
            tls: peer_tls,
            store: hekate_raft::db::StoreOptions {
                memory_budget_mib: raft.memory_budget_mib,
            },
        },
        Arc::new(HekateApp),
    )
    .await
    .with_context(|| format!("cannot start replica {}", raft.id))
}

/// The leader's background work (it idles on followers): the operation runner (its task is
/// returned, to be awaited at shutdown), the node health monitor, the log-format agreement.
fn spawn_background(
    replica: &crate::state::HekateReplica,
    runner: Arc<Runner>,
    monitor: Option<crate::ops::health::Monitor>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let runner_task = tokio::spawn(runner.run(stop.clone()));
    if let Some(m) = monitor {
        tokio::spawn(m.run(stop.clone()));
    }
    tokio::spawn(crate::ops::format::agreement_loop(replica.clone(), stop.clone()));
    runner_task
}

/// Who may call the API: Heketi's JWT rules with the configured keys, or nobody checked
/// (`--disable-auth`; `use_auth: false` alone is ignored, as in Heketi).
fn verifier(settings: &Settings, opts: &ServeOptions) -> anyhow::Result<Option<Verifier>> {
    let verifier = if opts.disable_auth {
        eprintln!("WARNING: Hekate started with --disable-auth");
        None
    } else {
        if settings.admin_key.is_empty() || settings.user_key.is_empty() {
            anyhow::bail!("Missing JWT information in config file (jwt.admin.key and jwt.user.key)");
        }
        Some(Verifier {
            admin_key: settings.admin_key.clone(),
            user_key: settings.user_key.clone(),
            iat_leeway_secs: settings.iat_leeway_secs as i64,
        })
    };
    if settings.file.use_auth == Some(false) && !opts.disable_auth {
        tracing::warn!(
            "use_auth=false is ignored (as in Heketi); start with --disable-auth to turn auth off"
        );
    }
    Ok(verifier)
}

/// The TLS material of the API listener and of the peer network (server and client sides).
struct Tls {
    api: Option<Arc<rustls::ServerConfig>>,
    peer_server: Option<Arc<rustls::ServerConfig>>,
    peer_client: Option<hekate_raft::network::PeerTls>,
}

impl Tls {
    /// Read before anything starts: a bad file is a startup error naming its key. Warns for
    /// what runs in clear.
    fn load(settings: &Settings) -> anyhow::Result<Tls> {
        let api = if settings.file.enable_tls {
            Some(crate::tls::api_server_config(
                &settings.file.cert_file,
                &settings.file.key_file,
            )?)
        } else {
            tracing::warn!(
                "enable_tls is false: the API is served over plain HTTP (Heketi's default); JWTs and volume data travel in clear"
            );
            None
        };
        let (peer_server, peer_client) = match &settings.file.raft.tls {
            Some(t) => (
                Some(crate::tls::peer_server_config(t)?),
                Some(crate::tls::peer_client_material(t)?),
            ),
            None => {
                tracing::warn!(
                    "raft.tls is not configured: peers authenticate with the cluster secret only, sent in clear on the peer network (forwarded requests included); configure raft.tls (ca_file, cert_file, key_file) for mutual TLS"
                );
                (None, None)
            }
        };
        Ok(Tls {
            api,
            peer_server,
            peer_client,
        })
    }
}

/// Raises the open-file limit; warns when it is too low for `max_connections`.
fn warn_on_fd_limit(limits: &crate::config::Limits) {
    let fds = crate::listen::raise_fd_limit();
    if fds > 0 && (limits.max_connections as u64) * 2 + 64 > fds {
        tracing::warn!(
            "raft.limits.max_connections = {} with an open-file limit of {fds}: connections may fail with EMFILE before the bound",
            limits.max_connections
        );
    }
}

/// The API router and the leader's background work, sharing the executor, the policy and the
/// drill failpoints.
struct Api {
    /// The router with its request limits.
    app: axum::Router,
    runner: Arc<Runner>,
    /// The node health monitor, unless turned off.
    monitor: Option<crate::ops::health::Monitor>,
}

fn build_api(
    settings: &Settings,
    replica: &crate::state::HekateReplica,
    verifier: Option<Verifier>,
    log: Option<LogControl>,
) -> anyhow::Result<Api> {
    let raft = &settings.file.raft;
    let exec = build_executor(settings)?;
    let policy = Policy::from_config(&settings.file.glusterfs);
    let failpoints = Arc::new(crate::ops::failpoint::Failpoints::new(raft.failpoints));
    if raft.failpoints {
        tracing::warn!("raft.failpoints is set: drill failpoints can be armed on this replica");
    }
    let runner = Runner::new(replica.clone(), exec.clone(), &policy, failpoints.clone());
    let monitor = policy.health_every_secs.map(|every| crate::ops::health::Monitor {
        replica: replica.clone(),
        exec: exec.clone(),
        first: Duration::from_secs(policy.health_first_secs),
        every: Duration::from_secs(every),
    });
    let state = AppState::new(
        replica.clone(),
        StateOptions {
            verifier,
            forward_timeout: Duration::from_millis(raft.forward_timeout_ms),
            exec,
            policy,
            default_admin_state: settings.file.default_state.clone(),
            log,
            failpoints,
        },
    );
    let app = crate::listen::limit(
        api::router(state),
        crate::listen::RequestLimits::new(&raft.limits),
    );
    Ok(Api { app, runner, monitor })
}

/// Serves the peer routes on their own listener (`raft.peer_listen`) until `stop` turns.
async fn spawn_peer_listener(
    addr: &str,
    peer_app: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: crate::listen::ConnLimits,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let l = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (raft.peer_listen)"))?;
    let mode = if tls.is_some() {
        "mutual TLS"
    } else {
        "plain HTTP + cluster secret"
    };
    tracing::info!("peer RPCs on {addr} ({mode})");
    Ok(tokio::spawn(crate::listen::serve(
        l,
        peer_app,
        tls,
        limits,
        async move {
            let _ = stop.changed().await;
        },
    )))
}

/// Heketi's wording, so that log watchers keep working.
fn announce(api_listen: &str, tls: bool) {
    let port = api_listen.rsplit_once(':').map(|p| p.1).unwrap_or_default();
    let banner = if tls {
        format!("Listening on port {port} with TLS enabled")
    } else {
        format!("Listening on port {port}")
    };
    println!("{banner}");
    tracing::info!(addr = %api_listen, "{banner}");
}

/// Leadership handoff on a graceful stop (SIGTERM: systemd, Kubernetes, rolling upgrades):
/// the successor takes over before this process exits, instead of after an election timeout.
async fn handoff(replica: &crate::state::HekateReplica, bound: Duration) {
    let t = std::time::Instant::now();
    match replica.hand_off(bound).await {
        None => {}
        Some(Ok(to)) => tracing::info!(
            "stopping: leadership handed to replica {to} in {} ms",
            t.elapsed().as_millis()
        ),
        Some(Err(e)) => tracing::warn!("stopping: leadership not handed over ({e}); an election will follow"),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The executor named by `glusterfs.executor`.
fn build_executor(settings: &Settings) -> anyhow::Result<Arc<dyn Executor>> {
    match settings.executor.as_str() {
        "mock" => {
            let mut cfg = settings.file.glusterfs.mockexec.clone().unwrap_or_default();
            if cfg.device_size_gb == 0 {
                cfg.device_size_gb = settings.mock_device_size_gb;
            }
            Ok(Arc::new(MockExecutor::new(cfg)?))
        }
        _ => ssh_executor(settings),
    }
}

/// The SSH executor from `glusterfs.sshexec` (validated at config load).
fn ssh_executor(settings: &Settings) -> anyhow::Result<Arc<dyn Executor>> {
    use crate::executor::commands::CmdConfig;
    use crate::executor::ssh::{NodeGuard, SshSettings, SshTransport};
    let s = settings.file.glusterfs.sshexec.clone().unwrap_or_default();
    let key = russh::keys::load_secret_key(&s.keyfile, None)
        .map_err(|e| anyhow::anyhow!("Unable to read private key file {}: {e}", s.keyfile))?;
    let transport = SshTransport::new(SshSettings {
        user: if s.user.is_empty() {
            "heketi".into()
        } else {
            s.user.clone()
        },
        port: if s.port.is_empty() {
            22
        } else {
            s.port.parse().unwrap_or(22)
        },
        key: Arc::new(key),
        known_hosts: s.known_hosts.clone().into(),
        sudo: s.sudo,
        connect_timeout: Duration::from_secs(10),
        connection_per_step: s.connection_per_step,
        node_guard: match s.node_guard.as_str() {
            "warn" => NodeGuard::Warn,
            _ => NodeGuard::Require,
        },
    });
    let d = CmdConfig::default();
    let or = |v: &str, dflt: &str| {
        if v.is_empty() {
            dflt.to_string()
        } else {
            v.to_string()
        }
    };
    let cmds = CmdConfig {
        fstab: or(&s.fstab, &d.fstab),
        mountopts: or(&s.mountopts, &d.mountopts),
        backup_lvm_metadata: s.backup_lvm_metadata,
        gluster_cli_timeout: if s.gluster_cli_timeout == 0 {
            600
        } else {
            s.gluster_cli_timeout
        },
        pv_data_alignment: or(&s.pv_data_alignment, &d.pv_data_alignment),
        vg_physicalextentsize: or(&s.vg_physicalextentsize, &d.vg_physicalextentsize),
        lv_chunksize: or(&s.lv_chunksize, &d.lv_chunksize),
        xfs_sw: s.xfs_sw,
        xfs_su: s.xfs_su,
        lvm_wrapper: s.lvm_wrapper.clone(),
        snapshot_limit: s.snapshot_limit,
        rebalance_on_expansion: s.rebalance_on_expansion.unwrap_or(true),
    };
    Ok(Arc::new(crate::executor::sshexec::SshExecutor::new(
        transport, cmds,
    )))
}
