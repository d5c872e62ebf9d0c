//! The fuzz harness shared by `transport/tests/fuzz_decoders.rs` and
//! `hub-server/tests/fuzz_decoders.rs`: proptest on the stable toolchain (no libFuzzer), with
//!
//! - a case count per target: `OCM_FUZZ_CASES`, else `PROPTEST_CASES`, else [`DEFAULT_CASES`]
//!   (small enough for the normal suite in a debug build);
//! - a seed printed with every result, and taken from `OCM_FUZZ_SEED` (or proptest's own
//!   `PROPTEST_RNG_SEED`) to replay a run;
//! - no regression files written: a real finding becomes a unit test beside the decoder;
//! - an allocation bound on every case ([`bounded`]): the decoder's peak heap on this thread,
//!   counted by `allocation-counter`'s global allocator, stays within a multiple of the input's
//!   size, so a length a peer claims (or an alias it repeats) cannot make us allocate what it
//!   did not send;
//! - mutators that start from valid encodings: bytes flipped, set, inserted (with tokens of the
//!   format: JSON, YAML, PEM, protobuf varints, DER lengths), removed, duplicated and truncated
//!   ([`mutated_bytes`]), and JSON values replaced, removed, added, nested deep or widened
//!   ([`mutated_json`]).

#![allow(dead_code)] // each test binary uses its own part of the harness

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::Value;

/// Cases per target in the normal suite.
pub(crate) const DEFAULT_CASES: u32 = 384;

/// How much heap a decode may take at its peak: `factor` bytes per byte of input plus `slack`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bound {
    pub(crate) factor: usize,
    /// What a decode takes whatever its input: error messages, tables, a parser's first buffers.
    pub(crate) slack: usize,
}

/// The bound of every target unless it says why it needs another: 256 bytes of heap per byte of
/// input plus 256 KiB. What honest decoding costs at most, measured: a typed decoder turns `{},`
/// into a whole struct (ObjectMeta's `managedFields` entries are 176 bytes each) in a vector
/// that, as it doubles, briefly holds three times its elements (144x measured); a JSON object of
/// one key (`{"":0},`) is a 630-byte B-tree node (98x measured). A decoder that trusts a length a
/// peer claims allocates what was claimed, not what was sent, and fails it; the targets that
/// send such lengths use a far tighter bound.
pub(crate) const DEFAULT_BOUND: Bound = Bound {
    factor: 256,
    slack: 256 << 10,
};

/// The number of cases each target runs.
pub(crate) fn cases() -> u32 {
    let from = |name: &str| std::env::var(name).ok()?.trim().parse().ok();
    from("OCM_FUZZ_CASES")
        .or_else(|| from("PROPTEST_CASES"))
        .unwrap_or(DEFAULT_CASES)
}

fn seed() -> u64 {
    let from = |name: &str| std::env::var(name).ok()?.trim().parse().ok();
    from("OCM_FUZZ_SEED")
        .or_else(|| from("PROPTEST_RNG_SEED"))
        .unwrap_or_else(|| {
            // A new seed each run, so the suite keeps exploring; printed to replay it.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            nanos.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
        })
}

/// Peak heap of one target, for the summary line.
#[derive(Debug, Default, Clone, Copy)]
struct Peak {
    bytes: u64,
    input: usize,
    ratio: f64,
}

thread_local! {
    // The largest peak of the target running on this thread, and its ratio to the input.
    static PEAK: RefCell<Peak> = RefCell::new(Peak::default());
    static BOUND: RefCell<Bound> = const { RefCell::new(DEFAULT_BOUND) };
    // How many cases reached each outcome a target notes, to show how deep the inputs go.
    static REACHED: RefCell<std::collections::BTreeMap<&'static str, u64>> =
        const { RefCell::new(std::collections::BTreeMap::new()) };
    // Set while a case runs: its panics are reported once, shrunk, not at every attempt.
    static QUIET: RefCell<bool> = const { RefCell::new(false) };
}

/// Keeps the panic hook quiet for panics inside fuzz cases (proptest reports the minimal one);
/// every other panic is printed as before.
fn quiet_panics_in_cases() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| *q.borrow()) {
                previous(info);
            }
        }));
    });
}

/// Runs `check` on `cases()` values of `strategy`, each under the allocation bound of its input
/// ([`bounded`] inside `check`), and prints a summary (seen with `--nocapture`). A panic or a
/// failed assertion is shrunk to a minimal input and reported with the seed that found it.
pub(crate) fn run<S: Strategy>(target: &str, strategy: S, check: impl Fn(S::Value))
where
    S::Value: std::fmt::Debug,
{
    run_within(target, DEFAULT_BOUND, strategy, check);
}

