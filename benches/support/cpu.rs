//! Where the machine's CPU time goes during a bench phase, from /proc: the
//! whole machine (/proc/stat) and the long-lived processes by role. The
//! short-lived execution children are what is left: they exit (reaped by
//! nobody's wait, so counted in no parent) before the phase ends.

use std::collections::BTreeMap;

/// CPU seconds used so far: the whole machine, and each role's processes.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    pub machine: f64,
    pub roles: BTreeMap<&'static str, f64>,
}

fn ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map(|t| t as f64)
        .unwrap_or(100.0)
}

/// Busy CPU seconds of all CPUs so far (everything but idle and iowait).
pub fn machine_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let busy: f64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    busy / ticks_per_second()
}

/// (comm, ppid, utime + stime in seconds) of one process.
fn process(pid: u32) -> Option<(String, u32, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(") ")?;
    let comm = head.split_once(" (")?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((comm, ppid, (utime + stime) / ticks_per_second()))
}

/// Samples the machine and the processes by role: this process (the API
/// and the bench's client), the worker processes, their interpreters
/// (zygote, compiler, idle spares), PostgreSQL and Redis.
pub fn sample(workers: &[u32]) -> CpuSample {
    let me = std::process::id();
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            && let Some(p) = process(pid)
        {
            all.insert(pid, p);
        }
    }
    let zygotes: Vec<u32> = all
        .iter()
        .filter(|(_, (_, ppid, _))| workers.contains(ppid))
        .map(|(pid, _)| *pid)
        .collect();
    let mut roles: BTreeMap<&'static str, f64> = BTreeMap::new();
    for (pid, (comm, ppid, seconds)) in &all {
        let role = if *pid == me {
            "api + bench client"
        } else if workers.contains(pid) {
            "workers (Rust)"
        } else if zygotes.contains(pid) || zygotes.contains(ppid) {
            // Idle spares count here; running children mostly exit first.
            "zygotes, compilers, spares"
        } else if comm == "postgres" {
            "PostgreSQL"
        } else if comm == "redis-server" {
            "Redis"
        } else {
            continue;
        };
        *roles.entry(role).or_default() += seconds;
    }
    CpuSample {
        machine: machine_seconds(),
        roles,
    }
}

/// CPU milliseconds per execution between two samples, by role, with the
/// rest (execution children and anything else on the machine) last.
pub fn per_execution(before: &CpuSample, after: &CpuSample, executions: usize) -> String {
    let per = |seconds: f64| seconds * 1000.0 / executions as f64;
    let total = after.machine - before.machine;
    let mut known = 0.0;
    let mut parts = Vec::new();
    for (role, end) in &after.roles {
        // A process that started during the phase counts from zero.
        let used = (end - before.roles.get(role).copied().unwrap_or(0.0)).max(0.0);
        known += used;
        parts.push(format!("{role} {:.2}", per(used)));
    }
    parts.push(format!(
        "execution children + rest {:.2}",
        per((total - known).max(0.0))
    ));
    format!(
        "{:.2} ms of CPU per execution: {}",
        per(total),
        parts.join(", ")
    )
}
