//! The choose stage: which source each field asks in a round, and how the round's answers
//! settle into the field's result. A run chooses twice today: every field asks its own
//! source ([`Round::Primary`]); then a field whose source failed in a way another source
//! may mend asks its `fallback_to` ([`Round::FallbackTo`]), keeping the first error (with
//! a note) when that fails too. A field with precedence sources asks all of them in the
//! first round, and the highest that has the value wins (see `precedence`); its
//! `fallback_to` is asked in the second round when its own source is where the walk
//! stopped.

use std::sync::Arc;
use std::time::Duration;

use super::fetch::Who;
use super::precedence::{self, Decision, Tried};
use super::resolve::Wave;
use super::slot::{Got, Route, Slot, TypedCall, fallbackable};
use super::state::Outcomes;
use crate::error::{ComponentError, ErrorKind};
use crate::resilience::Failure;
use crate::source::{FetchRequest, RawValue, Remembering, Source};

/// A round of asking.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Round {
    /// Every field not yet answered asks its own source.
    Primary,
    /// A field whose source failed (not found, unavailable, timed out, circuit open)
    /// asks its `fallback_to` source.
    FallbackTo,
}

/// The rounds of a wave, in order.
pub(super) const ROUNDS: [Round; 2] = [Round::Primary, Round::FallbackTo];

/// One field's question in a round.
pub(super) enum Ask<'p> {
    /// A request to a source, batched with the other requests to it.
    Source {
        source: &'p Arc<dyn Source>,
        request: &'p FetchRequest,
        /// The name it is registered under (for metrics and spans).
        name: &'static str,
    },
    /// A typed fetcher's call, on its own, in the field's span.
    Typed(&'p TypedCall, tracing::Span),
}

