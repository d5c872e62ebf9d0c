//! What acceptance may write or delete for a cluster: only objects it made for that cluster,
//! which carry the cluster-name label with the cluster's name. An object of the same name
//! without it — a system or tenant namespace, a ClusterRole someone else made, a shared role —
//! is never adopted, overwritten or deleted: a cluster named after it is refused instead. Names
//! alone cannot be trusted, since agents choose their cluster's name.

use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::api::{DeleteParams, Preconditions};
use ocm_api::kube::{Api, Resource};
use serde::de::DeserializeOwned;

use crate::csr::CLUSTER_NAME_LABEL;

/// Whether `meta` is labelled as made for `cluster`.
pub fn labelled_for(meta: &ObjectMeta, cluster: &str) -> bool {
    meta.labels
        .as_ref()
        .and_then(|labels| labels.get(CLUSTER_NAME_LABEL))
        .is_some_and(|of| of == cluster)
}

/// An object of the name acceptance would write for a cluster, made by someone else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name:?} exists and was not made for cluster {cluster:?}")]
pub struct Foreign {
    pub kind: String,
    pub name: String,
    pub cluster: String,
}

/// Checks that `name` is free or already `cluster`'s, before acceptance writes it.
pub async fn claim<K>(api: &Api<K>, name: &str, cluster: &str) -> Result<(), ClaimError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.get_opt(name).await? {
        Some(existing) if !labelled_for(existing.meta(), cluster) => {
            Err(ClaimError::Foreign(Foreign {
                kind: K::kind(&()).into_owned(),
                name: name.to_owned(),
                cluster: cluster.to_owned(),
            }))
        }
        _ => Ok(()),
    }
}

/// Deletes `name` if it is `cluster`'s (the UID read is a precondition, so an object made
/// meanwhile under the name survives); anything else of the name is left alone. Returns
/// whether something was deleted.
pub async fn delete_own<K>(
    api: &Api<K>,
    name: &str,
    cluster: &str,
) -> Result<bool, ocm_api::kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(existing) = api.get_opt(name).await? else {
        return Ok(false);
    };
    if !labelled_for(existing.meta(), cluster) {
        tracing::warn!(
            cluster,
            kind = %K::kind(&()),
            name,
            "not deleting an object the hub did not make for this cluster"
        );
        return Ok(false);
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: existing.meta().uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(true),
        Err(ocm_api::kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(transparent)]
    Foreign(Foreign),
    #[error(transparent)]
    Kube(#[from] ocm_api::kube::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn only_the_cluster_label_with_the_clusters_name_makes_an_object_its() {
        let meta = |labels: Option<&[(&str, &str)]>| ObjectMeta {
            labels: labels.map(|l| {
                l.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>()
            }),
            ..ObjectMeta::default()
        };
        assert!(labelled_for(
            &meta(Some(&[(CLUSTER_NAME_LABEL, "c1")])),
            "c1"
        ));
        assert!(!labelled_for(
            &meta(Some(&[(CLUSTER_NAME_LABEL, "c2")])),
            "c1"
        ));
        assert!(!labelled_for(&meta(Some(&[("other", "c1")])), "c1"));
        assert!(!labelled_for(&meta(None), "c1"));
    }
}
