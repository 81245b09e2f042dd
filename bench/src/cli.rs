//! Command line, modelled on etcd's `tools/benchmark` so that one invocation
//! means the same thing against Ballast and against etcd.
//!
//! Connection and run-length flags are global (they may appear before or after
//! the subcommand, as with etcd's cobra flags); workload flags belong to the
//! subcommand.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Requests per run when neither `--total` nor `--duration` is given (etcd's default).
pub const DEFAULT_TOTAL: u64 = 10_000;

/// A benchmark for etcd v3 API servers (Ballast, etcd).
#[derive(Parser, Debug, Clone)]
#[command(name = "ballast-bench", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses an argument list (without the program name), for callers that
    /// run benchmarks as a library: tests and the comparison runner.
    pub fn from_args<I, T>(args: I) -> Result<Cli, String>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let argv = std::iter::once(std::ffi::OsString::from("ballast-bench"))
            .chain(args.into_iter().map(Into::into));
        Cli::try_parse_from(argv).map_err(|e| e.to_string())
    }
}

/// Flags shared by every workload.
#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// gRPC endpoints, comma-separated (`host:port` or `http://host:port`).
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,

    /// Number of HTTP/2 connections (gRPC channels), spread over the endpoints.
    #[arg(long, global = true, default_value_t = 1)]
    pub conns: usize,

    /// Number of concurrent clients; client i uses connection i % conns.
    #[arg(long, global = true, default_value_t = 1)]
    pub clients: usize,

    /// Total number of requests [default: 10000 unless --duration is given].
    /// With --duration too, the run ends at whichever limit comes first.
    #[arg(long, global = true)]
    pub total: Option<u64>,

    /// Run for this long instead of a fixed count (e.g. `30s`, `2m`).
    #[arg(long, global = true, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Send every request to the Raft leader (found with Maintenance.Status).
    #[arg(long, global = true)]
    pub target_leader: bool,

    /// CA bundle to verify the servers' TLS certificates (implies https).
    #[arg(long, global = true)]
    pub cacert: Option<PathBuf>,

    /// Client certificate for TLS (needs --key).
    #[arg(long, global = true, requires = "tls_key")]
    pub cert: Option<PathBuf>,

    /// Client private key for TLS (needs --cert).
    // Own id: `key` is also the range subcommand's positional argument.
    #[arg(long = "key", id = "tls_key", global = true, requires = "cert")]
    pub key: Option<PathBuf>,

    /// Give up connecting to an endpoint after this long.
    #[arg(long, global = true, default_value = "2s", value_parser = humantime::parse_duration)]
    pub dial_timeout: Duration,

    /// Count a request as failed if it takes longer than this.
    #[arg(long, global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Print one JSON object (see the crate README for the schema) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

impl GlobalOpts {
    /// True when any TLS flag was given.
    pub fn tls_requested(&self) -> bool {
        self.cacert.is_some() || self.cert.is_some() || self.key.is_some()
    }
}

/// The workloads.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Put requests (one key each).
    Put(PutOpts),
    /// Range requests over KEY (or KEY..END).
    Range(RangeOpts),
    /// Txn requests, each with --txn-ops puts and no compares.
    TxnPut(TxnPutOpts),
    /// Many watchers; measures event fan-out and delivery latency, and checks
    /// that every event arrives exactly once, in revision order.
    Watch(WatchOpts),
    /// LeaseKeepAlive round trips, one lease and one keep-alive stream per client.
    LeaseKeepalive(LeaseOpts),
    /// Full paginated lists of a prefix, as kube-apiserver lists (limit per
    /// page, every page at the first page's revision).
    List(ListOpts),
    /// Short leases with a key attached to each (kube-apiserver's events):
    /// LeaseGrant then Put with the lease; afterwards waits for the expiry.
    LeaseKeys(LeaseKeysOpts),
    /// Updates guarded by a mod_revision compare, retried on conflict, as
    /// kube-apiserver's GuaranteedUpdate does.
    GuardedUpdate(GuardedUpdateOpts),
}

impl Command {
    /// The subcommand's name as typed on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Put(_) => "put",
            Command::Range(_) => "range",
            Command::TxnPut(_) => "txn-put",
            Command::Watch(_) => "watch",
            Command::LeaseKeepalive(_) => "lease-keepalive",
            Command::List(_) => "list",
            Command::LeaseKeys(_) => "lease-keys",
            Command::GuardedUpdate(_) => "guarded-update",
        }
    }
}

/// `put` flags (etcd's names and defaults).
#[derive(Args, Debug, Clone)]
pub struct PutOpts {
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Number of distinct keys written.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Write keys 0, 1, 2, ... (mod --key-space-size) instead of random ones.
    #[arg(long)]
    pub sequential_keys: bool,
    /// Maximum requests per second over all clients (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// Read consistency of a range request.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Linearizable: goes through the leader's read index.
    #[value(name = "l", alias = "linearizable")]
    Linearizable,
    /// Serializable: served from the member's local state.
    #[value(name = "s", alias = "serializable")]
    Serializable,
}

