//! A pod runner for end-to-end tests: the containers of a pod template rendered by the
//! operator run as local processes, each pod its own host.
//!
//! - **Network**: one network namespace per pod with its own address on a bridge that
//!   exists only for the test; `/etc/hosts` in each namespace (through `ip netns exec`,
//!   which mounts `/etc/netns/<ns>/hosts` over `/etc/hosts`) stands in for cluster DNS:
//!   it resolves every pod's name under the headless Service.
//! - **Volumes**: Secrets become files (with `defaultMode`), `emptyDir`s become
//!   directories that live as long as the pod, claims from `volumeClaimTemplates` become
//!   directories that outlive the pod; each is bind-mounted at the container's
//!   `mountPath` in a private mount namespace (`readOnly` mounts are read-only).
//! - **Process**: environment from `env` (values and the downward API's `fieldRef`),
//!   `$(VAR)` expanded in the command as the kubelet does, run as the pod's
//!   `runAsUser`/`runAsGroup` with `fsGroup` as a supplementary group.
//! - **Lifecycle**: native sidecars (init containers with `restartPolicy: Always`) start
//!   first and gate the rest with their startup probe; HTTP probes are asked over the
//!   pod's address.
//!
//! Not reproduced: `readOnlyRootFilesystem`, resource limits, image contents (the
//! container's command runs from the test's `PATH`). Mount points that do not exist on
//! the machine are created there as empty directories.
//!
//! Needs root (network and mount namespaces) and `ip`, `unshare`, `setpriv`, `mount`.

mod command;
mod error;
pub mod kube;
mod network;
mod pod;
mod probe;
mod volumes;

pub use error::Error;
pub use network::{Host, Network};
pub use pod::{Pod, PodIdentity};
pub use probe::{http_get, http_put_json};
pub use volumes::Volumes;
