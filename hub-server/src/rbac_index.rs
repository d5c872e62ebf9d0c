//! Kubernetes RBAC, evaluated in the hub from the Roles, RoleBindings, ClusterRoles and
//! ClusterRoleBindings it watches, so that agents' Publish and Subscribe requests are allowed
//! without a SubjectAccessReview each.
//!
//! Why: the apiserver's RBAC authorizer walks every ClusterRoleBinding for each review, and OCM
//! gives every cluster its own. At 10,000 clusters a restarted hub asked about 7.6 reviews per
//! reconnecting agent, and those reviews took the 2-core apiserver for minutes, delaying the
//! listings every resync waits on. Here bindings are indexed by subject, so a decision looks
//! only at the bindings naming the requester.
//!
//! The evaluation is the apiserver's (`rbac/v1` `RuleAllows`, `appliesTo`): verbs, API groups,
//! resources (`*`, `resource/subresource`, `*/subresource`) and resource names, from every
//! ClusterRoleBinding and, for a namespaced request, the namespace's RoleBindings, each through
//! its ClusterRole or Role. Only an allow is final: RBAC grants and never denies, and the
//! apiserver may run other authorizers too, so a request this index does not allow is asked of
//! the apiserver ([`crate::auth::RbacAuthorizer`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use ocm_api::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use ocm_transport::access::AccessRequest;
use ocm_transport::broker::Identity;

/// A rule, with only what resource requests are matched by.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    verbs: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    resource_names: Vec<String>,
}

impl Rule {
    fn from_policy(rule: &PolicyRule) -> Option<Self> {
        let resources = rule.resources.clone().unwrap_or_default();
        // A rule of non-resource URLs only grants nothing an agent asks for.
        (!resources.is_empty()).then(|| Self {
            verbs: rule.verbs.clone(),
            api_groups: rule.api_groups.clone().unwrap_or_default(),
            resources,
            resource_names: rule.resource_names.clone().unwrap_or_default(),
        })
    }

    /// The apiserver's `RuleAllows` for a resource request.
    fn allows(&self, request: &AccessRequest) -> bool {
        let any = |items: &[String], wanted: &str| items.iter().any(|i| i == "*" || i == wanted);
        any(&self.verbs, request.verb)
            && any(&self.api_groups, &request.group)
            && self.resource_matches(request)
            && (self.resource_names.is_empty()
                || request
                    .name
                    .as_ref()
                    .is_some_and(|name| self.resource_names.contains(name)))
    }

    /// `*`, the resource (`resource/subresource` for a subresource) or `*/subresource`,
    /// compared without building the combined name on this per-request path.
    fn resource_matches(&self, request: &AccessRequest) -> bool {
        let subresource = request.subresource.filter(|sub| !sub.is_empty());
        self.resources.iter().any(|resource| {
            resource == "*"
                || match subresource {
                    None => *resource == request.resource,
                    Some(sub) => {
                        resource.strip_prefix("*/") == Some(sub)
                            || resource.split_once('/') == Some((request.resource.as_str(), sub))
                    }
                }
        })
    }
}

fn rules(policy: Option<&Vec<PolicyRule>>) -> Arc<Vec<Rule>> {
    Arc::new(
        policy
            .map(|rules| rules.iter().filter_map(Rule::from_policy).collect())
            .unwrap_or_default(),
    )
}

/// Who a binding names, as requests are matched against it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Who {
    User(String),
    Group(String),
}

/// The subjects of a binding in `namespace` (`""`: a ClusterRoleBinding) as [`Who`]s. A
/// ServiceAccount is its user name; without a namespace it takes the binding's, and in a
/// ClusterRoleBinding it then matches no one, as in the apiserver.
fn subjects(subjects: Option<&Vec<Subject>>, namespace: &str) -> Vec<Who> {
    subjects
        .into_iter()
        .flatten()
        .filter_map(|subject| match subject.kind.as_str() {
            "User" => Some(Who::User(subject.name.clone())),
            "Group" => Some(Who::Group(subject.name.clone())),
            "ServiceAccount" => {
                let account_namespace = subject
                    .namespace
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(namespace);
                (!account_namespace.is_empty()).then(|| {
                    Who::User(format!(
                        "system:serviceaccount:{account_namespace}:{}",
                        subject.name
                    ))
                })
            }
            _ => None,
        })
        .collect()
}

