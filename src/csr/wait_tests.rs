//! Scenarios against a scripted API server ([`certboot_core::api::mock`]): what the wait does when the
//! server closes the watch, forgets the version, refuses after a restart, or the CSR ends badly.

use super::*;
use certboot_core::api::mock::{self, status, stored, MockApi};
use std::future::Future;

const NAME: &str = "shop:web-0:6f1d3c";
const CERT: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

fn created() -> CertificateSigningRequest {
    let mut csr = CertificateSigningRequest::default();
    csr.metadata.name = Some(NAME.into());
    csr.metadata.resource_version = Some("1".into());
    csr
}

/// Runs the wait for [`created`] against `script`, within a deadline (paused time).
async fn wait_with<S, F>(script: S) -> Result<Vec<u8>, WaitError>
where
    S: FnOnce(MockApi) -> F,
    F: Future<Output = ()>,
{
    let events = Events::disabled();
    let ctx = WaitContext {
        signer: "example.com/web",
        progress_interval: Duration::from_secs(30),
        events: &events,
    };
    let csr = created();
    mock::scenario(
        |client| async move { wait_for_certificate(&Api::all(client), &csr, &ctx).await },
        script,
    )
    .await
}

fn issued(version: &str) -> serde_json::Value {
    stored(&created(), version, &[("Approved", "True")], Some(CERT))
}

#[tokio::test(start_paused = true)]
async fn a_closed_watch_is_reopened_from_the_last_version_seen() {
    let result = wait_with(|mut server| async move {
        let first = server
            .watch_events(&[("MODIFIED", stored(&created(), "5", &[], None))])
            .await;
        assert_eq!(first.param("resourceVersion").as_deref(), Some("1"));
        assert_eq!(
            first.param("fieldSelector").as_deref(),
            Some("metadata.name=shop:web-0:6f1d3c")
        );
        let second = server.watch_events(&[("MODIFIED", issued("7"))]).await;
        assert_eq!(second.param("resourceVersion").as_deref(), Some("5"));
    })
    .await;
    assert_eq!(result.unwrap(), CERT);
}

#[tokio::test(start_paused = true)]
async fn gone_410_reads_the_csr_afresh_and_watches_from_there() {
    let result = wait_with(|mut server| async move {
        server
            .watch_events(&[("ERROR", status(410, "Expired"))])
            .await;
        let read = server
            .reply(
                200,
                stored(&created(), "9", &[("Approved", "True")], None).to_string(),
            )
            .await;
        assert!(read.method == "GET" && !read.is_watch(), "{read:?}");
        let watch = server.watch_events(&[("MODIFIED", issued("10"))]).await;
        assert_eq!(watch.param("resourceVersion").as_deref(), Some("9"));
    })
    .await;
    assert_eq!(result.unwrap(), CERT);
}

#[tokio::test(start_paused = true)]
async fn a_server_ending_every_watch_at_once_is_not_rewatched_in_a_hot_loop() {
    let result = wait_with(|mut server| async move {
        let start = tokio::time::Instant::now();
        for _ in 0..6 {
            server.watch_events(&[]).await;
        }
        // Five delays of the backoff: at least 200 + 400 + 800 + 1600 + 3200 ms.
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(6200), "{waited:?}");
        server.watch_events(&[("MODIFIED", issued("4"))]).await;
    })
    .await;
    assert_eq!(result.unwrap(), CERT);
}

#[tokio::test(start_paused = true)]
async fn a_server_answering_410_at_once_every_time_is_not_a_hot_loop() {
    let result = wait_with(|mut server| async move {
        let start = tokio::time::Instant::now();
        for round in 0..4 {
            server
                .watch_events(&[("ERROR", status(410, "Expired"))])
                .await;
            let version = format!("{}", 10 + round);
            server
                .reply(200, stored(&created(), &version, &[], None).to_string())
                .await;
        }
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(200 + 400 + 800),
            "{waited:?}"
        );
        server.watch_events(&[("MODIFIED", issued("20"))]).await;
    })
    .await;
    assert_eq!(result.unwrap(), CERT);
}

