//! The validate stage: the rules of converted values, run after conversion and before
//! assembly (field rules), and after assembly (struct rules: they read the whole struct).
//!
//! Field rules (`#[component(validate(...))]`, registered with [`Plan::rule`] and
//! [`Plan::rule_async`]) may `await` (a check can ask a database or probe an address): a
//! synchronous rule answers at once; the async rules of every field run concurrently, at
//! most `validate_concurrency` at a time, each within its `timeout` and the fetch's
//! deadline. Every failed rule is one error (kind `Invalid`) naming the field, the source
//! and key its value came from, the rule, and the value — never a secret's. Fields with
//! rules are converted here, ahead of assembly, when they were fetched; a field that
//! failed to fetch (whatever its `fallback`, `Option` or `Option` group makes of that at
//! assembly) or to convert is not checked.
//!
//! Struct rules (`validate_with`, `validate_with_async`, `validate(garde)` on the struct),
//! collected by [`Nested::rules`] into [`StructRules`], run once every field has converted
//! and passed its own rules, with the same bounds; a message at a path names that field.
//!
//! [`Plan::rule`]: super::Plan::rule
//! [`Plan::rule_async`]: super::Plan::rule_async

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;

use super::contract::Nested;
use super::plan::{Handle, Plan};
use super::slot::Got;
use super::state::Outcomes;
use crate::error::{ComponentError, ErrorKind, Provenance};
use crate::report::Outcome;
use crate::rules;
use crate::sources::Sources;
use crate::violations::Violations;

/// How many async rules run at once when the struct says nothing (`validate_concurrency`).
pub const DEFAULT_CONCURRENCY: usize = 16;

/// How long an async rule may take when its `validate(...)` says nothing (`timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A checked value, its type erased.
type Checked = dyn Any + Send + Sync;

/// What a rule says of a value: at once, or once its future finishes.
enum Verdict<'v> {
    Now(Result<(), Violations>),
    Later(BoxFuture<'v, Result<(), Violations>>),
}

type Erased = dyn for<'v> Fn(&'v Checked, bool) -> Verdict<'v> + Send + Sync;

/// A synchronous rule of a field of type `T`: the value, and whether it may be shown.
pub type SyncRule<T> = fn(&T, bool) -> Result<(), Violations>;

/// An async rule of a field of type `T`.
pub type AsyncRule<T> = for<'v> fn(&'v T, bool) -> BoxFuture<'v, Result<(), Violations>>;

/// One rule of a field's converted value, its type erased.
#[derive(Clone)]
pub struct Check {
    /// The rule as messages name it: `range 1..=65535`, `with_async is_unique`.
    rule: &'static str,
    /// An async rule's time limit.
    timeout: Option<Duration>,
    /// An empty `Option<T>` to convert into.
    empty: fn() -> Box<Checked>,
    /// A typed fetcher's boxed `T` as the `Option<T>` the rule reads.
    adopt: fn(Box<dyn Any + Send>) -> Option<Box<Checked>>,
    run: Arc<Erased>,
}

impl Check {
    fn typed<T: Send + Sync + 'static>(
        rule: &'static str,
        timeout: Option<Duration>,
        run: Arc<Erased>,
    ) -> Self {
        Check {
            rule,
            timeout,
            empty: || Box::new(None::<T>),
            adopt: |typed| {
                let v = typed.downcast::<T>().ok()?;
                Some(Box::new(Some(*v)))
            },
            run,
        }
    }

    /// The rule as messages name it (`range 1..=65535`).
    pub(super) fn rule(&self) -> &'static str {
        self.rule
    }

    pub(super) fn sync<T: Send + Sync + 'static>(rule: &'static str, check: SyncRule<T>) -> Self {
        Self::sync_with::<T>(rule, check)
    }

    /// A synchronous rule holding its arguments (a `range`'s bounds).
    fn sync_with<T: Send + Sync + 'static>(
        rule: &'static str,
        check: impl Fn(&T, bool) -> Result<(), Violations> + Send + Sync + 'static,
    ) -> Self {
        let run: Arc<Erased> = Arc::new(move |any: &Checked, hidden| {
            Verdict::Now(match any.downcast_ref::<Option<T>>() {
                Some(Some(v)) => check(v, hidden),
                _ => Ok(()),
            })
        });
        Self::typed::<T>(rule, None, run)
    }

    pub(super) fn later<T: Send + Sync + 'static>(
        rule: &'static str,
        timeout: Duration,
        check: AsyncRule<T>,
    ) -> Self {
        let run: Arc<Erased> =
            Arc::new(
                move |any: &Checked, hidden| match any.downcast_ref::<Option<T>>() {
                    Some(Some(v)) => Verdict::Later(check(v, hidden)),
                    _ => Verdict::Now(Ok(())),
                },
            );
        Self::typed::<T>(rule, Some(timeout), run)
    }
}

