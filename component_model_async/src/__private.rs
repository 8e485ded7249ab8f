//! What generated code reaches through `component_model_async::__private`. Not public API.

use std::marker::PhantomData;

pub use crate::assign::{Assignment, AsyncAssign, FutureAssign};
pub use crate::error::{BoxError, ComponentError, ErrorKind, MergeErrors};
pub use crate::live::{ConfigUpdates, Live, watch, watch_for_updates};
pub use crate::nested::{
    ComponentSource, FetchFuture, Nest, Nested, NestedOps, describe, fetch_all, fetch_available,
    fetch_bounded, fetch_nested, fetch_one, fetch_report,
};
pub use crate::partial::Partial;
pub use crate::plan::{Handle, Outcomes, Plan};
pub use crate::report::FetchReport;
pub use crate::source::FieldSpec;
pub use crate::sources::Sources;

pub use crate::__component_model_backend as backend;

/// `AsyncAssign::async_assign` of a derived struct: `set` puts `value` into its field.
pub fn assign_value<'a, S, T>(
    target: &'a mut S,
    value: T,
    set: fn(&mut S, T),
) -> Assignment<'a, S, ComponentError>
where
    T: Send + 'a,
{
    Assignment::new(target).set(move |this: &mut S| set(this, value))
}

/// `FutureAssign::future_assign` of a derived struct: runs `component`, then `set` puts
/// what it yields into its field; a failure is tied to the field's `spec`.
pub fn assign_future<'a, S, T, Fut, V, E>(
    target: &'a mut S,
    component: Fut,
    spec: &'static FieldSpec,
    set: fn(&mut S, T),
) -> Assignment<'a, S, ComponentError>
where
    Fut: std::future::IntoFuture<Output = Result<V, E>>,
    Fut::IntoFuture: Send + 'static,
    V: Into<T> + Send + 'static,
    E: Into<BoxError> + Send + 'static,
    T: Send + 'a,
    S: 'a,
{
    let fut = component.into_future();
    Assignment::new(target).step(async move {
        match fut.await {
            Ok(v) => {
                let value: T = v.into();
                Ok(move |this: &mut S| set(this, value))
            }
            Err(e) => Err(future_error(spec, e)),
        }
    })
}

/// The error of a `future_assign` future, tied to its field.
pub fn future_error<E: Into<BoxError>>(spec: &'static FieldSpec, e: E) -> ComponentError {
    let cause: BoxError = e.into();
    let kind = crate::resilience::kind_of(cause.as_ref());
    let b = ComponentError::field(kind).in_field(spec.owner, spec.field);
    if spec.sensitive {
        b.detail("the future failed (its message is hidden because the field is secret)")
            .build()
    } else {
        b.cause(cause).build()
    }
}

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
        /// `Some(T::default())`.
        fn probe_default(&self) -> Option<T>;
    }
    impl<T: Default> ViaDefault<T> for DefaultProbe<T> {
        fn probe_default(&self) -> Option<T> {
            Some(T::default())
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

    /// Chosen otherwise.
    pub trait NoDefault<T> {
        /// `None`.
        fn probe_default(&self) -> Option<T>;
    }
    impl<T> NoDefault<T> for &DefaultProbe<T> {
        fn probe_default(&self) -> Option<T> {
            None
        }
    }
}
