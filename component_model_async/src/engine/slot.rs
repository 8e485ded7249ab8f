//! A field as the plan holds it ([`Slot`]): its spec, request, the routes it is asked
//! through (its own source, its `fallback_to`) and how its value converts — plus what
//! every stage needs of it for messages (provenance, span, conversion target).

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::convert::{self, Target};
use crate::error::{ComponentError, ErrorKind, Provenance};
use crate::source::{FetchRequest, FieldSpec, RawValue, Source};

/// A typed fetcher, its type erased: it makes the job of one call (see `fetch`).
pub(super) type TypedCall = Arc<dyn super::fetch::TypedFetch>;

/// How a field (or its `fallback_to`) is asked.
#[derive(Clone)]
pub(super) enum Route {
    Raw(Arc<dyn Source>),
    Typed(TypedCall),
    /// A configuration error found while planning (the detail); said on every run.
    Fail(Arc<str>),
}

/// What a field got: a raw value to convert, or a typed fetcher's value.
pub(super) enum Got {
    Raw(RawValue),
    Typed(Box<dyn Any + Send>),
}

/// Where a field's decoded value goes: the `&mut Option<T>` of the assembly, as
/// `dyn Any` (decoding writes in place: no box per field).
pub(super) type Out<'o> = &'o mut dyn Any;

fn put<T: 'static>(out: Out<'_>, value: T) {
    if let Some(slot) = out.downcast_mut::<Option<T>>() {
        *slot = Some(value);
    }
}

/// A value of any type, boxed.
pub(super) type Boxed = Box<dyn Any + Send>;

/// How a field's raw values, `fallback` literal and absence become its type: chosen
/// where the field is added (the only place that needs `T: Deserialize`).
#[derive(Clone, Copy)]
pub(super) struct Decoders {
    pub(super) raw: fn(RawValue, &Target<'_>, Out<'_>) -> Result<(), ComponentError>,
    pub(super) text: fn(String, &Target<'_>, Out<'_>) -> Result<(), ComponentError>,
    /// Whether the type has a value for "absent" (an `Option`), written to the out.
    pub(super) absent: fn(Out<'_>) -> bool,
    /// An empty out (`Option<T>`, boxed), to convert a field ahead of assembly into, and
    /// the value taken out of one (`T`, boxed): a field others reference is converted as
    /// soon as it is fetched.
    pub(super) boxed: fn() -> Boxed,
    pub(super) unbox: fn(Boxed) -> Option<Boxed>,
}

impl Decoders {
    pub(super) fn of<T: DeserializeOwned + Send + 'static>() -> Self {
        Decoders {
            raw: |raw, t, out| convert::decode::<T>(raw, t).map(|v| put(out, v)),
            text: |text, t, out| convert::decode_text::<T>(text, t).map(|v| put(out, v)),
            absent: |out| convert::absent::<T>().map(|v| put(out, v)).is_some(),
            boxed: || Box::new(None::<T>),
            unbox: |b| match b.downcast::<Option<T>>() {
                Ok(v) => v.map(|v| Box::new(v) as Box<dyn Any + Send>),
                Err(_) => None,
            },
        }
    }
}

/// One field of the plan.
#[derive(Clone)]
pub(super) struct Slot {
    pub(super) spec: &'static FieldSpec,
    /// The struct at the root of the fetch (the field's own struct unless nested).
    pub(super) owner: &'static str,
    /// The field's path below `owner` (`replica.port` when nested).
    pub(super) field: Cow<'static, str>,
    /// The source answering, for the location in error messages.
    pub(super) source: Option<Arc<dyn Source>>,
    pub(super) sensitive: bool,
    pub(super) request: Option<FetchRequest>,
    pub(super) primary: Option<Route>,
    pub(super) fallback: Option<Route>,
    /// The request as the `fallback_to` source reads it (its own wire form).
    pub(super) fallback_request: Option<FetchRequest>,
    /// `None` for a fetcher of a type that need not implement `Deserialize`.
    pub(super) decoders: Option<Decoders>,
    /// The fields this one is fetched after: the fields its keys reference (the resolve
    /// stage orders by it).
    pub(super) after: Vec<usize>,
    /// Whether other fields reference this one: it is converted as soon as it is fetched.
    pub(super) referenced: bool,
    /// It references a field that is not in the plan: it fails as planned, nothing is
    /// filled in and no client is opened for it.
    pub(super) unlinked: bool,
    /// Its precedence sources, when it has `overrides` or `defaults`.
    pub(super) precedence: Option<Arc<super::precedence::Precedence>>,
    /// Its type's JSON Schema, when the derive found one (feature `schema`).
    pub(super) schema: Option<SchemaFn>,
}

/// Makes a type's JSON Schema (see [`Plan::schema`](super::Plan::schema)).
pub type SchemaFn = fn() -> serde_json::Value;

