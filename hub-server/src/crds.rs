//! Installs OCM's CRDs on a cluster and waits until the apiserver serves them. Applied with
//! server-side apply under one field manager, so a restart (or a newer ocm-hub) updates them in
//! place and another manager's fields are left alone.

use std::time::Duration;

use ocm_api::k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use ocm_api::kube::api::{Patch, PatchParams};
use ocm_api::kube::{Api, Client};

/// The field manager ocm-rs applies its CRDs as.
pub const FIELD_MANAGER: &str = "ocm-rs";

/// Applies each CRD and waits (up to `timeout` in all) until every one is `Established`.
pub async fn install(
    client: &Client,
    crds: &[CustomResourceDefinition],
    timeout: Duration,
) -> Result<(), CrdError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in crds {
        let name = crd_name(crd);
        api.patch(&name, &params, &Patch::Apply(crd))
            .await
            .map_err(|source| CrdError::Apply {
                crd: name.clone(),
                source: Box::new(source),
            })?;
        tracing::info!(crd = %name, "CRD applied");
    }
    let deadline = tokio::time::Instant::now() + timeout;
    for crd in crds {
        let name = crd_name(crd);
        loop {
            let current = api.get(&name).await.map_err(|source| CrdError::Apply {
                crd: name.clone(),
                source: Box::new(source),
            })?;
            match established(&current) {
                Established::Yes => break,
                Established::Refused(reason) => {
                    return Err(CrdError::NotEstablished { crd: name, reason });
                }
                Established::NotYet => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CrdError::NotEstablished {
                    crd: name,
                    reason: format!("not established within {timeout:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

fn crd_name(crd: &CustomResourceDefinition) -> String {
    crd.metadata.name.clone().unwrap_or_default()
}

enum Established {
    Yes,
    NotYet,
    /// Names are in conflict with another CRD's, or similar: it will not become established.
    Refused(String),
}

fn established(crd: &CustomResourceDefinition) -> Established {
    let conditions = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let status = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    if status("Established").is_some_and(|c| c.status == "True") {
        return Established::Yes;
    }
    match status("NamesAccepted") {
        Some(c) if c.status == "False" => Established::Refused(format!(
            "names not accepted: {}",
            c.message.clone().unwrap_or_default()
        )),
        _ => Established::NotYet,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("applying CRD {crd}: {source}")]
    Apply {
        crd: String,
        #[source]
        source: Box<ocm_api::kube::Error>,
    },
    #[error("CRD {crd} is not served: {reason}")]
    NotEstablished { crd: String, reason: String },
}
