//! The member's configuration, written for the server in etcd's config-file format.

use std::path::Path;

use serde::Serialize;

use super::Args;
use crate::error::Error;

/// The keys of etcd's config file that describe this member; the names are etcd's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MemberConfig {
    pub name: String,
    pub data_dir: String,
    pub initial_cluster: String,
    /// `new` for a member of a cluster being created. A data dir that already holds a
    /// member makes the server ignore the initial-cluster keys, so restarts need nothing
    /// else; joining an existing cluster comes with member lifecycle.
    pub initial_cluster_state: String,
    pub initial_cluster_token: String,
    pub initial_advertise_peer_urls: String,
    pub advertise_client_urls: String,
}

/// What the member's configuration must be: pure, so that it is testable.
pub fn member_config(args: &Args) -> Result<MemberConfig, Error> {
    let peer_url = peer_url_of(&args.initial_cluster, &args.member)?;
    Ok(MemberConfig {
        name: args.member.clone(),
        data_dir: args.data_dir.display().to_string(),
        initial_cluster: args.initial_cluster.clone(),
        initial_cluster_state: "new".into(),
        initial_cluster_token: args.initial_cluster_token.clone(),
        initial_advertise_peer_urls: peer_url,
        advertise_client_urls: args.advertise_client_url(),
    })
}

/// Checks what the server will need and writes its configuration.
pub fn prepare(args: &Args) -> Result<MemberConfig, Error> {
    for (flag, path) in [
        ("--cacert", &args.cacert),
        ("--cert", &args.cert),
        ("--key", &args.key),
    ] {
        check_pem(flag, path)?;
    }
    let config = member_config(args)?;
    if args.data_dir.join("member").is_dir() {
        tracing::info!(
            data_dir = %args.data_dir.display(),
            "the data dir already holds a member; the server restarts from it"
        );
    }
    let yaml = serde_yaml::to_string(&config)
        .map_err(|e| Error::Other(format!("encoding the member configuration: {e}")))?;
    write_atomically(&args.config_out, yaml.as_bytes())?;
    Ok(config)
}

/// The peer URL listed for `member` in an `--initial-cluster` value.
fn peer_url_of(initial_cluster: &str, member: &str) -> Result<String, Error> {
    let urls: Vec<&str> = initial_cluster
        .split(',')
        .filter_map(|entry| entry.split_once('='))
        .filter(|(name, _)| *name == member)
        .map(|(_, url)| url)
        .collect();
    if urls.is_empty() {
        return Err(Error::Other(format!(
            "member {member:?} is not in --initial-cluster {initial_cluster:?}; \
             the pod's name must be one of the cluster's members"
        )));
    }
    Ok(urls.join(","))
}

fn check_pem(flag: &str, path: &Path) -> Result<(), Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("{flag} {}", path.display()), e))?;
    if !text.contains("-----BEGIN ") {
        return Err(Error::Other(format!(
            "{flag} {}: not a PEM file; check the Secret mounted there",
            path.display()
        )));
    }
    Ok(())
}

/// Writes through a temporary file and a rename, so the server never reads half a file.
fn write_atomically(path: &Path, data: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let ctx = |what: &str| format!("{what} {}", path.display());
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(ctx("creating"), e))?;
    std::io::Write::write_all(&mut tmp, data).map_err(|e| Error::io(ctx("writing"), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(ctx("syncing"), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io(ctx("renaming into"), e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn args(member: &str) -> Args {
        Args::parse_from([
            "ballast sidecar",
            &format!("--member={member}"),
            "--cluster=main",
            "--namespace=db",
            "--peer-service=main-peer",
            "--cluster-domain=cluster.local",
            "--replicas=2",
            "--initial-cluster=main-0=https://main-0.main-peer.db.svc.cluster.local:2380,main-1=https://main-1.main-peer.db.svc.cluster.local:2380",
            "--initial-cluster-token=db-main",
            "--data-dir=/var/lib/etcd/data",
            "--config-out=/run/ballast/member.yaml",
            "--endpoint=https://127.0.0.1:2379",
            "--cacert=/pki/ca.crt",
            "--cert=/pki/tls.crt",
            "--key=/pki/tls.key",
        ])
    }

    #[test]
    fn the_member_takes_its_peer_url_from_the_initial_cluster() {
        let c = member_config(&args("main-1")).expect("config");
        assert_eq!(
            c.initial_advertise_peer_urls,
            "https://main-1.main-peer.db.svc.cluster.local:2380"
        );
        assert_eq!(
            c.advertise_client_urls,
            "https://main-1.main-peer.db.svc.cluster.local:2379"
        );
        assert_eq!(c.initial_cluster_state, "new");
        assert_eq!(c.initial_cluster_token, "db-main");
    }

    #[test]
    fn a_member_missing_from_the_initial_cluster_is_refused() {
        let e = member_config(&args("main-7")).expect_err("not a member");
        assert!(
            e.to_string()
                .contains("\"main-7\" is not in --initial-cluster"),
            "{e}"
        );
    }

    /// The file is a config file that the server itself accepts, with the same values.
    #[test]
    fn the_written_file_is_a_valid_config_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["ca.crt", "tls.crt", "tls.key"] {
            std::fs::write(dir.path().join(name), "-----BEGIN X-----\n").expect("pem");
        }
        let mut a = args("main-0");
        a.cacert = dir.path().join("ca.crt");
        a.cert = dir.path().join("tls.crt");
        a.key = dir.path().join("tls.key");
        a.data_dir = dir.path().join("data");
        a.config_out = dir.path().join("member.yaml");
        prepare(&a).expect("prepare");

        let path = a.config_out.display().to_string();
        let (outcome, _) =
            crate::config::parse(["--config-file", path.as_str()], &[]).expect("parses");
        let crate::config::Outcome::Run(cfg) = outcome else {
            panic!("expected a runnable configuration");
        };
        assert_eq!(cfg.name, "main-0");
        assert_eq!(cfg.data_dir, a.data_dir);
        assert_eq!(cfg.initial_cluster_token, "db-main");
        assert_eq!(cfg.initial_cluster.len(), 2);
    }

    #[test]
    fn a_missing_certificate_names_its_flag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = args("main-0");
        a.cacert = dir.path().join("absent.crt");
        a.config_out = dir.path().join("member.yaml");
        let e = prepare(&a).expect_err("missing CA");
        assert!(e.to_string().starts_with("--cacert "), "{e}");
        assert!(!a.config_out.exists(), "nothing written");
    }
}
