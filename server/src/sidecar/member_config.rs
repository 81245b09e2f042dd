//! The member's configuration, written for the server in etcd's config-file format.

use std::path::Path;

use serde::Serialize;

use super::bootstrap::Decision;
use super::Args;
use crate::error::Error;

/// The keys of etcd's config file that describe this member; the names are etcd's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MemberConfig {
    pub name: String,
    pub data_dir: String,
    pub initial_cluster: String,
    /// `new` only when bootstrapping a cluster being created; `existing` when joining, and
    /// on restarts (the server then ignores it, and a data dir that lost its log can never
    /// bootstrap a cluster of its own).
    pub initial_cluster_state: String,
    pub initial_cluster_token: String,
    pub initial_advertise_peer_urls: String,
    pub advertise_client_urls: String,
    /// Only for the one start that recovers from a lost quorum.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force_new_cluster: bool,
}

/// What the member's configuration must be once `decision` is taken: pure, so that it is
/// testable. `None` for a refusal, which starts nothing.
pub fn member_config(args: &Args, decision: &Decision) -> Option<MemberConfig> {
    let peer_url = args.advertise_peer_url();
    let (initial_cluster, state) = match decision {
        Decision::Bootstrap => (args.initial_cluster.clone(), "new"),
        Decision::Join { initial_cluster } => (initial_cluster.clone(), "existing"),
        Decision::Restart | Decision::ForceNewCluster => {
            (format!("{}={peer_url}", args.member), "existing")
        }
        Decision::Refuse { .. } => return None,
    };
    Some(MemberConfig {
        name: args.member.clone(),
        data_dir: args.data_dir.display().to_string(),
        initial_cluster,
        initial_cluster_state: state.into(),
        initial_cluster_token: args.initial_cluster_token.clone(),
        initial_advertise_peer_urls: peer_url,
        advertise_client_urls: args.advertise_client_url(),
        force_new_cluster: *decision == Decision::ForceNewCluster,
    })
}

/// Whether `member` is one of the members the cluster was created with.
pub fn founding(args: &Args) -> bool {
    args.initial_cluster
        .split(',')
        .filter_map(|entry| entry.split_once('='))
        .any(|(name, _)| name == args.member)
}

/// Checks the certificates the server and the sidecar will need.
pub fn check_certificates(args: &Args) -> Result<(), Error> {
    for (flag, path) in [
        ("--cacert", &args.cacert),
        ("--cert", &args.cert),
        ("--key", &args.key),
    ] {
        check_pem(flag, path)?;
    }
    Ok(())
}

/// Whether the data dir holds a member's log, as the server itself decides it.
pub fn has_data(args: &Args) -> bool {
    crate::raft::wal::Wal::exists(args.data_dir.join("member").join("wal"))
}

/// Moves aside what a data dir without a log still holds (a half-written member, or a
/// volume reused from an earlier member), so that a joining member starts clean; nothing
/// is deleted.
pub fn set_aside_leftovers(args: &Args) -> Result<(), Error> {
    let member = args.data_dir.join("member");
    if !member.exists() || has_data(args) {
        return Ok(());
    }
    let stamp = super::unix_now();
    let aside = args.data_dir.join(format!("member.set-aside-{stamp}"));
    std::fs::rename(&member, &aside)
        .map_err(|e| Error::io(format!("moving {} aside", member.display()), e))?;
    tracing::warn!(from = %member.display(), to = %aside.display(), "set aside a data dir without a log");
    Ok(())
}

/// Writes the member's configuration for the server (`ballast member --membership-file`).
pub fn write(args: &Args, config: &MemberConfig) -> Result<(), Error> {
    let yaml = serde_yaml_ng::to_string(config)
        .map_err(|e| Error::Other(format!("encoding the member configuration: {e}")))?;
    write_atomically(&args.config_out, yaml.as_bytes())
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

    const PEER_0: &str = "https://main-0.main-peer.db.svc.cluster.local:2380";
    const PEER_1: &str = "https://main-1.main-peer.db.svc.cluster.local:2380";

    fn args(member: &str) -> Args {
        Args::parse_from([
            "ballast sidecar",
            &format!("--member={member}"),
            "--cluster=main",
            "--namespace=db",
            "--peer-service=main-peer",
            "--cluster-domain=cluster.local",
            &format!("--initial-cluster=main-0={PEER_0},main-1={PEER_1}"),
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
    fn each_decision_gives_its_membership() {
        let a = args("main-1");
        let new = member_config(&a, &Decision::Bootstrap).expect("config");
        assert_eq!(new.initial_advertise_peer_urls, PEER_1);
        assert_eq!(
            new.advertise_client_urls,
            "https://main-1.main-peer.db.svc.cluster.local:2379"
        );
        assert_eq!(new.initial_cluster_state, "new");
        assert_eq!(new.initial_cluster, a.initial_cluster);
        assert_eq!(new.initial_cluster_token, "db-main");

        let joined = format!("main-0={PEER_0},main-1={PEER_1},main-3=https://x:2380");
        let join = member_config(
            &a,
            &Decision::Join {
                initial_cluster: joined.clone(),
            },
        )
        .expect("config");
        assert_eq!(join.initial_cluster_state, "existing");
        assert_eq!(join.initial_cluster, joined);

        let restart = member_config(&a, &Decision::Restart).expect("config");
        assert_eq!(restart.initial_cluster_state, "existing");
        assert_eq!(restart.initial_cluster, format!("main-1={PEER_1}"));
        assert!(!restart.force_new_cluster);
        let forced = member_config(&a, &Decision::ForceNewCluster).expect("config");
        assert!(forced.force_new_cluster);
        assert_eq!(forced.initial_cluster, restart.initial_cluster);

        let refused = Decision::Refuse {
            refusal: super::super::bootstrap::Refusal::NotAMember,
            why: String::new(),
        };
        assert_eq!(member_config(&a, &refused), None);
    }

    #[test]
    fn founding_members_are_those_of_the_initial_cluster() {
        assert!(founding(&args("main-1")));
        assert!(!founding(&args("main-3")));
    }

    /// The file is a config file that the server itself accepts, with the same values.
    #[test]
    fn the_written_file_is_a_valid_config_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = args("main-0");
        a.data_dir = dir.path().join("data");
        a.config_out = dir.path().join("member.yaml");
        let config = member_config(&a, &Decision::Bootstrap).expect("config");
        write(&a, &config).expect("write");

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
        let e = check_certificates(&a).expect_err("missing CA");
        assert!(e.to_string().starts_with("--cacert "), "{e}");
    }

    #[test]
    fn leftovers_without_a_log_are_set_aside_not_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = args("main-0");
        a.data_dir = dir.path().to_path_buf();
        std::fs::create_dir_all(dir.path().join("member/snap")).expect("mkdir");
        std::fs::write(dir.path().join("member/snap/db"), b"old").expect("db");
        assert!(!has_data(&a));
        set_aside_leftovers(&a).expect("set aside");
        assert!(!dir.path().join("member").exists());
        let kept: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(kept.len(), 1);
        assert!(kept[0].starts_with("member.set-aside-"), "{kept:?}");
    }
}