/// Why a rule refused a value.
enum Failure {
    Refused(Violations),
    TimedOut(Duration, bool),
}

/// An async rule bounded by its `timeout` and the fetch's deadline: `(its limit, whether
/// the deadline set it)`.
fn limit(timeout: Duration, deadline: Option<Instant>) -> (Duration, bool) {
    match deadline.map(|d| d.saturating_duration_since(Instant::now())) {
        Some(left) if left < timeout => (left, true),
        _ => (timeout, false),
    }
}

async fn bounded<F: Future<Output = Result<(), Violations>>>(
    fut: F,
    timeout: Duration,
    deadline: Option<Instant>,
) -> Result<(), Failure> {
    let (limit, by_deadline) = limit(timeout, deadline);
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(Failure::Refused),
        Err(_) => Err(Failure::TimedOut(limit, by_deadline)),
    }
}

/// Runs the async rules `later` (each answering with its index), at most `concurrency`
/// at a time, and adds their failures to `failed`, in the order the rules were declared
/// whatever order they finished in.
async fn settle<F>(later: Vec<F>, concurrency: usize, failed: &mut Vec<(usize, Failure)>)
where
    F: Future<Output = (usize, Result<(), Failure>)>,
{
    if later.is_empty() {
        return;
    }
    let done: Vec<_> = futures::stream::iter(later)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    failed.extend(
        done.into_iter()
            .filter_map(|(k, r)| r.err().map(|f| (k, f))),
    );
    failed.sort_by_key(|(k, _)| *k);
}

/// The errors of one failed rule: one per message, at the field (or below it, for a
/// message with a path), or one timeout.
fn errors_of(
    provenance: &Provenance,
    rule: &'static str,
    failure: Failure,
) -> (Vec<ComponentError>, ErrorKind) {
    match failure {
        Failure::Refused(violations) => {
            let violations = if violations.is_empty() {
                Violations::from("the rule refused the value without saying why")
            } else {
                violations
            };
            let errors = violations
                .into_items()
                .into_iter()
                .map(|v| {
                    let mut p = provenance.clone();
                    if let Some(sub) = v.path() {
                        p.field = Some(match p.field.take() {
                            Some(f) => Cow::Owned(format!("{f}.{sub}")),
                            None => Cow::Owned(sub.to_owned()),
                        });
                    }
                    ComponentError::field(ErrorKind::Invalid)
                        .provenance(p)
                        .rule(rule)
                        .detail(v.message())
                        .build()
                })
                .collect();
            (errors, ErrorKind::Invalid)
        }
        Failure::TimedOut(limit, by_deadline) => {
            let why = if by_deadline {
                format!(
                    "the rule did not finish within the {} left before the fetch's deadline",
                    crate::error::humanize(limit)
                )
            } else {
                format!(
                    "the rule did not finish within {}",
                    crate::error::humanize(limit)
                )
            };
            let e = ComponentError::field(ErrorKind::Timeout)
                .provenance(provenance.clone())
                .rule(rule)
                .detail(why)
                .build();
            (vec![e], ErrorKind::Timeout)
        }
    }
}

