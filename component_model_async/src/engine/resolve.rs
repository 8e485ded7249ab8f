//! The resolve stage: the order fields can be fetched in. A field waits for the fields
//! its keys reference (`key = "{region}/db/pool"`, `Plan::after`); each starts as soon as
//! its inputs are converted — not in lock-step waves — so a fetch costs its longest
//! chain of references, not a sum of waves. Fields that become ready at the same moment
//! are asked together, so their requests to one source still share a batch.
//!
//! A plan without references (every plan but those that use them) runs as one part of
//! every field and nothing here is allocated. With references, each part is a run of its
//! own over the fields' slots filled in with their inputs' values (`reference::fill`,
//! the client `connect` opens), and what it settled goes back into the plan's run.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};

use super::choose::ROUNDS;
use super::reference;
use super::slot::{Got, Slot};
use super::state::{Outcomes, Taken};
use crate::error::ComponentError;
use crate::source::{FetchContext, fill_references};
use crate::sources::Sources;

/// The fields a run asks: `0..n` of its slots (a part of a plan's run is a run of its
/// own over the part's slots).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Wave(pub(super) usize);

impl Wave {
    /// The field indices.
    pub(super) fn iter(self) -> std::ops::Range<usize> {
        0..self.0
    }

    pub(super) fn len(self) -> usize {
        self.0
    }
}

/// Asks `wave`'s fields through every round of the choose stage, into `out`.
pub(super) async fn ask(
    sources: &Sources,
    slots: &[Slot],
    out: &mut Outcomes<'_>,
    wave: Wave,
    timed: bool,
) {
    for round in ROUNDS {
        let asks = round.asks(out, wave);
        let alongside = round.alongside(out, wave);
        let fetching = super::fetch::fetch(sources, slots, asks, &out.cx, timed);
        let (answers, _) =
            futures::future::join(fetching, futures::future::join_all(alongside)).await;
        for (who, answer, elapsed) in answers {
            round.settle(out, who, answer, elapsed);
        }
        round.finish(out, wave);
    }
}

/// What a referenced field's value gave its dependants.
#[derive(Clone)]
enum Input {
    Text(String),
    /// A secret's text: it may stand only in `connect`.
    Secret(String),
    /// An absent `Option`.
    Absent,
    Failed,
    /// A value of a type that is no text, integer or `bool`.
    Unsupported,
}

/// What one part handed back: the plan's indices of its fields, their filled-in slots,
/// and what each settled.
struct Part {
    indices: Vec<usize>,
    slots: Vec<Slot>,
    taken: Vec<Taken>,
}

/// Runs a plan with references: each field as soon as its inputs are converted.
pub(super) async fn run(sources: &Sources, out: &mut Outcomes<'_>, timed: bool) {
    let slots: &[Slot] = out.slots;
    let n = slots.len();
    let mut pending: Vec<usize> = slots.iter().map(|s| s.after.len()).collect();
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, slot) in slots.iter().enumerate() {
        for &input in &slot.after {
            readers[input].push(i);
        }
    }
    out.resolved = (0..n).map(|_| None).collect();
    let mut inputs: Vec<Option<Input>> = vec![None; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut parts: FuturesUnordered<BoxFuture<'_, Part>> = FuturesUnordered::new();
    loop {
        // Fields that settle without asking (an input failed, a value given), and the
        // part of those to ask, all at once.
        let mut batch = Vec::new();
        while let Some(i) = ready.pop() {
            let slot = &slots[i];
            if let Some(e) = unfetchable(slot, &inputs, slots) {
                let field = &mut out.fields[i];
                field.result = Some(Err(e));
                out.finish_early(i);
                done(out, i, &mut inputs, &readers, &mut pending, &mut ready);
            } else if out.fields[i].result.is_some() && !needs_filling(slot) {
                // Given by a live update.
                done(out, i, &mut inputs, &readers, &mut pending, &mut ready);
            } else {
                batch.push(i);
            }
        }
        // One part per source asked: a batch answers when its slowest request does, so
        // fields of another source must not wait for it.
        for group in by_source(slots, batch) {
            parts.push(part(sources, out, group, &inputs, timed));
        }
        let Some(first) = parts.next().await else {
            break;
        };
        let mut finished = vec![first];
        // Parts that ended at the same moment: their dependants start together.
        while let Some(Some(p)) = parts.next().now_or_never() {
            finished.push(p);
        }
        for p in finished {
            let Part {
                indices,
                slots: filled,
                taken,
            } = p;
            for ((i, slot), taken) in indices.into_iter().zip(filled).zip(taken) {
                out.put_field(i, taken);
                if needs_filling(&slots[i]) {
                    out.resolved[i] = Some(Box::new(slot));
                }
                done(out, i, &mut inputs, &readers, &mut pending, &mut ready);
            }
        }
    }
    // Fields still waiting wait for each other.
    for (i, left) in pending.iter().enumerate() {
        if *left > 0 {
            let e = slots[i].config_error(
                "the field waits for fields that wait for it (a cycle of references)",
            );
            out.fields[i].result = Some(Err(e));
        }
    }
}

