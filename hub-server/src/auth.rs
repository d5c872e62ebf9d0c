//! Who may talk to the broker, decided by the hub's own Kubernetes: bearer tokens through a
//! TokenReview, and every Publish and Subscribe through a SubjectAccessReview with OCM's mapping
//! ([`ocm_transport::access`]), as OCM's gRPC server does. Decisions are cached, so a busy agent
//! costs the apiserver one review per window, not one per event: token reviews for a short time
//! (a deleted token works that long), authorization grants longer, since the hub drops them when
//! RBAC changes ([`crate::rbac_changes`]); denials at most a few seconds.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ocm_api::k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use ocm_api::k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use ocm_api::kube::api::PostParams;
use ocm_api::kube::{Api, Client};
use ocm_transport::access::AccessRequest;
use ocm_transport::broker::{Authorizer, Identity, TokenAuthenticator};

use crate::rbac_index::RbacIndex;

/// Entries a decision cache holds before it drops expired ones (and, if still full, all).
const CACHE_LIMIT: usize = 100_000;
/// The longest a denial is reused.
const DENIAL_TTL: Duration = Duration::from_secs(5);
/// After RBAC changed, how long decisions about it are kept only briefly: the apiserver's own
/// authorizer learns of the change through its informers, a moment after the hub does, so a
/// review made just then may still answer from before it.
const SETTLING: Duration = Duration::from_secs(5);

/// The longest between two sweeps of a cache's expired entries.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A small time-bounded cache. The lock is never held across an `.await`. Expired entries are
/// swept on insert at least every [`SWEEP_INTERVAL`] (or the TTL, if shorter), so a stream of
/// distinct keys — denials a peer provokes on purpose — holds memory for one TTL, not until the
/// cache is full.
struct TtlCache<K, V> {
    ttl: Duration,
    /// Each entry with the instant it expires.
    entries: Mutex<HashMap<K, (Instant, V)>>,
    next_sweep: Mutex<Instant>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            next_sweep: Mutex::new(Instant::now()),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(expires, _)| Instant::now() < *expires)
            .map(|(_, value)| value.clone())
    }

    fn retain(&self, keep: impl Fn(&K) -> bool) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|key, _| keep(key));
    }

    fn put(&self, key: K, value: V) {
        self.put_for(key, value, self.ttl);
    }

    /// Keeps `value` for `ttl` (at most the cache's own).
    fn put_for(&self, key: K, value: V, ttl: Duration) {
        let ttl = ttl.min(self.ttl);
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let sweep = {
            let mut next = self.next_sweep.lock().unwrap_or_else(|e| e.into_inner());
            let due = now >= *next;
            if due {
                *next = now + self.ttl.min(SWEEP_INTERVAL);
            }
            due
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if sweep {
            entries.retain(|_, (expires, _)| now < *expires);
        }
        if entries.len() >= CACHE_LIMIT {
            entries.retain(|_, (expires, _)| now < *expires);
            if entries.len() >= CACHE_LIMIT {
                entries.clear();
            }
        }
        entries.insert(key, (now + ttl, value));
    }
}

/// Bearer tokens checked with a TokenReview against the hub's apiserver (needs `create` on
/// `tokenreviews`, as in `system:auth-delegator`).
pub struct TokenReviewAuthenticator {
    client: Client,
    /// The audiences a token must be bound to (any of them); empty: the apiserver's own.
    audiences: Vec<String>,
    /// Keyed by the token's SHA-256, so no token outlives its request in memory.
    cache: TtlCache<[u8; 32], Result<Identity, String>>,
}

impl std::fmt::Debug for TokenReviewAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewAuthenticator")
            .field("cache_ttl", &self.cache.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenReviewAuthenticator {
    /// Tokens are accepted when bound to one of `audiences`, or with no audiences given, to
    /// the apiserver's own (as OCM's gRPC server reviews them).
    pub fn new(client: Client, cache_ttl: Duration, audiences: Vec<String>) -> Self {
        Self {
            client,
            audiences,
            cache: TtlCache::new(cache_ttl),
        }
    }

    async fn review(&self, token: &str) -> Result<Identity, String> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
            },
            ..TokenReview::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("TokenReview failed: {e}"))?;
        let status = reviewed.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(match status.error {
                Some(error) if !error.is_empty() => format!("token not authenticated: {error}"),
                _ => "token not authenticated".to_owned(),
            });
        }
        // The apiserver authenticates a token for the audiences asked only if it is bound to one
        // of them, and says which; checked here too, so no other answer is taken for one.
        if !self.audiences.is_empty()
            && !status
                .audiences
                .iter()
                .flatten()
                .any(|a| self.audiences.contains(a))
        {
            return Err(format!(
                "token not authenticated: it is not bound to the broker's audience ({})",
                self.audiences.join(", ")
            ));
        }
        let user = status.user.unwrap_or_default();
        Ok(Identity {
            user: user.username.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
        })
    }
}