/// A binding: whom it names and the role it grants.
#[derive(Debug, Clone)]
struct Binding {
    who: Vec<Who>,
    role: RoleRef,
}

/// Bindings of one scope (every ClusterRoleBinding, or one namespace's RoleBindings), by name
/// and by the subjects they name.
#[derive(Debug, Default)]
struct Bindings {
    by_name: HashMap<String, Binding>,
    by_who: HashMap<Who, HashSet<String>>,
}

impl Bindings {
    fn put(&mut self, name: String, binding: Binding) {
        self.remove(&name);
        for who in &binding.who {
            self.by_who
                .entry(who.clone())
                .or_default()
                .insert(name.clone());
        }
        self.by_name.insert(name, binding);
    }

    fn remove(&mut self, name: &str) {
        if let Some(old) = self.by_name.remove(name) {
            for who in old.who {
                if let Some(names) = self.by_who.get_mut(&who) {
                    names.remove(name);
                    if names.is_empty() {
                        self.by_who.remove(&who);
                    }
                }
            }
        }
    }

    /// The bindings naming `identity` (its user or one of its groups).
    fn naming<'a>(&'a self, identity: &'a Identity) -> impl Iterator<Item = &'a Binding> + 'a {
        std::iter::once(Who::User(identity.user.clone()))
            .chain(identity.groups.iter().cloned().map(Who::Group))
            .filter_map(|who| self.by_who.get(&who))
            .flatten()
            .filter_map(|name| self.by_name.get(name))
    }
}

/// What one kind's watch has listed so far.
#[derive(Debug, Default)]
struct Tables {
    cluster_roles: HashMap<String, Arc<Vec<Rule>>>,
    /// By namespace, then name.
    roles: HashMap<String, HashMap<String, Arc<Vec<Rule>>>>,
    cluster_bindings: Bindings,
    /// By namespace.
    role_bindings: HashMap<String, Bindings>,
}

/// The four kinds the index is made of; it decides only once each has been listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RbacKind {
    Role,
    RoleBinding,
    ClusterRole,
    ClusterRoleBinding,
}

/// A change from one kind's watch.
#[derive(Debug, Clone)]
pub enum RbacChange {
    /// The watch (re)lists: what follows replaces all of the kind once `Listed`.
    Relisting(RbacKind),
    Role(Role),
    RoleBinding(RoleBinding),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    RoleDeleted(Role),
    RoleBindingDeleted(RoleBinding),
    ClusterRoleDeleted(ClusterRole),
    ClusterRoleBindingDeleted(ClusterRoleBinding),
    Listed(RbacKind),
}

/// An RBAC object the index is made of, as the change it makes.
pub trait RbacObject: Sized {
    const KIND: RbacKind;
    /// The change this object makes, applied (listed, created, changed) or deleted.
    fn change(self, deleted: bool) -> RbacChange;
}

macro_rules! rbac_object {
    ($type:ident, $deleted:ident) => {
        impl RbacObject for $type {
            const KIND: RbacKind = RbacKind::$type;
            fn change(self, deleted: bool) -> RbacChange {
                if deleted {
                    RbacChange::$deleted(self)
                } else {
                    RbacChange::$type(self)
                }
            }
        }
    };
}

rbac_object!(Role, RoleDeleted);
rbac_object!(RoleBinding, RoleBindingDeleted);
rbac_object!(ClusterRole, ClusterRoleDeleted);
rbac_object!(ClusterRoleBinding, ClusterRoleBindingDeleted);