/// `batch` in groups that ask one source together (in planning order): a field with
/// precedence sources, a typed fetcher's or one planning failed asks on its own.
fn by_source(slots: &[Slot], mut batch: Vec<usize>) -> Vec<Vec<usize>> {
    batch.sort_unstable();
    /// What the fields of a group share: a source (by address), or a backend `connect`
    /// opens a client of; `None`: alone.
    type Asked = Option<(usize, &'static str)>;
    let mut groups: Vec<(Asked, Vec<usize>)> = Vec::new();
    for i in batch {
        let slot = &slots[i];
        let key = match (&slot.primary, &slot.precedence) {
            // Fields with precedence sources ask several: together, as without references.
            (_, Some(_)) => Some((1, "precedence")),
            // A client `connect` opens: by the backend it names.
            _ if slot.spec.connect.is_some() => Some((0, slot.spec.source)),
            (Some(super::slot::Route::Raw(s)), None) => {
                Some((Arc::as_ptr(s).cast::<()>() as usize, ""))
            }
            _ => None,
        };
        match groups.iter_mut().find(|(k, _)| key.is_some() && *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// Whether a field's slot is filled in before it is asked: it references others or
/// opens a client.
fn needs_filling(slot: &Slot) -> bool {
    !slot.spec.refs.is_empty() || slot.spec.connect.is_some()
}

/// Field `i` is settled: converted now when others reference it, and each field waiting
/// for it that has every input is ready.
fn done(
    out: &mut Outcomes<'_>,
    i: usize,
    inputs: &mut [Option<Input>],
    readers: &[Vec<usize>],
    pending: &mut [usize],
    ready: &mut Vec<usize>,
) {
    if out.slots[i].referenced {
        out.finish_early(i);
        // Secret by its field, its type, its source or how the source read it (`_FILE`).
        let secret = out.hidden(i);
        inputs[i] = Some(match &out.fields[i].result {
            Some(Ok(Got::Typed(value))) => match reference::text_of(value.as_ref()) {
                Some(Some(text)) if secret => Input::Secret(text),
                Some(Some(text)) => Input::Text(text),
                Some(None) => Input::Absent,
                None => Input::Unsupported,
            },
            _ => Input::Failed,
        });
    }
    for &r in &readers[i] {
        pending[r] -= 1;
        if pending[r] == 0 {
            ready.push(r);
        }
    }
}

/// Why a field whose inputs are settled cannot be asked: an input failed, is absent, or
/// cannot stand in a key.
fn unfetchable(slot: &Slot, inputs: &[Option<Input>], slots: &[Slot]) -> Option<ComponentError> {
    for &input in &slot.after {
        let name = || {
            let path = &slots[input].field;
            // As the reference writes it: relative to the field's struct.
            match slot.field.rsplit_once('.') {
                Some((scope, _)) => path
                    .strip_prefix(scope)
                    .and_then(|p| p.strip_prefix('.'))
                    .unwrap_or(path)
                    .to_owned(),
                None => path.to_string(),
            }
        };
        match &inputs[input] {
            Some(Input::Failed) => return Some(reference::not_fetched(slot, &name(), false)),
            Some(Input::Absent) => return Some(reference::not_fetched(slot, &name(), true)),
            Some(Input::Unsupported) => {
                return Some(slot.config_error(&format!(
                    "the field references `{}`, a `{}`: a reference stands for text, an integer or a `bool` (or an `Option` of one)",
                    name(),
                    slots[input].spec.type_name
                )));
            }
            Some(Input::Secret(_)) if reference::outside_connect(slot.spec, &name()) => {
                return Some(slot.config_error(&format!(
                    "the field references `{}`, whose value is secret: a secret may stand only in `connect` (keys are printed in errors and the report)",
                    name()
                )));
            }
            Some(Input::Text(_) | Input::Secret(_)) => {}
            // An input nothing references by name (`Plan::after`): only waited for.
            None => {}
        }
    }
    None
}

/// A part of the run: `batch`'s slots, filled in with their inputs' values, asked through
/// every round in a run of their own; each field that is referenced or filled in is
/// converted there (so its errors name the key as sent).
fn part<'a>(
    sources: &'a Sources,
    out: &Outcomes<'_>,
    batch: Vec<usize>,
    inputs: &[Option<Input>],
    timed: bool,
) -> BoxFuture<'a, Part> {
    let mut filled = Vec::with_capacity(batch.len());
    let mut addresses = Vec::with_capacity(batch.len());
    for &i in &batch {
        let slot = &out.slots[i];
        // A secret stands only in the `connect` address, never in a key.
        let input = |name: &str, secrets: bool| {
            let k = slot.spec.refs.iter().position(|r| *r == name)?;
            match inputs[*slot.after.get(k)?].as_ref()? {
                Input::Text(t) => Some(t.clone()),
                Input::Secret(t) if secrets => Some(t.clone()),
                _ => None,
            }
        };
        let value = |name: &str| input(name, false);
        let address = |name: &str| input(name, true);
        filled.push(match needs_filling(slot) && !slot.unlinked {
            true => reference::fill(slot, &value),
            false => slot.clone(),
        });
        addresses.push(
            slot.spec
                .connect
                .filter(|_| !slot.unlinked)
                .map(|c| fill_references(c, &address).into_owned()),
        );
    }
    let cx: FetchContext = out.cx.clone();
    let spans = out.spans_of(&batch);
    let early: Vec<bool> = batch
        .iter()
        .map(|&i| out.slots[i].referenced || needs_filling(&out.slots[i]))
        .collect();
    Box::pin(async move {
        let mut filled = filled;
        // Clients for `connect`, opened concurrently.
        let opened = futures::future::join_all(filled.iter_mut().zip(addresses).map(
            |(slot, address)| async move {
                match address {
                    Some(a) => reference::connect(sources, slot, a).await.err(),
                    None => None,
                }
            },
        ))
        .await;
        let n = filled.len();
        let mut taken = Vec::with_capacity(n);
        {
            let mut run = Outcomes::start_part(&filled, cx, spans);
            for (k, failed) in opened.into_iter().enumerate() {
                if let Some(e) = failed {
                    run.fields[k].result = Some(Err(e));
                }
            }
            ask(sources, &filled, &mut run, Wave(n), timed).await;
            for (k, early) in early.into_iter().enumerate() {
                if early {
                    run.finish_early(k);
                }
                taken.push(run.take_field(k));
            }
        }
        Part {
            indices: batch,
            slots: filled,
            taken,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_asks_every_field_of_its_slots() {
        assert_eq!(Wave(3).iter().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(Wave(3).len(), 3);
    }
}
