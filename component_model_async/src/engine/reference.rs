//! References between fields (`key = "{region}/db/pool"`): the text a referenced field's
//! value stands for, and a field's slot filled in with its inputs' values once they are
//! converted — its keys, its precedence sources' keys, and the client `connect` opens.

use std::any::Any;
use std::sync::Arc;

use super::slot::{Route, Slot, for_source};
use crate::error::{ComponentError, ErrorKind};
use crate::source::fill_references;
use crate::sources::Sources;
use secrecy::ExposeSecret;

/// What a referenced field's value stands for in a key: `Some(Some(text))`, `Some(None)`
/// for an absent `Option`, `None` for a type that is no text, integer or `bool` (the
/// derive refuses those at compile time; a fetcher's value may still be one).
pub(super) fn text_of(value: &(dyn Any + Send)) -> Option<Option<String>> {
    macro_rules! try_types {
        ($($t:ty),*) => {$(
            if let Some(v) = value.downcast_ref::<$t>() {
                return Some(Some(v.to_string()));
            }
            if let Some(v) = value.downcast_ref::<Option<$t>>() {
                return Some(v.as_ref().map(ToString::to_string));
            }
        )*};
    }
    try_types!(
        String, bool, u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
    );
    if let Some(v) = value.downcast_ref::<crate::SecretString>() {
        return Some(Some(v.expose_secret().to_owned()));
    }
    if let Some(v) = value.downcast_ref::<Option<crate::SecretString>>() {
        return Some(v.as_ref().map(|s| s.expose_secret().to_owned()));
    }
    None
}

/// `slot` with each `{name}` in its requests (its own, its `fallback_to`'s, its
/// precedence sources') replaced by `value(name)`.
pub(super) fn fill(slot: &Slot, value: &dyn Fn(&str) -> Option<String>) -> Slot {
    let mut filled = slot.clone();
    filled.request = filled.request.map(|r| r.with_references(value));
    filled.fallback_request = filled.fallback_request.map(|r| r.with_references(value));
    if let Some(p) = &slot.precedence {
        let mut p = (**p).clone();
        for c in &mut p.candidates {
            c.request = c.request.take().map(|r| r.with_references(value));
            if let std::borrow::Cow::Owned(label) = fill_references(&c.label, value) {
                c.label = label.into();
            }
        }
        filled.precedence = Some(Arc::new(p));
    }
    filled
}

/// The field's own route through a client for the address its `connect` names
/// (`address`, with the references filled in), opened — or taken from the clients the
/// `Sources` keep — now. The address may be secret: no error says it.
pub(super) async fn connect(
    sources: &Sources,
    slot: &mut Slot,
    address: String,
) -> Result<(), ComponentError> {
    let name = slot.spec.source;
    match sources.dynamic_source(name, &address).await {
        Ok(source) => {
            slot.sensitive |= source.is_sensitive();
            slot.request = slot.request.take().map(|r| for_source(r, source.as_ref()));
            if let Some(p) = &mut slot.precedence
                && let Some(own) = p.own
            {
                let p = Arc::make_mut(p);
                p.candidates[own].route = Route::Raw(source.clone());
                p.candidates[own].request = slot.request.clone();
            }
            slot.primary = Some(Route::Raw(source.clone()));
            slot.source = Some(source);
            Ok(())
        }
        Err(e) => {
            let kind = e.kind();
            let connect = slot.spec.connect.unwrap_or_default();
            let builder = ComponentError::field(kind).provenance(slot.provenance());
            Err(e.into_field_error(builder).with_note(format!(
                "the client `connect = \"{connect}\"` names could not be opened"
            )))
        }
    }
}

/// Whether `{name}` stands in a text of `spec` other than its `connect` (its key, its
/// source's parameters, `field`, its precedence sources' arguments).
pub(super) fn outside_connect(spec: &crate::source::FieldSpec, name: &str) -> bool {
    let reference = format!("{{{name}}}");
    let texts = spec
        .key
        .into_iter()
        .chain(spec.select)
        .chain(spec.params.iter().map(|(_, v)| *v))
        .chain(spec.overrides.iter().copied())
        .chain(spec.defaults.iter().copied());
    #[allow(deprecated)] // `secret_path` is the `secret` parameter, kept for readers
    let texts = texts.chain(spec.secret_path);
    texts.into_iter().any(|t| t.contains(&reference))
}

/// The error of a field not fetched because input `name` (a field it references)
/// failed, or is an absent `Option`.
pub(super) fn not_fetched(slot: &Slot, name: &str, absent: bool) -> ComponentError {
    let detail = match absent {
        true => format!("`{name}` is absent"),
        false => format!("needs `{name}`, which failed"),
    };
    ComponentError::field(ErrorKind::NotFetched)
        .provenance(slot.provenance())
        .detail(detail)
        .build()
}
