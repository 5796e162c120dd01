//! The life of a [`ProcCluster`]'s replica processes: start (log to
//! `replica-<id>/hekate.log`, inside its network namespace if any), signals (SIGKILL, SIGTERM,
//! SIGSTOP/SIGCONT), reaping, and the teardown on drop.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use crate::ProcCluster;

impl ProcCluster {
    /// Starts replica `id` (its log goes to `replica-<id>/hekate.log`).
    pub fn start(&mut self, id: u64) -> anyhow::Result<u32> {
        if self.pid(id).is_some() {
            bail!("replica {id} is already running");
        }
        self.start_mock_nodes()?;
        let log_path = self.dir.join(format!("replica-{id}")).join("hekate.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut cmd = match &self.spec.netns {
            // `ip netns exec` execs in place: the child's pid is the replica's.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name(id)]).arg(&self.spec.binary);
                c
            }
            None => Command::new(&self.spec.binary),
        };
        let child = cmd
            .arg("serve")
            .arg("--config")
            .arg(self.config_path(id))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start {}", self.spec.binary.display()))?;
        let pid = child.id();
        self.procs.retain(|(i, _)| *i != id);
        self.procs.push((id, Some(child)));
        Ok(pid)
    }

    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for id in self.ids() {
            self.start(id)?;
        }
        Ok(())
    }

    pub fn pid(&self, id: u64) -> Option<u32> {
        self.procs
            .iter()
            .find(|(i, _)| *i == id)
            .and_then(|(_, c)| c.as_ref().map(|c| c.id()))
    }

    pub fn signal(&mut self, id: u64, sig: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = self
            .pid(id)
            .ok_or_else(|| anyhow!("replica {id} is not running"))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)?;
        Ok(())
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, nix::sys::signal::Signal::SIGKILL)?;
        self.reap(id, Duration::from_secs(10))
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, nix::sys::signal::Signal::SIGTERM)?;
        self.reap(id, Duration::from_secs(15))
    }

    pub fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, nix::sys::signal::Signal::SIGSTOP)
    }

    pub fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, nix::sys::signal::Signal::SIGCONT)
    }

    fn reap(&mut self, id: u64, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        for (i, slot) in &mut self.procs {
            if *i != id {
                continue;
            }
            if let Some(c) = slot {
                loop {
                    if c.try_wait()?.is_some() {
                        break;
                    }
                    if Instant::now() > deadline {
                        c.kill()?;
                        c.wait()?;
                        bail!("replica {id} did not exit in {within:?}");
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            *slot = None;
        }
        Ok(())
    }

    /// Exit status of a replica that exited on its own (None while running).
    pub fn exited(&mut self, id: u64) -> Option<std::process::ExitStatus> {
        self.procs
            .iter_mut()
            .find(|(i, _)| *i == id)
            .and_then(|(_, c)| c.as_mut()?.try_wait().ok().flatten())
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        for (_, c) in &mut self.procs {
            if let Some(c) = c {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.id() as i32),
                    nix::sys::signal::Signal::SIGCONT,
                );
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some(ns) = &self.spec.netns {
            ns.destroy();
        }
    }
}
