//! Names of everything the operator derives from an `EtcdCluster`: objects, members, DNS
//! names and URLs. Kept in one place because the StatefulSet, the Services, the certificate
//! SANs and the server flags must agree on every one of them.

use std::collections::BTreeMap;

/// Client port, as etcd's default.
pub const CLIENT_PORT: i32 = 2379;
/// Peer port, as etcd's default.
pub const PEER_PORT: i32 = 2380;
/// Plain-HTTP metrics and health port, as kubeadm's `--listen-metrics-urls`.
pub const METRICS_PORT: i32 = 2381;

/// Field manager for server-side apply.
pub const FIELD_MANAGER: &str = "ballast-operator";

/// `app.kubernetes.io/name` of every object the operator creates.
pub const APP_NAME: &str = "ballast-etcd";
/// `app.kubernetes.io/managed-by` value, also used to select the operator's own Secrets.
pub const MANAGED_BY: &str = "ballast-operator";

/// Names derived from one cluster. `name` and `namespace` come from the `EtcdCluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNames {
    /// `metadata.name` of the cluster; also the StatefulSet's and client Service's name.
    pub name: String,
    /// Namespace of the cluster and everything it owns.
    pub namespace: String,
    /// Kubernetes cluster domain, e.g. `cluster.local`.
    pub cluster_domain: String,
}

impl ClusterNames {
    /// Names for cluster `name` in `namespace`.
    pub fn new(name: &str, namespace: &str, cluster_domain: &str) -> Self {
        Self {
            name: name.to_string(),
            namespace: namespace.to_string(),
            cluster_domain: cluster_domain.to_string(),
        }
    }

    /// The StatefulSet.
    pub fn statefulset(&self) -> String {
        self.name.clone()
    }

    /// The client Service (`<name>.<namespace>.svc:2379` is what clients dial).
    pub fn client_service(&self) -> String {
        self.name.clone()
    }

    /// The headless Service that gives each member a stable DNS name.
    pub fn peer_service(&self) -> String {
        format!("{}-peer", self.name)
    }

    /// The headless Service's own DNS name. Every peer certificate the operator issues
    /// carries it, and members admit only certificates valid for it on their peer port
    /// (`--peer-cert-allowed-hostname`), so client certificates from the same CA cannot
    /// speak Raft.
    pub fn peer_service_fqdn(&self) -> String {
        format!(
            "{}.{}.svc.{}",
            self.peer_service(),
            self.namespace,
            self.cluster_domain
        )
    }

    /// The PodDisruptionBudget.
    pub fn pdb(&self) -> String {
        self.name.clone()
    }

    /// Secret with the CA the operator created (`ca.crt`, `ca.key`).
    pub fn ca_secret(&self) -> String {
        format!("{}-ca", self.name)
    }

    /// Secret with every member's server certificate (`<member>.crt`, `<member>.key`, `ca.crt`).
    pub fn server_secret(&self) -> String {
        format!("{}-server-tls", self.name)
    }

    /// Secret with every member's peer certificate.
    pub fn peer_secret(&self) -> String {
        format!("{}-peer-tls", self.name)
    }

    /// `kubernetes.io/tls` Secret with the healthcheck client certificate.
    pub fn healthcheck_client_secret(&self) -> String {
        format!("{}-healthcheck-client", self.name)
    }

    /// `kubernetes.io/tls` Secret for kube-apiserver (`--etcd-certfile` and friends).
    pub fn apiserver_client_secret(&self) -> String {
        format!("{}-apiserver-etcd-client", self.name)
    }

    /// `kubernetes.io/tls` Secret with the client certificate the operator itself uses.
    pub fn operator_client_secret(&self) -> String {
        format!("{}-operator-client", self.name)
    }

    /// ConfigMap the operator keeps for the members' sidecars (mounted in every pod): the
    /// cluster's ID once it has formed, so that no member ever bootstraps it a second
    /// time, and a request to recover from a lost quorum while one is under way.
    pub fn state_config_map(&self) -> String {
        format!("{}-state", self.name)
    }

