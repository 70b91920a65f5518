//! Which version of a resource the API server serves, asked once at start: a resource that came
//! with a Kubernetes release (ClusterTrustBundle, PodCertificateRequest) is used where it is
//! served, and logged as skipped where it is not.
//!
//! Only a 404 of the group version means "not served": any other failure (API server not ready, a
//! timeout) is logged and the question asked again with backoff, so a transient error at start
//! does not turn a feature off for the life of the process.

use std::time::Duration;

use kube::api::ApiResource;
use kube::Client;
use tracing::warn;

/// The longest wait between two questions.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// The first of `versions` of `group` whose discovery lists `plural` (e.g.
/// `podcertificaterequests`), as an [`ApiResource`] of `kind`; `None` when none does.
pub async fn served(
    client: &Client,
    group: &str,
    versions: &[&str],
    kind: &str,
    plural: &str,
) -> Option<ApiResource> {
    let mut delay = Duration::from_secs(1);
    loop {
        match served_once(client, group, versions, kind, plural).await {
            Ok(found) => return found,
            Err(e) => {
                warn!(
                    "cannot tell whether the API server serves {kind} ({e}); asking again in {}s",
                    delay.as_secs()
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
    }
}

async fn served_once(
    client: &Client,
    group: &str,
    versions: &[&str],
    kind: &str,
    plural: &str,
) -> Result<Option<ApiResource>, kube::Error> {
    for version in versions {
        let api_version = format!("{group}/{version}");
        let list = match client.list_api_group_resources(&api_version).await {
            Ok(list) => list,
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(e) => return Err(e),
        };
        if list.resources.iter().any(|r| r.name == plural) {
            return Ok(Some(ApiResource {
                group: group.into(),
                version: (*version).into(),
                api_version,
                kind: kind.into(),
                plural: plural.into(),
            }));
        }
    }
    Ok(None)
}