#[tokio::test(start_paused = true)]
async fn a_watch_that_lived_long_enough_resets_the_backoff() {
    let result = wait_with(|mut server| async move {
        for _ in 0..4 {
            server.watch_events(&[]).await;
        }
        // A healthy watch: the server holds it, then ends it cleanly.
        let (seen, reply) = server.next().await;
        assert!(seen.is_watch());
        tokio::time::sleep(WATCH_HEALTHY_AFTER + Duration::from_secs(1)).await;
        reply.send(200, "");
        // Re-watched at once, and the next quick end waits only the first delay again.
        server.watch_events(&[]).await;
        let after_quick_end = tokio::time::Instant::now();
        server.watch_events(&[("MODIFIED", issued("4"))]).await;
        let waited = after_quick_end.elapsed();
        // Reset: the first delay, 200 ms plus up to 200 ms of jitter. Not reset, it would be
        // the fifth: 3.2 s or more.
        assert!(
            waited <= Duration::from_millis(400),
            "not reset: {waited:?}"
        );
    })
    .await;
    assert_eq!(result.unwrap(), CERT);
}

#[tokio::test(start_paused = true)]
async fn after_410_a_recreated_csr_of_the_same_name_is_not_ours() {
    let (client, mut server) = mock::pair();
    let api = Api::all(client);
    let events = Events::disabled();
    let ctx = WaitContext {
        signer: "example.com/web",
        progress_interval: Duration::from_secs(30),
        events: &events,
    };
    let mut ours = created();
    ours.metadata.uid = Some("uid-ours".into());
    let mut theirs = created();
    theirs.metadata.uid = Some("uid-theirs".into());
    let script = async move {
        server
            .watch_events(&[("ERROR", status(410, "Expired"))])
            .await;
        let recreated = stored(&theirs, "9", &[("Approved", "True")], Some(CERT));
        server.reply(200, recreated.to_string()).await;
    };
    let (result, ()) = tokio::join!(wait_for_certificate(&api, &ours, &ctx), script);
    match result {
        Err(e @ WaitError::Replaced { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("uid-ours") && text.contains("uid-theirs"),
                "{text}"
            );
            assert!(text.contains("re-created by someone else"), "{text}");
        }
        other => panic!("expected Replaced, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_403_after_an_allowed_watch_is_retried_as_an_api_server_restart() {
    let result = wait_with(|mut server| async move {
        server.watch_events(&[]).await;
        let refused = server.fail(403, "Forbidden").await;
        assert!(refused.is_watch());
        server.watch_events(&[("MODIFIED", issued("4"))]).await;
    })
    .await;
    assert_eq!(result.unwrap(), CERT);
}

#[tokio::test(start_paused = true)]
async fn a_403_on_the_first_watch_ends_the_wait() {
    let result = wait_with(|mut server| async move {
        server.fail(403, "Forbidden").await;
    })
    .await;
    match result {
        Err(WaitError::Api(e)) => assert!(e.is_forbidden(), "{e}"),
        other => panic!("expected a 403, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn denied_ends_the_wait_with_the_reason_and_message() {
    let result = wait_with(|mut server| async move {
        let denied = stored(&created(), "2", &[("Denied", "True")], None);
        server.watch_events(&[("MODIFIED", denied)]).await;
    })
    .await;
    match result {
        Err(WaitError::Denied {
            name,
            reason,
            message,
        }) => {
            assert_eq!((name.as_str(), reason.as_str()), (NAME, "MockedDenied"));
            assert_eq!(message, "Denied by the test");
        }
        other => panic!("expected Denied, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn failed_ends_the_wait_even_after_approval() {
    let result = wait_with(|mut server| async move {
        let failed = stored(
            &created(),
            "3",
            &[("Approved", "True"), ("Failed", "True")],
            None,
        );
        server.watch_events(&[("MODIFIED", failed)]).await;
    })
    .await;
    assert!(
        matches!(&result, Err(WaitError::Failed { reason, .. }) if reason == "MockedFailed"),
        "{result:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deleted_csr_ends_the_wait() {
    let result = wait_with(|mut server| async move {
        let gone = stored(&created(), "3", &[], None);
        server.watch_events(&[("DELETED", gone)]).await;
    })
    .await;
    assert!(
        matches!(&result, Err(WaitError::Deleted { name }) if name == NAME),
        "{result:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn approved_without_a_certificate_keeps_waiting() {
    let result = wait_with(|mut server| async move {
        let approved = stored(&created(), "2", &[("Approved", "True")], None);
        let blank = stored(&created(), "3", &[("Approved", "True")], Some(b" \n"));
        server
            .watch_events(&[("MODIFIED", approved), ("MODIFIED", blank)])
            .await;
        let again = server.watch_events(&[("MODIFIED", issued("6"))]).await;
        assert_eq!(again.param("resourceVersion").as_deref(), Some("3"));
    })
    .await;
    assert_eq!(result.unwrap(), CERT);
}
