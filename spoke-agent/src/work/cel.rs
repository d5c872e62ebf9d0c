//! ManifestWork condition rules evaluated as OCM's work agent does (ocm
//! `pkg/work/spoke/conditions`, with sdk-go's CEL conditions library). Pure.
//!
//! A rule's `celExpressions` see the live object as `object` (unstructured JSON) and the helper
//! `hasConditions(map)`; they are ANDed in order, the first `false` ending the rule. The
//! condition is then `True`/`False` with reason `ConditionRuleEvaluated`; an expression that
//! does not parse, fails or is not a bool makes it `False` with `ConditionRuleExpressionError`
//! and the error as message. The message comes from `messageExpression` (which also sees
//! `result`, the rule's outcome as a bool), else `message`, else `Manifest is [not] <condition>`.
//! `WellKnownConditions` are OCM's built-in CEL rules (`Complete` for Jobs and Pods), whose
//! message and message expression a rule may override; a kind without one sets nothing.
//!
//! The rules of one manifest share OCM's cost budget (the apiserver's 10,000,000 per
//! evaluation), and each `celExpressions` entry is cut off at its per-call limit (1,000,000).
//! `cel-interpreter` has no cost tracking of its own, so the parsed expression is metered: a
//! node costs 1 when evaluated once, a comprehension's body (`exists`, `all`, `map`, `filter`,
//! ...) costs its nodes on every element, and lists, maps and strings built along the way
//! cost a tenth of their size, as cel-go charges traversals. The units are close to cel-go's,
//! not equal to them; they exist so that no expression can hold the agent.
//!
//! The interpreter and its ANTLR parser recurse deeply and panic on some inputs (an
//! incomplete expression, a macro over a number). So expressions are refused beyond cel-go's
//! size limit, a nesting of 250 and 4096 tokens; everything runs on one thread per manifest
//! with a large stack; and panics are caught per expression and reported as its error.

use std::any::Any;
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};

use cel_interpreter::objects::{Key, Map};
use cel_interpreter::{Context, ExecutionError, FunctionContext, ResolveResult, Value as Cel};
use cel_parser::ast::{CallExpr, EntryExpr, Expr, IdedExpr};
use cel_parser::reference::Val;
use ocm_api::condition::ConditionStatus;
use ocm_api::work::v1::{
    CONDITION_COMPLETE, ConditionRule, ConditionRuleType, ManifestResourceMeta,
    REASON_CONDITION_RULE_EVALUATED, REASON_CONDITION_RULE_EXPRESSION_ERROR,
    REASON_CONDITION_RULE_INTERNAL_ERROR,
};
use serde_json::Value;

/// The cost all condition rules of one manifest may spend together (the apiserver's
/// `RuntimeCELCostBudget`, which OCM uses).
pub const COST_BUDGET: u64 = 10_000_000;
/// The cost one `celExpressions` entry may spend (the apiserver's `PerCallLimit`). Message
/// expressions have none but the budget, as in OCM.
pub const PER_CALL_LIMIT: u64 = 1_000_000;
/// cel-go's default `ExpressionSizeCodePointLimit`.
const MAX_CODE_POINTS: usize = 100_000;
/// cel-go's default parser recursion limit, applied to bracket nesting.
const MAX_NESTING: usize = 250;
/// Tokens outside string literals. Chains (`a.b.c`, `a + b + c`) nest as deeply in the parser
/// as brackets do; this bounds them. Real condition rules use a few dozen.
const MAX_TOKENS: usize = 4096;
/// Enough for the deepest accepted expression even in a debug build, where the parser's
/// frames are large. Only the pages used are ever touched.
const STACK_SIZE: usize = 64 << 20;
const THREAD_NAME: &str = "ocm-work-cel";
/// The metering function wrapped around comprehension steps. `@` cannot start an identifier
/// in CEL, so expressions cannot call it themselves.
const COST_FUNCTION: &str = "@cost";

/// The condition a rule sets on its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCondition {
    pub condition: String,
    pub status: ConditionStatus,
    pub reason: &'static str,
    pub message: String,
}

/// The manifest's condition rules on its live object, in order, under one cost budget
/// (OCM's `ConditionReader.EvaluateConditions`). Well-known rules without a built-in for the
/// manifest's kind and condition give nothing.
pub fn evaluate_rules(
    object: &Value,
    meta: &ManifestResourceMeta,
    rules: &[ConditionRule],
) -> Vec<RuleCondition> {
    evaluate_with(object, meta, rules, COST_BUDGET, PER_CALL_LIMIT)
}

