//! What generated code reaches through `component_model_async::__private`. Not public API.

use std::marker::PhantomData;

pub use crate::assign::{Assignment, AsyncAssign, FieldSlot, FutureAssign};
pub use crate::error::{BoxError, ComponentError, ErrorKind, MergeErrors};
pub use crate::live::{ConfigUpdates, Live, watch, watch_for_updates};
pub use crate::nested::{
    ComponentSource, FetchFuture, Nest, Nested, NestedOps, describe, fetch_all, fetch_available,
    fetch_bounded, fetch_field, fetch_nested, fetch_report,
};
pub use crate::partial::Partial;
pub use crate::plan::{Handle, Outcomes, Plan};
pub use crate::report::FetchReport;
pub use crate::source::FieldSpec;
pub use crate::sources::Sources;

pub use crate::__component_model_backend as backend;

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

    /// `Some(T::default)` for a type the derive knows implements `Default` (a standard
    /// type): one generic call instead of a probe.
    #[inline]
    pub const fn default_of<T: Default>() -> Option<fn() -> T> {
        Some(T::default)
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
