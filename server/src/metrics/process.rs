//! The process metrics Go's Prometheus client adds to every etcd
//! (`process_*`, and etcd's own `os_fd_*`): dashboards chart etcd's memory
//! and file descriptors with them. Read from `/proc` at scrape time; on a
//! system without it they stay 0.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Linux reports CPU times in clock ticks of 1/100 s (USER_HZ, fixed by the ABI).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Default)]
pub struct ProcessMetrics {
    cpu_seconds: Counter<f64, AtomicU64>,
    resident_memory: Gauge,
    virtual_memory: Gauge,
    start_time: Gauge<f64, AtomicU64>,
    open_fds: Gauge,
    max_fds: Gauge,
    fd_used: Gauge,
    fd_limit: Gauge,
}

impl ProcessMetrics {
    pub fn register(r: &mut Registry) -> ProcessMetrics {
        let m = ProcessMetrics::default();
        r.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            m.cpu_seconds.clone(),
        );
        r.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            m.resident_memory.clone(),
        );
        r.register(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            m.virtual_memory.clone(),
        );
        r.register(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            m.start_time.clone(),
        );
        r.register(
            "process_open_fds",
            "Number of open file descriptors",
            m.open_fds.clone(),
        );
        r.register(
            "process_max_fds",
            "Maximum number of open file descriptors",
            m.max_fds.clone(),
        );
        r.register(
            "os_fd_used",
            "The number of used file descriptors",
            m.fd_used.clone(),
        );
        r.register(
            "os_fd_limit",
            "The file descriptor limit",
            m.fd_limit.clone(),
        );
        m
    }

    /// Reads the current values from `/proc/self`.
    pub fn sample(&self) {
        if let Some(stat) = read("/proc/self/stat").as_deref().and_then(stat_fields) {
            let cpu = (stat.utime + stat.stime) as f64 / TICKS_PER_SECOND;
            let delta = cpu - self.cpu_seconds.get();
            if delta > 0.0 {
                self.cpu_seconds.inc_by(delta);
            }
            if let Some(boot) = read("/proc/stat").as_deref().and_then(boot_time) {
                let start = boot as f64 + stat.start_ticks as f64 / TICKS_PER_SECOND;
                self.start_time.set(start);
            }
        }
        if let Some(status) = read("/proc/self/status") {
            let kib = |key: &str| status_kib(&status, key).unwrap_or(0) as i64 * 1024;
            self.resident_memory.set(kib("VmRSS:"));
            self.virtual_memory.set(kib("VmSize:"));
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let n = fds.count() as i64;
            self.open_fds.set(n);
            self.fd_used.set(n);
        }
        if let Some(max) = read("/proc/self/limits")
            .as_deref()
            .and_then(max_open_files)
        {
            self.max_fds.set(max);
            self.fd_limit.set(max);
        }
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

struct Stat {
    utime: u64,
    stime: u64,
    start_ticks: u64,
}

/// Fields 14, 15 and 22 of `/proc/self/stat`, counted after the command
/// name (which may contain spaces, so parsing starts after its `)`).
fn stat_fields(stat: &str) -> Option<Stat> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state).
    let field = |n: usize| f.get(n - 3)?.parse().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        start_ticks: field(22)?,
    })
}

fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn max_open_files(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    Some(soft.parse().unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_formats() {
        let stat = "42 (a b) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 8 0 12345 0 0";
        let s = stat_fields(stat).expect("stat");
        assert_eq!((s.utime, s.stime, s.start_ticks), (250, 150, 12345));
        assert_eq!(boot_time("cpu 1 2\nbtime 1700000000\n"), Some(1700000000));
        assert_eq!(
            status_kib("Name: x\nVmRSS:\t  2048 kB\n", "VmRSS:"),
            Some(2048)
        );
        let limits = "Limit Soft Hard Units\nMax open files            1024                 4096                 files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    #[test]
    fn samples_this_process() {
        let mut r = Registry::default();
        let m = ProcessMetrics::register(&mut r);
        m.sample();
        assert!(m.resident_memory.get() > 0);
        assert!(m.open_fds.get() > 0 && m.max_fds.get() >= m.open_fds.get());
        assert!(m.start_time.get() > 1.0e9);
    }
}
