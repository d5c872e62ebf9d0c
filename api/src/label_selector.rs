//! Kubernetes label selectors (`metav1.LabelSelector`) evaluated as Go's
//! `metav1.LabelSelectorAsSelector` evaluates them, for cluster sets and placements:
//!
//! - no selector at all selects **nothing**; an empty one (`{}`) selects **everything**;
//! - `matchLabels` and every `matchExpressions` requirement must all hold;
//! - `In` needs the key with one of the values, `NotIn` holds when the key is absent or its value
//!   is none of them, `Exists` / `DoesNotExist` test the key alone;
//! - an operator other than those four, `In`/`NotIn` without values, or `Exists`/`DoesNotExist`
//!   with values make the selector invalid ([`LabelSelectorError`]), as in Go.
//!
//! Label key and value syntax is not checked: objects' labels are validated by the apiserver,
//! so a malformed key or value in a selector simply never matches.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A label selector, checked once and matched against any number of label sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// `None`: selects nothing (Go's `labels.Nothing()`).
    requirements: Option<Vec<Requirement>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// Why a label selector cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelSelectorError {
    /// The operator is none of `In`, `NotIn`, `Exists`, `DoesNotExist`.
    UnknownOperator { key: String, operator: String },
    /// `In` or `NotIn` without values.
    ValuesRequired { key: String, operator: String },
    /// `Exists` or `DoesNotExist` with values.
    ValuesForbidden { key: String, operator: String },
}

impl fmt::Display for LabelSelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownOperator { key, operator } => write!(
                f,
                "label selector requirement on {key:?}: {operator:?} is not a valid operator"
            ),
            Self::ValuesRequired { key, operator } => write!(
                f,
                "label selector requirement on {key:?}: operator {operator} needs values"
            ),
            Self::ValuesForbidden { key, operator } => write!(
                f,
                "label selector requirement on {key:?}: operator {operator} takes no values"
            ),
        }
    }
}

impl std::error::Error for LabelSelectorError {}

impl Selector {
    /// Selects every label set.
    pub fn everything() -> Self {
        Self {
            requirements: Some(Vec::new()),
        }
    }

    /// Selects no label set.
    pub fn nothing() -> Self {
        Self { requirements: None }
    }

    /// Selects label sets where `key` is `value` (Go's `labels.SelectorFromSet`).
    pub fn label_equals(key: &str, value: &str) -> Self {
        Self {
            requirements: Some(vec![Requirement::Equals(key.to_owned(), value.to_owned())]),
        }
    }