/// [`run`] with another allocation bound, for a decoder whose honest cost is known to be higher
/// (its reason stated where it is called).
#[allow(clippy::print_stderr)] // its summary line is what a long session reads (`--nocapture`)
pub(crate) fn run_within<S: Strategy>(
    target: &str,
    bound: Bound,
    strategy: S,
    check: impl Fn(S::Value),
) where
    S::Value: std::fmt::Debug,
{
    let seed = seed();
    let cases = cases();
    let config = Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        // A found failure is reported at once rather than after hours of shrinking.
        max_shrink_time: 60_000,
        ..Config::default()
    };
    PEAK.with(|p| *p.borrow_mut() = Peak::default());
    BOUND.with(|b| *b.borrow_mut() = bound);
    REACHED.with(|r| r.borrow_mut().clear());
    quiet_panics_in_cases();
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |value| {
        QUIET.with(|q| *q.borrow_mut() = true);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| check(value)));
        QUIET.with(|q| *q.borrow_mut() = false);
        outcome.map_err(|panic| TestCaseError::fail(panic_message(&*panic)))
    });
    let elapsed = started.elapsed();
    let peak = PEAK.with(|p| *p.borrow());
    if let Err(failure) = result {
        panic!("fuzz target {target} (seed {seed}, replay with OCM_FUZZ_SEED={seed}): {failure}");
    }
    let reached = REACHED.with(|r| {
        r.borrow()
            .iter()
            .map(|(what, n)| format!("{what} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    eprintln!(
        "fuzz {target}: {cases} cases in {:.1} s, seed {seed}; reached: {reached}; largest peak \
         heap {} B for {} B of input; largest peak per input byte {:.1} (inputs of 4 KiB or \
         more); bound {}x + {} KiB",
        elapsed.as_secs_f64(),
        peak.bytes,
        peak.input,
        peak.ratio,
        bound.factor,
        bound.slack >> 10,
    );
}

/// Counts a case that reached `what` (a decoded value, a refusal), for the summary line.
pub(crate) fn reached(what: &'static str) {
    REACHED.with(|r| *r.borrow_mut().entry(what).or_default() += 1);
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Runs `decode` on an input of `input_len` bytes, asserting that its peak heap on this thread
/// stays within the target's [`Bound`] of the input. Panics propagate.
pub(crate) fn bounded<T>(input_len: usize, decode: impl FnOnce() -> T) -> T {
    let mut outcome = None;
    let info = allocation_counter::measure(|| {
        // Caught inside the measurement, so a panic cannot leave it open.
        outcome = Some(std::panic::catch_unwind(AssertUnwindSafe(decode)));
    });
    let value = match outcome {
        Some(Ok(value)) => value,
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        None => unreachable!("measure runs its closure"),
    };
    let Bound { factor, slack } = BOUND.with(|b| *b.borrow());
    let limit = (factor * input_len + slack) as u64;
    assert!(
        info.bytes_max <= limit,
        "decoding {input_len} bytes took a peak of {} bytes of heap (bound {limit}: {factor}x + {slack})",
        info.bytes_max
    );
    PEAK.with(|p| {
        let mut p = p.borrow_mut();
        if info.bytes_max > p.bytes {
            p.bytes = info.bytes_max;
            p.input = input_len;
        }
        // Below 4 KiB the fixed costs dominate and say nothing about the factor.
        if input_len >= 4096 {
            p.ratio = p.ratio.max(info.bytes_max as f64 / input_len as f64);
        }
    });
    value
}

/// Fails unless the counting allocator is the global one, so the bound is not vacuous.
pub(crate) fn assert_allocations_are_counted() {
    let info = allocation_counter::measure(|| {
        let block = std::hint::black_box(vec![0u8; 4096]);
        drop(block);
    });
    assert!(
        info.bytes_max >= 4096,
        "allocation-counter is not the global allocator: the bound would measure nothing"
    );
}

// ---------------------------------------------------------------------------------------------
// Inputs.

/// Bytes that a failure report shows as escaped text rather than one number per line.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Bytes(pub(crate) Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\" ({} bytes)", self.0.escape_ascii(), self.0.len())
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Arbitrary bytes, up to `max` long (most short, as a fuzzer's corpus starts).
pub(crate) fn random_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => proptest::collection::vec(any::<u8>(), 0..=max),
    ]
    .prop_map(Bytes)
}

/// Strings a peer might send where we expect a name, a number or a time: empty, huge, unicode,
/// control characters, numbers at and past their limits, timestamps at their edges.
pub(crate) fn wild_string() -> impl Strategy<Value = String> {
    let special = proptest::sample::select(vec![
        "",
        " ",
        "0",
        "-1",
        "+5",
        "007",
        "2147483647",
        "2147483648",
        "-2147483649",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551616",
        "1e309",
        "-0",
        "NaN",
        "٣",
        "true",
        "null",
        "{}",
        "[]",
        "{\"a\":",
        "\"",
        "\\",
        "\u{0}",
        "\u{7f}",
        "\u{feff}",
        "\u{202e}",
        "\u{10ffff}",
        "ce-",
        "system:open-cluster-management:cluster1:agent1",
        "cluster1",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
        "2025-12-16T06:00:17.923Z",
        "2025-12-16T06:00:17.923+99:00",
        "2025-02-30T25:61:61Z",
        "-271821-04-20T00:00:00Z",
        "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request",
        "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request",
        "cluster.open-cluster-management.io.v1.managedclusters.spec.create_request",
        "....",
        "a.b.c.spec.watch_request",
        "application/cloudevents+json",
        "application/json",
    ])
    .prop_map(str::to_owned);
    let huge = (
        proptest::sample::select(vec!['a', '.', '-', ':', 'é', '\u{10ffff}', '\0', '\n']),
        1usize..(16 << 10),
    )
        .prop_map(|(c, n)| std::iter::repeat_n(c, n).collect::<String>());
    prop_oneof![
        4 => special,
        3 => "[a-z0-9.:-]{0,24}",
        2 => any::<String>(),
        1 => "[\\x00-\\x1f\\x7f]{1,16}",
        1 => "\\PC{1,24}",
        1 => huge,
    ]
}

/// Tokens worth inserting into bytes of any of our formats.
fn tokens() -> Vec<&'static [u8]> {
    vec![
        // JSON
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"\"",
        b"\\",
        b"\\u0000",
        b"\\ud800",
        b"\\uDFFF",
        b"null",
        b"true",
        b"-",
        b"1e999999",
        b"-0.0e-0",
        b"18446744073709551616",
        b"\"kind\":",
        b"\"apiVersion\":",
        b"\"metadata\":{",
        b"\"data_base64\":\"",
        b"\"specversion\":\"1.0\",",
        // YAML
        b"&a ",
        b"*a",
        b"<<: *a",
        b"!!binary ",
        b"!!str ",
        b"? ",
        b"- ",
        b"\n  ",
        b"\n- ",
        b"\t",
        b"|\n",
        b">-\n",
        b"---\n",
        b"...\n",
        b"%YAML 1.2\n",
        b"!include x",
        b"${HOME}",
        // PEM, base64
        b"-----BEGIN CERTIFICATE REQUEST-----\n",
        b"-----END CERTIFICATE REQUEST-----\n",
        b"-----BEGIN CERTIFICATE-----\n",
        b"====",
        b"\r\n",
        // protobuf: varints of huge lengths, an overlong varint, a group start, tags of the
        // length-delimited fields of CloudEvent (attributes, binary_data, proto_data)
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        &[
            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
        ],
        &[0x0b],
        &[0x2a, 0xff, 0xff, 0xff, 0xff, 0x07],
        &[0x32, 0xff, 0xff, 0xff, 0xff, 0x07],
        &[0x42, 0x80, 0x80, 0x80, 0x80, 0x01],
        // DER: lengths of 4 GiB, indefinite length, an OID with a huge arc
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        &[0x30, 0x80],
        &[0x04, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[
            0x06, 0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ],
        &[0x0c, 0x02, 0xc3, 0x28],
        // UTF-8 gone wrong
        &[0xc3],
        &[0xed, 0xa0, 0x80],
        &[0xf4, 0x90, 0x80, 0x80],
        &[0xff, 0xfe],
    ]
}

/// One mutation of a byte string.
#[derive(Debug, Clone)]
pub(crate) enum ByteOp {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    InsertToken(Index, Index),
    RepeatToken(Index, Index, u16),
    Remove(Index, u16),
    Duplicate(Index, u16, u8),
    Truncate(Index),
}

pub(crate) fn byte_op() -> impl Strategy<Value = ByteOp> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, bit)| ByteOp::Flip(i, bit)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteOp::Set(i, b)),
        1 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| ByteOp::Insert(i, b)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| ByteOp::InsertToken(i, t)),
        1 => (any::<Index>(), any::<Index>(), 2u16..2000)
            .prop_map(|(i, t, n)| ByteOp::RepeatToken(i, t, n)),
        2 => (any::<Index>(), 1u16..64).prop_map(|(i, n)| ByteOp::Remove(i, n)),
        1 => (any::<Index>(), 1u16..256, 2u8..16).prop_map(|(i, n, k)| ByteOp::Duplicate(i, n, k)),
        1 => any::<Index>().prop_map(ByteOp::Truncate),
    ]
}

