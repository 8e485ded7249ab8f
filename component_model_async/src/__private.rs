//! What generated code reaches through `component_model_async::__private`. Not public API.

use std::marker::PhantomData;

pub use crate::api::{
    FetchFuture, config_doc, describe, fetch_all, fetch_available, fetch_bounded, fetch_field,
    fetch_nested, fetch_report, preflight,
};
pub use crate::assign::{Assignment, AsyncAssign, FieldSlot, FutureAssign};
pub use crate::assign_from::{Chosen, FieldFrom, Pick, ServesSource, tag};
pub use crate::config_doc::ConfigDoc;
pub use crate::engine::{AsyncRule, Check, Handle, Outcomes, Plan, StructRules, SyncRule};
pub use crate::engine::{ComponentSource, FieldInfo, Nest, Nested, NestedOps, RefCheck};
pub use crate::error::{BoxError, ComponentError, ErrorKind, MergeErrors};
pub use crate::live::{ConfigUpdates, Live, watch, watch_for_updates};
pub use crate::partial::Partial;
pub use crate::preflight::PreflightReport;
pub use crate::report::FetchReport;
pub use crate::rules;
pub use crate::source::FieldSpec;
pub use crate::sources::Sources;
pub use crate::violations::Violations;

pub use crate::__component_model_backend as backend;
pub use crate::__component_model_schema as schema;
pub use crate::source_tag;

/// Autoref probe: `Some(T::default())` when `T: Default`, `None` otherwise.
pub mod probe {
    use super::PhantomData;

    /// Probe for `T`.
    pub struct DefaultProbe<T>(PhantomData<fn() -> T>);

    impl<T> DefaultProbe<T> {
        /// A probe.
        pub const fn new() -> Self {
            DefaultProbe(PhantomData)
        }
    }

    impl<T> Default for DefaultProbe<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// Chosen when `T: Default`.
    pub trait ViaDefault<T> {
        /// `Some(T::default)`.
        fn probe_default(&self) -> Option<fn() -> T>;
    }
    impl<T: Default> ViaDefault<T> for DefaultProbe<T> {
        fn probe_default(&self) -> Option<fn() -> T> {
            Some(T::default)
        }
    }

    /// Probe of whether `T` is a [`SecretValue`](crate::SecretValue).
    pub struct SecretProbe<T>(PhantomData<fn() -> T>);

    impl<T> SecretProbe<T> {
        /// A probe.
        pub const fn new() -> Self {
            SecretProbe(PhantomData)
        }
    }

    impl<T> Default for SecretProbe<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// Chosen when `T: SecretValue`.
    pub trait ViaSecret {
        /// `true`.
        fn probe_secret(&self) -> bool;
    }
    impl<T: crate::SecretValue> ViaSecret for SecretProbe<T> {
        fn probe_secret(&self) -> bool {
            true
        }
    }

    /// Chosen otherwise.
    pub trait NotSecret {
        /// `false`.
        fn probe_secret(&self) -> bool;
    }
    impl<T> NotSecret for &SecretProbe<T> {
        fn probe_secret(&self) -> bool {
            false
        }
    }

    /// A standard type the derive recognised by its name (a primitive, `String`, or a
    /// `Vec`/`Option` of one): it implements `Default` and is not a
    /// [`SecretValue`](crate::SecretValue), so its field needs no probe. A local type that
    /// shadows one of those names fails this bound at compile time instead of being
    /// misjudged.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is named like a standard type but is not the standard one",
        label = "`#[derive(AsyncAssign)]` took this for the standard type of that name",
        note = "write the type's path (for example `self::String` or `crate::m::String`) so the derive checks it like any other type"
    )]
    pub trait Plain: Default {}

    macro_rules! plain {
        ($($t:ty),*) => { $(impl Plain for $t {})* };
    }
    plain!(
        bool, char, u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64,
        String
    );
    impl<T: Plain> Plain for Vec<T> {}
    impl<T: Plain> Plain for Option<T> {}

    /// `false`: a standard type is never a secret type (one bound instead of a probe).
    #[inline]
    pub const fn not_secret<T: Plain>() -> bool {
        false
    }

    /// `Some(T::default)` for a standard type: one generic call instead of a probe. (Only
    /// `Default` is required here: [`not_secret`] checks [`Plain`] once per field.)
    #[inline]
    pub const fn default_of<T: Default>() -> Option<fn() -> T> {
        Some(T::default)
    }

    /// Probe of whether `T` implements `schemars::JsonSchema` (feature `schema`).
    #[cfg(feature = "schema")]
    pub struct SchemaProbe<T: ?Sized>(PhantomData<fn() -> Box<T>>);

    #[cfg(feature = "schema")]
    impl<T: ?Sized> SchemaProbe<T> {
        /// A probe.
        pub const fn new() -> Self {
            SchemaProbe(PhantomData)
        }
    }

    #[cfg(feature = "schema")]
    impl<T: ?Sized> Default for SchemaProbe<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// Chosen when `T: JsonSchema`.
    #[cfg(feature = "schema")]
    pub trait ViaSchema {
        /// `Some(the schema maker)`.
        fn probe_schema(&self) -> Option<crate::engine::SchemaFn>;
    }
    #[cfg(feature = "schema")]
    impl<T: schemars::JsonSchema + ?Sized> ViaSchema for SchemaProbe<T> {
        fn probe_schema(&self) -> Option<crate::engine::SchemaFn> {
            Some(schema_of::<T>)
        }
    }

    /// Chosen otherwise.
    #[cfg(feature = "schema")]
    pub trait NoSchema {
        /// `None`.
        fn probe_schema(&self) -> Option<crate::engine::SchemaFn>;
    }
    #[cfg(feature = "schema")]
    impl<T: ?Sized> NoSchema for &SchemaProbe<T> {
        fn probe_schema(&self) -> Option<crate::engine::SchemaFn> {
            None
        }
    }

    /// `T`'s JSON Schema (2020-12), inline (no `$defs` references: a property stands alone).
    #[cfg(feature = "schema")]
    fn schema_of<T: schemars::JsonSchema + ?Sized>() -> serde_json::Value {
        let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
            s.inline_subschemas = true;
        });
        settings
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value()
    }

    /// Chosen otherwise.
    pub trait NoDefault<T> {
        /// `None`.
        fn probe_default(&self) -> Option<fn() -> T>;
    }
    impl<T> NoDefault<T> for &DefaultProbe<T> {
        fn probe_default(&self) -> Option<fn() -> T> {
            None
        }
    }
}

/// `schema!(plan, &SPEC, Type)`, emitted by the derive after each field: with the feature
/// `schema`, gives the field its type's JSON Schema when the type implements
/// `schemars::JsonSchema` (an autoref probe); without it, nothing (no code, no compile
/// time).
#[cfg(feature = "schema")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_schema {
    ($plan:ident, $spec:expr, $t:ty) => {{
        #[allow(unused_imports)]
        use $crate::__private::probe::{NoSchema as _, ViaSchema as _};
        $plan.schema(
            $spec,
            (&$crate::__private::probe::SchemaProbe::<$t>::new()).probe_schema(),
        );
    }};
}

/// Without the feature `schema`: nothing.
#[cfg(not(feature = "schema"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_schema {
    ($plan:ident, $spec:expr, $t:ty) => {};
}