/// The RBAC index; clones share it.
#[derive(Debug, Clone)]
pub struct RbacIndex {
    inner: Arc<RwLock<State>>,
    /// True once every kind has been listed; requests arriving before wait for it.
    ready: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for RbacIndex {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            ready: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    tables: Tables,
    /// Kinds listed at least once (decisions wait for all four).
    listed: HashSet<RbacKind>,
    /// Kinds being relisted, and the names seen so far: at `Listed`, the others are gone.
    relisting: HashMap<RbacKind, HashSet<(String, String)>>,
}

fn name_of(
    meta: &ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl RbacIndex {
    /// Whether every kind has been listed, so that decisions can be made.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Applies one change.
    pub fn apply(&self, change: RbacChange) {
        let ready = {
            let mut state = self.inner.write().unwrap_or_else(|e| e.into_inner());
            state.apply(change);
            state.listed.len() == 4
        };
        self.ready.send_if_modified(|was| {
            let changed = *was != ready;
            *was = ready;
            changed
        });
    }

    /// Waits until every kind has been listed, at most `timeout`; whether it has. A restarted
    /// hub's agents reconnect at once: asking the apiserver about each of them meanwhile (a
    /// review per request) slowed the very listings they waited for.
    pub async fn until_ready(&self, timeout: std::time::Duration) -> bool {
        let mut ready = self.ready.subscribe();
        tokio::time::timeout(timeout, ready.wait_for(|ready| *ready))
            .await
            .is_ok_and(|listed| listed.is_ok())
    }

    /// Whether RBAC allows `who` the `request` (false also while not every kind is listed).
    pub fn allows(&self, who: &Identity, request: &AccessRequest) -> bool {
        let state = self.read();
        if state.listed.len() < 4 {
            return false;
        }
        let tables = &state.tables;
        let by_cluster_role = |name: &str| tables.cluster_roles.get(name);
        let granted = |binding: &Binding, namespace: &str| {
            let rules = match binding.role.kind.as_str() {
                "ClusterRole" => by_cluster_role(&binding.role.name),
                "Role" => tables
                    .roles
                    .get(namespace)
                    .and_then(|roles| roles.get(&binding.role.name)),
                _ => None,
            };
            rules.is_some_and(|rules| rules.iter().any(|rule| rule.allows(request)))
        };
        if tables
            .cluster_bindings
            .naming(who)
            .any(|binding| granted(binding, ""))
        {
            return true;
        }
        !request.namespace.is_empty()
            && tables
                .role_bindings
                .get(&request.namespace)
                .is_some_and(|bindings| {
                    bindings
                        .naming(who)
                        .any(|binding| granted(binding, &request.namespace))
                })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn apply(&mut self, change: RbacChange) {
        let (kind, key, deleted) = match &change {
            RbacChange::Relisting(kind) => {
                self.relisting.insert(*kind, HashSet::new());
                return;
            }
            RbacChange::Listed(kind) => {
                if let Some(seen) = self.relisting.remove(kind) {
                    self.drop_unseen(*kind, &seen);
                }
                self.listed.insert(*kind);
                return;
            }
            RbacChange::Role(o) => (RbacKind::Role, name_of(&o.metadata), false),
            RbacChange::RoleBinding(o) => (RbacKind::RoleBinding, name_of(&o.metadata), false),
            RbacChange::ClusterRole(o) => (RbacKind::ClusterRole, name_of(&o.metadata), false),
            RbacChange::ClusterRoleBinding(o) => {
                (RbacKind::ClusterRoleBinding, name_of(&o.metadata), false)
            }
            RbacChange::RoleDeleted(o) => (RbacKind::Role, name_of(&o.metadata), true),
            RbacChange::RoleBindingDeleted(o) => {
                (RbacKind::RoleBinding, name_of(&o.metadata), true)
            }
            RbacChange::ClusterRoleDeleted(o) => {
                (RbacKind::ClusterRole, name_of(&o.metadata), true)
            }
            RbacChange::ClusterRoleBindingDeleted(o) => {
                (RbacKind::ClusterRoleBinding, name_of(&o.metadata), true)
            }
        };
        if deleted {
            self.remove(kind, &key);
            return;
        }
        if let Some(seen) = self.relisting.get_mut(&kind) {
            seen.insert(key.clone());
        }
        let tables = &mut self.tables;
        let (namespace, name) = key;
        match change {
            RbacChange::Role(role) => {
                tables
                    .roles
                    .entry(namespace)
                    .or_default()
                    .insert(name, rules(role.rules.as_ref()));
            }
            RbacChange::ClusterRole(role) => {
                tables
                    .cluster_roles
                    .insert(name, rules(role.rules.as_ref()));
            }
            RbacChange::RoleBinding(binding) => {
                let who = subjects(binding.subjects.as_ref(), &namespace);
                tables.role_bindings.entry(namespace).or_default().put(
                    name,
                    Binding {
                        who,
                        role: binding.role_ref,
                    },
                );
            }
            RbacChange::ClusterRoleBinding(binding) => {
                let who = subjects(binding.subjects.as_ref(), "");
                tables.cluster_bindings.put(
                    name,
                    Binding {
                        who,
                        role: binding.role_ref,
                    },
                );
            }
            _ => {}
        }
    }

    fn remove(&mut self, kind: RbacKind, (namespace, name): &(String, String)) {
        let tables = &mut self.tables;
        match kind {
            RbacKind::Role => {
                if let Some(roles) = tables.roles.get_mut(namespace) {
                    roles.remove(name);
                    if roles.is_empty() {
                        tables.roles.remove(namespace);
                    }
                }
            }
            RbacKind::ClusterRole => {
                tables.cluster_roles.remove(name);
            }
            RbacKind::RoleBinding => {
                if let Some(bindings) = tables.role_bindings.get_mut(namespace) {
                    bindings.remove(name);
                    if bindings.by_name.is_empty() {
                        tables.role_bindings.remove(namespace);
                    }
                }
            }
            RbacKind::ClusterRoleBinding => tables.cluster_bindings.remove(name),
        }
    }

    /// After a relisting: what of `kind` was not listed again is gone.
    fn drop_unseen(&mut self, kind: RbacKind, seen: &HashSet<(String, String)>) {
        let tables = &self.tables;
        let present: Vec<(String, String)> = match kind {
            RbacKind::Role => tables
                .roles
                .iter()
                .flat_map(|(ns, roles)| roles.keys().map(move |n| (ns.clone(), n.clone())))
                .collect(),
            RbacKind::ClusterRole => tables
                .cluster_roles
                .keys()
                .map(|n| (String::new(), n.clone()))
                .collect(),
            RbacKind::RoleBinding => tables
                .role_bindings
                .iter()
                .flat_map(|(ns, b)| b.by_name.keys().map(move |n| (ns.clone(), n.clone())))
                .collect(),
            RbacKind::ClusterRoleBinding => tables
                .cluster_bindings
                .by_name
                .keys()
                .map(|n| (String::new(), n.clone()))
                .collect(),
        };
        for key in present.into_iter().filter(|key| !seen.contains(key)) {
            self.remove(kind, &key);
        }
    }
}

#[cfg(test)]
mod tests {
    use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: namespace.map(str::to_owned),
            ..ObjectMeta::default()
        }
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        PolicyRule {
            verbs: strings(verbs),
            api_groups: Some(strings(groups)),
            resources: Some(strings(resources)),
            resource_names: (!names.is_empty()).then(|| strings(names)),
            ..PolicyRule::default()
        }
    }

    fn subject(kind: &str, name: &str, namespace: Option<&str>) -> Subject {
        Subject {
            kind: kind.to_owned(),
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
            ..Subject::default()
        }
    }

    fn role_ref(kind: &str, name: &str) -> RoleRef {
        RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
        }
    }