impl Round {
    /// The fields of `wave` that ask in this round, and how. Fields this round settles
    /// without asking (a planning error, a secret value no fallback may keep) are
    /// settled here.
    pub(super) fn asks<'p>(self, out: &mut Outcomes<'p>, wave: Wave) -> Vec<(Who, Ask<'p>)> {
        let slots: &'p [Slot] = out.slots;
        let mut asks = match self {
            Round::Primary => Vec::with_capacity(wave.len()),
            Round::FallbackTo => Vec::new(), // mostly none
        };
        for i in wave.iter() {
            let slot = &slots[i];
            match self {
                Round::Primary => {
                    if out.fields[i].result.is_some() {
                        continue; // given (a live update), or settled before
                    }
                    if let Some(p) = &slot.precedence {
                        // Every precedence source at once; the walk comes when all answered.
                        let mut tried = Tried::new(p.candidates.len());
                        for (c, cand) in p.candidates.iter().enumerate() {
                            let who = Who {
                                field: i as u32,
                                candidate: c as u16,
                            };
                            match (&cand.route, &cand.request) {
                                (Route::Raw(source), Some(request)) => asks.push((
                                    who,
                                    Ask::Source {
                                        source,
                                        request,
                                        name: cand.name,
                                    },
                                )),
                                (Route::Typed(call), _) => {
                                    asks.push((who, Ask::Typed(call, out.span(i).clone())))
                                }
                                (Route::Fail(detail), _) => {
                                    let e = ComponentError::field(ErrorKind::Config)
                                        .provenance(precedence::provenance(slot, cand))
                                        .detail(detail.to_string())
                                        .build();
                                    tried.record(c, Err(e), Duration::ZERO);
                                }
                                (Route::Raw(_), None) => {}
                            }
                        }
                        if let Some(t) = out.tried.get_mut(i) {
                            *t = Some(Box::new(tried));
                        }
                        continue;
                    }
                    let field = &mut out.fields[i];
                    match (&slot.primary, &slot.request) {
                        (Some(Route::Fail(detail)), _) => {
                            field.result = Some(Err(slot.config_error(detail)));
                        }
                        (Some(Route::Raw(source)), Some(request)) => asks.push((
                            Who::field(i),
                            Ask::Source {
                                source,
                                request,
                                name: slot.spec.source,
                            },
                        )),
                        (Some(Route::Typed(call)), _) => {
                            asks.push((Who::field(i), Ask::Typed(call, out.span(i).clone())))
                        }
                        _ => {}
                    }
                }
                Round::FallbackTo => {
                    let field = &out.fields[i];
                    let failed = matches!(&field.result, Some(Err(e)) if fallbackable(e.kind()));
                    if !failed || field.via_fallback {
                        continue;
                    }
                    // A precedence field asks only when the walk stopped at its own source.
                    if slot.precedence.is_some() && !out.tried(i).is_some_and(|t| t.pending) {
                        continue;
                    }
                    let field = &mut out.fields[i];
                    match &slot.fallback {
                        // A source that keeps last-known-good values never got this secret one.
                        Some(Route::Raw(source)) if slot.sensitive && source.keeps_answers() => {
                            let why = ComponentError::field(ErrorKind::NotFound)
                                .provenance(slot.provenance())
                                .detail("the value is secret, and secret values are never stored for fallback")
                                .build();
                            append(&mut field.result, slot, &why);
                        }
                        Some(Route::Raw(source)) => {
                            if let Some(request) = &slot.fallback_request {
                                asks.push((
                                    Who::field(i),
                                    Ask::Source {
                                        source,
                                        request,
                                        name: slot.spec.fallback_to.unwrap_or_default(),
                                    },
                                ));
                            }
                        }
                        Some(Route::Typed(call)) => {
                            asks.push((Who::field(i), Ask::Typed(call, out.span(i).clone())))
                        }
                        Some(Route::Fail(detail)) => {
                            let e = slot.config_error(detail);
                            append(&mut field.result, slot, &e);
                        }
                        None => {}
                    }
                }
            }
        }
        asks
    }

    /// Work done alongside this round's fetches: before the `fallback_to` round, what
    /// the first round fetched goes to the `fallback_to` sources that keep last-known-good
    /// values (one call per source; never a secret value, never one that does not convert).
    pub(super) fn alongside(self, out: &Outcomes<'_>, wave: Wave) -> Vec<Remembering> {
        if self != Round::FallbackTo {
            return Vec::new();
        }
        type Kept = Vec<(FetchRequest, RawValue)>;
        let mut keep: Vec<(&Arc<dyn Source>, Kept)> = Vec::new();
        for i in wave.iter() {
            let (slot, field) = (&out.slots[i], &out.fields[i]);
            let (Some(Route::Raw(fb)), Some(Ok(Got::Raw(raw))), Some(request), false) = (
                &slot.fallback,
                &field.result,
                &slot.fallback_request,
                field.via_fallback,
            ) else {
                continue;
            };
            if !fb.keeps_answers() {
                continue;
            }
            // A precedence field's value is the own source's only when it won: an
            // override's or a default's must never become the own key's last-known-good.
            if let Some(p) = &slot.precedence
                && out.tried(i).and_then(|t| t.winner) != p.own
            {
                continue;
            }
            // Only a value the field accepts is last-known-good: one that does not convert
            // (or is over `max_size`) must not replace a good one.
            let provenance = || slot.provenance();
            let target = slot.target(&provenance);
            let converts = super::convert::too_large(raw, &target).is_none()
                && slot
                    .decoders
                    .is_some_and(|d| (d.raw)(raw.clone(), &target, &mut ()).is_ok());
            if !converts {
                continue;
            }
            if slot.sensitive {
                tracing::warn!(
                    target: "component_model_async::engine",
                    field = format_args!("{}.{}", slot.owner, slot.field),
                    fallback_to = slot.spec.fallback_to.unwrap_or_default(),
                    "the value is secret: it is not stored for fallback"
                );
                continue;
            }
            let answer = (request.clone(), raw.clone());
            match keep.iter_mut().find(|(s, _)| Arc::ptr_eq(s, fb)) {
                Some((_, answers)) => answers.push(answer),
                None => keep.push((fb, vec![answer])),
            }
        }
        keep.into_iter()
            .filter_map(|(fb, answers)| fb.remember(answers))
            .collect()
    }

    /// Settles field `i`'s answer of this round.
    pub(super) fn settle(
        self,
        out: &mut Outcomes<'_>,
        who: Who,
        answer: Result<Got, Failure>,
        elapsed: Duration,
    ) {
        let i = who.index();
        let slot = &out.slots[i];
        if who.candidate != Who::OWN {
            // A precedence source's answer: kept until every one answered.
            let c = usize::from(who.candidate);
            let (Some(p), Some(Some(tried))) = (&slot.precedence, out.tried.get_mut(i)) else {
                return;
            };
            let cand = &p.candidates[c];
            // Where in the value the field is: a convention's pointer; for the field's own
            // source, its `field`/`pointer` (what is not there is absent, so the walk goes on).
            let (select, pointer) = match cand.request.as_ref().and_then(FetchRequest::pointer) {
                Some(pointer) => (None, Some(pointer)),
                None if Some(c) == p.own => (
                    slot.spec
                        .select
                        .filter(|_| !cand.source().is_some_and(Source::selects_field)),
                    slot.spec.pointer,
                ),
                None => (None, None),
            };
            let answer = answer
                .map_err(|f| failure_error(f, slot, precedence::provenance(slot, cand)))
                .and_then(|got| point(got, select, pointer, || precedence::provenance(slot, cand)));
            tried.record(c, answer, elapsed);
            return;
        }
        // A field asked twice waited for both.
        out.add_elapsed(i, elapsed);
        let field = &mut out.fields[i];
        match (self, answer) {
            (Round::Primary, r) => field.result = Some(r.map_err(|f| to_component_error(f, slot))),
            (Round::FallbackTo, Ok(got)) => {
                field.result = Some(Ok(got));
                field.via_fallback = true;
                if let Some(Some(tried)) = out.tried.get_mut(i) {
                    tried.fallback = Some((None, elapsed));
                }
            }
            (Round::FallbackTo, Err(f)) => {
                if let Some(Some(tried)) = out.tried.get_mut(i) {
                    let own_absent = matches!(
                        &field.result,
                        Some(Err(own)) if own.kind() == ErrorKind::NotFound
                    );
                    tried.fallback = Some((Some(f.kind()), elapsed));
                    if own_absent && f.kind() != ErrorKind::NotFound {
                        // The own source had nothing and its `fallback_to` failed: the
                        // field fails as the `fallback_to` did (not "absent").
                        let e = failure_error(f, slot, slot.fallback_provenance());
                        field.result = Some(Err(e.with_note(format!(
                            "`{}` had no value, so its `fallback_to` was asked",
                            slot.spec.source
                        ))));
                        return;
                    }
                }
                let e = to_component_error(f, slot);
                append(&mut field.result, slot, &e);
            }
        }
    }
}