/// Converts every checked field and runs every rule: the synchronous ones at once, the
/// async ones concurrently (at most `concurrency` at a time).
pub(super) async fn validate(
    out: &mut Outcomes<'_>,
    checks: &[(usize, Check)],
    concurrency: usize,
) {
    if checks.is_empty() {
        return;
    }
    // Fields whose value is their `fallback` literal (their errors say so).
    let mut literal: Vec<usize> = Vec::new();
    for (i, check) in checks {
        let i = *i;
        if out.converted[i].is_some() {
            continue;
        }
        // A fetched value, or the `fallback` literal standing in for a failed fetch (the
        // literal is checked too). Other failures are left to assembly, and so is any
        // failure of a field in an `Option` group (absent as a whole, it is `None`).
        let field = &out.fields[i];
        match &field.result {
            Some(Ok(Got::Raw(raw))) => {
                let kept = (i, raw.clone(), field.via_fallback);
                out.checked_raw.push(kept);
            }
            Some(Ok(Got::Typed(_))) => {}
            Some(Err(e))
                if out.slots[i].spec.fallback.is_some()
                    && (e.kind() == ErrorKind::NotFound || super::slot::fallbackable(e.kind()))
                    && !out.groups.iter().any(|g| (g.start..g.end).contains(&i)) =>
            {
                literal.push(i);
            }
            _ => continue,
        }
        let mut value = (check.empty)();
        let converted = match out.finish(i, value.as_mut()) {
            Ok(None) => Ok(value),
            Ok(Some(typed)) => (check.adopt)(typed).ok_or_else(|| out.slots[i].wrong_type()),
            Err(e) => Err(e),
        };
        out.converted[i] = Some(Box::new(converted));
    }
    let hidden: Vec<bool> = (0..out.slots.len()).map(|i| out.hidden(i)).collect();
    let deadline = out.cx.deadline();
    let converted = &out.converted;
    let mut failed: Vec<(usize, Failure)> = Vec::new();
    let mut later = Vec::new();
    for (k, (i, check)) in checks.iter().enumerate() {
        let Some(Ok(value)) = converted[*i].as_deref() else {
            continue;
        };
        match (check.run)(value.as_ref(), hidden[*i]) {
            Verdict::Now(Ok(())) => {}
            Verdict::Now(Err(v)) => failed.push((k, Failure::Refused(v))),
            Verdict::Later(fut) => {
                let timeout = check.timeout.unwrap_or(DEFAULT_TIMEOUT);
                later.push(async move { (k, bounded(fut, timeout, deadline).await) });
            }
        }
    }
    settle(later, concurrency, &mut failed).await;
    let mut by_field: Vec<(usize, Vec<ComponentError>, Vec<&'static str>, ErrorKind)> = Vec::new();
    for (k, failure) in failed {
        let (i, check) = &checks[k];
        let provenance = out.value_provenance(*i);
        let (mut errors, kind) = errors_of(&provenance, check.rule, failure);
        if literal.contains(i) {
            errors = errors
                .into_iter()
                .map(|e| e.with_note("the value is the field's `fallback` literal".to_owned()))
                .collect();
        }
        match by_field.iter_mut().find(|(f, ..)| f == i) {
            Some((_, all, rules, worst)) => {
                all.extend(errors);
                rules.push(check.rule);
                if kind == ErrorKind::Invalid {
                    *worst = kind;
                }
            }
            None => by_field.push((*i, errors, vec![check.rule], kind)),
        }
    }
    for (i, errors, rules, kind) in by_field {
        let span = out.span(i);
        span.record("outcome", kind.as_str());
        for e in &errors {
            tracing::warn!(target: "component_model_async::engine", parent: span, error = %e, "component rejected by validation");
        }
        let outcome = match kind {
            ErrorKind::Invalid => Outcome::Invalid {
                rule: rules.join(", "),
            },
            other => Outcome::Failed(other),
        };
        out.set_outcome(i, outcome);
        out.converted[i] = Some(Box::new(Err(ComponentError::from(errors))));
    }
}

/// One struct rule found while [`Nested::rules`] walked the tree.
enum Found<'a> {
    Now(Result<(), Violations>),
    Later(Duration, BoxFuture<'a, Result<(), Violations>>),
}

/// The struct rules of a fetched tree (`validate_with`, `validate_with_async`,
/// `validate(garde)` on a struct), collected by the generated [`Nested::rules`] of each
/// struct in it. Not meant to be used by hand.
pub struct StructRules<'a> {
    sources: &'a Sources,
    /// The path of the struct being walked, from the root (`""`, `database`).
    path: String,
    found: Vec<(String, &'static str, Found<'a>)>,
}