#[tonic::async_trait]
impl TokenAuthenticator for TokenReviewAuthenticator {
    fn knows(&self, token: &str) -> bool {
        self.cache.get(&token_key(token)).is_some()
    }

    async fn authenticate(&self, token: &str) -> Result<Identity, String> {
        let key = token_key(token);
        if let Some(decided) = self.cache.get(&key) {
            return decided;
        }
        let decided = self.review(token).await;
        // A review that could not be made (the apiserver unreachable) is not a decision.
        if decided.is_ok() || decided.as_ref().is_err_and(|e| e.starts_with("token not")) {
            self.cache.put(key, decided.clone());
        }
        decided
    }
}

/// A token's cache key: its SHA-256, so no token outlives its request in memory.
fn token_key(token: &str) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .try_into()
        .unwrap_or([0; 32])
}

/// Publish and Subscribe checked with a SubjectAccessReview (needs `create` on
/// `subjectaccessreviews`).
pub struct SubjectAccessReviewAuthorizer {
    client: Client,
    cache: TtlCache<(Identity, AccessRequest), bool>,
    /// When decisions about a namespace (under `""`: about anything) were last dropped.
    changed: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for SubjectAccessReviewAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectAccessReviewAuthorizer")
            .field("cache_ttl", &self.cache.ttl)
            .finish_non_exhaustive()
    }
}

impl SubjectAccessReviewAuthorizer {
    pub fn new(client: Client, cache_ttl: Duration) -> Self {
        Self {
            client,
            cache: TtlCache::new(cache_ttl),
            changed: Mutex::default(),
        }
    }

    fn mark_changed(&self, namespace: &str) {
        let now = Instant::now();
        let mut changed = self.changed.lock().unwrap_or_else(|e| e.into_inner());
        changed.retain(|_, at| now.duration_since(*at) < SETTLING);
        changed.insert(namespace.to_owned(), now);
    }

    /// Whether RBAC about `namespace` changed too recently for a decision to be kept long.
    fn settling(&self, namespace: &str) -> bool {
        let changed = self.changed.lock().unwrap_or_else(|e| e.into_inner());
        [namespace, ""]
            .iter()
            .filter_map(|key| changed.get(*key))
            .any(|at| at.elapsed() < SETTLING)
    }

    async fn review(&self, who: &Identity, request: &AccessRequest) -> Result<bool, String> {
        let review = SubjectAccessReview {
            spec: subject_access_review_spec(who, request),
            ..SubjectAccessReview::default()
        };
        let reviewed = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("SubjectAccessReview failed: {e}"))?;
        Ok(reviewed.status.is_some_and(|s| s.allowed))
    }
}

/// The review OCM's hub makes for `request` by `who`.
fn subject_access_review_spec(who: &Identity, request: &AccessRequest) -> SubjectAccessReviewSpec {
    SubjectAccessReviewSpec {
        user: Some(who.user.clone()),
        groups: Some(who.groups.clone()),
        resource_attributes: Some(ResourceAttributes {
            verb: Some(request.verb.to_owned()),
            group: Some(request.group.clone()),
            resource: Some(request.resource.clone()),
            subresource: request.subresource.map(str::to_owned),
            namespace: Some(request.namespace.clone()),
            name: request.name.clone(),
            ..ResourceAttributes::default()
        }),
        ..SubjectAccessReviewSpec::default()
    }
}

impl SubjectAccessReviewAuthorizer {
    /// Forgets the decisions about `cluster`'s agents and namespace: its grants just changed
    /// (accepted, denied), and an agent resubscribing now must not meet a stale denial.
    pub fn forget_cluster(&self, cluster: &str) {
        self.mark_changed(cluster);
        let group = format!("{}{cluster}", ocm_api::registration::CLUSTER_GROUP_PREFIX);
        self.cache
            .retain(|(who, request)| request.namespace != cluster && !who.groups.contains(&group));
    }

    /// Forgets the decisions about requests in `namespace` (a Role or RoleBinding there changed).
    pub fn forget_namespace(&self, namespace: &str) {
        self.mark_changed(namespace);
        self.cache
            .retain(|(_, request)| request.namespace != namespace);
    }

    /// Forgets every decision (a change that may grant or revoke anyone's access).
    pub fn forget_all(&self) {
        self.mark_changed("");
        self.cache.retain(|_| false);
    }
}

