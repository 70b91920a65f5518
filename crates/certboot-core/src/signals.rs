//! The signals that stop certboot and certboot-controller.

/// Completes on SIGTERM (the kubelet stopping the container) or SIGINT, naming it; never
/// completes when the handlers cannot be installed.
pub async fn shutdown() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