/// Where a field's value was supposed to come from; built only for error messages.
fn provenance_of(
    slot: &Slot,
    request: Option<&FetchRequest>,
    source: Option<&dyn Source>,
) -> Provenance {
    let spec = slot.spec;
    let unresolved;
    let request = match request {
        Some(r) => r,
        None => {
            unresolved = FetchRequest::new(spec);
            &unresolved
        }
    };
    let native = match source {
        Some(s) => s.native_key(request),
        None => request.native_key(),
    };
    let (label, key) = match native {
        Some((label, key)) => (label, Some(key)),
        None => ("key", None),
    };
    Provenance {
        owner: Some(slot.owner.into()),
        field: Some(slot.field.clone()),
        source: Some(spec.source.into()),
        key_label: label.into(),
        bound_key: (label == "query")
            .then(|| request.bound_key().map(str::to_owned))
            .flatten(),
        key,
        location: source.and_then(Source::location),
    }
}

/// The key shown in a field's span (as sent: prefixes applied), formatted only if a
/// subscriber records it; URLs lose their password.
struct SpanKey<'a>(&'a Slot);

impl std::fmt::Display for SpanKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slot = self.0;
        let native = slot.request.as_ref().and_then(|r| match &slot.source {
            Some(s) => s.native_key(r),
            None => r.native_key(),
        });
        match native {
            Some((_, key)) => f.write_str(&key),
            None => f.write_str(slot.spec.default_key.unwrap_or_default()),
        }
    }
}

impl Slot {
    pub(super) fn provenance(&self) -> Provenance {
        provenance_of(self, self.request.as_ref(), self.source.as_deref())
    }

    /// Where the value was to come from when the `fallback_to` source was asked.
    pub(super) fn fallback_provenance(&self) -> Provenance {
        let source = match &self.fallback {
            Some(Route::Raw(s)) => Some(s.as_ref()),
            _ => None,
        };
        let mut p = provenance_of(self, self.fallback_request.as_ref(), source);
        p.source = self.spec.fallback_to.map(Into::into);
        p
    }

    /// `owner.field`, for messages.
    pub(super) fn path(&self) -> String {
        format!("{}.{}", self.owner, self.field)
    }

    /// This run's span of the field, recorded with its outcome and time; a disabled span
    /// (no allocation, nothing formatted) when no subscriber wants it.
    pub(super) fn span(&self) -> tracing::Span {
        let spec = self.spec;
        tracing::debug_span!(
            target: "component_model_async::engine",
            "component_fetch",
            owner = self.owner,
            field = &*self.field,
            source = spec.source,
            key = %SpanKey(self),
            outcome = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty,
        )
    }

    /// A configuration error of this field found while planning.
    pub(super) fn config_error(&self, detail: &str) -> ComponentError {
        ComponentError::field(ErrorKind::Config)
            .provenance(self.provenance())
            .detail(detail)
            .build()
    }

    /// A fetcher answered a value of another type than the field's.
    pub(super) fn wrong_type(&self) -> ComponentError {
        self.config_error(&format!(
            "the fetcher produced another type than `{}`",
            self.spec.type_name
        ))
    }

    /// How this field's value converts, as its source describes itself.
    pub(super) fn target<'a>(&'a self, provenance: &'a dyn Fn() -> Provenance) -> Target<'a> {
        self.target_of(provenance, self.source.as_ref(), self.request.as_ref())
    }

    /// How a value that `source` answered for `request` converts.
    pub(super) fn target_of<'a>(
        &'a self,
        provenance: &'a dyn Fn() -> Provenance,
        source: Option<&'a Arc<dyn Source>>,
        request: Option<&'a FetchRequest>,
    ) -> Target<'a> {
        let mut target = Target::new(self.spec, provenance, self.sensitive);
        if let Some(source) = source {
            if source.selects_field() {
                target.select = None;
            }
            target.unwrap_single = source.unwraps_single_member();
            target.origin = request.map(|r| (source.as_ref(), r));
        }
        target
    }
}

/// Whether a failure of this kind may be mended: by `fallback_to`, by the `fallback`
/// literal.
pub(super) fn fallbackable(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::NotFound
            | ErrorKind::Unavailable
            | ErrorKind::Timeout
            | ErrorKind::CircuitOpen
            | ErrorKind::Other
            | ErrorKind::NotFetched
    )
}

/// `request` in the wire form `source` reads: with the `field` member when the source
/// selects it itself, with the field's default key when it keys by field name.
pub(super) fn for_source(mut request: FetchRequest, source: &dyn Source) -> FetchRequest {
    if source.selects_field() {
        request.select_on_wire();
    }
    if source.keys_by_field_name() {
        request.default_key_on_wire();
    }
    request
}
