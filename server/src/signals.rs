//! The signals that stop a long-running process: SIGTERM (the kubelet, systemd, `kill`)
//! and SIGINT (Ctrl-C).
//!
//! Both must be handled explicitly, not left to their default action: in a container the
//! process is PID 1 of its PID namespace, and the kernel delivers to it only the signals it
//! has a handler for. A process that handles SIGINT alone ignores the kubelet's SIGTERM, and
//! its pod waits out the whole termination grace period (30 s by default) until SIGKILL.

use tokio::signal::unix::{signal, SignalKind};

/// Resolves when SIGTERM or SIGINT arrives. Never resolves if the handlers cannot be
/// installed (the process then keeps the default actions, which stop it outside a container).
pub async fn shutdown() {
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!("cannot handle SIGTERM and SIGINT: {e}");
            std::future::pending().await
        }
    }
}
