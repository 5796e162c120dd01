//! What the testbed's nodes record of the commands that reached them (the node guard's log),
//! and whether terms only moved forward in such a record (a fenced old leader sent nothing
//! after a newer term's first command).

use hekate::dev::TestbedEnv;

/// One line of a node guard's log (`deploy/node/hekate-guard --log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardRecord {
    /// When the guard decided, ns since the epoch.
    pub at: u128,
    pub cluster: String,
    /// 0 when the command carried none.
    pub term: u64,
    /// `ok`, `refused` or `unfenced`.
    pub verdict: String,
    pub command: String,
}

/// The testbed nodes' command records, read from the state directory of a [`TestbedEnv`].
pub trait NodeLogs {
    /// Node `node`'s guard log: every command that reached its sshd, with its verdict.
    fn guard_log(&self, node: &str) -> Vec<GuardRecord>;

    /// Node `node`'s record of the commands it executed (the guard let them through): (start,
    /// ns since the epoch; term; `node: command`).
    fn command_log(&self, node: &str) -> Vec<(u128, u64, String)>;
}

impl NodeLogs for TestbedEnv {
    fn guard_log(&self, node: &str) -> Vec<GuardRecord> {
        let text =
            std::fs::read_to_string(format!("{}/{node}/commands.log", self.state_dir)).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut it = l.splitn(5, ' ');
                let (secs, micros) = it.next()?.split_once('.')?;
                let at = secs.parse::<u128>().ok()? * 1_000_000_000 + micros.parse::<u128>().ok()? * 1000;
                Some(GuardRecord {
                    at,
                    cluster: it.next()?.to_string(),
                    term: it.next()?.parse().unwrap_or(0),
                    verdict: it.next()?.to_string(),
                    command: it.next().unwrap_or_default().to_string(),
                })
            })
            .collect()
    }

    fn command_log(&self, node: &str) -> Vec<(u128, u64, String)> {
        self.guard_log(node)
            .into_iter()
            .filter(|r| r.verdict != "refused")
            .map(|r| (r.at, r.term, format!("{node}: {}", r.command)))
            .collect()
    }
}

/// The order of terms in a node-side command record.
#[derive(Debug, Clone, Default)]
pub struct TermOrder {
    pub commands: usize,
    pub terms: usize,
    /// Commands of an older term that started after a newer term's first command.
    pub violations: Vec<String>,
    /// At each change of term: from the last command start of older terms to the first of
    /// the new one, ms.
    pub handover_gaps_ms: Vec<f64>,
}

/// Checks that terms only move forward in a record of (start ns, term, what); records
/// without a term (0) are ignored.
pub fn term_order(records: &[(u128, u64, String)]) -> TermOrder {
    let mut recs: Vec<&(u128, u64, String)> = records.iter().filter(|r| r.1 > 0).collect();
    recs.sort_by_key(|r| r.0);
    let mut out = TermOrder {
        commands: recs.len(),
        ..Default::default()
    };
    let mut max_term = 0u64;
    let mut last_of: std::collections::BTreeMap<u64, u128> = Default::default();
    for (at, term, what) in recs {
        if *term < max_term {
            out.violations.push(format!(
                "{what} (term {term}) started after term {max_term} began"
            ));
        } else if *term > max_term {
            if max_term > 0 {
                let last_old = last_of.range(..*term).map(|(_, a)| *a).max().unwrap_or(0);
                out.handover_gaps_ms.push((*at as f64 - last_old as f64) / 1e6);
            }
            max_term = *term;
        }
        let e = last_of.entry(*term).or_default();
        *e = (*e).max(*at);
    }
    out.terms = last_of.len();
    out
}
