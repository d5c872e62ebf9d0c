//! `ocmctl unjoin --cluster-name <c>`: removes from a managed cluster what `join` set up — it
//! stops the local agent (`--local`), deletes the agent's namespace (the bootstrap Secret, the
//! hub credential the agent kept there, the Deployment, ServiceAccount and Role go with it) and
//! the agent's ClusterRole and ClusterRoleBinding, and waits until the namespace is gone, so a
//! new `join` can follow at once. The hub keeps the ManagedCluster, as with clusteradm.
//!
//! As clusteradm does, it refuses while AppliedManifestWorks exist (what the agent applied
//! would be left owned by records nobody tends), naming them; with `force` it releases them
//! first ([`crate::release`]).

use std::path::PathBuf;
use std::time::Duration;

use ocm_api::k8s_openapi::api::core::v1::Namespace;
use ocm_api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use ocm_api::kube::api::DeleteParams;
use ocm_api::kube::{Api, Client};

use crate::join::{self, JoinError};
use crate::local::{self, LocalError, LocalFiles, Stopped};
use crate::names::{AGENT_CLUSTER_ROLE, AGENT_NAMESPACE, WORK_CLUSTER_ROLE};
use crate::progress::{Observer, format_elapsed};
use crate::release::{self, ReleaseError, Released};

/// What unjoining removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unjoined {
    /// The local agent that was stopped, and where its log stays.
    pub stopped: Option<(u32, PathBuf)>,
    /// `kind/name` of what was deleted from the managed cluster.
    pub deleted: Vec<String>,
    /// The AppliedManifestWorks released (`force`), with what became of their resources.
    pub released: Vec<Released>,
}

#[derive(Debug, thiserror::Error)]
pub enum UnjoinError {
    #[error(
        "this managed cluster joined as {joined:?}, not {asked:?}: run `ocmctl unjoin --cluster-name {joined}`"
    )]
    OtherCluster { joined: String, asked: String },
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(
        "the agent applied work that is still on this cluster (AppliedManifestWorks {}): delete the ManifestWorks on the hub and wait until they are gone, or pass --force to release them here (their resources deleted or left as each work's delete option says; left, where the work is unknown)",
        .0.join(", ")
    )]
    AppliedWork(Vec<String>),
    #[error("releasing the applied work: {0}")]
    Release(#[from] ReleaseError),
    #[error("{what} on the managed cluster: {source}")]
    Kube {
        what: &'static str,
        #[source]
        source: Box<ocm_api::kube::Error>,
    },
    #[error(
        "namespace {AGENT_NAMESPACE} is still being deleted after {waited}; see `kubectl get namespace {AGENT_NAMESPACE} -o yaml` for what holds it"
    )]
    NamespaceStuck { waited: String },
}

fn kube(what: &'static str) -> impl Fn(ocm_api::kube::Error) -> UnjoinError {
    move |source| UnjoinError::Kube {
        what,
        source: Box::new(source),
    }
}

/// Unjoins `cluster` from the managed cluster `spoke` talks to; `local` names its local agent's
/// files if it may have one. Nothing to remove is not an error.
pub async fn unjoin(
    spoke: &Client,
    cluster: &str,
    local: Option<&LocalFiles>,
    force: bool,
    timeout: Duration,
    observer: &mut dyn Observer,
) -> Result<Unjoined, UnjoinError> {
    join::validate_cluster_name(cluster)?;
    if let Some(joined) = join::joined_as(spoke).await?
        && joined != cluster
    {
        return Err(UnjoinError::OtherCluster {
            joined,
            asked: cluster.to_owned(),
        });
    }
    let applied = release::applied_works(spoke).await?;
    if !applied.is_empty() && !force {
        return Err(UnjoinError::AppliedWork(
            applied
                .iter()
                .map(|a| a.metadata.name.clone().unwrap_or_default())
                .collect(),
        ));
    }
    let mut unjoined = Unjoined {
        stopped: None,
        deleted: Vec::new(),
        released: Vec::new(),
    };
    if let Some(files) = local
        && let Stopped::Agent(pid) = local::stop(files, cluster, Duration::from_secs(10)).await?
    {
        unjoined.stopped = Some((pid, files.log.clone()));
    }
    // Once the agent is stopped (a local one; an in-cluster one goes with its namespace, and
    // the records are released before that, while the cache still says what the works want).
    unjoined.released = release::release(spoke, &applied).await?;
    let namespaces: Api<Namespace> = Api::all(spoke.clone());
    if deleted(
        namespaces
            .delete(AGENT_NAMESPACE, &DeleteParams::default())
            .await,
    )
    .map_err(kube("deleting the agent namespace"))?
    {
        unjoined
            .deleted
            .push(format!("Namespace/{AGENT_NAMESPACE}"));
    }
    for role in [AGENT_CLUSTER_ROLE, WORK_CLUSTER_ROLE] {
        if deleted(
            Api::<ClusterRoleBinding>::all(spoke.clone())
                .delete(role, &DeleteParams::default())
                .await,
        )
        .map_err(kube("deleting the agent's ClusterRoleBinding"))?
        {
            unjoined.deleted.push(format!("ClusterRoleBinding/{role}"));
        }
        if deleted(
            Api::<ClusterRole>::all(spoke.clone())
                .delete(role, &DeleteParams::default())
                .await,
        )
        .map_err(kube("deleting the agent's ClusterRole"))?
        {
            unjoined.deleted.push(format!("ClusterRole/{role}"));
        }
    }
    let started = tokio::time::Instant::now();
    let what = format!("waiting for namespace {AGENT_NAMESPACE} to be deleted");
    while namespaces
        .get_opt(AGENT_NAMESPACE)
        .await
        .map_err(kube("reading the agent namespace"))?
        .is_some()
    {
        if started.elapsed() >= timeout {
            return Err(UnjoinError::NamespaceStuck {
                waited: format_elapsed(started.elapsed()),
            });
        }
        observer.waiting(&what, started.elapsed());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if unjoined.deleted.iter().any(|d| d.starts_with("Namespace/")) {
        observer.done(
            &format!("namespace {AGENT_NAMESPACE} deleted"),
            started.elapsed(),
        );
    }
    Ok(unjoined)
}

/// Whether a delete removed something (`NotFound` means there was nothing).
fn deleted<T>(outcome: Result<T, ocm_api::kube::Error>) -> Result<bool, ocm_api::kube::Error> {
    match outcome {
        Ok(_) => Ok(true),
        Err(ocm_api::kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(err) => Err(err),
    }
}