/// Mutated inputs are cut to this: large enough for every structure, small enough that a long
/// session runs a hundred thousand cases per target in minutes.
const MAX_MUTATED_LEN: usize = 64 << 10;

fn apply(bytes: &mut Vec<u8>, op: &ByteOp, tokens: &[&[u8]]) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
    match op {
        ByteOp::Flip(i, bit) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        ByteOp::Set(i, b) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        ByteOp::Flip(..) | ByteOp::Set(..) => {}
        ByteOp::Insert(i, b) => {
            let i = at(i, bytes.len());
            bytes.splice(i..i, b.iter().copied());
        }
        ByteOp::InsertToken(i, t) => {
            let i = at(i, bytes.len());
            bytes.splice(i..i, t.get(tokens).iter().copied());
        }
        ByteOp::RepeatToken(i, t, n) => {
            let i = at(i, bytes.len());
            let token = t.get(tokens);
            let repeated: Vec<u8> = token.repeat(usize::from(*n));
            bytes.splice(i..i, repeated);
        }
        ByteOp::Remove(i, n) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            let end = (i + usize::from(*n)).min(bytes.len());
            bytes.drain(i..end);
        }
        ByteOp::Remove(..) => {}
        ByteOp::Duplicate(i, n, k) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            let end = (i + usize::from(*n)).min(bytes.len());
            let chunk = bytes[i..end].repeat(usize::from(*k));
            bytes.splice(end..end, chunk);
        }
        ByteOp::Duplicate(..) => {}
        ByteOp::Truncate(i) => {
            let len = at(i, bytes.len());
            bytes.truncate(len);
        }
    }
    bytes.truncate(MAX_MUTATED_LEN);
}

