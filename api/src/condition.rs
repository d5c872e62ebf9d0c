//! `metav1.Condition` with the validation OCM's CRDs carry for it (status enum, reason and type
//! patterns, lengths), so the CRDs generated from our types admit exactly what OCM's admit. The
//! JSON is the same as k8s-openapi's `Condition`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One aspect of an object's state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type, e.g. `ManagedClusterConditionAvailable`.
    #[schemars(length(max = 316), regex(pattern = QUALIFIED_NAME))]
    pub r#type: String,
    pub status: ConditionStatus,
    /// The `.metadata.generation` the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
    /// When the status last changed.
    pub last_transition_time: Time,
    /// A CamelCase reason for the last transition.
    #[schemars(length(min = 1, max = 1024), regex(pattern = REASON))]
    pub reason: String,
    /// Human-readable details.
    #[schemars(length(max = 32768))]
    pub message: String,
}

/// `True`, `False` or `Unknown`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// A Kubernetes qualified name with an optional DNS-subdomain prefix (`metav1.Condition.type`,
/// taint keys).
pub(crate) const QUALIFIED_NAME: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";
const REASON: &str = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";
/// A DNS label (namespace names).
pub(crate) const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Finds the condition of `condition_type`.
pub fn find<'a>(conditions: &'a [Condition], condition_type: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.r#type == condition_type)
}

/// Sets the condition of `condition_type` to `status`, `reason` and `message`, keeping its
/// `lastTransitionTime` unless the status changes (as `meta.SetStatusCondition` does). Returns
/// whether anything changed.
pub fn set(
    conditions: &mut Vec<Condition>,
    condition_type: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    now: k8s_openapi::jiff::Timestamp,
) -> bool {
    match conditions.iter_mut().find(|c| c.r#type == condition_type) {
        Some(existing) => {
            let mut changed = false;
            if existing.status != status {
                existing.status = status;
                existing.last_transition_time = Time(now);
                changed = true;
            }
            if existing.reason != reason || existing.message != message {
                existing.reason = reason.to_owned();
                existing.message = message.to_owned();
                changed = true;
            }
            changed
        }
        None => {
            conditions.push(Condition {
                r#type: condition_type.to_owned(),
                status,
                observed_generation: None,
                last_transition_time: Time(now),
                reason: reason.to_owned(),
                message: message.to_owned(),
            });
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> k8s_openapi::jiff::Timestamp {
        k8s_openapi::jiff::Timestamp::from_second(second).unwrap_or_default()
    }

    #[test]
    fn setting_a_condition_moves_its_transition_time_only_when_the_status_changes() {
        let mut conditions = Vec::new();
        assert!(set(
            &mut conditions,
            "Joined",
            ConditionStatus::True,
            "Joined",
            "ok",
            at(10)
        ));
        assert!(!set(
            &mut conditions,
            "Joined",
            ConditionStatus::True,
            "Joined",
            "ok",
            at(20)
        ));
        assert!(set(
            &mut conditions,
            "Joined",
            ConditionStatus::True,
            "Rejoined",
            "again",
            at(30)
        ));
        assert_eq!(conditions[0].last_transition_time, Time(at(10)));
        assert!(set(
            &mut conditions,
            "Joined",
            ConditionStatus::False,
            "Left",
            "gone",
            at(40)
        ));
        assert_eq!(conditions[0].last_transition_time, Time(at(40)));
        assert_eq!(
            find(&conditions, "Joined").map(|c| c.status),
            Some(ConditionStatus::False)
        );
        assert_eq!(conditions.len(), 1);
    }
}
