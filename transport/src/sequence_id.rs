//! `sequenceid`: the ordering ID of agent status events, a snowflake ID exactly as
//! `github.com/bwmarrin/snowflake` makes it with `NewNode(1)` (as OCM's sdk-go does):
//! 41 bits of milliseconds since the Twitter epoch, 10 bits of node (always 1), 12 bits of step.
//! Go sources and Maestro reject IDs of another node and drop status whose ID is not newer.

use std::cmp::Ordering;
use std::sync::Mutex;

/// Milliseconds since the Unix epoch of bwmarrin/snowflake's default epoch (2010-11-04).
pub const EPOCH_MS: i64 = 1_288_834_974_657;
/// The node OCM's agents use.
pub const NODE: u16 = 1;
const NODE_BITS: u32 = 10;
const STEP_BITS: u32 = 12;
const STEP_MASK: u16 = (1 << STEP_BITS) - 1;
const NODE_SHIFT: u32 = STEP_BITS;
const TIME_SHIFT: u32 = NODE_BITS + STEP_BITS;

/// A snowflake ID; on the wire, its decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SequenceId(i64);

impl SequenceId {
    pub fn from_parts(millis_since_epoch: i64, node: u16, step: u16) -> Self {
        Self(
            millis_since_epoch << TIME_SHIFT
                | i64::from(node) << NODE_SHIFT
                | i64::from(step & STEP_MASK),
        )
    }

    pub fn as_i64(self) -> i64 {
        self.0
    }

    /// Milliseconds since [`EPOCH_MS`].
    pub fn millis(self) -> i64 {
        self.0 >> TIME_SHIFT
    }

    pub fn node(self) -> u16 {
        ((self.0 >> NODE_SHIFT) & ((1 << NODE_BITS) - 1)) as u16
    }

    pub fn step(self) -> u16 {
        (self.0 & i64::from(STEP_MASK)) as u16
    }

    /// Orders two IDs as OCM's source stores do: by time, then step; IDs of different nodes
    /// cannot be compared.
    pub fn compare(self, other: Self) -> Result<Ordering, SequenceIdError> {
        if self.node() != other.node() {
            return Err(SequenceIdError::NodeMismatch {
                left: self.node(),
                right: other.node(),
            });
        }
        Ok(self
            .millis()
            .cmp(&other.millis())
            .then(self.step().cmp(&other.step())))
    }
}

impl std::fmt::Display for SequenceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for SequenceId {
    type Err = SequenceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<i64>() {
            Ok(id) if id >= 0 => Ok(Self(id)),
            _ => Err(SequenceIdError::NotAnId(s.to_owned())),
        }
    }
}

/// Makes strictly increasing IDs for node 1. Unlike bwmarrin/snowflake it never goes back when
/// the wall clock does: it keeps counting steps on the last millisecond it used.
#[derive(Debug, Default)]
pub struct SequenceIdGenerator {
    state: Mutex<(i64, u16)>, // (last millisecond used, last step)
}

impl SequenceIdGenerator {
    /// The next ID at the current wall-clock time.
    pub fn next_id(&self) -> SequenceId {
        let now = jiff::Timestamp::now().as_millisecond() - EPOCH_MS;
        self.next_at(now)
    }

    /// The next ID at `now` (milliseconds since [`EPOCH_MS`]).
    pub fn next_at(&self, now: i64) -> SequenceId {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (last, step) = *state;
        let (millis, step) = if now > last {
            (now, 0)
        } else if step < STEP_MASK {
            (last, step + 1)
        } else {
            // 4096 IDs in one millisecond: borrow the next millisecond, as snowflake waits for it.
            (last + 1, 0)
        };
        *state = (millis, step);
        SequenceId::from_parts(millis, NODE, step)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceIdError {
    #[error("sequence IDs of nodes {left} and {right} cannot be compared")]
    NodeMismatch { left: u16, right: u16 },
    #[error("{0:?} is not a snowflake sequence ID")]
    NotAnId(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_example_decodes_to_node_one_at_its_time() {
        // A status event captured on the wire: sent at 2025-12-16T06:00:17.9 Z by a Go work agent.
        let id: SequenceId = "2000808179729960960".parse().unwrap();
        assert_eq!(id.node(), NODE);
        let unix_ms = id.millis() + EPOCH_MS;
        let sent: jiff::Timestamp = "2025-12-16T06:00:17Z".parse().unwrap();
        assert!((unix_ms - sent.as_millisecond()).abs() < 2_000, "{unix_ms}");
        assert_eq!(
            SequenceId::from_parts(id.millis(), id.node(), id.step()),
            id
        );
        assert_eq!(id.to_string(), "2000808179729960960");
    }

    #[test]
    fn ids_increase_within_a_millisecond_across_them_and_when_the_clock_goes_back() {
        let generator = SequenceIdGenerator::default();
        let ids = [
            generator.next_at(1_000),
            generator.next_at(1_000),
            generator.next_at(1_001),
            generator.next_at(900), // the wall clock stepped back
        ];
        for pair in ids.windows(2) {
            assert_eq!(pair[0].compare(pair[1]), Ok(Ordering::Less), "{pair:?}");
            assert!(pair[0].as_i64() < pair[1].as_i64());
        }
        assert_eq!((ids[1].millis(), ids[1].step()), (1_000, 1));
        assert_eq!((ids[3].millis(), ids[3].step()), (1_001, 1));
    }

    #[test]
    fn a_full_millisecond_rolls_over_to_the_next() {
        let generator = SequenceIdGenerator::default();
        let ids: Vec<SequenceId> = (0..=4096).map(|_| generator.next_at(5)).collect();
        assert_eq!((ids[4095].millis(), ids[4095].step()), (5, 4095));
        assert_eq!((ids[4096].millis(), ids[4096].step()), (6, 0));
    }

    #[test]
    fn ids_of_different_nodes_do_not_compare_and_garbage_does_not_parse() {
        let a = SequenceId::from_parts(10, 1, 0);
        let b = SequenceId::from_parts(10, 2, 0);
        assert_eq!(
            a.compare(b),
            Err(SequenceIdError::NodeMismatch { left: 1, right: 2 })
        );
        assert!("-1".parse::<SequenceId>().is_err());
        assert!("12a".parse::<SequenceId>().is_err());
    }
}
