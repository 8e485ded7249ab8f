//! [`AsyncAssign`] and [`FutureAssign`]: assigning components that arrive asynchronously,
//! and [`Assignment`], the future both return, which also chains and builds.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, JoinAll, join_all};

use crate::error::{BoxError, ComponentError, MergeErrors};
use crate::source::FieldSpec;

/// Assigns a component of type `T` from `IntoT`, asynchronously.
///
/// `#[derive(AsyncAssign)]` implements it for every `'static` field type `T` that only one
/// field has, for any `IntoT: Into<T>`:
///
/// ```
/// use component_model_async::AsyncAssign;
///
/// #[derive(AsyncAssign, Default)]
/// struct TestConfig {
///     value: String,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut config = TestConfig::default();
/// config.async_assign("test_value").await.unwrap();
/// assert_eq!(config.value, "test_value");
/// # });
/// ```
///
/// The returned [`Assignment`] can be awaited, or chained with more assignments and
/// futures and finished with [`Assignment::build`].
pub trait AsyncAssign<T, IntoT> {
    /// The error of a failed assignment.
    type Error;

    /// Assigns `component` to the field of type `T` when the returned future is awaited.
    fn async_assign(&mut self, component: IntoT) -> Assignment<'_, Self, Self::Error>
    where
        Self: Sized;

    /// Assigns `component` and returns `self`.
    fn async_impute(
        self,
        component: IntoT,
    ) -> impl Future<Output = Result<Self, Self::Error>> + Send
    where
        Self: Sized + Send,
        IntoT: Send,
        Self::Error: MergeErrors + Send,
    {
        async move {
            let mut this = self;
            this.async_assign(component).await?;
            Ok(this)
        }
    }
}

/// Assigns a component of type `T` from a future (anything `IntoFuture`) that yields
/// `Result<V, E>` with `V: Into<T>`.
///
/// ```
/// use component_model_async::{AsyncAssign, FutureAssign};
///
/// #[derive(AsyncAssign, Default, Debug)]
/// struct AppConfig {
///     host: String,
///     port: u16,
/// }
///
/// async fn fetch_port() -> Result<u16, std::io::Error> { Ok(8080) }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let mut config = AppConfig::default();
/// config.future_assign(fetch_port()).await.unwrap();
/// assert_eq!(config.port, 8080);
/// # });
/// ```
pub trait FutureAssign<T, IntoT> {
    /// The future returned by [`future_assign`](FutureAssign::future_assign).
    type Future<'a>: Future<Output = Result<(), Self::Error>> + Send + 'a
    where
        Self: 'a;
    /// The error of a failed assignment.
    type Error;

    /// Runs `component` and assigns what it yields when the returned future is awaited.
    fn future_assign(&mut self, component: IntoT) -> Self::Future<'_>;

    /// Runs `component`, assigns what it yields, and returns `self`.
    fn future_impute(
        self,
        component: IntoT,
    ) -> impl Future<Output = Result<Self, Self::Error>> + Send
    where
        Self: Sized + Send,
        IntoT: Send,
    {
        async move {
            let mut this = self;
            this.future_assign(component).await?;
            Ok(this)
        }
    }
}

/// The field of type `T` of a `#[derive(AsyncAssign)]` struct, for any `IntoT: Into<T>`:
/// the one impl the derive writes per field type (that only one field has).
/// [`AsyncAssign`] and [`FutureAssign`] are implemented once, here, for every struct with
/// one; the `IntoT: Into<T>` bound of each impl is what picks the field from the type of
/// the value assigned. Not public API.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no field that a `{IntoT}` can be assigned to",
    label = "no field of `{Self}` takes a `{IntoT}`",
    note = "`#[derive(AsyncAssign)]` assigns a value to the one field of a type the value converts `Into` (a type no other field has)"
)]
pub trait FieldSlot<T, IntoT> {
    /// What `#[component(...)]` says about the field (names it in errors; hides a secret's
    /// cause).
    const SPEC: &'static FieldSpec;
    /// The field.
    fn slot(&mut self) -> &mut T;
}

impl<S, T, IntoT> AsyncAssign<T, IntoT> for S
where
    S: FieldSlot<T, IntoT>,
    IntoT: Into<T>,
    T: Send + 'static,
{
    type Error = ComponentError;

    #[inline]
    fn async_assign(&mut self, component: IntoT) -> Assignment<'_, Self, ComponentError> {
        let value: T = component.into();
        Assignment::new(self).set(move |this: &mut S| *this.slot() = value)
    }
}

impl<S, T, Fut, V, E> FutureAssign<T, Fut> for S
where
    S: FieldSlot<T, V> + Send,
    Fut: IntoFuture<Output = Result<V, E>>,
    Fut::IntoFuture: Send + 'static,
    V: Into<T> + Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    type Future<'a>
        = Assignment<'a, S, ComponentError>
    where
        Self: 'a;
    type Error = ComponentError;

    fn future_assign(&mut self, component: Fut) -> Self::Future<'_> {
        let fut = component.into_future();
        Assignment::new(self).step(async move {
            match fut.await {
                Ok(v) => Ok(move |this: &mut S| *this.slot() = v.into()),
                Err(e) => Err(future_error(<S as FieldSlot<T, V>>::SPEC, e)),
            }
        })
    }
}