fn evaluate_with(
    object: &Value,
    meta: &ManifestResourceMeta,
    rules: &[ConditionRule],
    budget: u64,
    per_call: u64,
) -> Vec<RuleCondition> {
    let resolved: Vec<Resolved<'_>> = rules.iter().filter_map(|r| resolve(r, meta)).collect();
    if resolved.is_empty() {
        return Vec::new();
    }
    silence_cel_thread_panics();
    let outcome = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .stack_size(STACK_SIZE)
            .spawn_scoped(scope, || {
                let object = to_cel(object);
                let mut budget = Budget::new(budget);
                resolved
                    .iter()
                    .map(|rule| evaluate_rule(&object, rule, &mut budget, per_call))
                    .collect::<Vec<_>>()
            })
            .map_err(|error| error.to_string())
            .and_then(|thread| thread.join().map_err(|p| panic_message(p.as_ref())))
    });
    match outcome {
        Ok(conditions) => conditions,
        // Nothing the rule's author can change (OCM's words for a CEL environment it cannot
        // build): Unknown, with what went wrong.
        Err(error) => resolved
            .iter()
            .map(|rule| RuleCondition {
                condition: rule.condition.to_owned(),
                status: ConditionStatus::Unknown,
                reason: REASON_CONDITION_RULE_INTERNAL_ERROR,
                message: format!("failed to evaluate CEL condition rules: {error}"),
            })
            .collect(),
    }
}

/// A rule as it is evaluated: CEL rules as written, well-known ones as OCM's built-ins.
#[derive(Debug)]
struct Resolved<'a> {
    condition: &'a str,
    expressions: Vec<&'a str>,
    message: &'a str,
    message_expression: &'a str,
}

/// OCM's well-known rules (`rules/rule.go`), keyed by group, version, kind and condition.
const JOB_COMPLETE: &str = "hasConditions(object.status)
    ? object.status.conditions.filter(c, c.type == 'Complete' || c.type == 'Failed').exists(c, c.status == 'True')
    : false";
const JOB_COMPLETE_MESSAGE: &str = r#"result ? "Job is finished" : "Job is not finished""#;
const POD_COMPLETE: &str = "object.status.phase in ['Succeeded', 'Failed']";
const POD_COMPLETE_MESSAGE: &str = r#""Pod is in phase " + object.status.phase"#;

fn resolve<'a>(rule: &'a ConditionRule, meta: &ManifestResourceMeta) -> Option<Resolved<'a>> {
    match rule.r#type {
        ConditionRuleType::Cel => Some(Resolved {
            condition: &rule.condition,
            expressions: rule.cel_expressions.iter().map(String::as_str).collect(),
            message: &rule.message,
            message_expression: &rule.message_expression,
        }),
        ConditionRuleType::WellKnownConditions => {
            let (expression, message_expression) = match (
                meta.group.as_str(),
                meta.version.as_str(),
                meta.kind.as_str(),
                rule.condition.as_str(),
            ) {
                ("batch", "v1", "Job", CONDITION_COMPLETE) => (JOB_COMPLETE, JOB_COMPLETE_MESSAGE),
                ("", "v1", "Pod", CONDITION_COMPLETE) => (POD_COMPLETE, POD_COMPLETE_MESSAGE),
                _ => return None,
            };
            Some(Resolved {
                condition: &rule.condition,
                expressions: vec![expression],
                message: &rule.message,
                message_expression: if rule.message_expression.is_empty() {
                    message_expression
                } else {
                    &rule.message_expression
                },
            })
        }
    }
}