impl<'a> StructRules<'a> {
    pub(crate) fn new(sources: &'a Sources) -> Self {
        StructRules {
            sources,
            path: String::new(),
            found: Vec::new(),
        }
    }

    fn into_found(self) -> Vec<(String, &'static str, Found<'a>)> {
        self.found
    }

    /// The `Sources` of the fetch: the one given to a `_with` method, else the global one.
    pub fn sources(&self) -> &'a Sources {
        self.sources
    }

    /// A synchronous rule's answer.
    pub fn check(&mut self, rule: &'static str, result: Result<(), Violations>) {
        self.found
            .push((self.path.clone(), rule, Found::Now(result)));
    }

    /// An async rule, run with the others (at most `validate_concurrency` at a time),
    /// within `timeout` (default 10 s) and the fetch's deadline.
    pub fn check_async(
        &mut self,
        rule: &'static str,
        timeout: Option<Duration>,
        fut: impl Future<Output = Result<(), Violations>> + Send + 'a,
    ) {
        let later = Found::Later(timeout.unwrap_or(DEFAULT_TIMEOUT), Box::pin(fut));
        self.found.push((self.path.clone(), rule, later));
    }

    /// Walks into the `nested` field `field`: rules found there name paths below it.
    pub fn enter(&mut self, field: &str) {
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(field);
    }

    /// Walks back out of the last [`StructRules::enter`].
    pub fn leave(&mut self) {
        let cut = self.path.rfind('.').unwrap_or(0);
        self.path.truncate(cut);
    }
}

/// The struct's name for messages about it as a whole (`AppConfig`).
fn short_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

