//! What `config_doc()` shows of a plan: per slot its sources in precedence order (as
//! planned: convention keys resolved), its rules and settings ([`FieldDoc`]). Nothing is
//! fetched.

use super::plan::Plan;
use super::precedence::Precedence;
use super::slot::{Route, Slot};
use crate::config_doc::{FieldDoc, SourceDoc, SourceRole};
use crate::source::{FetchRequest, FieldSpec, Source};

/// Whether text still holds a `{@profile}`, a `{field}` reference or a `${VAR}`: shown as
/// written.
fn templated(text: &str) -> bool {
    text.contains('{')
}

/// The key `spec` names, as written (before `${VAR}`s, profiles and references).
fn written_key(spec: &'static FieldSpec) -> Option<(&'static str, String)> {
    FetchRequest::new(spec).native_key()
}

/// One source of a field, described.
fn source_doc(
    spec: &'static FieldSpec,
    path: &str,
    label: String,
    written: Option<&'static str>,
    role: SourceRole,
    route: Option<&Route>,
    request: Option<&FetchRequest>,
) -> SourceDoc {
    let source: Option<&dyn Source> = match route {
        Some(Route::Raw(s)) => Some(s.as_ref()),
        _ => None,
    };
    let native = match (source, request) {
        (Some(s), Some(r)) => s.native_key(r),
        (None, Some(r)) => r.native_key(),
        _ => None,
    };
    let (mut key_label, mut key) = match native {
        Some((l, k)) => (l.to_owned(), Some(k)),
        None => ("key".to_owned(), None),
    };
    // The field's own key as written when it is a template (a precedence source reads by
    // convention: its key has no template of the field's).
    if role == SourceRole::Own
        && let Some((l, k)) = written_key(spec).filter(|(_, k)| templated(k))
    {
        key_label = l.to_owned();
        key = Some(k);
    }
    if matches!(route, Some(Route::Typed(_))) {
        key_label = "fetcher".to_owned();
    }
    let file = label == "file" || label.starts_with("file@");
    let pointer = if file {
        request
            .and_then(|r| r.pointer().map(str::to_owned))
            .or_else(|| {
                (role == SourceRole::Own)
                    .then(|| spec.pointer.map(str::to_owned))
                    .flatten()
            })
            // A `file@` source that cannot be planned (no `file` source registered)
            // would read the field by its path, as the convention says.
            .or_else(|| {
                (role != SourceRole::Own && label.starts_with("file@"))
                    .then(|| format!("/{}", path.replace('.', "/")))
            })
    } else {
        // Any other source's `pointer` is the place in the document its key answers.
        if role == SourceRole::Own
            && let (Some(k), Some(p)) = (&mut key, spec.pointer)
        {
            k.push('#');
            k.push_str(p);
        }
        None
    };
    let problem = match route {
        Some(Route::Fail(why)) => Some(why.to_string()),
        None => Some("not planned".to_owned()),
        _ => None,
    };
    let shown = match written {
        Some(w) if templated(w) => w.to_owned(),
        _ => label,
    };
    SourceDoc::new(
        shown,
        role,
        key_label,
        key,
        pointer,
        source.and_then(Source::location),
        problem,
    )
}

/// Each precedence source's part and its label as written, highest first.
fn written_roles(slot: &Slot, p: &Precedence) -> Vec<(SourceRole, Option<&'static str>)> {
    let spec = slot.spec;
    let overrides = spec.overrides.len();
    let own_count = usize::from(p.own.is_some());
    (0..p.candidates.len())
        .map(|i| {
            if Some(i) == p.own {
                (SourceRole::Own, Some(spec.source))
            } else if i < overrides {
                (SourceRole::Override, spec.overrides.get(i).copied())
            } else {
                let at = i.saturating_sub(overrides + own_count);
                (SourceRole::Default, spec.defaults.get(at).copied())
            }
        })
        .collect()
}

/// Each precedence source's part, highest first.
pub(super) fn roles(slot: &Slot, p: &Precedence) -> Vec<SourceRole> {
    written_roles(slot, p).into_iter().map(|(r, _)| r).collect()
}

/// The precedence sources of a slot, highest first, each with its part.
fn precedence_docs(slot: &Slot, p: &Precedence) -> Vec<SourceDoc> {
    let spec = slot.spec;
    p.candidates
        .iter()
        .zip(written_roles(slot, p))
        .map(|(c, (role, written))| {
            source_doc(
                spec,
                &slot.field,
                c.label.to_string(),
                written,
                role,
                Some(&c.route),
                c.request.as_ref(),
            )
        })
        .collect()
}

impl Plan<'_> {
    /// Whether slot `index` is `None` when absent: an `Option` field, or a field of an
    /// `Option<Nested>` struct (absent, the struct is `None`).
    pub(super) fn optional_at(&self, index: usize) -> bool {
        let Some(slot) = self.slots.get(index) else {
            return false;
        };
        let own = slot.decoders.is_some_and(|d| {
            let mut out = (d.boxed)();
            (d.absent)(out.as_mut())
        });
        own || self
            .groups
            .iter()
            .any(|g| (g.start..g.end).contains(&index))
    }

    /// Every planned field, described.
    pub(crate) fn field_docs(&self) -> Vec<FieldDoc> {
        self.slots
            .iter()
            .enumerate()
            .map(|(index, slot)| {
                let spec = slot.spec;
                let mut sources = match &slot.precedence {
                    Some(p) => precedence_docs(slot, p),
                    None => vec![source_doc(
                        spec,
                        &slot.field,
                        spec.source.to_owned(),
                        Some(spec.source),
                        SourceRole::Own,
                        slot.primary.as_ref(),
                        slot.request.as_ref(),
                    )],
                };
                if let Some(to) = spec.fallback_to {
                    sources.push(source_doc(
                        spec,
                        &slot.field,
                        to.to_owned(),
                        Some(to),
                        SourceRole::FallbackTo,
                        slot.fallback.as_ref(),
                        slot.fallback_request.as_ref(),
                    ));
                }
                let optional = self.optional_at(index);
                let rules = self
                    .checks
                    .iter()
                    .filter(|(i, _)| *i == index)
                    .map(|(_, c)| c.rule())
                    .collect();
                FieldDoc::new(
                    slot.field.to_string(),
                    spec,
                    slot.sensitive,
                    sources,
                    optional,
                    rules,
                    self.schema_of(index),
                )
            })
            .collect()
    }
}
