//! One KV client: a loop of random calls against one member, each recorded with its
//! invocation and completion time. Every call has a timeout, so a call to a member that
//! is partitioned or stopped ends as an error (an unknown outcome for a write) instead of
//! holding the client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::convert::{kv, revision};
use super::{Clock, TrafficConfig};
use crate::history::{ClientId, LeaseRecord, Operation, Outcome, Request, Response, Time};

/// How far behind the newest revision a client compacts: far enough that watchers keeping
/// up are not affected, near enough that a watcher resuming after its member was down for
/// a while may find its revision compacted.
const COMPACT_LAG: i64 = 100;

/// The share of granted leases a client keeps alive for a while.
const KEEP_ALIVE_SHARE: f64 = 0.3;
/// How long a kept-alive lease is kept alive (then left to expire), in seconds.
const KEEP_ALIVE_SECS: std::ops::RangeInclusive<u64> = 3..=8;

/// What one client recorded.
#[derive(Debug, Default)]
pub struct ClientLog {
    pub operations: Vec<Operation>,
    pub leases: Vec<LeaseRecord>,
}

/// Runs random calls until `stop` is set.
pub async fn run(
    id: ClientId,
    mut client: Client,
    config: TrafficConfig,
    clock: Clock,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> ClientLog {
    let mut state = State {
        client: client.clone(),
        keepers: Vec::new(),
        id,
        rng: StdRng::seed_from_u64(seed),
        next_value: 0,
        seen: HashMap::new(),
        leases: Vec::new(),
        failing: false,
        newest: 0,
        log: ClientLog::default(),
        config,
    };
    while !stop.load(Ordering::Relaxed) {
        let request = if state.failing {
            state.read()
        } else {
            state.pick()
        };
        let call = clock.now();
        let result =
            tokio::time::timeout(state.config.call_timeout, execute(&mut client, &request)).await;
        let ret = clock.now();
        let outcome = match result {
            Ok(Ok(response)) => Outcome::Ok(response),
            Ok(Err(e)) => Outcome::Error(e.to_string()),
            Err(_) => Outcome::Error(format!(
                "client timeout after {:?}",
                state.config.call_timeout
            )),
        };
        let failed = matches!(outcome, Outcome::Error(_));
        state.failing = failed;
        state.learn(&request, &outcome, call);
        state.log.operations.push(Operation {
            client: id,
            call,
            ret,
            request,
            outcome,
        });
        // A failing member fails fast (connection refused): back off so the history is
        // not flooded with errors while it is down.
        let pause = if failed {
            state.config.error_backoff
        } else {
            state.config.think
        };
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    for keeper in state.keepers.drain(..) {
        keeper.abort();
    }
    state.log
}

struct State {
    /// A handle on the client's connection, for the keep-alive streams.
    client: Client,
    /// The tasks keeping leases alive; aborted when the client stops.
    keepers: Vec<tokio::task::JoinHandle<()>>,
    id: ClientId,
    rng: StdRng,
    next_value: u64,
    /// The newest mod_revision this client saw per key (0: absent), for compare-and-set.
    seen: HashMap<String, i64>,
    /// Leases this client granted and has not revoked.
    leases: Vec<i64>,
    /// The last call failed: the client only reads until a call succeeds, so a member
    /// that is down leaves one write of unknown outcome per client rather than one per
    /// retry (each unknown write multiplies the linearizability search).
    failing: bool,
    /// The newest revision any response told this client of.
    newest: i64,
    log: ClientLog,
    config: TrafficConfig,
}

impl State {
    fn key(&mut self) -> String {
        format!(
            "{}{}",
            super::PREFIX,
            self.rng.random_range(0..self.config.keys)
        )
    }

    /// Unique across the run: the client and its own counter.
    fn value(&mut self) -> String {
        self.next_value += 1;
        format!("c{}-{}", self.id, self.next_value)
    }

    fn read(&mut self) -> Request {
        Request::Get {
            key: self.key(),
            revision: 0,
            serializable: false,
        }
    }

    fn pick(&mut self) -> Request {
        let roll = self.rng.random_range(0..100);
        match roll {
            0..20 => Request::Get {
                key: self.key(),
                revision: 0,
                serializable: false,
            },
            20..30 => Request::Get {
                key: self.key(),
                revision: 0,
                serializable: true,
            },
            30..36 => Request::List {
                prefix: super::PREFIX.into(),
                revision: 0,
                serializable: self.rng.random_bool(0.3),
            },
            36..58 => Request::Put {
                key: self.key(),
                value: self.value(),
                lease: 0,
            },
            58..76 => {
                let key = self.key();
                // Mostly what this client last saw (as a cache would), sometimes stale.
                let expected = match self.seen.get(&key) {
                    Some(&rev) if self.rng.random_bool(0.85) => rev,
                    _ => 0,
                };
                Request::CompareAndSet {
                    key,
                    expected_mod_revision: expected,
                    value: self.value(),
                }
            }
            76..84 => Request::Delete { key: self.key() },
            84..88 => Request::LeaseGrant {
                ttl: self.rng.random_range(2..=4),
            },
            88..96 if !self.leases.is_empty() => {
                let lease = self.leases[self.rng.random_range(0..self.leases.len())];
                Request::Put {
                    key: self.key(),
                    value: self.value(),
                    lease,
                }
            }
            96..97 if self.config.compaction && self.newest > COMPACT_LAG => Request::Compact {
                revision: self.newest - COMPACT_LAG,
            },
            97..100 if !self.leases.is_empty() => {
                let i = self.rng.random_range(0..self.leases.len());
                Request::LeaseRevoke {
                    id: self.leases.swap_remove(i),
                }
            }
            _ => Request::Put {
                key: self.key(),
                value: self.value(),
                lease: 0,
            },
        }
    }

    /// Remembers what the answer says about keys and leases.
    fn learn(&mut self, request: &Request, outcome: &Outcome, call: Time) {
        let Outcome::Ok(response) = outcome else {
            return;
        };
        self.newest = self.newest.max(response.revision());
        match (request, response) {
            (Request::Get { key, .. }, Response::Get { kv, .. }) => {
                self.seen
                    .insert(key.clone(), kv.as_ref().map_or(0, |kv| kv.mod_revision));
            }
            (Request::Put { key, .. }, Response::Put { revision }) => {
                self.seen.insert(key.clone(), *revision);
            }
            (Request::Delete { key }, Response::Delete { .. }) => {
                self.seen.insert(key.clone(), 0);
            }
            (
                Request::CompareAndSet { key, .. },
                Response::CompareAndSet {
                    revision,
                    succeeded,
                    kv,
                },
            ) => {
                let rev = if *succeeded {
                    *revision
                } else {
                    kv.as_ref().map_or(0, |kv| kv.mod_revision)
                };
                self.seen.insert(key.clone(), rev);
            }
            (Request::LeaseGrant { ttl }, Response::LeaseGrant { id, .. }) => {
                self.leases.push(*id);
                // A lease lives at most a few TTLs here; forget old ones so puts mostly
                // use leases that may still exist.
                if self.leases.len() > 3 {
                    self.leases.remove(0);
                }
                let kept_alive = self.rng.random_bool(KEEP_ALIVE_SHARE);
                if kept_alive {
                    let time = Duration::from_secs(self.rng.random_range(KEEP_ALIVE_SECS));
                    self.keepers.retain(|k| !k.is_finished());
                    self.keepers.push(tokio::spawn(keep_alive(
                        self.client.clone(),
                        *id,
                        *ttl,
                        time,
                    )));
                }
                self.log.leases.push(LeaseRecord {
                    id: *id,
                    ttl: *ttl,
                    granted: call,
                    kept_alive,
                });
            }
            _ => {}
        }
    }
}

/// Keeps lease `id` alive for `time` (a keep-alive every third of its TTL, as etcd's
/// client does), then lets it expire. Not recorded as operations: a keep-alive changes no
/// key and no revision, and the checker lets a kept-alive lease expire any time from its
/// TTL after the grant, which holds whether the keep-alives arrived or not. A failure ends
/// the keeping (the lease then expires like any other).
async fn keep_alive(mut client: Client, id: i64, ttl: i64, time: Duration) {
    let period = Duration::from_millis(u64::try_from(ttl).unwrap_or(1).max(1) * 1000 / 3);
    let keeping = async {
        let (mut keeper, mut responses) = client.lease_keep_alive(id).await?;
        loop {
            keeper.keep_alive().await?;
            match responses.message().await? {
                // TTL 0: the lease is gone (revoked or expired).
                Some(r) if r.ttl() > 0 => {}
                _ => return Ok::<(), etcd_client::Error>(()),
            }
            tokio::time::sleep(period).await;
        }
    };
    let _ = tokio::time::timeout(time, keeping).await;
}

/// Makes the call; an error is the client crate's (the server's status or a transport
/// failure).
async fn execute(client: &mut Client, request: &Request) -> Result<Response, etcd_client::Error> {
    Ok(match request {
        Request::Get {
            key,
            revision: rev,
            serializable,
        } => {
            let mut opts = GetOptions::new().with_revision(*rev);
            if *serializable {
                opts = opts.with_serializable();
            }
            let r = client.get(key.as_str(), Some(opts)).await?;
            Response::Get {
                revision: revision(r.header()),
                kv: r.kvs().first().map(kv),
            }
        }
        Request::List {
            prefix,
            revision: rev,
            serializable,
        } => {
            let mut opts = GetOptions::new().with_prefix().with_revision(*rev);
            if *serializable {
                opts = opts.with_serializable();
            }
            let r = client.get(prefix.as_str(), Some(opts)).await?;
            Response::List {
                revision: revision(r.header()),
                kvs: r.kvs().iter().map(kv).collect(),
            }
        }
        Request::Put { key, value, lease } => {
            let opts = (*lease != 0).then(|| PutOptions::new().with_lease(*lease));
            let r = client.put(key.as_str(), value.as_str(), opts).await?;
            Response::Put {
                revision: revision(r.header()),
            }
        }
        Request::Delete { key } => {
            let r = client.delete(key.as_str(), None).await?;
            Response::Delete {
                revision: revision(r.header()),
                deleted: r.deleted(),
            }
        }
        Request::CompareAndSet {
            key,
            expected_mod_revision,
            value,
        } => {
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.as_str(),
                    CompareOp::Equal,
                    *expected_mod_revision,
                )])
                .and_then([TxnOp::put(key.as_str(), value.as_str(), None)])
                .or_else([TxnOp::get(key.as_str(), None)]);
            let r = client.txn(txn).await?;
            let read = if r.succeeded() {
                None
            } else {
                r.op_responses().iter().find_map(|op| match op {
                    TxnOpResponse::Get(g) => g.kvs().first().map(kv),
                    _ => None,
                })
            };
            Response::CompareAndSet {
                revision: revision(r.header()),
                succeeded: r.succeeded(),
                kv: read,
            }
        }
        Request::LeaseGrant { ttl } => {
            let r = client.lease_grant(*ttl, None).await?;
            Response::LeaseGrant {
                revision: revision(r.header()),
                id: r.id(),
            }
        }
        Request::LeaseRevoke { id } => {
            let r = client.lease_revoke(*id).await?;
            Response::LeaseRevoke {
                revision: revision(r.header()),
            }
        }
        Request::Compact { revision: rev } => {
            let r = client.compact(*rev, None).await?;
            Response::Compact {
                revision: revision(r.header()),
            }
        }
    })
}

/// Used by the runner for the final read, recorded like any other call.
pub async fn call(
    client: &mut Client,
    request: &Request,
    timeout: Duration,
) -> Result<Response, String> {
    match tokio::time::timeout(timeout, execute(client, request)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("client timeout after {timeout:?}")),
    }
}
