//! Asks a cluster for its members with the operator's own code (`EtcdMembers`, mutual TLS
//! with the operator's client certificate) and prints what it saw as JSON. The e2e tests run
//! it on a host of the pod network, where the members' DNS names resolve.
//!
//! Usage: `observe-members <ca.crt> <client.crt> <client.key> <name=https://url>...`

use ballast_operator::members::{EtcdMembers, MemberStatusSource, Target};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ca, cert, key, endpoints @ ..] = args.as_slice() else {
        anyhow::bail!("usage: observe-members <ca.crt> <client.crt> <client.key> <name=url>...");
    };
    let read = |p: &String| std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{p}: {e}"));
    let target = Target {
        endpoints: endpoints
            .iter()
            .filter_map(|e| e.split_once('='))
            .map(|(n, u)| (n.to_string(), u.to_string()))
            .collect(),
        ca_pem: read(ca)?,
        cert_pem: read(cert)?,
        key_pem: read(key)?,
    };
    let view = EtcdMembers::default().observe(&target).await?;
    let members: Vec<serde_json::Value> = view
        .members
        .iter()
        .map(|m| {
            serde_json::json!({
                "id": m.id, "name": m.name, "learner": m.learner, "healthy": m.healthy,
                "peer_urls": m.peer_urls,
            })
        })
        .collect();
    let out = serde_json::json!({
        "cluster_id": view.cluster_id, "leader": view.leader, "members": members,
        "cluster_ids": view.cluster_ids,
    });
    println!("{out}");
    Ok(())
}
