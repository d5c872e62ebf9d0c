//! The work agent's memory across restarts: each work it holds — spec, generation, last status
//! and the hash of the status last sent — in a Secret of the agent's namespace (a Secret, not a
//! ConfigMap, because works carry Secrets).
//!
//! Without it a restarted agent holds nothing, so its spec resync asks for every work again: the
//! hub resends every bundle and the agent re-sends every status (OCM's agent does that). With it
//! the resync lists the generations held, the hub sends only newer ones, and a status equal to
//! the one last sent is not sent again.
//!
//! Entries are written only when what matters after a restart changes (generation, status
//! hash), not on every pass. A work being deleted is not written again: after a restart the hub
//! still has it, as deleting, and sends it whatever generation the agent lists. An entry of another hub or agent is never loaded: a work the
//! agent would list as held would otherwise come back from that hub as a deletion.

use std::collections::BTreeMap;

use ocm_api::k8s_openapi::ByteString;
use ocm_api::k8s_openapi::api::core::v1::Secret;
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::ManifestWork;

/// Label selecting the cache's Secrets.
pub const CACHE_LABEL: &str = "work.ocm-rs.io/cache";
/// Annotation: the agent ID that wrote the entry.
pub const AGENT_ID_ANNOTATION: &str = "work.ocm-rs.io/agent-id";
/// Annotation: the hub hash (as in AppliedManifestWork names) of the hub the work came from.
pub const HUB_HASH_ANNOTATION: &str = "work.ocm-rs.io/hub-hash";
/// The key of an entry's work (its JSON).
pub const WORK_KEY: &str = "work.json";
const STATUS_HASH_KEY: &str = "status-hash";
const FIELD_MANAGER: &str = "ocm-agent-work-cache";

/// One remembered work.
#[derive(Debug, Clone)]
pub struct CachedWork {
    pub work: ManifestWork,
    /// Hash of the status last sent to the hub.
    pub sent: Option<String>,
}

/// What an entry was last written with; write again only when this changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub generation: i64,
    pub sent: Option<String>,
}