#[tonic::async_trait]
impl Authorizer for SubjectAccessReviewAuthorizer {
    async fn authorize(&self, who: &Identity, request: &AccessRequest) -> Result<bool, String> {
        let key = (who.clone(), request.clone());
        if let Some(allowed) = self.cache.get(&key) {
            return Ok(allowed);
        }
        let allowed = self.review(who, request).await?;
        if allowed && !self.settling(&request.namespace) {
            self.cache.put(key, allowed);
        } else if allowed {
            // Checked after the review, so a change during it counts too.
            self.cache.put_for(key, allowed, SETTLING);
        } else {
            tracing::info!(user = %who.user, verb = request.verb, resource = %request.resource, namespace = %request.namespace, "denied by RBAC");
            // A denial is kept briefly: access an administrator grants by hand should work
            // within seconds. (Grants the hub makes itself drop the cluster's entries at once.)
            self.cache.put_for(key, allowed, DENIAL_TTL);
        }
        Ok(allowed)
    }
}

/// How long a request waits for the RBAC index's first listing before it is asked of the
/// apiserver instead.
const INDEX_WAIT: Duration = Duration::from_secs(30);

/// Publish and Subscribe allowed from the hub's own [`RbacIndex`] when it allows them, and
/// otherwise checked with a SubjectAccessReview: RBAC only grants, and the apiserver may run
/// other authorizers, so only the index's allow is final. Requests arriving before the index
/// has listed wait for it (at most [`INDEX_WAIT`]). At ten thousand agents reconnecting at once
/// this is the difference between no request to the apiserver and 80,000 reviews.
#[derive(Debug)]
pub struct RbacAuthorizer {
    index: RbacIndex,
    reviews: Arc<SubjectAccessReviewAuthorizer>,
}

impl RbacAuthorizer {
    pub fn new(index: RbacIndex, reviews: Arc<SubjectAccessReviewAuthorizer>) -> Self {
        Self { index, reviews }
    }
}

#[tonic::async_trait]
impl Authorizer for RbacAuthorizer {
    async fn authorize(&self, who: &Identity, request: &AccessRequest) -> Result<bool, String> {
        self.index.until_ready(INDEX_WAIT).await;
        if self.index.allows(who, request) {
            return Ok(true);
        }
        tracing::debug!(
            user = %who.user, verb = request.verb, resource = %request.resource,
            subresource = request.subresource.unwrap_or(""), namespace = %request.namespace,
            name = request.name.as_deref().unwrap_or(""), ready = self.index.is_ready(),
            "not allowed by the hub's RBAC index; asking the apiserver"
        );
        self.reviews.authorize(who, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_review_names_user_groups_and_ocms_resource_attributes() {
        let who = Identity {
            user: "system:open-cluster-management:cluster1:agent".into(),
            groups: vec!["system:open-cluster-management:cluster1".into()],
        };
        let request = AccessRequest {
            verb: "update",
            group: "work.open-cluster-management.io".into(),
            resource: "manifestworks".into(),
            subresource: Some("status"),
            namespace: "cluster1".into(),
            name: None,
        };
        let spec = subject_access_review_spec(&who, &request);
        assert_eq!(spec.user.as_deref(), Some(who.user.as_str()));
        assert_eq!(spec.groups, Some(who.groups.clone()));
        let attributes = spec.resource_attributes.unwrap();
        assert_eq!(attributes.verb.as_deref(), Some("update"));
        assert_eq!(
            attributes.group.as_deref(),
            Some("work.open-cluster-management.io")
        );
        assert_eq!(attributes.resource.as_deref(), Some("manifestworks"));
        assert_eq!(attributes.subresource.as_deref(), Some("status"));
        assert_eq!(attributes.namespace.as_deref(), Some("cluster1"));
        assert_eq!(attributes.name, None);
    }

    #[test]
    fn cache_entries_expire_and_a_zero_ttl_caches_nothing() {
        let cache = TtlCache::new(Duration::from_millis(50));
        cache.put("a", 1);
        assert_eq!(cache.get(&"a"), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&"a"), None);
        let off = TtlCache::new(Duration::ZERO);
        off.put("a", 1);
        assert_eq!(off.get(&"a"), None);
    }

    #[test]
    fn an_entry_kept_for_less_expires_first_and_never_outlives_the_cache_ttl() {
        let cache = TtlCache::new(Duration::from_millis(80));
        cache.put("allowed", true);
        cache.put_for("denied", false, Duration::from_millis(20));
        cache.put_for("long", true, Duration::from_secs(3600));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(&"denied"), None);
        assert_eq!(cache.get(&"allowed"), Some(true));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(cache.get(&"allowed"), None);
        assert_eq!(cache.get(&"long"), None, "capped at the cache's TTL");
    }

    #[test]
    fn expired_denials_do_not_pile_up() {
        let cache: TtlCache<u32, bool> = TtlCache::new(Duration::from_millis(50));
        for key in 0..1_000 {
            cache.put_for(key, false, DENIAL_TTL);
        }
        assert_eq!(cache.len(), 1_000);
        std::thread::sleep(Duration::from_millis(100));
        cache.put_for(1_000, false, DENIAL_TTL);
        assert_eq!(cache.len(), 1, "the expired entries were swept on insert");
    }
}