impl Round {
    /// After a round's answers settled: the precedence fields of `wave` walk their
    /// sources' answers (the first round), or go on below their own source when it and
    /// its `fallback_to` both had nothing (the second).
    pub(super) fn finish(self, out: &mut Outcomes<'_>, wave: Wave) {
        if out.tried.is_empty() {
            return;
        }
        for i in wave.iter() {
            let slot = &out.slots[i];
            let Some(p) = &slot.precedence else { continue };
            let Some(mut tried) = out.tried.get_mut(i).and_then(Option::take) else {
                continue;
            };
            self.walk(out, i, p, &mut tried);
            out.tried[i] = Some(tried);
        }
    }

    fn walk(self, out: &mut Outcomes<'_>, i: usize, p: &precedence::Precedence, tried: &mut Tried) {
        let slot = &out.slots[i];
        {
            let from = match self {
                Round::Primary => {
                    if tried.winner.is_some() || tried.pending {
                        return;
                    }
                    if let Some(e) = out.elapsed_mut(i) {
                        *e = tried.waited();
                    }
                    0
                }
                Round::FallbackTo => {
                    let field = &out.fields[i];
                    if !tried.pending || field.via_fallback {
                        return;
                    }
                    // Both the field's own source and its `fallback_to` had nothing:
                    // the sources below them are next.
                    let own = p.own.unwrap_or_default();
                    let absent = Some(ErrorKind::NotFound);
                    if tried.kinds[own] != absent
                        || tried.fallback.map(|(kind, _)| kind) != Some(absent)
                    {
                        // The field fails as its own source (or `fallback_to`) did.
                        tried.mark_failed_above(own);
                        return;
                    }
                    own + 1
                }
            };
            let decision = p.decide(tried, from, slot.fallback.is_some());
            let field = &mut out.fields[i];
            match decision {
                Decision::Won(c) => {
                    field.result = tried.answers[c].take();
                    tried.winner = Some(c);
                }
                Decision::Failed(c) => {
                    field.result = tried.answers[c].take();
                    tried.mark_failed_above(c);
                }
                Decision::AskFallback(c) => {
                    field.result = tried.answers[c].take();
                    tried.pending = true;
                }
                Decision::AllAbsent => {
                    tried.all_absent = true;
                    let listed: Vec<String> = p
                        .candidates
                        .iter()
                        .map(|c| {
                            let key = precedence::provenance(slot, c).key;
                            match key {
                                Some(k) => format!("{} ({k})", c.label),
                                None => c.label.to_string(),
                            }
                        })
                        .collect();
                    let provenance = match p.own {
                        Some(own) => precedence::provenance(slot, &p.candidates[own]),
                        None => {
                            let mut pr = slot.provenance();
                            pr.source = Some("precedence sources".into());
                            pr.key = None;
                            pr
                        }
                    };
                    field.result = Some(Err(ComponentError::field(ErrorKind::NotFound)
                        .provenance(provenance)
                        .detail(format!("no source has a value: {}", listed.join(", ")))
                        .build()));
                }
            }
        }
    }
}