/// Why an expression gave no usable value; the text is the condition's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum CelError {
    /// The expression does not parse or is beyond the limits.
    #[error("{0}")]
    Compile(String),
    #[error("{0}")]
    Evaluation(String),
    #[error("operation cancelled: actual cost limit exceeded")]
    CostLimitExceeded,
    #[error("CEL evaluation budget exceeded")]
    BudgetExceeded,
    #[error("expected bool result, got {0}")]
    NotBool(&'static str),
    #[error("expected message expression to have a string result, got {0}")]
    NotString(&'static str),
}

fn evaluate_rule(
    object: &Cel,
    rule: &Resolved<'_>,
    budget: &mut Budget,
    per_call: u64,
) -> RuleCondition {
    let (status, reason, message) = match evaluate_expressions(object, rule, budget, per_call) {
        Ok(status) => {
            let message = condition_message(object, rule, status == ConditionStatus::True, budget)
                .unwrap_or_else(|error| match error {
                    // OCM keeps only the first line of a message expression's compile error,
                    // without the source snippet under it.
                    CelError::Compile(text) => text.lines().next().unwrap_or_default().to_owned(),
                    other => other.to_string(),
                });
            (status, REASON_CONDITION_RULE_EVALUATED, message)
        }
        Err(error) => (
            ConditionStatus::False,
            REASON_CONDITION_RULE_EXPRESSION_ERROR,
            error.to_string(),
        ),
    };
    RuleCondition {
        condition: rule.condition.to_owned(),
        status,
        reason,
        message,
    }
}

/// All expressions ANDed: the first false decides, the first error fails the rule.
fn evaluate_expressions(
    object: &Cel,
    rule: &Resolved<'_>,
    budget: &mut Budget,
    per_call: u64,
) -> Result<ConditionStatus, CelError> {
    for expression in &rule.expressions {
        match budget.evaluate(expression, &[("object", object.clone())], Some(per_call))? {
            Cel::Bool(true) => {}
            Cel::Bool(false) => return Ok(ConditionStatus::False),
            other => return Err(CelError::NotBool(go_type(&other))),
        }
    }
    Ok(ConditionStatus::True)
}

/// `messageExpression` when it gives a non-empty string, else `message`, else OCM's default.
fn condition_message(
    object: &Cel,
    rule: &Resolved<'_>,
    result: bool,
    budget: &mut Budget,
) -> Result<String, CelError> {
    if !rule.message_expression.is_empty() {
        let vars = [("object", object.clone()), ("result", Cel::Bool(result))];
        match budget.evaluate(rule.message_expression, &vars, None)? {
            Cel::String(message) if !message.is_empty() => return Ok(message.as_str().to_owned()),
            Cel::String(_) => {}
            other => return Err(CelError::NotString(go_type(&other))),
        }
    }
    Ok(if !rule.message.is_empty() {
        rule.message.to_owned()
    } else if result {
        format!("Manifest is {}", rule.condition)
    } else {
        format!("Manifest is not {}", rule.condition)
    })
}

/// What is left of the manifest's cost budget; once overspent it stays spent, and every later
/// evaluation fails (OCM's remaining budget of -1).
#[derive(Debug)]
struct Budget {
    remaining: Option<u64>,
}

impl Budget {
    fn new(budget: u64) -> Self {
        Self {
            remaining: Some(budget),
        }
    }

    fn evaluate(
        &mut self,
        source: &str,
        vars: &[(&str, Cel)],
        per_call: Option<u64>,
    ) -> Result<Cel, CelError> {
        let Some(remaining) = self.remaining else {
            return Err(CelError::BudgetExceeded);
        };
        let call_limited = per_call.is_some_and(|limit| limit < remaining);
        let limit = per_call.map_or(remaining, |limit| limit.min(remaining));
        let Run { result, cost } = run(source, vars, limit);
        match result {
            Err(CelError::CostLimitExceeded) if !call_limited => {
                self.remaining = None;
                Err(CelError::BudgetExceeded)
            }
            result => {
                self.remaining = Some(remaining.saturating_sub(cost));
                result
            }
        }
    }
}

/// One evaluation and the cost it spent.
#[derive(Debug)]
struct Run {
    result: Result<Cel, CelError>,
    cost: u64,
}

/// Parses, meters and evaluates one expression; past `limit` it stops with
/// [`CelError::CostLimitExceeded`].
fn run(source: &str, vars: &[(&str, Cel)], limit: u64) -> Run {
    let failed = |error| Run {
        result: Err(error),
        cost: 0,
    };
    if let Err(error) = check_source(source) {
        return failed(error);
    }
    let mut ast = match panic::catch_unwind(|| cel_parser::Parser::default().parse(source)) {
        Ok(Ok(ast)) => ast,
        Ok(Err(errors)) => return failed(CelError::Compile(errors.to_string())),
        // The ANTLR runtime panics instead of reporting some syntax errors (an expression that
        // ends early, a lone bracket).
        Err(_) => {
            return failed(CelError::Compile(
                "ERROR: <input>: Syntax error: incomplete or malformed expression".to_owned(),
            ));
        }
    };
    let meter = Arc::new(Meter {
        spent: AtomicU64::new(0),
        limit,
    });
    if !meter.charge(instrument(&mut ast)) {
        return Run {
            result: Err(CelError::CostLimitExceeded),
            cost: meter.spent(),
        };
    }
    let mut context = Context::default();
    context.add_function("hasConditions", has_conditions);
    let metered = Arc::clone(&meter);
    context.add_function(COST_FUNCTION, move |ftx: &FunctionContext| {
        metered_step(&metered, ftx)
    });
    for (name, value) in vars {
        context.add_variable_from_value(*name, value.clone());
    }
    let evaluated = panic::catch_unwind(AssertUnwindSafe(|| Cel::resolve(&ast, &context)));
    let result = if meter.exceeded() {
        Err(CelError::CostLimitExceeded)
    } else {
        match evaluated {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(CelError::Evaluation(describe(&error))),
            // The interpreter panics on what it does not implement (a macro over a number, a
            // message literal) and on some arithmetic overflows.
            Err(payload) => Err(CelError::Evaluation(format!(
                "evaluation failed: {}",
                panic_message(payload.as_ref())
            ))),
        }
    };
    Run {
        result,
        cost: meter.spent(),
    }
}

/// The cost spent by one evaluation, shared with its metering function.
#[derive(Debug)]
struct Meter {
    spent: AtomicU64,
    limit: u64,
}

impl Meter {
    /// Adds `cost`; whether the evaluation is still within its limit.
    fn charge(&self, cost: u64) -> bool {
        let spent = self
            .spent
            .fetch_add(cost, Ordering::Relaxed)
            .saturating_add(cost);
        spent <= self.limit
    }

    fn spent(&self) -> u64 {
        self.spent.load(Ordering::Relaxed)
    }

    fn exceeded(&self) -> bool {
        self.spent() > self.limit
    }
}

/// `@cost(n, step)`: one iteration of a comprehension. Charges the body's `n` nodes and a
/// tenth of what the step built (an accumulated list is copied on every step), and stops the
/// evaluation once over the limit.
fn metered_step(meter: &Meter, ftx: &FunctionContext<'_>) -> ResolveResult {
    let [nodes, step] = ftx.args.as_slice() else {
        return Err(ftx.error("expects the body's cost and the step"));
    };
    let nodes = match Cel::resolve(nodes, ftx.ptx)? {
        Cel::Int(n) => u64::try_from(n).unwrap_or_default(),
        _ => 0,
    };
    if !meter.charge(nodes) {
        return Err(ftx.error("cost limit exceeded"));
    }
    let value = Cel::resolve(step, ftx.ptx)?;
    if !meter.charge(traversal_cost(&value)) {
        return Err(ftx.error("cost limit exceeded"));
    }
    Ok(value)
}

fn traversal_cost(value: &Cel) -> u64 {
    let size = match value {
        Cel::List(items) => items.len(),
        Cel::Map(map) => map.map.len(),
        Cel::String(s) => s.len(),
        Cel::Bytes(b) => b.len(),
        _ => 0,
    };
    u64::try_from(size.div_ceil(10)).unwrap_or(u64::MAX)
}

/// Wraps every comprehension step in [`COST_FUNCTION`] with the cost of one iteration, and
/// returns the cost of evaluating everything else once.
fn instrument(expr: &mut IdedExpr) -> u64 {
    match &mut expr.expr {
        Expr::Comprehension(comprehension) => {
            let per_iteration = 1
                + instrument(&mut comprehension.loop_cond)
                + instrument(&mut comprehension.loop_step);
            let step = std::mem::take(comprehension.loop_step.as_mut());
            let id = step.id;
            *comprehension.loop_step = IdedExpr {
                id,
                expr: Expr::Call(CallExpr {
                    func_name: COST_FUNCTION.to_owned(),
                    target: None,
                    args: vec![
                        IdedExpr {
                            id,
                            expr: Expr::Literal(Val::Int(
                                i64::try_from(per_iteration).unwrap_or(i64::MAX),
                            )),
                        },
                        step,
                    ],
                }),
            };
            1 + instrument(&mut comprehension.iter_range)
                + instrument(&mut comprehension.accu_init)
                + instrument(&mut comprehension.result)
        }
        Expr::Call(call) => {
            1 + call.target.as_deref_mut().map_or(0, instrument)
                + call.args.iter_mut().map(instrument).sum::<u64>()
        }
        Expr::Select(select) => 1 + instrument(&mut select.operand),
        Expr::List(list) => 1 + list.elements.iter_mut().map(instrument).sum::<u64>(),
        Expr::Map(map) => {
            1 + map
                .entries
                .iter_mut()
                .map(|entry| entry_cost(&mut entry.expr))
                .sum::<u64>()
        }
        Expr::Struct(message) => {
            1 + message
                .entries
                .iter_mut()
                .map(|entry| entry_cost(&mut entry.expr))
                .sum::<u64>()
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => 1,
    }
}

fn entry_cost(entry: &mut EntryExpr) -> u64 {
    match entry {
        EntryExpr::MapEntry(e) => instrument(&mut e.key) + instrument(&mut e.value),
        EntryExpr::StructField(f) => instrument(&mut f.value),
    }
}

/// Refuses what would exhaust the parser's stack: more than cel-go's code points, brackets
/// nested deeper than [`MAX_NESTING`], more than [`MAX_TOKENS`] tokens outside strings.
fn check_source(source: &str) -> Result<(), CelError> {
    let size = source.chars().count();
    if size > MAX_CODE_POINTS {
        return Err(CelError::Compile(format!(
            "expression code point size exceeds limit: size: {size}, limit {MAX_CODE_POINTS}"
        )));
    }
    let mut chars = source.chars().peekable();
    let (mut depth, mut tokens) = (0usize, 0usize);
    let mut word = String::new();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            word.clear();
            continue;
        }
        tokens += 1;
        match c {
            '/' if chars.peek() == Some(&'/') => {
                tokens -= 1;
                chars.by_ref().find(|&c| c == '\n');
            }
            '"' | '\'' => {
                // A raw string (`r"..."`) has no escapes.
                let raw = matches!(word.to_ascii_lowercase().as_str(), "r" | "rb" | "br");
                skip_string(c, raw, &mut chars);
            }
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(CelError::Compile(format!(
                        "expression recursion limit exceeded: {MAX_NESTING}"
                    )));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        word.clear();
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            while let Some(&next) = chars.peek() {
                if !(next.is_alphanumeric() || next == '_') {
                    break;
                }
                word.push(next);
                chars.next();
            }
        }
        if tokens > MAX_TOKENS {
            return Err(CelError::Compile(format!(
                "expression exceeds the limit of {MAX_TOKENS} tokens"
            )));
        }
    }
    Ok(())
}