impl Outcomes<'_> {
    /// Whether field `i`'s value may not be shown: its field or type is secret, or the
    /// source that answered is.
    pub(super) fn hidden(&self, i: usize) -> bool {
        let slot = self.slot(i);
        if slot.sensitive {
            return true;
        }
        let conceals = |s: &dyn crate::source::Source, r: Option<&crate::source::FetchRequest>| {
            s.is_sensitive() || r.is_some_and(|r| s.conceals(r))
        };
        if let Some(cand) = self.won(i) {
            return match (cand.source(), &cand.request) {
                (Some(s), Some(r)) => conceals(s, Some(r)),
                _ => true,
            };
        }
        // The field's own source, or its `fallback_to`: a value it read from a secret
        // (an env variable's `_FILE`) is not shown.
        if self.fields[i].via_fallback {
            return match &slot.fallback {
                Some(super::slot::Route::Raw(fb)) => {
                    conceals(fb.as_ref(), slot.fallback_request.as_ref())
                }
                _ => false,
            };
        }
        slot.source
            .as_deref()
            .is_some_and(|s| conceals(s, slot.request.as_ref()))
    }

    /// For a struct rule's message at `path` that names no fetched field (nor a nested
    /// struct holding some): the closest fetched field's path, when it is a likely typo.
    fn near_field(&self, path: &str) -> Option<&str> {
        let prefix = format!("{path}.");
        if self.slots.iter().any(|s| s.field.starts_with(&prefix)) {
            return None;
        }
        self.slots
            .iter()
            .map(|s| (strsim::levenshtein(path, &s.field), s.field.as_ref()))
            .filter(|(d, f)| *d > 0 && *d <= 2.max(f.len() / 4))
            .min_by_key(|(d, _)| *d)
            .map(|(_, f)| f)
    }

    /// Where field `i`'s value came from: the precedence source that won, else its own.
    fn value_provenance(&self, i: usize) -> Provenance {
        let slot = self.slot(i);
        match self.won(i) {
            Some(cand) => super::precedence::provenance(slot, cand),
            None if self.fields[i].via_fallback => slot.fallback_provenance(),
            None => slot.provenance(),
        }
    }

    /// `value` after the struct rules of its tree: run when no field failed (to fetch,
    /// convert or pass its own rules; not on a struct where a `fallback` or `Default`
    /// stands in for a failed field). `prefix`: the path of `value` in the tree the plan
    /// fetched (a `fetch_<nested field>`).
    pub(crate) async fn validated<T: Nested>(
        &mut self,
        value: Option<T>,
        sources: &Sources,
    ) -> Option<T> {
        self.validated_by(value, T::rules, sources, "").await
    }

    /// [`Outcomes::validated`] with the struct's rules given (`NestedOps::rules`).
    pub(crate) async fn validated_by<T>(
        &mut self,
        value: Option<T>,
        rules: for<'a> fn(&'a T, &mut StructRules<'a>),
        sources: &Sources,
        prefix: &str,
    ) -> Option<T> {
        if !self.errors.is_empty() {
            return value;
        }
        // The rules are found first, so no `&T` is held across an `.await` (the fetch's
        // future stays `Send` for a struct that is not `Sync`; an async struct rule's
        // future is boxed as `Send` where the struct declares it).
        let Some(v) = &value else { return value };
        let mut found = StructRules::new(sources);
        if !prefix.is_empty() {
            found.enter(prefix);
        }
        rules(v, &mut found);
        let found = found.into_found();
        if found.is_empty() {
            drop(found);
        } else {
            self.check_struct(found, short_name::<T>()).await;
        }
        value
    }

    /// Runs the struct rules of `value`'s tree (found by [`Nested::rules`]), concurrently
    /// and bounded as field rules are; each message is an error of the field at its path
    /// (or of the struct).
    async fn check_struct(
        &mut self,
        found: Vec<(String, &'static str, Found<'_>)>,
        type_name: &'static str,
    ) {
        let concurrency = self.validate_concurrency;
        let deadline = self.cx.deadline();
        let mut about = Vec::with_capacity(found.len());
        let mut failed = Vec::new();
        let mut later = Vec::new();
        for (k, (path, rule, found)) in found.into_iter().enumerate() {
            about.push((path, rule));
            match found {
                Found::Now(Ok(())) => {}
                Found::Now(Err(v)) => failed.push((k, Failure::Refused(v))),
                Found::Later(timeout, fut) => {
                    later.push(async move { (k, bounded(fut, timeout, deadline).await) });
                }
            }
        }
        settle(later, concurrency, &mut failed).await;
        let owner = self.slots.first().map_or(type_name, |s| s.owner);
        for (k, failure) in failed {
            let (path, rule) = &about[k];
            let failure = match failure {
                Failure::Refused(v) => Failure::Refused(v.under(path)),
                timed_out => timed_out,
            };
            // The struct (or the nested struct) the rule is declared on; each message at
            // a path is re-aimed at that field below.
            let base = Provenance {
                owner: Some(Cow::Borrowed(owner)),
                field: None,
                key_label: Cow::Borrowed("key"),
                ..Provenance::default()
            };
            let (errors, kind) = errors_of(&base, rule, failure);
            for e in errors {
                // A message about a fetched field names its source and key.
                let slot = e
                    .field_name()
                    .and_then(|f| self.slots.iter().position(|s| s.field == f));
                let e = match slot {
                    Some(i) => {
                        let mut p = self.value_provenance(i);
                        p.field = e.field_name().map(|f| Cow::Owned(f.to_owned()));
                        let rebuilt = ComponentError::field(e.kind())
                            .provenance(p)
                            .rule(*rule)
                            .detail(e.detail().unwrap_or_default())
                            .build();
                        self.set_outcome(
                            i,
                            match kind {
                                ErrorKind::Invalid => Outcome::Invalid {
                                    rule: (*rule).to_owned(),
                                },
                                other => Outcome::Failed(other),
                            },
                        );
                        rebuilt
                    }
                    None => match e.field_name().and_then(|f| self.near_field(f)) {
                        Some(near) => {
                            let path = e.field_name().unwrap_or_default().to_owned();
                            e.with_note(format!(
                                "no fetched field is at `{path}`; did you mean `{near}`?"
                            ))
                        }
                        None => e,
                    },
                };
                tracing::warn!(target: "component_model_async::engine", error = %e, "configuration rejected by validation");
                self.errors.push(e);
            }
        }
    }
}