/// `seed` with 1 to 8 mutations applied.
pub(crate) fn mutated_bytes(seed: Vec<u8>) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(byte_op(), 1..8)
        .prop_map(move |ops| Bytes(mutate(seed.clone(), &ops)))
}

/// `seed` with `ops` applied.
pub(crate) fn mutate(mut bytes: Vec<u8>, ops: &[ByteOp]) -> Vec<u8> {
    let tokens = tokens();
    for op in ops {
        apply(&mut bytes, op, &tokens);
    }
    bytes
}

/// One of `seeds`, mutated.
pub(crate) fn mutated_seed(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Bytes> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec(byte_op(), 1..8),
    )
        .prop_map(|(seed, ops)| Bytes(mutate(seed, &ops)))
}

/// A JSON value a peer may put where we expect another.
pub(crate) fn interesting_json() -> impl Strategy<Value = Value> {
    let number = proptest::sample::select(vec![
        "0",
        "-1",
        "2147483647",
        "2147483648",
        "-9223372036854775808",
        "18446744073709551615",
        "1.5",
        "1e308",
        "-1e-308",
        "9007199254740993",
    ])
    .prop_map(|n| serde_json::from_str::<Value>(n).unwrap_or(Value::Null));
    let deep = (1usize..300, any::<bool>()).prop_map(|(depth, arrays)| {
        (0..depth).fold(Value::Null, |inner, _| {
            if arrays {
                Value::Array(vec![inner])
            } else {
                serde_json::json!({ "a": inner })
            }
        })
    });
    let wide = (
        0usize..1024,
        prop_oneof![Just(Value::Null), Just(serde_json::json!({}))],
    )
        .prop_map(|(n, item)| Value::Array(vec![item; n]));
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number,
        wild_string().prop_map(Value::String),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        Just(serde_json::json!({"": ""})),
        deep,
        wide,
    ]
}