/// Skips a string literal whose opening `quote` was just read (triple-quoted or not).
fn skip_string(quote: char, raw: bool, chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    let triple = {
        let mut ahead = chars.clone();
        ahead.next() == Some(quote) && ahead.next() == Some(quote)
    };
    if triple {
        chars.next();
        chars.next();
    }
    let mut closing = 0;
    while let Some(c) = chars.next() {
        if c == '\\' && !raw {
            chars.next();
            closing = 0;
        } else if c == quote {
            closing += 1;
            if !triple || closing == 3 {
                return;
            }
        } else {
            closing = 0;
            if c == '\n' && !triple {
                return;
            }
        }
    }
}

/// sdk-go's `hasConditions(status)`: whether a map has a non-empty `conditions` list. Anything
/// else, a missing or null list included, is false. Only the global one-argument form exists.
fn has_conditions(ftx: &FunctionContext<'_>, value: Cel) -> ResolveResult {
    if ftx.this.is_some() || ftx.args.len() != 1 {
        return Err(ftx.error("found no matching overload for 'hasConditions'"));
    }
    let Cel::Map(status) = value else {
        return Ok(Cel::Bool(false));
    };
    let conditions = status.get(&Key::String(Arc::new("conditions".to_owned())));
    Ok(Cel::Bool(
        matches!(conditions, Some(Cel::List(list)) if !list.is_empty()),
    ))
}