/// The built-in rules, as `#[component(validate(...))]` registers them: one generic call
/// each, no closure per field (each would be type-checked in the user's crate).
impl Plan<'_> {
    fn push_check(&mut self, index: usize, check: Check) {
        if index < self.slots.len() {
            Arc::make_mut(&mut self.checks).push((index, check));
        }
    }

    /// `validate(range(min = .., max = ..))`.
    pub fn rule_range<T>(
        &mut self,
        handle: Handle<T>,
        rule: &'static str,
        min: Option<T::Bound>,
        max: Option<T::Bound>,
    ) where
        T: rules::Ranged + Send + Sync + 'static,
        T::Bound: Clone + Send + Sync + 'static,
    {
        let check = Check::sync_with::<T>(rule, move |v, hidden| {
            rules::range(v, min.clone(), max.clone(), hidden)
        });
        self.push_check(handle.index, check);
    }

    /// `validate(len(min = .., max = ..))`.
    pub fn rule_len<T>(
        &mut self,
        handle: Handle<T>,
        rule: &'static str,
        min: Option<usize>,
        max: Option<usize>,
    ) where
        T: rules::Measured + Send + Sync + 'static,
    {
        let check = Check::sync_with::<T>(rule, move |v, hidden| rules::len(v, min, max, hidden));
        self.push_check(handle.index, check);
    }

    /// `validate(non_empty)`.
    pub fn rule_non_empty<T>(&mut self, handle: Handle<T>, rule: &'static str)
    where
        T: rules::Measured + Send + Sync + 'static,
    {
        let check = Check::sync_with::<T>(rule, rules::non_empty::<T>);
        self.push_check(handle.index, check);
    }

    /// `validate(pattern = "..")`: compiled once per plan, the first time it checks a value.
    pub fn rule_pattern<T>(&mut self, handle: Handle<T>, rule: &'static str, pattern: &'static str)
    where
        T: rules::Textual + Send + Sync + 'static,
    {
        let pattern = rules::Pattern::new(pattern);
        let check =
            Check::sync_with::<T>(rule, move |v, hidden| rules::pattern(v, &pattern, hidden));
        self.push_check(handle.index, check);
    }

    /// `validate(url)`.
    pub fn rule_url<T>(&mut self, handle: Handle<T>, rule: &'static str)
    where
        T: rules::Textual + Send + Sync + 'static,
    {
        let check = Check::sync_with::<T>(rule, rules::url::<T>);
        self.push_check(handle.index, check);
    }

    /// `validate(one_of = ["..", ".."])`.
    pub fn rule_one_of_text<T>(
        &mut self,
        handle: Handle<T>,
        rule: &'static str,
        allowed: &'static [&'static str],
    ) where
        T: rules::Textual + Send + Sync + 'static,
    {
        let check = Check::sync_with::<T>(rule, move |v, hidden| {
            rules::one_of_text(v, allowed, hidden)
        });
        self.push_check(handle.index, check);
    }

    /// `validate(one_of = [80, 443])` (any type with `==` and `Debug`: numbers, enums).
    pub fn rule_one_of<T>(&mut self, handle: Handle<T>, rule: &'static str, allowed: &'static [T])
    where
        T: PartialEq + std::fmt::Debug + Send + Sync + 'static,
    {
        let check = Check::sync_with::<T>(rule, move |v, hidden| rules::one_of(v, allowed, hidden));
        self.push_check(handle.index, check);
    }

    /// [`Plan::rule_one_of`] of an `Option<T>` field: `Some` only.
    pub fn rule_one_of_some<T>(
        &mut self,
        handle: Handle<Option<T>>,
        rule: &'static str,
        allowed: &'static [T],
    ) where
        T: PartialEq + std::fmt::Debug + Send + Sync + 'static,
    {
        let check = Check::sync_with::<Option<T>>(rule, move |v, hidden| match v {
            Some(v) => rules::one_of(v, allowed, hidden),
            None => Ok(()),
        });
        self.push_check(handle.index, check);
    }
}
