//! OCM's MQTT topic layout (sdk-go's MQTT options): the four configured topics, their
//! validation, and how each side derives the topics it publishes to and subscribes to.
//!
//! ```text
//! sourceEvents     [$share/<group>/]<word>/<source|+>/<word>/<cluster|+>/sourceevents
//! agentEvents      [$share/<group>/]<word>/<source|+>/<word>/<cluster|+>/agentevents
//! sourceBroadcast  [$share/<group>/]<word>/<source|+>/sourcebroadcast        (optional)
//! agentBroadcast   [$share/<group>/]<word>/<cluster|+>/agentbroadcast        (optional)
//! ```

/// The topics of an MQTT configuration (`topics:` in OCM's YAML).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    source_events: String,
    agent_events: String,
    source_broadcast: Option<String>,
    agent_broadcast: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `<word>/<id|+>/<word>/<id|+>/<suffix>`
    Events(&'static str),
    /// `<word>/<id|+>/<suffix>`
    Broadcast(&'static str),
}

impl Topics {
    /// Validates every topic against OCM's patterns.
    pub fn new(
        source_events: &str,
        agent_events: &str,
        source_broadcast: Option<&str>,
        agent_broadcast: Option<&str>,
    ) -> Result<Self, TopicError> {
        validate("sourceEvents", source_events, Kind::Events("sourceevents"))?;
        validate("agentEvents", agent_events, Kind::Events("agentevents"))?;
        if let Some(topic) = source_broadcast {
            validate("sourceBroadcast", topic, Kind::Broadcast("sourcebroadcast"))?;
        }
        if let Some(topic) = agent_broadcast {
            validate("agentBroadcast", topic, Kind::Broadcast("agentbroadcast"))?;
        }
        Ok(Self {
            source_events: source_events.to_owned(),
            agent_events: agent_events.to_owned(),
            source_broadcast: source_broadcast.map(str::to_owned),
            agent_broadcast: agent_broadcast.map(str::to_owned),
        })
    }

    /// Where a source publishes an event for `cluster` (spec events, per-cluster status
    /// resync): sourceEvents with its first `+` replaced by the cluster. An event for all
    /// clusters (`cluster == ""`, an all-clusters status resync) goes to sourceBroadcast with its
    /// first `+` replaced by the source ID.
    pub fn source_publish(&self, source_id: &str, cluster: &str) -> Result<String, TopicError> {
        if cluster.is_empty() {
            let broadcast = self
                .source_broadcast
                .as_deref()
                .ok_or(TopicError::NoBroadcast("sourceBroadcast"))?;
            return concrete(replace_first(publishable(broadcast), source_id));
        }
        concrete(replace_first(publishable(&self.source_events), cluster))
    }

    /// What a source subscribes to: agentEvents as configured (possibly a shared
    /// subscription), and agentBroadcast if set. agentEvents must name this source.
    pub fn source_subscriptions(&self, source_id: &str) -> Result<Vec<String>, TopicError> {
        let segments: Vec<&str> = publishable(&self.agent_events).split('/').collect();
        if segments.get(1) != Some(&source_id) {
            return Err(TopicError::ForeignSource {
                topic: self.agent_events.clone(),
                source_id: source_id.to_owned(),
            });
        }
        Ok(std::iter::once(self.agent_events.clone())
            .chain(self.agent_broadcast.clone())
            .collect())
    }

    /// What an agent subscribes to: sourceEvents with its last `+` replaced by the cluster, and
    /// sourceBroadcast if set.
    pub fn agent_subscriptions(&self, cluster: &str) -> Vec<String> {
        let own = replace_last(&self.source_events, cluster);
        std::iter::once(own)
            .chain(self.source_broadcast.clone())
            .collect()
    }

    /// Where an agent publishes: status and per-source spec resync go to agentEvents with its
    /// last `+` replaced by the cluster (the source comes from the configured topic, so it must
    /// be concrete). A spec resync to all sources (`original_source == ""`) goes to
    /// agentBroadcast with its first `+` replaced by the cluster, or, without one, to the same
    /// topic as the rest.
    pub fn agent_publish(
        &self,
        cluster: &str,
        original_source: &str,
    ) -> Result<String, TopicError> {
        if original_source.is_empty()
            && let Some(broadcast) = &self.agent_broadcast
        {
            return concrete(replace_first(publishable(broadcast), cluster));
        }
        concrete(replace_last(publishable(&self.agent_events), cluster))
    }
}

/// The cluster whose agent published on `topic` (a received agentEvents or agentBroadcast
/// topic): the broker lets only that agent publish there, so a source takes events on it only
/// for that cluster.
pub fn publishing_cluster(topic: &str) -> Option<&str> {
    match topic.split('/').collect::<Vec<_>>().as_slice() {
        [_, _, _, cluster, "agentevents"] | [_, cluster, "agentbroadcast"] => Some(cluster),
        _ => None,
    }
}

/// Publishing to a shared-subscription name is meaningless; publish to the topic it shares.
fn publishable(topic: &str) -> &str {
    topic
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(topic, |(_, topic)| topic)
}

fn replace_first(topic: &str, value: &str) -> String {
    topic.replacen('+', value, 1)
}

fn replace_last(topic: &str, value: &str) -> String {
    match topic.rfind('+') {
        Some(i) => format!("{}{value}{}", &topic[..i], &topic[i + 1..]),
        None => topic.to_owned(),
    }
}

/// A publish topic may not keep a wildcard.
fn concrete(topic: String) -> Result<String, TopicError> {
    if topic.contains('+') || topic.contains('#') {
        return Err(TopicError::WildcardInPublishTopic(topic));
    }
    Ok(topic)
}

fn validate(key: &'static str, topic: &str, kind: Kind) -> Result<(), TopicError> {
    let invalid = || TopicError::Invalid {
        key,
        topic: topic.to_owned(),
    };
    let mut segments: Vec<&str> = topic.split('/').collect();
    if segments.first() == Some(&"$share") {
        let group = segments.get(1).ok_or_else(invalid)?;
        if !is_id(group) {
            return Err(invalid());
        }
        segments.drain(..2);
    }
    let is_word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    let is_id_or_plus = |s: &str| s == "+" || is_id(s);
    let ok = match (kind, segments.as_slice()) {
        (Kind::Events(suffix), [w1, id1, w2, id2, last]) => {
            is_word(w1)
                && is_id_or_plus(id1)
                && is_word(w2)
                && is_id_or_plus(id2)
                && *last == suffix
        }
        (Kind::Broadcast(suffix), [w1, id1, last]) => {
            is_word(w1) && is_id_or_plus(id1) && *last == suffix
        }
        _ => false,
    };
    if ok { Ok(()) } else { Err(invalid()) }
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("MQTT topic {key} {topic:?} does not match OCM's layout")]
    Invalid { key: &'static str, topic: String },
    #[error("no {0} topic is configured, and an event for all clusters needs one")]
    NoBroadcast(&'static str),
    #[error("agentEvents topic {topic:?} does not name source {source_id:?}")]
    ForeignSource { topic: String, source_id: String },
    #[error("publish topic {0:?} still has a wildcard; configure a concrete source or cluster")]
    WildcardInPublishTopic(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publishing_cluster_comes_from_the_agent_topic() {
        assert_eq!(
            publishing_cluster("sources/kube/consumers/cluster1/agentevents"),
            Some("cluster1")
        );
        assert_eq!(
            publishing_cluster("clusters/cluster2/agentbroadcast"),
            Some("cluster2")
        );
        assert_eq!(
            publishing_cluster("sources/kube/consumers/cluster1/sourceevents"),
            None
        );
    }

    /// Maestro's production layout: the server side shares status among its replicas.
    fn maestro_server() -> Topics {
        Topics::new(
            "sources/maestro/consumers/+/sourceevents",
            "$share/statussubscribers/sources/maestro/consumers/+/agentevents",
            Some("sources/+/sourcebroadcast"),
            None,
        )
        .unwrap()
    }

    fn maestro_agent() -> Topics {
        Topics::new(
            "sources/maestro/consumers/cluster1/sourceevents",
            "sources/maestro/consumers/cluster1/agentevents",
            None,
            Some("clusters/+/agentbroadcast"),
        )
        .unwrap()
    }

    #[test]
    fn source_publishes_per_cluster_and_broadcasts_all_cluster_resyncs() {
        let topics = maestro_server();
        assert_eq!(
            topics.source_publish("maestro", "cluster1").unwrap(),
            "sources/maestro/consumers/cluster1/sourceevents"
        );
        assert_eq!(
            topics.source_publish("maestro", "").unwrap(),
            "sources/maestro/sourcebroadcast"
        );
        let without_broadcast = Topics::new(
            "sources/maestro/consumers/+/sourceevents",
            "sources/maestro/consumers/+/agentevents",
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            without_broadcast.source_publish("maestro", ""),
            Err(TopicError::NoBroadcast("sourceBroadcast"))
        );
    }

    #[test]
    fn source_subscribes_to_its_own_agent_events_only() {
        let topics = maestro_server();
        assert_eq!(
            topics.source_subscriptions("maestro").unwrap(),
            ["$share/statussubscribers/sources/maestro/consumers/+/agentevents"]
        );
        assert!(matches!(
            topics.source_subscriptions("other"),
            Err(TopicError::ForeignSource { .. })
        ));
    }

    #[test]
    fn agent_subscribes_to_its_cluster_and_publishes_status_and_resyncs() {
        let server = maestro_server();
        assert_eq!(
            server.agent_subscriptions("cluster1"),
            [
                "sources/maestro/consumers/cluster1/sourceevents",
                "sources/+/sourcebroadcast"
            ]
        );
        let agent = maestro_agent();
        assert_eq!(
            agent.agent_publish("cluster1", "maestro").unwrap(),
            "sources/maestro/consumers/cluster1/agentevents"
        );
        assert_eq!(
            agent.agent_publish("cluster1", "").unwrap(),
            "clusters/cluster1/agentbroadcast"
        );
        let wildcard_agent_events = Topics::new(
            "sources/maestro/consumers/+/sourceevents",
            "sources/+/consumers/+/agentevents",
            None,
            None,
        )
        .unwrap();
        assert!(matches!(
            wildcard_agent_events.agent_publish("cluster1", "maestro"),
            Err(TopicError::WildcardInPublishTopic(_))
        ));
        let fallback = Topics::new(
            "sources/maestro/consumers/+/sourceevents",
            "sources/maestro/consumers/+/agentevents",
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            fallback.agent_publish("cluster1", "").unwrap(),
            "sources/maestro/consumers/cluster1/agentevents"
        );
    }

    #[test]
    fn topics_outside_ocms_layout_are_refused_naming_the_key() {
        let bad = [
            (
                "sources/maestro/consumers/+/agentevents",
                "sources/maestro/consumers/+/agentevents",
            ),
            (
                "Sources/maestro/consumers/+/sourceevents",
                "sources/maestro/consumers/+/agentevents",
            ),
            (
                "sources/maestro/+/sourceevents",
                "sources/maestro/consumers/+/agentevents",
            ),
            (
                "sources/maestro/consumers/#/sourceevents",
                "sources/maestro/consumers/+/agentevents",
            ),
            (
                "$share//sources/maestro/consumers/+/sourceevents",
                "sources/maestro/consumers/+/agentevents",
            ),
        ];
        for (source_events, agent_events) in bad {
            let err = Topics::new(source_events, agent_events, None, None).unwrap_err();
            assert!(
                err.to_string().contains("sourceEvents"),
                "{source_events}: {err}"
            );
        }
        let err = Topics::new(
            "sources/maestro/consumers/+/sourceevents",
            "sources/maestro/consumers/+/agentevents",
            Some("sources/+/x/sourcebroadcast"),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("sourceBroadcast"), "{err}");
    }
}