    fn request(
        verb: &'static str,
        group: &str,
        resource: &str,
        subresource: Option<&'static str>,
        namespace: &str,
        name: Option<&str>,
    ) -> AccessRequest {
        AccessRequest {
            verb,
            group: group.to_owned(),
            resource: resource.to_owned(),
            subresource,
            namespace: namespace.to_owned(),
            name: name.map(str::to_owned),
        }
    }

    fn agent(cluster: &str) -> Identity {
        Identity {
            user: format!("system:open-cluster-management:{cluster}:agent"),
            groups: vec![
                format!("system:open-cluster-management:{cluster}"),
                "system:open-cluster-management:managed-clusters".to_owned(),
            ],
        }
    }

    fn listed(index: &RbacIndex) {
        for kind in [
            RbacKind::Role,
            RbacKind::RoleBinding,
            RbacKind::ClusterRole,
            RbacKind::ClusterRoleBinding,
        ] {
            index.apply(RbacChange::Listed(kind));
        }
    }

    /// OCM's grants for `cluster`: a ClusterRole bound to its group, and a shared work role
    /// bound in its namespace.
    fn ocm_grants(index: &RbacIndex, cluster: &str) {
        let group = format!("system:open-cluster-management:{cluster}");
        index.apply(RbacChange::ClusterRole(ClusterRole {
            metadata: meta(None, &format!("ocm:managedcluster:{cluster}")),
            rules: Some(vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &["cluster.open-cluster-management.io"],
                    &["managedclusters", "managedclusters/status"],
                    &[cluster],
                ),
                rule(
                    &["create", "get"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                    &[],
                ),
            ]),
            ..ClusterRole::default()
        }));
        index.apply(RbacChange::ClusterRoleBinding(ClusterRoleBinding {
            metadata: meta(None, &format!("ocm:managedcluster:{cluster}")),
            role_ref: role_ref("ClusterRole", &format!("ocm:managedcluster:{cluster}")),
            subjects: Some(vec![subject("Group", &group, None)]),
        }));
        index.apply(RbacChange::RoleBinding(RoleBinding {
            metadata: meta(Some(cluster), "ocm:work"),
            role_ref: role_ref("ClusterRole", "ocm:work"),
            subjects: Some(vec![subject("Group", &group, None)]),
        }));
    }

    fn shared_work_role(index: &RbacIndex) {
        index.apply(RbacChange::ClusterRole(ClusterRole {
            metadata: meta(None, "ocm:work"),
            rules: Some(vec![rule(
                &["get", "list", "watch", "update", "patch"],
                &["work.open-cluster-management.io"],
                &["manifestworks", "*/status"],
                &[],
            )]),
            ..ClusterRole::default()
        }));
    }

    #[test]
    fn an_agent_is_allowed_its_own_clusters_grants_and_nothing_of_another() {
        let index = RbacIndex::default();
        shared_work_role(&index);
        ocm_grants(&index, "c1");
        ocm_grants(&index, "c2");
        assert!(
            !index.allows(
                &agent("c1"),
                &request(
                    "get",
                    "cluster.open-cluster-management.io",
                    "managedclusters",
                    None,
                    "",
                    Some("c1")
                )
            ),
            "not listed yet"
        );
        listed(&index);
        let c1 = agent("c1");
        let clusters = "cluster.open-cluster-management.io";
        let works = "work.open-cluster-management.io";
        // The named cluster, its status subresource; not another cluster, not a verb not given.
        assert!(index.allows(
            &c1,
            &request("get", clusters, "managedclusters", None, "", Some("c1"))
        ));
        assert!(index.allows(
            &c1,
            &request(
                "update",
                clusters,
                "managedclusters",
                Some("status"),
                "",
                Some("c1")
            )
        ));
        assert!(!index.allows(
            &c1,
            &request("get", clusters, "managedclusters", None, "", Some("c2"))
        ));
        assert!(!index.allows(
            &c1,
            &request("delete", clusters, "managedclusters", None, "", Some("c1"))
        ));
        // A rule with resource names grants no request without a name (a list of all).
        assert!(!index.allows(
            &c1,
            &request("list", clusters, "managedclusters", None, "", None)
        ));
        // No resource names: any name, or none.
        assert!(index.allows(
            &c1,
            &request(
                "create",
                "certificates.k8s.io",
                "certificatesigningrequests",
                None,
                "",
                None
            )
        ));
        // The RoleBinding grants in its namespace only; `*/status` matches any status.
        assert!(index.allows(
            &c1,
            &request("list", works, "manifestworks", None, "c1", None)
        ));
        assert!(index.allows(
            &c1,
            &request(
                "patch",
                works,
                "manifestworks",
                Some("status"),
                "c1",
                Some("w")
            )
        ));
        assert!(!index.allows(
            &c1,
            &request("list", works, "manifestworks", None, "c2", None)
        ));
        assert!(!index.allows(
            &c1,
            &request("list", works, "manifestworks", None, "", None)
        ));
        assert!(!index.allows(
            &c1,
            &request(
                "patch",
                works,
                "manifestworks",
                Some("finalizers"),
                "c1",
                None
            )
        ));
    }

    #[tokio::test]
    async fn requests_wait_for_the_listing_only_as_long_as_allowed() {
        let index = RbacIndex::default();
        let short = std::time::Duration::from_millis(20);
        assert!(!index.until_ready(short).await);
        let waiting = tokio::spawn({
            let index = index.clone();
            async move { index.until_ready(std::time::Duration::from_secs(10)).await }
        });
        listed(&index);
        assert!(waiting.await.unwrap());
        assert!(index.until_ready(short).await);
    }

    #[test]
    fn deleting_a_binding_or_its_role_revokes_at_once() {
        let index = RbacIndex::default();
        shared_work_role(&index);
        ocm_grants(&index, "c1");
        listed(&index);
        let c1 = agent("c1");
        let list = request(
            "list",
            "work.open-cluster-management.io",
            "manifestworks",
            None,
            "c1",
            None,
        );
        assert!(index.allows(&c1, &list));
        index.apply(RbacChange::ClusterRoleDeleted(ClusterRole {
            metadata: meta(None, "ocm:work"),
            ..ClusterRole::default()
        }));
        assert!(!index.allows(&c1, &list));
        shared_work_role(&index);
        assert!(index.allows(&c1, &list));
        index.apply(RbacChange::RoleBindingDeleted(RoleBinding {
            metadata: meta(Some("c1"), "ocm:work"),
            ..RoleBinding::default()
        }));
        assert!(!index.allows(&c1, &list));
    }

    #[test]
    fn a_relisting_drops_what_it_no_longer_lists() {
        let index = RbacIndex::default();
        shared_work_role(&index);
        ocm_grants(&index, "c1");
        ocm_grants(&index, "c2");
        listed(&index);
        let get = |c: &str| {
            request(
                "get",
                "cluster.open-cluster-management.io",
                "managedclusters",
                None,
                "",
                Some(c),
            )
        };
        index.apply(RbacChange::Relisting(RbacKind::ClusterRoleBinding));
        index.apply(RbacChange::ClusterRoleBinding(ClusterRoleBinding {
            metadata: meta(None, "ocm:managedcluster:c2"),
            role_ref: role_ref("ClusterRole", "ocm:managedcluster:c2"),
            subjects: Some(vec![subject(
                "Group",
                "system:open-cluster-management:c2",
                None,
            )]),
        }));
        // Until the relisting ends, what it has not yet listed still counts.
        assert!(index.allows(&agent("c1"), &get("c1")));
        index.apply(RbacChange::Listed(RbacKind::ClusterRoleBinding));
        assert!(!index.allows(&agent("c1"), &get("c1")));
        assert!(index.allows(&agent("c2"), &get("c2")));
    }

    #[test]
    fn users_service_accounts_roles_and_wildcards_match_as_in_the_apiserver() {
        let index = RbacIndex::default();
        index.apply(RbacChange::Role(Role {
            metadata: meta(Some("ns"), "everything"),
            rules: Some(vec![rule(&["*"], &["*"], &["*"], &[])]),
        }));
        index.apply(RbacChange::RoleBinding(RoleBinding {
            metadata: meta(Some("ns"), "b"),
            role_ref: role_ref("Role", "everything"),
            subjects: Some(vec![
                subject("User", "alice", None),
                // No namespace: the binding's.
                subject("ServiceAccount", "robot", None),
            ]),
        }));
        // A ServiceAccount without a namespace in a ClusterRoleBinding matches no one.
        index.apply(RbacChange::ClusterRole(ClusterRole {
            metadata: meta(None, "all"),
            rules: Some(vec![rule(&["*"], &["*"], &["*"], &[])]),
            ..ClusterRole::default()
        }));
        index.apply(RbacChange::ClusterRoleBinding(ClusterRoleBinding {
            metadata: meta(None, "nobody"),
            role_ref: role_ref("ClusterRole", "all"),
            subjects: Some(vec![subject("ServiceAccount", "robot", None)]),
        }));
        listed(&index);
        let who = |user: &str| Identity {
            user: user.to_owned(),
            groups: Vec::new(),
        };
        let in_ns = request(
            "delete",
            "apps",
            "deployments",
            Some("scale"),
            "ns",
            Some("x"),
        );
        assert!(index.allows(&who("alice"), &in_ns));
        assert!(index.allows(&who("system:serviceaccount:ns:robot"), &in_ns));
        assert!(!index.allows(&who("bob"), &in_ns));
        let elsewhere = request("delete", "apps", "deployments", None, "other", Some("x"));
        assert!(!index.allows(&who("alice"), &elsewhere));
        assert!(!index.allows(&who("system:serviceaccount::robot"), &elsewhere));
        assert!(!index.allows(&who("system:serviceaccount:ns:robot"), &elsewhere));
    }
}