/// One structure-aware mutation of a JSON document.
#[derive(Debug, Clone)]
pub(crate) enum JsonOp {
    /// The node at this index (preorder) replaced.
    Replace(Index, Value),
    /// The node removed from its parent.
    Remove(Index),
    /// A key added to the object at this index (or its parent).
    Add(Index, String, Value),
    /// The node nested this deep in arrays.
    Nest(Index, u16),
    /// The node repeated this many times in an array in its place.
    Widen(Index, u16),
}

fn json_op() -> impl Strategy<Value = JsonOp> {
    prop_oneof![
        4 => (any::<Index>(), interesting_json()).prop_map(|(i, v)| JsonOp::Replace(i, v)),
        2 => any::<Index>().prop_map(JsonOp::Remove),
        2 => (any::<Index>(), wild_string(), interesting_json())
            .prop_map(|(i, k, v)| JsonOp::Add(i, k, v)),
        1 => (any::<Index>(), 1u16..300).prop_map(|(i, d)| JsonOp::Nest(i, d)),
        1 => (any::<Index>(), 2u16..512).prop_map(|(i, n)| JsonOp::Widen(i, n)),
    ]
}

/// JSON pointers of every node of `value`, the root first.
fn pointers(value: &Value) -> Vec<String> {
    fn walk(value: &Value, here: String, out: &mut Vec<String>) {
        out.push(here.clone());
        match value {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, format!("{here}/{i}"), out);
                }
            }
            Value::Object(fields) => {
                for (key, item) in fields {
                    let key = key.replace('~', "~0").replace('/', "~1");
                    walk(item, format!("{here}/{key}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}

fn parent_of(pointer: &str) -> Option<(&str, String)> {
    let (parent, last) = pointer.rsplit_once('/')?;
    Some((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn apply_json(root: &mut Value, op: &JsonOp) {
    let all = pointers(root);
    let pick = |i: &Index| all[i.index(all.len())].clone();
    match op {
        JsonOp::Replace(i, v) => {
            if let Some(node) = root.pointer_mut(&pick(i)) {
                *node = v.clone();
            }
        }
        JsonOp::Remove(i) => {
            let pointer = pick(i);
            let Some((parent, key)) = parent_of(&pointer) else {
                return;
            };
            match root.pointer_mut(parent) {
                Some(Value::Object(fields)) => {
                    fields.remove(&key);
                }
                Some(Value::Array(items)) => {
                    if let Ok(i) = key.parse::<usize>()
                        && i < items.len()
                    {
                        items.remove(i);
                    }
                }
                _ => {}
            }
        }
        JsonOp::Add(i, key, v) => {
            let pointer = pick(i);
            let target = match root.pointer(&pointer) {
                Some(Value::Object(_)) => pointer,
                _ => parent_of(&pointer).map_or_else(String::new, |(p, _)| p.to_owned()),
            };
            if let Some(Value::Object(fields)) = root.pointer_mut(&target) {
                fields.insert(key.clone(), v.clone());
            }
        }
        JsonOp::Nest(i, depth) => {
            if let Some(node) = root.pointer_mut(&pick(i)) {
                let inner = node.take();
                *node = (0..*depth).fold(inner, |v, _| Value::Array(vec![v]));
            }
        }
        JsonOp::Widen(i, n) => {
            if let Some(node) = root.pointer_mut(&pick(i)) {
                let inner = node.take();
                *node = Value::Array(vec![inner; usize::from(*n)]);
            }
        }
    }
}

/// One of `seeds` with 1 to 6 structure-aware mutations, serialised, and now and then also
/// mutated as bytes (duplicate keys, broken escapes, truncation).
pub(crate) fn mutated_json(seeds: Vec<Value>) -> impl Strategy<Value = Bytes> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec(json_op(), 1..6),
        proptest::option::weighted(0.25, proptest::collection::vec(byte_op(), 1..4)),
    )
        .prop_map(|(mut value, ops, byte_ops)| {
            for op in &ops {
                apply_json(&mut value, op);
            }
            let mut bytes = serde_json::to_vec(&value).unwrap_or_default();
            if let Some(byte_ops) = byte_ops {
                bytes = mutate(bytes, &byte_ops);
            }
            bytes.truncate(MAX_MUTATED_LEN);
            Bytes(bytes)
        })
}

/// The same, with the result as a JSON value when it still is one (for decoders that take
/// values).
pub(crate) fn mutated_json_value(seeds: Vec<Value>) -> impl Strategy<Value = Value> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec(json_op(), 1..6),
    )
        .prop_map(|(mut value, ops)| {
            for op in &ops {
                apply_json(&mut value, op);
            }
            value
        })
}
