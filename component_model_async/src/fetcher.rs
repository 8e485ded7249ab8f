//! [`ComponentFetcher`]: something that produces one typed value, and the adapters that turn
//! plain functions and closures into fetchers.

use std::future::Future;
use std::marker::PhantomData;

use crate::error::BoxError;

/// Produces one component of type `T`, e.g. a port from a service registry.
///
/// Declared with [`async_trait`](crate::async_trait) so registries can hold fetchers as
/// trait objects. Any `Error` convertible into a boxed `std::error::Error + Send + Sync`
/// works; it becomes the cause of a [`ComponentError`](crate::ComponentError) naming the field.
///
/// ```
/// use component_model_async::{async_trait, ComponentFetcher};
///
/// struct MockApi;
///
/// #[async_trait]
/// impl ComponentFetcher<String> for MockApi {
///     type Error = std::io::Error;
///     async fn fetch_component(&self) -> Result<String, Self::Error> {
///         Ok("api_result".to_owned())
///     }
/// }
/// # tokio_test_block_on(async { assert_eq!(MockApi.fetch_component().await.unwrap(), "api_result") });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[async_trait::async_trait]
pub trait ComponentFetcher<T> {
    /// The fetcher's own error type.
    type Error;

    /// Fetches the component.
    async fn fetch_component(&self) -> Result<T, Self::Error>;
}

/// Type-erased fetcher stored by registries.
#[async_trait::async_trait]
pub(crate) trait DynFetcher<T>: Send + Sync {
    async fn fetch_dyn(&self) -> Result<T, BoxError>;

    /// The value boxed as `Any` (taken by type later): the call in one boxed future.
    async fn fetch_any(&self) -> Result<Box<dyn std::any::Any + Send>, BoxError>
    where
        T: 'static;
}

#[async_trait::async_trait]
impl<T, F> DynFetcher<T> for F
where
    F: ComponentFetcher<T> + Send + Sync,
    F::Error: Into<BoxError>,
    T: Send,
{
    async fn fetch_dyn(&self) -> Result<T, BoxError> {
        self.fetch_component().await.map_err(Into::into)
    }

    async fn fetch_any(&self) -> Result<Box<dyn std::any::Any + Send>, BoxError>
    where
        T: 'static,
    {
        match self.fetch_component().await {
            Ok(v) => Ok(Box::new(v)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Markers that keep the [`IntoFetcher`] impls apart.
pub mod marker {
    use std::marker::PhantomData;

    /// The argument already is a [`ComponentFetcher`](crate::ComponentFetcher).
    pub struct IsFetcher;
    /// The argument is `Fn() -> impl Future<Output = Result<V, E>>`.
    pub struct AsyncFn<V, E>(PhantomData<(V, E)>);
    /// The argument is `Fn() -> Result<V, E>`.
    pub struct SyncFn<V, E>(PhantomData<(V, E)>);
}

/// Anything usable as `#[component(fetcher = ...)]`: a [`ComponentFetcher<T>`], an async
/// function or closure returning `Result<V, E>`, or a sync one returning `Result<V, E>`,
/// where `V: Into<T>`.
///
/// ```
/// use component_model_async::{ComponentFetcher, IntoFetcher};
///
/// async fn load_port() -> Result<u16, std::io::Error> { Ok(8080) }
/// fn load_host() -> Result<&'static str, std::io::Error> { Ok("localhost") }
///
/// let port = IntoFetcher::<u16, _>::into_fetcher(load_port);
/// let host = IntoFetcher::<String, _>::into_fetcher(load_host);
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// // A function fetcher can serve any `T` its value converts into; name the one you want.
/// assert_eq!(ComponentFetcher::<u16>::fetch_component(&port).await.unwrap(), 8080);
/// assert_eq!(ComponentFetcher::<String>::fetch_component(&host).await.unwrap(), "localhost");
/// # });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot fetch a value of type `{T}`",
    label = "not a fetcher of `{T}`",
    note = "`fetcher = ...` takes a `ComponentFetcher<{T}>`, or a function or closure with no arguments returning `Result<V, E>` (or a future of it) where `V: Into<{T}>` and `E` is an error type"
)]
pub trait IntoFetcher<T, M> {
    /// The fetcher this turns into.
    type Fetcher: ComponentFetcher<T, Error = Self::Error> + Send + Sync + 'static;
    /// Its error type.
    type Error: Into<BoxError>;
    /// Converts.
    fn into_fetcher(self) -> Self::Fetcher;
}

impl<T, F> IntoFetcher<T, marker::IsFetcher> for F
where
    F: ComponentFetcher<T> + Send + Sync + 'static,
    F::Error: Into<BoxError>,
{
    type Fetcher = F;
    type Error = F::Error;
    fn into_fetcher(self) -> F {
        self
    }
}

/// A fetcher made from an async function or closure.
pub struct AsyncFnFetcher<F, V, E>(F, PhantomData<fn() -> (V, E)>);
/// A fetcher made from a sync function or closure.
pub struct SyncFnFetcher<F, V, E>(F, PhantomData<fn() -> (V, E)>);

impl<T, F, Fut, V, E> IntoFetcher<T, marker::AsyncFn<V, E>> for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<V, E>> + Send + 'static,
    V: Into<T> + Send + 'static,
    E: Into<BoxError> + Send + 'static,
    T: Send + 'static,
{
    type Fetcher = AsyncFnFetcher<F, V, E>;
    type Error = E;
    fn into_fetcher(self) -> Self::Fetcher {
        AsyncFnFetcher(self, PhantomData)
    }
}

impl<T, F, V, E> IntoFetcher<T, marker::SyncFn<V, E>> for F
where
    F: Fn() -> Result<V, E> + Send + Sync + 'static,
    V: Into<T> + Send + 'static,
    E: Into<BoxError> + Send + 'static,
    T: Send + 'static,
{
    type Fetcher = SyncFnFetcher<F, V, E>;
    type Error = E;
    fn into_fetcher(self) -> Self::Fetcher {
        SyncFnFetcher(self, PhantomData)
    }
}

#[async_trait::async_trait]
impl<T, F, Fut, V, E> ComponentFetcher<T> for AsyncFnFetcher<F, V, E>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<V, E>> + Send + 'static,
    V: Into<T> + Send + 'static,
    E: Send + 'static,
    T: Send + 'static,
{
    type Error = E;
    async fn fetch_component(&self) -> Result<T, E> {
        (self.0)().await.map(Into::into)
    }
}

#[async_trait::async_trait]
impl<T, F, V, E> ComponentFetcher<T> for SyncFnFetcher<F, V, E>
where
    F: Fn() -> Result<V, E> + Send + Sync + 'static,
    V: Into<T> + Send + 'static,
    E: Send + 'static,
    T: Send + 'static,
{
    type Error = E;
    async fn fetch_component(&self) -> Result<T, E> {
        (self.0)().map(Into::into)
    }
}