/// A precedence source's value where its request's pointer points (a convention into a
/// document): nothing there is absent.
fn point(
    got: Got,
    select: Option<&str>,
    pointer: Option<&str>,
    provenance: impl Fn() -> crate::error::Provenance,
) -> Result<Got, ComponentError> {
    if select.is_none() && pointer.is_none() {
        return Ok(got);
    }
    let Got::Raw(raw) = got else {
        return Ok(got);
    };
    match precedence::narrow(raw, select, pointer) {
        Ok(Some(v)) => Ok(Got::Raw(v)),
        Ok(None) => Err(ComponentError::field(ErrorKind::NotFound)
            .provenance(provenance())
            .detail(match (select, pointer) {
                (Some(f), Some(p)) => format!("nothing at field `{f}`, `{p}`"),
                (Some(f), None) => format!("no field `{f}`"),
                (None, p) => format!("nothing at `{}`", p.unwrap_or_default()),
            })
            .build()),
        Err(why) => Err(ComponentError::field(ErrorKind::Decode)
            .provenance(provenance())
            .detail(why)
            .build()),
    }
}

/// Keeps the primary error and notes that `fallback_to` failed too, and why.
fn append(
    result: &mut Option<Result<Got, ComponentError>>,
    slot: &Slot,
    fallback: &ComponentError,
) {
    if let Some(Err(primary)) = result {
        let reason = match fallback.detail() {
            Some(detail) => format!("{}: {detail}", fallback.kind()),
            None => fallback.kind().to_string(),
        };
        let note = format!(
            "fallback_to `{}` failed too: {reason}",
            slot.spec.fallback_to.unwrap_or("?")
        );
        let taken = std::mem::replace(primary, ComponentError::Multiple(Vec::new()));
        *primary = taken.with_note(note);
    }
}

/// A failure as the field's error, naming field, source and key; a secret field's
/// fetcher message is not shown.
fn to_component_error(f: Failure, slot: &Slot) -> ComponentError {
    failure_error(f, slot, slot.provenance())
}

/// A failure as the field's error at `provenance`.
fn failure_error(f: Failure, slot: &Slot, provenance: crate::error::Provenance) -> ComponentError {
    let kind = f.kind();
    let builder = ComponentError::field(kind).provenance(provenance);
    match f {
        Failure::Source(e) => e.into_field_error(builder),
        Failure::Fetcher(e) => {
            if slot.sensitive {
                builder
                    .detail(
                        "the fetcher failed (its message is hidden because the field is secret)",
                    )
                    .build()
            } else {
                builder.cause(e).build()
            }
        }
    }
}