/// The error of a `future_assign` future, tied to its field.
fn future_error<E: Into<BoxError>>(spec: &'static FieldSpec, e: E) -> ComponentError {
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

type Setter<'a, S> = Box<dyn FnOnce(&mut S) + Send + 'a>;
type PendingStep<'a, S, E> = BoxFuture<'a, Result<Setter<'a, S>, E>>;

enum Step<'a, S, E> {
    Ready(Setter<'a, S>),
    Pending(PendingStep<'a, S, E>),
}

/// Pending assignments to one value: await it to apply them, or chain more and `build`.
///
/// All pending futures run concurrently when the `Assignment` is awaited. Assignment is
/// all-or-nothing: if any step fails, none is applied and every error is returned
/// (merged with [`MergeErrors`]).
///
/// ```
/// use component_model_async::{AsyncAssign, ComponentError};
///
/// #[derive(AsyncAssign, Default, Debug)]
/// struct AppConfig {
///     host: String,
///     port: u16,
///     tags: Vec<String>,
/// }
///
/// async fn fetch_port() -> Result<u16, std::io::Error> { Ok(8080) }
/// async fn load_tags() -> Result<Vec<String>, std::io::Error> { Ok(vec!["a".into()]) }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let config = AppConfig::default()
///     .async_assign("localhost")
///     .future_assign(fetch_port())
///     .future_assign(load_tags())
///     .build()
///     .await?;
/// assert_eq!((config.host.as_str(), config.port), ("localhost", 8080));
/// # Ok::<(), ComponentError>(())
/// # }).unwrap();
/// ```
#[must_use = "an Assignment does nothing until it is awaited or built"]
pub struct Assignment<'a, S, E> {
    target: &'a mut S,
    steps: Vec<Step<'a, S, E>>,
    running: Option<JoinAll<PendingStep<'a, S, E>>>,
    order: Vec<Option<Setter<'a, S>>>,
    done: bool,
}

impl<'a, S, E> Assignment<'a, S, E> {
    /// Starts an assignment to `target`.
    pub fn new(target: &'a mut S) -> Self {
        Assignment {
            target,
            steps: Vec::new(),
            running: None,
            order: Vec::new(),
            done: false,
        }
    }

    /// Adds a step that is already known: apply `set` to the target.
    pub fn set(mut self, set: impl FnOnce(&mut S) + Send + 'a) -> Self {
        self.steps.push(Step::Ready(Box::new(set)));
        self
    }

    /// Adds a pending step: when `fut` completes with `Ok(set)`, `set` is applied.
    pub fn step<Fut, Set>(mut self, fut: Fut) -> Self
    where
        Fut: Future<Output = Result<Set, E>> + Send + 'a,
        Set: FnOnce(&mut S) + Send + 'a,
    {
        self.steps.push(Step::Pending(Box::pin(async move {
            fut.await.map(|set| Box::new(set) as Setter<'a, S>)
        })));
        self
    }

    /// Chains another [`AsyncAssign`] of the same target.
    pub fn async_assign<T, IntoT>(self, component: IntoT) -> Self
    where
        S: AsyncAssign<T, IntoT, Error = E>,
    {
        let Assignment {
            target, mut steps, ..
        } = self;
        let mut next = target.async_assign(component);
        steps.append(&mut next.steps);
        next.steps = steps;
        next
    }

    /// Chains a [`FutureAssign`] of the same target; the future runs at `await`/`build`.
    pub fn future_assign<T, F>(self, component: F) -> Self
    where
        S: for<'b> FutureAssign<T, F, Error = E, Future<'b> = Assignment<'b, S, E>>,
    {
        let Assignment {
            target, mut steps, ..
        } = self;
        let mut next = target.future_assign(component);
        steps.append(&mut next.steps);
        next.steps = steps;
        next
    }

    /// Runs every pending step, applies them, and returns the target's value (leaving
    /// `Default` in its place).
    pub async fn build(mut self) -> Result<S, E>
    where
        S: Default,
        E: MergeErrors,
    {
        (&mut self).await?;
        Ok(std::mem::take(self.target))
    }
}

impl<S, E: MergeErrors> Future for Assignment<'_, S, E> {
    type Output = Result<(), E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Ok(()));
        }
        if this.running.is_none() {
            let mut pending = Vec::new();
            for step in std::mem::take(&mut this.steps) {
                match step {
                    Step::Ready(set) => this.order.push(Some(set)),
                    Step::Pending(fut) => {
                        pending.push(fut);
                        this.order.push(None);
                    }
                }
            }
            this.running = Some(join_all(pending));
        }
        let Some(running) = this.running.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let results = match Pin::new(running).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        this.done = true;
        this.running = None;
        let order = std::mem::take(&mut this.order);
        let mut errors = Vec::new();
        let mut fetched = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(set) => fetched.push(set),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Poll::Ready(Err(E::merge(errors)));
        }
        // Apply in the order the steps were added; `None` marks where a pending step's
        // result goes.
        let mut fetched = fetched.into_iter();
        for slot in order {
            if let Some(set) = slot.or_else(|| fetched.next()) {
                set(this.target);
            }
        }
        Poll::Ready(Ok(()))
    }
}