/// The live object as Kubernetes' unstructured decoding sees it: integers are int64 (so
/// `object.spec.replicas == 2` compares ints), other numbers doubles.
fn to_cel(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map(Cel::Int)
            .or_else(|| n.as_u64().map(Cel::UInt))
            .unwrap_or_else(|| Cel::Float(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(fields) => Cel::Map(Map {
            map: Arc::new(
                fields
                    .iter()
                    .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                    .collect::<HashMap<_, _>>(),
            ),
        }),
    }
}

/// cel-go's words for the errors condition rules meet most (a field not set yet), the
/// interpreter's for the rest.
fn describe(error: &ExecutionError) -> String {
    match error {
        ExecutionError::NoSuchKey(key) => format!("no such key: {key}"),
        ExecutionError::UndeclaredReference(name) => {
            format!("undeclared reference to '{name}' (in container '')")
        }
        ExecutionError::DivisionByZero(_) => "division by zero".to_owned(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".to_owned(),
        other => other.to_string(),
    }
}

/// The Go type OCM names in "expected bool result, got ..." for a value of the object.
fn go_type(value: &Cel) -> &'static str {
    match value {
        Cel::String(_) => "string",
        Cel::Int(_) => "int64",
        Cel::UInt(_) => "uint64",
        Cel::Float(_) => "float64",
        Cel::Bool(_) => "bool",
        Cel::Bytes(_) => "[]uint8",
        Cel::List(_) => "[]interface {}",
        Cel::Map(_) => "map[string]interface {}",
        Cel::Null => "structpb.NullValue",
        Cel::Duration(_) => "time.Duration",
        Cel::Timestamp(_) => "time.Time",
        Cel::Function(..) => "function",
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

/// Panics on the CEL thread are expected (see the module's doc) and each becomes a condition
/// message; the default hook would also print every one of them to stderr on every status
/// pass. Other threads' panics still reach the hook that was installed before.
fn silence_cel_thread_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(THREAD_NAME) {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn meta(group: &str, kind: &str) -> ManifestResourceMeta {
        ManifestResourceMeta {
            ordinal: 0,
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            resource: String::new(),
            name: "web".into(),
            namespace: "default".into(),
        }
    }

    fn cel(condition: &str, expressions: &[&str]) -> ConditionRule {
        ConditionRule {
            condition: condition.into(),
            r#type: ConditionRuleType::Cel,
            cel_expressions: expressions.iter().map(|e| (*e).to_owned()).collect(),
            message: String::new(),
            message_expression: String::new(),
        }
    }

    fn well_known(condition: &str) -> ConditionRule {
        ConditionRule {
            r#type: ConditionRuleType::WellKnownConditions,
            ..cel(condition, &[])
        }
    }

    fn deployment() -> Value {
        serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 2},
            "status": {
                "replicas": 2,
                "readyReplicas": 1,
                "availableReplicas": 2,
                "conditions": [{"type": "Available", "status": "True"}]
            }
        })
    }

    /// (status, reason, message) of the one rule.
    fn one(object: &Value, rule: ConditionRule) -> (ConditionStatus, &'static str, String) {
        let mut found = evaluate_rules(object, &meta("apps", "Deployment"), &[rule]);
        assert_eq!(found.len(), 1);
        let c = found.remove(0);
        (c.status, c.reason, c.message)
    }

    const TRUE: ConditionStatus = ConditionStatus::True;
    const FALSE: ConditionStatus = ConditionStatus::False;
    const EVALUATED: &str = REASON_CONDITION_RULE_EVALUATED;
    const EXPRESSION_ERROR: &str = REASON_CONDITION_RULE_EXPRESSION_ERROR;

    #[test]
    fn true_and_false_with_ocms_default_messages() {
        let object = deployment();
        assert_eq!(
            one(&object, cel("Ready", &["object.spec.replicas == 2"])),
            (TRUE, EVALUATED, "Manifest is Ready".into())
        );
        assert_eq!(
            one(&object, cel("Ready", &["object.status.readyReplicas == 2"])),
            (FALSE, EVALUATED, "Manifest is not Ready".into())
        );
        let with_message = ConditionRule {
            message: "as configured".into(),
            ..cel("Ready", &["true"])
        };
        assert_eq!(
            one(&object, with_message),
            (TRUE, EVALUATED, "as configured".into())
        );
    }

    #[test]
    fn several_expressions_are_anded_and_the_first_false_stops() {
        let object = deployment();
        assert_eq!(
            one(&object, cel("Ok", &["true", "object.kind == 'Deployment'"])).0,
            TRUE
        );
        // The second is false, so the third (an error) is never evaluated.
        assert_eq!(
            one(&object, cel("Ok", &["true", "false", "object.missing"])),
            (FALSE, EVALUATED, "Manifest is not Ok".into())
        );
        // An error before any false fails the rule.
        assert_eq!(
            one(&object, cel("Ok", &["object.missing", "false"])).1,
            EXPRESSION_ERROR
        );
        assert_eq!(one(&object, cel("Ok", &[])).0, TRUE, "nothing to deny");
    }

    #[test]
    fn a_deployment_is_rolled_out_when_its_status_says_so() {
        let rolled_out = "object.status.availableReplicas == object.spec.replicas";
        let available =
            r#"object.status.conditions.exists(c, c.type == "Available" && c.status == "True")"#;
        let mut object = deployment();
        assert_eq!(
            one(&object, cel("RolledOut", &[rolled_out, available])).0,
            TRUE
        );
        object["status"]["availableReplicas"] = 1.into();
        assert_eq!(one(&object, cel("RolledOut", &[rolled_out])).0, FALSE);
        // Before the controller wrote a status the field is missing: an error, as in OCM.
        let fresh = serde_json::json!({"spec": {"replicas": 2}, "status": {}});
        assert_eq!(
            one(&fresh, cel("RolledOut", &[rolled_out])),
            (
                FALSE,
                EXPRESSION_ERROR,
                "no such key: availableReplicas".into()
            )
        );
        // Guarded with has(), it is simply false.
        let guarded = format!("has(object.status.availableReplicas) && {rolled_out}");
        assert_eq!(
            one(&fresh, cel("RolledOut", &[&guarded])),
            (FALSE, EVALUATED, "Manifest is not RolledOut".into())
        );
    }

    #[test]
    fn has_conditions_is_sdk_gos() {
        // sdk-go's own test of the function.
        let rule = ConditionRule {
            message: "should work".into(),
            ..cel(
                "HasConditions",
                &[r#"hasConditions(object.status)
                    && !hasConditions({})
                    && !hasConditions("badtype")
                    && !hasConditions({"conditions": []})
                    && !hasConditions({"conditions": null})"#],
            )
        };
        assert_eq!(
            one(&deployment(), rule),
            (TRUE, EVALUATED, "should work".into())
        );
        assert_eq!(
            one(
                &deployment(),
                cel("X", &["hasConditions(object.status, 1)"])
            )
            .1,
            EXPRESSION_ERROR
        );
    }

    #[test]
    fn message_expressions_see_the_object_and_the_result() {
        let object = deployment();
        let rule = |expression: &str, message_expression: &str| ConditionRule {
            message_expression: message_expression.into(),
            message: "fallback".into(),
            ..cel("Available", &[expression])
        };
        let text = r#"result ? "Deployment available" : "Deployment unavailable""#;
        assert_eq!(
            one(&object, rule("true", text)),
            (TRUE, EVALUATED, "Deployment available".into())
        );
        assert_eq!(
            one(&object, rule("false", text)).2,
            "Deployment unavailable"
        );
        assert_eq!(
            one(
                &object,
                rule("true", r#""ready: " + string(object.status.readyReplicas)"#)
            )
            .2,
            "ready: 1"
        );
        // An empty message falls back to `message`.
        assert_eq!(one(&object, rule("true", "''")).2, "fallback");
        // A broken message expression keeps the rule's status and says why.
        assert_eq!(
            one(&object, rule("true", "badcel")),
            (
                TRUE,
                EVALUATED,
                "undeclared reference to 'badcel' (in container '')".into()
            )
        );
        assert_eq!(
            one(&object, rule("true", "1")).2,
            "expected message expression to have a string result, got int64"
        );
        let (status, reason, message) = one(&object, rule("true", "'a' +"));
        assert_eq!((status, reason), (TRUE, EVALUATED));
        assert!(message.starts_with("ERROR: <input>"), "{message}");
        assert!(!message.contains('\n'), "only the first line: {message}");
    }

    #[test]
    fn expressions_that_do_not_parse_fail_the_rule_as_ocm_does() {
        let object = deployment();
        // OCM gives a compile error False with ConditionRuleExpressionError, like a runtime
        // one (ConditionRuleInvalid is for rule types it does not know).
        let (status, reason, message) = one(&object, cel("Ok", &["object.status."]));
        assert_eq!((status, reason), (FALSE, EXPRESSION_ERROR));
        assert!(message.contains("Syntax error"), "{message}");
        // Inputs the parser panics on are errors too, and the next rule is still evaluated.
        let found = evaluate_rules(
            &object,
            &meta("apps", "Deployment"),
            &[cel("A", &["1 +"]), cel("B", &["("]), cel("C", &["true"])],
        );
        let summary: Vec<_> = found.iter().map(|c| (c.status, c.reason)).collect();
        assert_eq!(
            summary,
            [
                (FALSE, EXPRESSION_ERROR),
                (FALSE, EXPRESSION_ERROR),
                (TRUE, EVALUATED)
            ]
        );
        assert!(found[0].message.contains("Syntax error"));
    }

    #[test]
    fn runtime_errors_fail_the_rule() {
        let object = deployment();
        assert_eq!(
            one(&object, cel("Ok", &["object.missing"])),
            (FALSE, EXPRESSION_ERROR, "no such key: missing".into())
        );
        assert_eq!(
            one(&object, cel("Ok", &["object.spec.replicas / 0 == 1"])).2,
            "division by zero"
        );
        assert_eq!(
            one(&object, cel("Ok", &["nope(1)"])).2,
            "undeclared reference to 'nope' (in container '')"
        );
        // What the interpreter does not implement is an error, not a crash.
        let (status, reason, message) = one(
            &object,
            cel("Ok", &["object.spec.replicas.exists(x, true)"]),
        );
        assert_eq!((status, reason), (FALSE, EXPRESSION_ERROR));
        assert!(message.starts_with("evaluation failed"), "{message}");
    }

    #[test]
    fn results_that_are_not_bools_fail_the_rule() {
        let object = deployment();
        assert_eq!(
            one(
                &object,
                cel(
                    "Available",
                    &[r#"object.status.conditions.filter(c, c.type == "Available")[0].status"#]
                )
            ),
            (
                FALSE,
                EXPRESSION_ERROR,
                "expected bool result, got string".into()
            )
        );
        assert_eq!(
            one(&object, cel("X", &["object.spec.replicas"])).2,
            "expected bool result, got int64"
        );
        assert_eq!(
            one(&object, cel("X", &["object.status.conditions"])).2,
            "expected bool result, got []interface {}"
        );
    }

    #[test]
    fn well_known_complete_is_ocms_cel_for_jobs_and_pods() {
        let job = meta("batch", "Job");
        let pod = meta("", "Pod");
        let complete = well_known(CONDITION_COMPLETE);
        let check = |object: Value, meta: &ManifestResourceMeta, rule: &ConditionRule| {
            evaluate_rules(&object, meta, std::slice::from_ref(rule))
                .into_iter()
                .map(|c| (c.status, c.reason, c.message))
                .collect::<Vec<_>>()
        };
        let finished = |kind: &str, status: &str| {
            serde_json::json!({"status": {"conditions": [
                {"type": kind, "status": status}, {"type": "Another", "status": "True"}]}})
        };
        assert_eq!(
            check(finished("Failed", "True"), &job, &complete),
            [(TRUE, EVALUATED, "Job is finished".into())]
        );
        assert_eq!(
            check(finished("Complete", "False"), &job, &complete),
            [(FALSE, EVALUATED, "Job is not finished".into())]
        );
        assert_eq!(
            check(serde_json::json!({"status": {}}), &job, &complete),
            [(FALSE, EVALUATED, "Job is not finished".into())]
        );
        let phase = |p: &str| serde_json::json!({"status": {"phase": p}});
        assert_eq!(
            check(phase("Succeeded"), &pod, &complete),
            [(TRUE, EVALUATED, "Pod is in phase Succeeded".into())]
        );
        assert_eq!(
            check(phase("Running"), &pod, &complete),
            [(FALSE, EVALUATED, "Pod is in phase Running".into())]
        );
        // The rule's message and message expression replace the built-in one.
        let overridden = ConditionRule {
            message_expression: "result ? 'done' : ''".into(),
            message: "still running".into(),
            ..complete.clone()
        };
        assert_eq!(
            check(phase("Failed"), &pod, &overridden)[0].2,
            "done".to_owned()
        );
        assert_eq!(
            check(phase("Running"), &pod, &overridden)[0].2,
            "still running".to_owned()
        );
        // No built-in for the kind, or for another condition: nothing is set.
        assert!(check(phase("Running"), &meta("apps", "Deployment"), &complete).is_empty());
        assert!(check(phase("Running"), &pod, &well_known("Ready")).is_empty());
    }

    #[test]
    fn costs_are_limited_per_expression_and_per_manifest() {
        let object = serde_json::json!({"items": (0..100).collect::<Vec<_>>()});
        let deployment = meta("apps", "Deployment");
        // 100 × 100 × 100 iterations: a million and more.
        let cubic = "object.items.all(a, object.items.all(b, object.items.all(c, true)))";
        let found = evaluate_rules(&object, &deployment, &[cel("Heavy", &[cubic])]);
        assert_eq!(
            (found[0].status, found[0].reason, found[0].message.as_str()),
            (
                FALSE,
                EXPRESSION_ERROR,
                "operation cancelled: actual cost limit exceeded"
            )
        );
        // 100 × 100 is well within it.
        let square = "object.items.all(a, object.items.all(b, true))";
        assert_eq!(
            evaluate_rules(&object, &deployment, &[cel("Light", &[square])])[0].status,
            TRUE
        );
        // A budget too small for the first rule is spent for the rest, as OCM's -1.
        let found = evaluate_with(
            &object,
            &deployment,
            &[cel("A", &[square]), cel("B", &["true"])],
            1_000,
            PER_CALL_LIMIT,
        );
        let messages: Vec<_> = found.iter().map(|c| c.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "CEL evaluation budget exceeded",
                "CEL evaluation budget exceeded"
            ]
        );
        // The budget is shared: enough for each rule alone, not for all of them.
        let square_cost = {
            let mut budget = Budget::new(COST_BUDGET);
            budget
                .evaluate(square, &[("object", to_cel(&object))], None)
                .unwrap();
            COST_BUDGET - budget.remaining.unwrap()
        };
        assert!(square_cost > 10_000, "{square_cost}");
        let found = evaluate_with(
            &object,
            &deployment,
            &[cel("A", &[square]), cel("B", &[square])],
            square_cost * 3 / 2,
            PER_CALL_LIMIT,
        );
        let statuses: Vec<_> = found.iter().map(|c| c.message.as_str()).collect();
        assert_eq!(
            statuses,
            ["Manifest is A", "CEL evaluation budget exceeded"]
        );
        // Accumulating lists costs their size too.
        let mapped = "size(object.items.map(a, object.items.map(b, b))) == 100";
        assert_eq!(
            evaluate_rules(&object, &deployment, &[cel("Map", &[mapped])])[0].status,
            TRUE
        );
    }

    #[test]
    fn expressions_that_would_exhaust_the_stack_are_refused() {
        let object = deployment();
        let nested = |n: usize| format!("{}true{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(one(&object, cel("Deep", &[&nested(MAX_NESTING)])).0, TRUE);
        assert_eq!(
            one(&object, cel("Deep", &[&nested(MAX_NESTING + 1)])).2,
            "expression recursion limit exceeded: 250"
        );
        // The longest accepted chain, inside the deepest accepted nesting.
        let chain = |n: usize| format!("1{} > 0", " + 1".repeat(n));
        let deepest = format!(
            "{}{}{}",
            "(".repeat(MAX_NESTING - 1),
            chain((MAX_TOKENS - 2 * MAX_NESTING) / 2 - 1),
            ")".repeat(MAX_NESTING - 1)
        );
        assert_eq!(one(&object, cel("Long", &[&deepest])).0, TRUE);
        assert_eq!(
            one(&object, cel("Long", &[&chain(MAX_TOKENS)])).2,
            "expression exceeds the limit of 4096 tokens"
        );
        // Brackets and operators inside strings do not count.
        let in_strings = format!(
            "'{0}' == \"{0}\" && r'\\' != '''{0}'''",
            "(((".repeat(MAX_NESTING)
        );
        assert_eq!(one(&object, cel("Strings", &[&in_strings])).0, TRUE);
    }

    #[test]
    fn json_numbers_are_ints_as_in_unstructured_objects() {
        let object = serde_json::json!({"a": 2, "b": -3, "c": 1.5, "d": null});
        assert_eq!(
            one(
                &object,
                cel(
                    "Typed",
                    &["object.a == 2 && object.a / 2 == 1 && object.b < 0 && object.c > 1.0 && object.d == null"]
                )
            )
            .0,
            TRUE
        );
    }
}
