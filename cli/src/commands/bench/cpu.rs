//! CPU time spent by each proxy while wrk loads it, read from `/proc` (Linux): nginx's worker
//! processes, HAProxy's process (all its threads), Berth's `berth-proxy-*` worker threads. CPU per request varies far less than
//! requests per second on a machine shared with other work, so it shows what a change costs.

use std::path::Path;
use std::time::Duration;

/// Linux reports CPU time in USER_HZ ticks, 100 a second on every architecture it runs on.
const TICK: Duration = Duration::from_millis(10);

/// Which processes or threads to count.
#[derive(Debug, Clone, Copy)]
pub enum Counted {
    /// The worker processes of this nginx master.
    NginxWorkers(u32),
    /// This process's proxy worker threads.
    BerthWorkers,
    /// One process, all its threads.
    Process(u32),
}

/// User and system time so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// The CPU time used so far by `what`; `None` where `/proc` cannot be read.
pub fn cpu_time(what: Counted) -> Option<CpuTime> {
    let mut total = CpuTime::default();
    let mut found = false;
    match what {
        Counted::BerthWorkers => {
            for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
                let dir = entry.path();
                let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
                if comm.starts_with("berth-proxy-") {
                    add(&mut total, &dir.join("stat"))?;
                    found = true;
                }
            }
        }
        Counted::Process(pid) => {
            add(
                &mut total,
                &Path::new("/proc").join(pid.to_string()).join("stat"),
            )?;
            found = true;
        }
        Counted::NginxWorkers(master) => {
            for entry in std::fs::read_dir("/proc").ok()?.flatten() {
                let stat = entry.path().join("stat");
                if parent_of(&stat) == Some(master) {
                    add(&mut total, &stat)?;
                    found = true;
                }
            }
        }
    }
    found.then_some(total)
}

/// The fields after the command name (which may hold spaces), from field 3 (state) on.
fn fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

fn parent_of(stat: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(stat).ok()?;
    fields(&text)?.get(1)?.parse().ok()
}

fn add(total: &mut CpuTime, stat: &Path) -> Option<()> {
    let text = std::fs::read_to_string(stat).ok()?;
    let f = fields(&text)?;
    // utime and stime are fields 14 and 15, so 11 and 12 after the state.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u32>().ok());
    total.user += TICK * ticks(11)?;
    total.system += TICK * ticks(12)?;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_skip_a_command_with_spaces() {
        let stat = "42 (nginx: worker process) S 7 42 42 0 -1 4194624 100 0 0 0 250 130 0 0";
        let f = fields(stat).unwrap();
        assert_eq!(f[1], "7");
        assert_eq!(f[11], "250");
        assert_eq!(f[12], "130");
    }
}