impl Written {
    pub fn of(work: &ManifestWork, sent: Option<&str>) -> Self {
        Self {
            generation: work.metadata.generation.unwrap_or_default(),
            sent: sent.map(str::to_owned),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("work cache: {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: ocm_api::kube::Error,
    },
    #[error("work cache: encoding work {work}: {source}")]
    Encode {
        work: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The cache of one agent for one hub.
#[derive(Clone)]
pub struct WorkCache {
    secrets: Api<Secret>,
    agent_id: String,
    hub_hash: String,
}

impl std::fmt::Debug for WorkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkCache")
            .field("agent_id", &self.agent_id)
            .field("hub_hash", &self.hub_hash)
            .finish_non_exhaustive()
    }
}

/// The Secret holding the work with `uid`.
pub fn secret_name(uid: &str) -> String {
    format!("work-{uid}")
}

impl WorkCache {
    pub fn new(client: Client, namespace: &str, agent_id: &str, hub_hash: &str) -> Self {
        Self {
            secrets: Api::namespaced(client, namespace),
            agent_id: agent_id.to_owned(),
            hub_hash: hub_hash.to_owned(),
        }
    }

    /// Every work remembered for this agent and hub. Unreadable entries are logged, deleted and
    /// left out (the hub sends those works again).
    pub async fn load(&self) -> Result<Vec<CachedWork>, CacheError> {
        let list = self
            .secrets
            .list(&ListParams::default().labels(&format!("{CACHE_LABEL}=true")))
            .await
            .map_err(|source| CacheError::Kube {
                what: "listing entries".into(),
                source,
            })?;
        let mut works = Vec::new();
        for secret in list.items {
            let name = secret.metadata.name.clone().unwrap_or_default();
            let annotations = secret.metadata.annotations.clone().unwrap_or_default();
            if annotations.get(AGENT_ID_ANNOTATION) != Some(&self.agent_id)
                || annotations.get(HUB_HASH_ANNOTATION) != Some(&self.hub_hash)
            {
                tracing::info!(entry = %name, "work cache entry of another agent or hub left out");
                continue;
            }
            match decode(&secret) {
                Ok(cached) => works.push(cached),
                Err(error) => {
                    tracing::warn!(entry = %name, %error, "unreadable work cache entry dropped");
                    let _ = self.secrets.delete(&name, &DeleteParams::default()).await;
                }
            }
        }
        Ok(works)
    }

    /// Remembers `work` and the hash of the status last sent for it.
    pub async fn store(&self, work: &ManifestWork, sent: Option<&str>) -> Result<(), CacheError> {
        let uid = work.metadata.uid.clone().unwrap_or_default();
        let name = work.metadata.name.clone().unwrap_or_default();
        let mut kept = work.clone();
        kept.metadata.managed_fields = None;
        let json = serde_json::to_vec(&kept).map_err(|source| CacheError::Encode {
            work: name.clone(),
            source,
        })?;
        let mut data = BTreeMap::from([(WORK_KEY.to_owned(), ByteString(json))]);
        if let Some(sent) = sent {
            data.insert(
                STATUS_HASH_KEY.to_owned(),
                ByteString(sent.as_bytes().to_vec()),
            );
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(secret_name(&uid)),
                labels: Some(BTreeMap::from([
                    (CACHE_LABEL.to_owned(), "true".to_owned()),
                    (
                        "app.kubernetes.io/managed-by".to_owned(),
                        "ocm-agent".to_owned(),
                    ),
                ])),
                annotations: Some(BTreeMap::from([
                    (AGENT_ID_ANNOTATION.to_owned(), self.agent_id.clone()),
                    (HUB_HASH_ANNOTATION.to_owned(), self.hub_hash.clone()),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(data),
            ..Secret::default()
        };
        let mut value = serde_json::to_value(&secret).map_err(|source| CacheError::Encode {
            work: name.clone(),
            source,
        })?;
        value["apiVersion"] = "v1".into();
        value["kind"] = "Secret".into();
        self.secrets
            .patch(
                &secret_name(&uid),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&value),
            )
            .await
            .map_err(|source| CacheError::Kube {
                what: format!("storing work {name}"),
                source,
            })?;
        Ok(())
    }

    /// Forgets the work with `uid` (gone from the hub and from this cluster).
    pub async fn forget(&self, uid: &str) -> Result<(), CacheError> {
        match self
            .secrets
            .delete(&secret_name(uid), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(ocm_api::kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(CacheError::Kube {
                what: format!("forgetting work {uid}"),
                source,
            }),
        }
    }
}

fn decode(secret: &Secret) -> Result<CachedWork, String> {
    let data = secret.data.as_ref().ok_or("no data")?;
    let json = data.get(WORK_KEY).ok_or("no work.json")?;
    let work: ManifestWork = serde_json::from_slice(&json.0).map_err(|e| e.to_string())?;
    if work.metadata.uid.as_deref().unwrap_or_default().is_empty() {
        return Err("the work has no UID".into());
    }
    let sent = data
        .get(STATUS_HASH_KEY)
        .map(|hash| String::from_utf8_lossy(&hash.0).into_owned());
    Ok(CachedWork { work, sent })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_entry_is_rewritten_only_when_generation_or_status_changes() {
        let mut work = ManifestWork::default();
        work.metadata.generation = Some(2);
        let first = Written::of(&work, Some("abc"));
        assert_eq!(first, Written::of(&work, Some("abc")));
        assert_ne!(first, Written::of(&work, Some("abd")));
        work.metadata.generation = Some(3);
        assert_ne!(first, Written::of(&work, Some("abc")));
    }

    #[test]
    fn an_entry_without_a_uid_or_with_bad_json_is_unreadable() {
        let secret = |json: &[u8]| Secret {
            data: Some(BTreeMap::from([(
                WORK_KEY.to_owned(),
                ByteString(json.to_vec()),
            )])),
            ..Secret::default()
        };
        assert!(decode(&secret(b"{not json")).is_err());
        assert!(decode(&secret(br#"{"metadata":{"name":"w"},"spec":{}}"#)).is_err());
        let ok = decode(&secret(
            br#"{"metadata":{"name":"w","uid":"u1","generation":4},"spec":{}}"#,
        ))
        .unwrap();
        assert_eq!(ok.work.metadata.generation, Some(4));
        assert_eq!(ok.sent, None);
    }
}