    /// The selector `selector` describes; `None` selects nothing.
    pub fn new(selector: Option<&LabelSelector>) -> Result<Self, LabelSelectorError> {
        let Some(selector) = selector else {
            return Ok(Self::nothing());
        };
        let mut requirements: Vec<Requirement> = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(key, value)| Requirement::Equals(key.clone(), value.clone()))
            .collect();
        for expression in selector.match_expressions.iter().flatten() {
            let key = expression.key.clone();
            let operator = expression.operator.clone();
            let values = expression.values.clone().unwrap_or_default();
            let requirement = match operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(LabelSelectorError::ValuesRequired { key, operator });
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(LabelSelectorError::ValuesForbidden { key, operator });
                }
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                _ => return Err(LabelSelectorError::UnknownOperator { key, operator }),
            };
            requirements.push(requirement);
        }
        Ok(Self {
            requirements: Some(requirements),
        })
    }

    /// Whether an object with `labels` (its `metadata.labels`; absent means none) is selected.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let Some(requirements) = &self.requirements else {
            return false;
        };
        let get = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
        requirements.iter().all(|requirement| match requirement {
            Requirement::Equals(key, value) => get(key) == Some(value.as_str()),
            Requirement::In(key, values) => get(key).is_some_and(|v| values.iter().any(|x| x == v)),
            Requirement::NotIn(key, values) => {
                get(key).is_none_or(|v| values.iter().all(|x| x != v))
            }
            Requirement::Exists(key) => get(key).is_some(),
            Requirement::DoesNotExist(key) => get(key).is_none(),
        })
    }

    /// Whether this selector selects every label set.
    pub fn is_everything(&self) -> bool {
        self.requirements.as_ref().is_some_and(Vec::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    fn selector(
        match_labels: &[(&str, &str)],
        expressions: Vec<LabelSelectorRequirement>,
    ) -> Result<Selector, LabelSelectorError> {
        Selector::new(Some(&LabelSelector {
            match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
            match_expressions: (!expressions.is_empty()).then_some(expressions),
        }))
    }

    #[test]
    fn no_selector_selects_nothing_and_an_empty_one_everything() {
        let nothing = Selector::new(None).unwrap();
        assert!(!nothing.matches(None));
        assert!(!nothing.matches(Some(&labels(&[("a", "b")]))));
        assert!(!nothing.is_everything());

        let everything = Selector::new(Some(&LabelSelector::default())).unwrap();
        assert!(everything.matches(None));
        assert!(everything.matches(Some(&labels(&[("a", "b")]))));
        assert!(everything.is_everything());
        assert_eq!(everything, Selector::everything());

        let empty_lists = Selector::new(Some(&LabelSelector {
            match_labels: Some(BTreeMap::new()),
            match_expressions: Some(Vec::new()),
        }))
        .unwrap();
        assert!(empty_lists.is_everything());
    }

    #[test]
    fn match_labels_must_all_be_present_with_their_values() {
        let s = selector(&[("env", "prod"), ("tier", "db")], vec![]).unwrap();
        assert!(s.matches(Some(&labels(&[
            ("env", "prod"),
            ("tier", "db"),
            ("x", "y")
        ]))));
        assert!(!s.matches(Some(&labels(&[("env", "prod")]))));
        assert!(!s.matches(Some(&labels(&[("env", "dev"), ("tier", "db")]))));
        assert!(!s.matches(None));
    }

    #[test]
    fn each_operator_as_go_evaluates_it() {
        let prod = labels(&[("env", "prod")]);
        let dev = labels(&[("env", "dev")]);
        let none = labels(&[]);
        let check = |operator: &str, values: &[&str]| {
            let s = selector(&[], vec![expression("env", operator, values)]).unwrap();
            [
                s.matches(Some(&prod)),
                s.matches(Some(&dev)),
                s.matches(Some(&none)),
                s.matches(None),
            ]
        };
        assert_eq!(check("In", &["prod", "qa"]), [true, false, false, false]);
        // NotIn holds when the key is absent, as in Go.
        assert_eq!(check("NotIn", &["prod", "qa"]), [false, true, true, true]);
        assert_eq!(check("Exists", &[]), [true, true, false, false]);
        assert_eq!(check("DoesNotExist", &[]), [false, false, true, true]);
    }

    #[test]
    fn labels_and_expressions_are_anded() {
        let s = selector(
            &[("region", "eu")],
            vec![
                expression("env", "In", &["prod"]),
                expression("legacy", "DoesNotExist", &[]),
            ],
        )
        .unwrap();
        assert!(s.matches(Some(&labels(&[("region", "eu"), ("env", "prod")]))));
        assert!(!s.matches(Some(&labels(&[("region", "us"), ("env", "prod")]))));
        assert!(!s.matches(Some(&labels(&[
            ("region", "eu"),
            ("env", "prod"),
            ("legacy", "")
        ]))));
    }

    #[test]
    fn invalid_requirements_are_refused_naming_the_key() {
        assert_eq!(
            selector(&[], vec![expression("env", "in", &["prod"])]),
            Err(LabelSelectorError::UnknownOperator {
                key: "env".into(),
                operator: "in".into()
            })
        );
        assert_eq!(
            selector(&[], vec![expression("env", "NotIn", &[])]),
            Err(LabelSelectorError::ValuesRequired {
                key: "env".into(),
                operator: "NotIn".into()
            })
        );
        let err = selector(&[], vec![expression("env", "Exists", &["x"])]).unwrap_err();
        assert_eq!(
            err,
            LabelSelectorError::ValuesForbidden {
                key: "env".into(),
                operator: "Exists".into()
            }
        );
        assert!(err.to_string().contains("\"env\""));
    }

    #[test]
    fn label_equals_is_one_exact_label() {
        let s = Selector::label_equals("cluster.open-cluster-management.io/clusterset", "dev");
        assert!(s.matches(Some(&labels(&[(
            "cluster.open-cluster-management.io/clusterset",
            "dev"
        )]))));
        assert!(!s.matches(Some(&labels(&[(
            "cluster.open-cluster-management.io/clusterset",
            "default"
        )]))));
        assert!(!s.matches(None));
    }
}