    /// Name of member `ordinal` (the pod name, as the StatefulSet names it).
    pub fn member(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.name)
    }

    /// Names of members `0..replicas`.
    pub fn members(&self, replicas: i32) -> Vec<String> {
        (0..replicas.max(0)).map(|i| self.member(i)).collect()
    }

    /// The ordinal of the pod a member's peer URLs name, if they are one of this cluster's
    /// pods (the operator's own members always are; one added by hand may not be).
    pub fn ordinal_of(&self, peer_urls: &[String]) -> Option<i32> {
        (0..crate::crd::MAX_REPLICAS).find(|o| {
            let mine = self.member_peer_url(&self.member(*o));
            !peer_urls.is_empty() && peer_urls.iter().all(|u| *u == mine)
        })
    }

    /// Fully qualified DNS name of a member under the headless Service.
    pub fn member_fqdn(&self, member: &str) -> String {
        format!(
            "{member}.{}.{}.svc.{}",
            self.peer_service(),
            self.namespace,
            self.cluster_domain
        )
    }

    /// Every DNS name that reaches `member`, shortest to longest, as clients inside the
    /// cluster may spell it: with and without the namespace, `svc` and the cluster domain.
    pub fn member_dns_names(&self, member: &str) -> Vec<String> {
        let svc = self.peer_service();
        let ns = &self.namespace;
        vec![
            format!("{member}.{svc}"),
            format!("{member}.{svc}.{ns}"),
            format!("{member}.{svc}.{ns}.svc"),
            self.member_fqdn(member),
        ]
    }

    /// Every DNS name of the client Service.
    pub fn client_service_dns_names(&self) -> Vec<String> {
        let svc = self.client_service();
        let ns = &self.namespace;
        vec![
            svc.clone(),
            format!("{svc}.{ns}"),
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.{}", self.cluster_domain),
        ]
    }

    /// Client URL a member advertises.
    pub fn member_client_url(&self, member: &str) -> String {
        format!("https://{}:{CLIENT_PORT}", self.member_fqdn(member))
    }

    /// Peer URL a member advertises.
    pub fn member_peer_url(&self, member: &str) -> String {
        format!("https://{}:{PEER_PORT}", self.member_fqdn(member))
    }

    /// `--initial-cluster` for a new cluster of `replicas` members.
    pub fn initial_cluster(&self, replicas: i32) -> String {
        self.members(replicas)
            .iter()
            .map(|m| format!("{m}={}", self.member_peer_url(m)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `--initial-cluster-token`: unique per namespace and name, so two clusters can never
    /// mistake each other's members for their own.
    pub fn initial_cluster_token(&self) -> String {
        format!("{}-{}", self.namespace, self.name)
    }

    /// Labels that select this cluster's member pods. Never change: they are part of the
    /// StatefulSet's immutable selector.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), APP_NAME.to_string()),
            ("app.kubernetes.io/instance".to_string(), self.name.clone()),
        ])
    }

    /// The selector as a string, for the scale subresource.
    pub fn selector_string(&self) -> String {
        self.selector_labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Labels of every object of this cluster.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels.insert(
            "app.kubernetes.io/managed-by".to_string(),
            MANAGED_BY.to_string(),
        );
        labels.insert(
            "app.kubernetes.io/component".to_string(),
            "etcd".to_string(),
        );
        labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_agree_with_statefulset_dns() {
        let n = ClusterNames::new("main", "db", "cluster.local");
        assert_eq!(n.member(2), "main-2");
        assert_eq!(
            n.member_fqdn("main-2"),
            "main-2.main-peer.db.svc.cluster.local"
        );
        assert_eq!(
            n.initial_cluster(2),
            "main-0=https://main-0.main-peer.db.svc.cluster.local:2380,main-1=https://main-1.main-peer.db.svc.cluster.local:2380"
        );
        assert_eq!(
            n.selector_string(),
            "app.kubernetes.io/instance=main,app.kubernetes.io/name=ballast-etcd"
        );
    }
}
