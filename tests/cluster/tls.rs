//! Issue 10, "What it must show" 2 and 3: HTTPS like Heketi through hekate-cli and standard
//! HTTPS clients; peers speak mutual TLS and refuse a replica without a certificate of the
//! cluster CA; forwarding never crosses the API address; half-open connections are closed
//! within the header timeout while writes keep committing, without an election.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hekate_testkit::{create_cluster, free_ports, wait_for, ClusterSpec, ProcCluster};
use openraft::raft::VoteRequest;
use openraft::Vote;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{serial, BIN, T};

const CLI: &str = env!("CARGO_BIN_EXE_hekate-cli");

/// A TCP relay from `listen` to `target` that records every byte sent towards `target`.
async fn recording_proxy(listen: TcpListener, target: String, seen: Arc<Mutex<Vec<u8>>>) {
    loop {
        let Ok((mut inbound, _)) = listen.accept().await else {
            return;
        };
        let target = target.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            let Ok(mut out) = TcpStream::connect(&target).await else {
                return;
            };
            let (mut ri, mut wi) = inbound.split();
            let (mut ro, mut wo) = out.split();
            let up = async {
                let mut buf = [0u8; 8192];
                loop {
                    let n = match ri.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                    if wo.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = wo.shutdown().await;
            };
            let down = tokio::io::copy(&mut ro, &mut wi);
            let _ = tokio::join!(up, down);
        });
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_api_and_mutual_tls_peers_and_no_credential_on_the_api_address() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(BIN, 3);
    spec.tls = true;
    let mut c = ProcCluster::create(dir.path(), spec).unwrap();
    // Peers are told the API address of each replica is a recording proxy: if forwarding went
    // to the leader's API address, it would cross these.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let proxy_ports = free_ports(3).unwrap();
    for (i, id) in c.ids().into_iter().enumerate() {
        let l = TcpListener::bind(("127.0.0.1", proxy_ports[i])).await.unwrap();
        tokio::spawn(recording_proxy(l, c.api_addr(id), seen.clone()));
        c.advertise_api(id, &format!("127.0.0.1:{}", proxy_ports[i]))
            .unwrap();
    }
    c.start_all().unwrap();
    let ids = c.ids();
    c.wait_ready(&ids, T)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(1)));
    let leader = c.wait_leader(&ids, T).await.unwrap();
    let follower = *ids.iter().find(|i| **i != leader).unwrap();
    let ca = c.ca_file().unwrap();
    let log = std::fs::read_to_string(c.dir.join(format!("replica-{leader}/hekate.log"))).unwrap();
    assert!(log.contains(&format!(
        "Listening on port {} with TLS enabled",
        c.port(leader).unwrap()
    )));

    // heketi-cli's way: HEKETI_CLI_SERVER=https://..., -C ca.pem; through a follower (forwarded).
    let out = std::process::Command::new(CLI)
        .args([
            "-C",
            ca.to_str().unwrap(),
            "--user",
            "admin",
            "--secret",
            &c.admin_key,
        ])
        .args(["cluster", "create"])
        .env("HEKETI_CLI_SERVER", c.url(follower))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Cluster id:"), "{stdout}");
    // Without the CA, the same command fails: the certificate is really verified.
    let out = std::process::Command::new(CLI)
        .args(["--user", "admin", "--secret", &c.admin_key, "cluster", "list"])
        .env("HEKETI_CLI_SERVER", c.url(follower))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "the refusal says why: {err}");

    // Standard clients that verify the CA: curl, and Python's ssl at TLS 1.2 and at 1.3.
    let curl = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--cacert", ca.to_str().unwrap()])
        .arg(format!("{}/hello", c.url(follower)))
        .output()
        .unwrap();
    assert!(curl.status.success(), "{}", String::from_utf8_lossy(&curl.stderr));
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "Hello from Heketi");
    let py = format!(
        "import ssl, urllib.request\n\
         for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):\n\
         \x20   ctx = ssl.create_default_context(cafile={ca:?})\n\
         \x20   ctx.minimum_version = v; ctx.maximum_version = v\n\
         \x20   r = urllib.request.urlopen({url:?}, context=ctx)\n\
         \x20   assert r.status == 200 and r.read() == b'Hello from Heketi'\n\
         \x20   print(v.name, 'ok')\n\
         try:\n\
         \x20   urllib.request.urlopen({url:?}, context=ssl.create_default_context())\n\
         \x20   raise SystemExit('verified without the CA')\n\
         except urllib.error.URLError as e:\n\
         \x20   assert 'CERTIFICATE_VERIFY_FAILED' in str(e), e\n",
        ca = ca.display().to_string(),
        url = format!("{}/hello", c.url(leader)),
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&py)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("TLSv1_2 ok") && printed.contains("TLSv1_3 ok"),
        "{printed}"
    );

    // Peers: a would-be replica with the cluster secret but no certificate, or one signed by
    // another CA, cannot even complete the handshake; its vote for a far higher term is lost.
    let term = c.status(leader).await.unwrap()["term"].as_u64().unwrap();
    let req: VoteRequest<u64> = VoteRequest {
        vote: Vote::new(term + 100, 99),
        last_log_id: None,
    };
    let body = hekate_raft::codec::encode(&req).unwrap();
    let rogue_dir = tempfile::tempdir().unwrap();
    let rogue = hekate::tls::generate(rogue_dir.path(), &["rogue"], &["127.0.0.1".into()]).unwrap();
    let (rc, rk) = rogue.cert("rogue").unwrap();
    let rogue_tls = hekate_raft::network::PeerTls {
        ca_pem: std::fs::read(&ca).unwrap(),
        cert_pem: std::fs::read(rc).unwrap(),
        key_pem: std::fs::read(rk).unwrap(),
    };
    let ca_pem = std::fs::read(&ca).unwrap();
    let no_cert = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca_pem).unwrap())
        .build()
        .unwrap();
    let wrong_ca = hekate_raft::network::PeerHttp::new(&c.secret, Some(&rogue_tls)).unwrap();
    let peer_addr = format!("127.0.0.1:{}", c.peer_port(leader).unwrap());
    for client in [&no_cert, wrong_ca.client()] {
        let r = client
            .post(format!("https://{peer_addr}/raft/rpc/vote"))
            .header("x-hekate-secret", &c.secret)
            .body(body.clone())
            .send()
            .await;
        assert!(
            r.is_err(),
            "a peer without a valid certificate was answered: {r:?}"
        );
    }
    // Plain HTTP on the peer port is refused too.
    let r = reqwest::Client::new()
        .post(format!("http://{peer_addr}/raft/rpc/vote"))
        .header("x-hekate-secret", &c.secret)
        .body(body.clone())
        .send()
        .await;
    assert!(!r.map(|r| r.status().is_success()).unwrap_or(false));
    // The API address serves no raft RPC at all (peers have their own listener).
    let r = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca_pem).unwrap())
        .build()
        .unwrap()
        .post(format!("{}/raft/rpc/vote", c.url(leader)))
        .header("x-hekate-secret", &c.secret)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let st = c.status(leader).await.unwrap();
    assert_eq!(st["term"].as_u64().unwrap(), term, "no election");
    assert_eq!(st["leader"].as_u64().unwrap(), leader);

    // A genuine replica certificate (with the secret) is accepted: the refusals above were
    // about the certificate, not the route.
    let (gc, gk) = c.cert_files(follower).unwrap();
    let good = hekate_raft::network::PeerHttp::new(
        &c.secret,
        Some(&hekate_raft::network::PeerTls {
            ca_pem: ca_pem.clone(),
            cert_pem: std::fs::read(gc).unwrap(),
            key_pem: std::fs::read(gk).unwrap(),
        }),
    )
    .unwrap();
    let r = good
        .client()
        .post(format!("https://{peer_addr}/raft/rpc/status"))
        .header("x-hekate-secret", &c.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // More writes through every follower; then what crossed the API addresses (the proxies):
    // no forwarded request, no cluster secret.
    for id in ids.iter().filter(|i| **i != leader) {
        create_cluster(&c.client(*id)).await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    assert!(
        !contains(&seen, c.secret.as_bytes()),
        "the cluster secret crossed an API address"
    );
    assert!(
        !contains(&seen, b"x-hekate"),
        "a forwarded request crossed an API address"
    );
    assert!(
        seen.is_empty(),
        "{} bytes crossed the advertised API addresses",
        seen.len()
    );
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_closed_within_the_header_timeout() {
    let _g = serial();
    // 3,000 sockets here and 3,000 in the server: raise this process's limit (inherited).
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < 8192 {
        setrlimit(Resource::RLIMIT_NOFILE, hard.min(65536), hard).unwrap();
    }
    const HEADER_TIMEOUT_MS: u64 = 2_000;
    const N: usize = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(BIN, 3);
    spec.limits = json!({"header_read_timeout_ms": HEADER_TIMEOUT_MS});
    let mut c = ProcCluster::create(dir.path(), spec).unwrap();
    c.start_all().unwrap();
    let ids = c.ids();
    c.wait_ready(&ids, T).await.unwrap();
    let leader = c.wait_leader(&ids, T).await.unwrap();
    let pid = c.pid(leader).unwrap();
    let client = c.client(leader);
    create_cluster(&client).await.unwrap();
    let baseline = fd_count(pid);
    let term = c.status(leader).await.unwrap()["term"].as_u64().unwrap();

    // Half a request header on each, then silence.
    let addr = c.api_addr(leader);
    let opened = Instant::now();
    let mut socks = Vec::with_capacity(N);
    for _ in 0..N {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Half: ")
            .await
            .unwrap();
        socks.push(s);
    }
    let all_sent = opened.elapsed();
    let mut closers = tokio::task::JoinSet::new();
    for mut s in socks {
        closers.spawn(async move {
            let mut buf = [0u8; 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return Instant::now(),
                    Ok(_) => continue, // a 408 page, if any, then EOF
                }
            }
        });
    }
    // Writes keep committing on the attacked replica meanwhile.
    let mut writes = 0;
    loop {
        create_cluster(&client).await.unwrap();
        writes += 1;
        if writes >= 50 || opened.elapsed() > all_sent + Duration::from_millis(HEADER_TIMEOUT_MS / 2) {
            break;
        }
    }
    // Every socket is closed by the server; none outlives the timeout by much (the slack
    // covers the time it took this test to open them all on 2 shared cores).
    let bound = Duration::from_millis(HEADER_TIMEOUT_MS * 3) + all_sent * 2;
    let mut last = opened;
    let deadline = tokio::time::Instant::now() + bound + Duration::from_secs(30);
    while let Some(r) = tokio::time::timeout_at(deadline, closers.join_next())
        .await
        .expect("half-open connections still open 30 s past the bound")
    {
        last = last.max(r.unwrap());
    }
    let took = last - opened;
    eprintln!("{N} half-open connections opened in {all_sent:?}, all closed after {took:?}; {writes} writes meanwhile");
    assert!(took <= bound, "closed after {took:?}, bound {bound:?}");
    create_cluster(&client).await.unwrap();
    wait_for(Duration::from_secs(10), "fd count back to baseline", || async {
        (fd_count(pid) <= baseline + 8).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {} fds, baseline {baseline}", fd_count(pid)));
    let st = c.status(leader).await.unwrap();
    assert_eq!(st["term"].as_u64().unwrap(), term, "an election happened");
    assert_eq!(st["leader"].as_u64().unwrap(), leader);

    // Paths answered locally are bounded too (1 MiB): 413, the level unchanged.
    let big = format!(r#"{{"loglevel":{{"glusterfs":"{}"}}}}"#, "x".repeat(2 << 20));
    let token = hekate::auth::sign(
        "admin",
        &c.admin_key,
        "POST",
        "/internal/logging",
        hekate::auth::now_unix(),
        600,
    );
    let r = reqwest::Client::new()
        .post(format!("{}/internal/logging", c.url(leader)))
        .bearer_auth(token)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}
