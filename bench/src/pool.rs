//! The connection pool: `--conns` HTTP/2 channels shared round-robin by the
//! `--clients` tasks, as etcd's benchmark does (client i uses connection
//! i % conns). Separating connections from clients matters because a server's
//! throughput depends on both: many streams on one connection exercise HTTP/2
//! multiplexing, many connections exercise the accept path and per-connection
//! buffers.
//!
//! Before any load, every endpoint is probed with `Maintenance.Status`, which
//! proves it speaks the etcd API, reports its version, and finds the leader
//! for `--target-leader`.

use std::time::Duration;

use ballast_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use ballast_proto::etcdserverpb::StatusRequest;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::cli::GlobalOpts;
use crate::error::{chain, status_text, BenchError};

/// Connected channels plus what the probe learned.
pub struct Pool {
    channels: Vec<Channel>,
    /// The endpoints the channels go to (after --target-leader filtering).
    pub endpoints: Vec<String>,
    /// Version reported by the first endpoint used (etcd's, or Ballast's emulated one).
    pub server_version: Option<String>,
    /// Endpoints that were skipped, with the reason.
    pub warnings: Vec<String>,
}

impl Pool {
    /// Probes the endpoints and opens `--conns` channels.
    ///
    /// Fails with [`BenchError::Unreachable`] when no endpoint answers, so a
    /// typo in `--endpoints` stops the run instead of producing a report full
    /// of errors.
    pub async fn connect(opts: &GlobalOpts) -> Result<Pool, BenchError> {
        if opts.conns == 0 {
            return Err(BenchError::Config("--conns must be at least 1".into()));
        }
        let tls = tls_config(opts)?;
        let urls = normalize_endpoints(&opts.endpoints, tls.is_some())?;

        let mut reachable = Vec::new();
        let mut warnings = Vec::new();
        for url in &urls {
            match probe(url, tls.as_ref(), opts).await {
                Ok(status) => reachable.push((url.clone(), status)),
                Err(why) => warnings.push(format!("{url}: {why}")),
            }
        }
        if reachable.is_empty() {
            return Err(BenchError::Unreachable(format!(
                "no endpoint reachable: {}",
                warnings.join("; ")
            )));
        }
        if opts.target_leader {
            let leaders: Vec<_> = reachable
                .iter()
                .filter(|(_, s)| s.is_leader)
                .cloned()
                .collect();
            if leaders.is_empty() {
                return Err(BenchError::Unreachable(format!(
                    "--target-leader: none of the reachable endpoints ({}) is the leader",
                    reachable
                        .iter()
                        .map(|(u, _)| u.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            reachable = leaders;
        }

        let mut channels = Vec::with_capacity(opts.conns);
        for i in 0..opts.conns {
            let url = &reachable[i % reachable.len()].0;
            let channel = connect_channel(url, tls.as_ref(), opts.dial_timeout)
                .await
                .map_err(|why| BenchError::Unreachable(format!("{url}: {why}")))?;
            channels.push(channel);
        }
        Ok(Pool {
            channels,
            server_version: Some(reachable[0].1.version.clone()),
            endpoints: reachable.into_iter().map(|(u, _)| u).collect(),
            warnings,
        })
    }

    /// The channel client `client` uses.
    pub fn channel(&self, client: usize) -> Channel {
        self.channels[client % self.channels.len()].clone()
    }
}

/// What `Maintenance.Status` said about one endpoint.
#[derive(Clone)]
struct Probe {
    version: String,
    is_leader: bool,
}

async fn probe(
    url: &str,
    tls: Option<&ClientTlsConfig>,
    opts: &GlobalOpts,
) -> Result<Probe, String> {
    let channel = connect_channel(url, tls, opts.dial_timeout).await?;
    let mut client = MaintenanceClient::new(channel);
    let status = tokio::time::timeout(opts.request_timeout, client.status(StatusRequest {}))
        .await
        .map_err(|_| {
            format!(
                "Maintenance.Status timed out after {:?}",
                opts.request_timeout
            )
        })?
        .map_err(|s| format!("Maintenance.Status failed: {}", status_text(&s)))?
        .into_inner();
    let member = status.header.map(|h| h.member_id).unwrap_or_default();
    Ok(Probe {
        version: status.version,
        is_leader: status.leader != 0 && status.leader == member,
    })
}

async fn connect_channel(
    url: &str,
    tls: Option<&ClientTlsConfig>,
    dial_timeout: Duration,
) -> Result<Channel, String> {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("bad endpoint: {}", chain(&e)))?
        .connect_timeout(dial_timeout)
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls.clone())
            .map_err(|e| format!("TLS setup: {}", chain(&e)))?;
    }
    // connect_timeout covers TCP only; bound the HTTP/2 (and TLS) handshake too.
    match tokio::time::timeout(dial_timeout * 2, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(chain(&e)),
        Err(_) => Err(format!("connect timed out after {:?}", dial_timeout * 2)),
    }
}

/// Adds the scheme etcd's benchmark implies (`host:port` means http, or https
/// when TLS flags are given) and rejects contradictions.
pub fn normalize_endpoints(endpoints: &[String], tls: bool) -> Result<Vec<String>, BenchError> {
    let mut out = Vec::new();
    for raw in endpoints {
        let ep = raw.trim();
        if ep.is_empty() {
            continue;
        }
        let url = if ep.starts_with("http://") {
            if tls {
                return Err(BenchError::Config(format!(
                    "endpoint {ep} is http:// but TLS flags were given"
                )));
            }
            ep.to_string()
        } else if ep.starts_with("https://") {
            if !tls {
                return Err(BenchError::Config(format!(
                    "endpoint {ep} is https://: give --cacert (and --cert/--key for client auth)"
                )));
            }
            ep.to_string()
        } else if ep.contains("://") {
            return Err(BenchError::Config(format!(
                "endpoint {ep}: only http:// and https:// are supported"
            )));
        } else if tls {
            format!("https://{ep}")
        } else {
            format!("http://{ep}")
        };
        out.push(url);
    }
    if out.is_empty() {
        return Err(BenchError::Config("--endpoints is empty".into()));
    }
    Ok(out)
}

fn tls_config(opts: &GlobalOpts) -> Result<Option<ClientTlsConfig>, BenchError> {
    if !opts.tls_requested() {
        return Ok(None);
    }
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| BenchError::Config(format!("cannot read {}: {e}", path.display())))
    };
    let Some(ca) = &opts.cacert else {
        return Err(BenchError::Config(
            "TLS needs --cacert (system roots are not used)".into(),
        ));
    };
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
    if let (Some(cert), Some(key)) = (&opts.cert, &opts.key) {
        config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bare_host_port_gets_a_scheme() {
        let got =
            normalize_endpoints(&eps(&["127.0.0.1:2379", " http://h:1 "]), false).expect("valid");
        assert_eq!(got, ["http://127.0.0.1:2379", "http://h:1"]);
        let got = normalize_endpoints(&eps(&["127.0.0.1:2379"]), true).expect("valid");
        assert_eq!(got, ["https://127.0.0.1:2379"]);
    }

    #[test]
    fn contradictions_are_config_errors() {
        assert!(normalize_endpoints(&eps(&["http://h:1"]), true).is_err());
        assert!(normalize_endpoints(&eps(&["https://h:1"]), false).is_err());
        assert!(normalize_endpoints(&eps(&["unix://x"]), false).is_err());
        assert!(normalize_endpoints(&eps(&[""]), false).is_err());
    }
}