/// `range` arguments.
#[derive(Args, Debug, Clone)]
pub struct RangeOpts {
    /// Key to read.
    pub key: String,
    /// Range end (exclusive); reads the single KEY when omitted.
    pub end: Option<String>,
    /// l (linearizable) or s (serializable).
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,
    /// Maximum keys per response (0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Maximum requests per second over all clients (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// `txn-put` flags.
#[derive(Args, Debug, Clone)]
pub struct TxnPutOpts {
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Puts per transaction (distinct keys; at most --key-space-size).
    #[arg(long, default_value_t = 1)]
    pub txn_ops: usize,
    /// Number of distinct keys written.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Maximum transactions per second over all clients (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// `watch` flags. `--clients` tasks issue the puts; `--total` does not apply
/// (use `--puts`), `--duration` ends the put phase early.
#[derive(Args, Debug, Clone)]
pub struct WatchOpts {
    /// Number of watchers.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Number of watch gRPC streams the watchers are spread over.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Number of distinct keys watched; watcher w watches key w % watched-keys,
    /// put i writes key i % watched-keys. 1 gives the largest fan-out.
    #[arg(long, default_value_t = 1)]
    pub watched_keys: usize,
    /// Number of puts.
    #[arg(long, default_value_t = 1_000)]
    pub puts: u64,
    /// Puts per second (0 = as fast as --clients allow).
    #[arg(long, default_value_t = 100)]
    pub put_rate: u64,
    /// Key size in bytes (at least enough for the key's number).
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Value size in bytes (at least 8: values carry the put's sequence number).
    #[arg(long, default_value_t = 32)]
    pub val_size: usize,
    /// Give up waiting for outstanding events after no event arrived for this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Watch prefixes, as kube-apiserver watches a resource type: watcher w
    /// watches everything under `<key w % watched-keys>/`, and put i writes a
    /// new key `<key i % watched-keys>/<i>` (a new object each time).
    #[arg(long)]
    pub prefix: bool,
}

/// `list` flags.
#[derive(Args, Debug, Clone)]
pub struct ListOpts {
    /// Prefix the keys live under (the list reads [PREFIX, prefix end)).
    #[arg(default_value = "/registry/pods/")]
    pub prefix: String,
    /// Keys written under the prefix before the measured lists (setup, not timed).
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Value size of the written keys in bytes.
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,
    /// Keys per page (the range limit; kube-apiserver's default page is 500).
    #[arg(long, default_value_t = 500)]
    pub page_size: i64,
    /// Do not write the keys (they exist already, e.g. from an earlier run).
    #[arg(long)]
    pub no_seed: bool,
    /// Read the pages serializably instead of linearizably.
    #[arg(long)]
    pub serializable: bool,
}

/// `lease-keys` flags.
#[derive(Args, Debug, Clone)]
pub struct LeaseKeysOpts {
    /// TTL (seconds) of every lease.
    #[arg(long, default_value_t = 5)]
    pub ttl: i64,
    /// Prefix of the keys (key n is `<prefix><n>`).
    #[arg(long, default_value = "/registry/events/")]
    pub prefix: String,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,
    /// After the run, wait at most this long past the TTL for every key to be
    /// deleted by its lease's expiry (0s: do not wait).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub expiry_wait: Duration,
    /// Maximum requests (grant + put) per second over all clients (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// `guarded-update` flags.
#[derive(Args, Debug, Clone)]
pub struct GuardedUpdateOpts {
    /// Keys written before the run (setup) and updated at random.
    #[arg(long, default_value_t = 1_000)]
    pub key_space_size: u64,
    /// Prefix of the keys (key n is `<prefix><n>`).
    #[arg(long, default_value = "/registry/configmaps/")]
    pub prefix: String,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,
    /// Give an update up after this many conflicting attempts.
    #[arg(long, default_value_t = 100)]
    pub max_attempts: u32,
    /// Maximum updates per second over all clients (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// `lease-keepalive` flags.
#[derive(Args, Debug, Clone)]
pub struct LeaseOpts {
    /// TTL (seconds) of the lease each client grants and keeps alive.
    #[arg(long, default_value_t = 100)]
    pub ttl: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_flags_work_before_and_after_the_subcommand() {
        let before = Cli::try_parse_from([
            "ballast-bench",
            "--endpoints",
            "a:1,b:2",
            "--clients",
            "7",
            "put",
            "--val-size",
            "256",
        ])
        .expect("parse");
        assert_eq!(before.global.endpoints, ["a:1", "b:2"]);
        assert_eq!(before.global.clients, 7);
        let after = Cli::try_parse_from(["ballast-bench", "put", "--clients", "7", "--total", "5"])
            .expect("parse");
        assert_eq!(after.global.clients, 7);
        assert_eq!(after.global.total, Some(5));
    }

    #[test]
    fn range_consistency_accepts_etcd_letters_and_words() {
        for (arg, want) in [
            ("l", Consistency::Linearizable),
            ("s", Consistency::Serializable),
            ("serializable", Consistency::Serializable),
        ] {
            let cli = Cli::try_parse_from(["ballast-bench", "range", "k", "--consistency", arg])
                .expect("parse");
            let Command::Range(r) = cli.command else {
                panic!("not a range command")
            };
            assert_eq!(r.consistency, want);
        }
    }

    #[test]
    fn cert_needs_key() {
        assert!(Cli::try_parse_from(["ballast-bench", "put", "--cert", "c.pem"]).is_err());
    }

    #[test]
    fn kubernetes_workloads_default_to_kube_apiserver_shapes() {
        let cli = Cli::try_parse_from(["ballast-bench", "list"]).expect("parse");
        let Command::List(l) = cli.command else {
            panic!("not a list command")
        };
        assert_eq!(
            (l.prefix.as_str(), l.keys, l.page_size),
            ("/registry/pods/", 100_000, 500)
        );
        let cli = Cli::try_parse_from(["ballast-bench", "watch", "--prefix"]).expect("parse");
        let Command::Watch(w) = cli.command else {
            panic!("not a watch command")
        };
        assert!(w.prefix);
        let cli = Cli::try_parse_from(["ballast-bench", "guarded-update", "--max-attempts", "3"])
            .expect("parse");
        assert_eq!(cli.command.name(), "guarded-update");
    }
}
