//! [`AssignFrom<F>`]: assignment by handing over a fetcher, the fetcher choosing the field
//! (issue 31, item 9).
//!
//! # How the field is chosen, and why it is coherent
//!
//! A fetcher says which source it serves with [`ServesSource`] (written with
//! [`serves_source!`](crate::serves_source)): its `Tag` is the type
//! [`source_tag!`](crate::source_tag)`("<name>")`, one zero-sized type per built-in backend
//! (every name of a backend gives the same tag: `database`, `postgres`, `mysql` and
//! `sqlite` give [`tag::Database`]) and [`tag::Named`] for any other name.
//!
//! For every field with `fetch_from = "<name>"`, `#[derive(AsyncAssign)]` writes one
//! [`FieldFrom<Tag, T, K, G>`](FieldFrom) impl: `Tag` the tag of the field's source, `T` the
//! field's type, `K` a [`Pick`] numbering the field's source name within the struct (so
//! that `database` and `postgres` fields of one type never make two impls of one trait),
//! `G` the guard below. Fields of one source name and one type share one impl, so no two
//! impls of a struct can overlap: the derive never causes E0119.
//!
//! `AssignFrom<F>` is implemented once, here, for every type; its method is generic over
//! `T` and `K`, inferred from `Self: FieldFrom<F::Tag, T, K, Chosen>` and
//! `F: ComponentFetcher<T>`: a struct with one field of the fetcher's source needs
//! nothing more, a fetcher of one type (a `ComponentFetcher<u16>` only) picks the field of
//! that type, and a fetcher of any type (`DatabaseFetcher`) among several types of its
//! source takes the type by turbofish: `config.assign_from::<u16, _>(fetcher)`. The blanket
//! `AsyncAssign<T, IntoT: Into<T>>` impl is a different trait, so nothing overlaps.
//!
//! Two fields of one source name and one type make the shared impl guarded: its `G` must
//! implement a trait the derive declares for that pair, which nothing implements, with the
//! message naming both fields and their `fetch_<field>` methods. The struct still compiles
//! (two `String` fields from `env` are the most common thing a configuration has); only a
//! call of `assign_from` that would have to choose between them fails, with that message,
//! at the call, and a note spanned at the second field.

use std::error::Error as StdError;
use std::fmt;

use crate::assign::Assignment;
use crate::error::{BoxError, ComponentError, Provenance};
use crate::fetcher::ComponentFetcher;
use crate::source::FieldSpec;

/// A fetcher (or a source) that serves the source named in its `Tag`: the fields
/// [`AssignFrom::assign_from`] may set from it are those with `fetch_from` of that source.
///
/// Implement it with [`serves_source!`](crate::serves_source); the built-in backends'
/// fetchers implement it (`DatabaseFetcher`: `database`, `ApiFetcher`: `api`/`http`,
/// `ConsulFetcher`, `VaultFetcher`, a `SourceFetcher` over a built-in source: its backend),
/// and `AsyncRetry` / `WithTimeout` serve what the fetcher they wrap serves.
///
/// ```
/// use std::any::TypeId;
/// use component_model_async::source_tag;
///
/// // Tags are types: one for every name of a backend, one per other name.
/// assert_eq!(TypeId::of::<source_tag!("postgres")>(), TypeId::of::<source_tag!("database")>());
/// assert_ne!(TypeId::of::<source_tag!("flags")>(), TypeId::of::<source_tag!("env")>());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not say which source it serves",
    label = "`assign_from` needs a fetcher that serves a source",
    note = "say it with `serves_source!({Self} => \"<fetch_from name>\");`, or assign without choosing a field by source: `future_assign(fetcher.fetch_component())`"
)]
pub trait ServesSource {
    /// The tag of the source served: `source_tag!("<name>")`.
    type Tag: 'static;
}

/// The tag types of sources: one per built-in backend, [`Named`](tag::Named) for any other
/// name. Name them with [`source_tag!`](crate::source_tag).
pub mod tag {
    macro_rules! tags {
        ($($(#[$m:meta])* $t:ident),* $(,)?) => {$(
            $(#[$m])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
            pub struct $t;
        )*};
    }
    tags! {
        /// `env`: `source_tag!("env")`.
        Env,
        /// `args`: `source_tag!("args")`.
        Args,
        /// `secret_file`: `source_tag!("secret_file")`.
        SecretFile,
        /// `database`, `postgres`, `mysql`, `sqlite`: `source_tag!("database")`.
        Database,
        /// `api`, `http`: `source_tag!("http")`.
        Http,
        /// `consul`: `source_tag!("consul")`.
        Consul,
        /// `vault`: `source_tag!("vault")`.
        Vault,
        /// `redis`: `source_tag!("redis")`.
        Redis,
        /// `file`: `source_tag!("file")`.
        File,
        /// `kafka`: `source_tag!("kafka")`.
        Kafka,
        /// `nats`: `source_tag!("nats")`.
        Nats,
        /// `mqtt`: `source_tag!("mqtt")`.
        Mqtt,
        /// `websocket`: `source_tag!("websocket")`.
        WebSocket,
        /// `local_cache`: `source_tag!("local_cache")`.
        LocalCache,
    }

    /// The tag of a source name that is not a built-in backend's (one registered with
    /// `Sources::register`): `ID` is [`name_id`] of the name.
    ///
    /// ```
    /// use std::any::TypeId;
    /// use component_model_async::source_tag;
    ///
    /// assert_eq!(TypeId::of::<source_tag!("flags")>(), TypeId::of::<source_tag!("flags:eu")>());
    /// assert_ne!(TypeId::of::<source_tag!("flags")>(), TypeId::of::<source_tag!("flag")>());
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Named<const ID: u128>;

    /// The 128-bit FNV-1a hash of `name` up to its first `:` (`flags:eu` is `flags`, as
    /// `fetch_from` reads it): the `ID` of [`Named`].
    ///
    /// ```
    /// use component_model_async::__private::tag::name_id;
    ///
    /// assert_eq!(name_id("flags:eu"), name_id("flags"));
    /// assert_ne!(name_id("flags"), name_id("flag"));
    /// ```
    pub const fn name_id(name: &str) -> u128 {
        let bytes = name.as_bytes();
        let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
        let mut i = 0;
        while i < bytes.len() && bytes[i] != b':' {
            h ^= bytes[i] as u128;
            h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
            i += 1;
        }
        h
    }
}

/// The tag type of the source named `name` (a string literal): the built-in backend's tag
/// for any of its names, [`tag::Named`] for another name. Used in
/// [`ServesSource::Tag`]; `#[derive(AsyncAssign)]` uses it for each field's `fetch_from`.
///
/// ```
/// use std::any::TypeId;
/// use component_model_async::source_tag;
///
/// assert_eq!(TypeId::of::<source_tag!("api")>(), TypeId::of::<source_tag!("http")>());
/// assert_eq!(TypeId::of::<source_tag!("sqlite")>(), TypeId::of::<source_tag!("database")>());
/// assert_ne!(TypeId::of::<source_tag!("flags")>(), TypeId::of::<source_tag!("database")>());
/// ```
#[macro_export]
macro_rules! source_tag {
    ("env") => { $crate::__private::tag::Env };
    ("args") => { $crate::__private::tag::Args };
    ("secret_file") => { $crate::__private::tag::SecretFile };
    ("database") => { $crate::__private::tag::Database };
    ("postgres") => { $crate::__private::tag::Database };
    ("mysql") => { $crate::__private::tag::Database };
    ("sqlite") => { $crate::__private::tag::Database };
    ("api") => { $crate::__private::tag::Http };
    ("http") => { $crate::__private::tag::Http };
    ("consul") => { $crate::__private::tag::Consul };
    ("vault") => { $crate::__private::tag::Vault };
    ("redis") => { $crate::__private::tag::Redis };
    ("file") => { $crate::__private::tag::File };
    ("kafka") => { $crate::__private::tag::Kafka };
    ("nats") => { $crate::__private::tag::Nats };
    ("mqtt") => { $crate::__private::tag::Mqtt };
    ("websocket") => { $crate::__private::tag::WebSocket };
    ("local_cache") => { $crate::__private::tag::LocalCache };
    ($name:literal) => { $crate::__private::tag::Named<{ $crate::__private::tag::name_id($name) }> };
}

/// Says which source a fetcher serves: `serves_source!(MyFetcher => "flags");` implements
/// [`ServesSource`] with the tag of `flags`, so
/// [`assign_from`](AssignFrom::assign_from) sets the field with `fetch_from = "flags"` (of
/// the type fetched). A generic fetcher lists its parameters:
/// `serves_source!(impl<T> MyFetcher<T> => "flags");`.
///
/// ```
/// use component_model_async::{async_trait, serves_source, AssignFrom, AsyncAssign, ComponentFetcher};
///
/// struct Flag;
/// serves_source!(Flag => "flags");
///
/// #[async_trait]
/// impl ComponentFetcher<bool> for Flag {
///     type Error = std::io::Error;
///     async fn fetch_component(&self) -> Result<bool, std::io::Error> { Ok(true) }
/// }
///
/// /// A fetcher generic over what it holds lists its parameters.
/// struct Fixed<T>(T);
/// serves_source!(impl<T> Fixed<T> => "flags");
///
/// #[async_trait]
/// impl<T: Clone + Send + Sync> ComponentFetcher<T> for Fixed<T> {
///     type Error = std::io::Error;
///     async fn fetch_component(&self) -> Result<T, std::io::Error> { Ok(self.0.clone()) }
/// }
///
/// #[derive(AsyncAssign, Default)]
/// struct Features {
///     #[component(fetch_from = "flags", key = "beta")]
///     beta: bool,
///     #[component(fetch_from = "flags", key = "limit")]
///     limit: u32,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut features = Features::default();
/// features.assign_from(Flag).await.unwrap(); // `Flag` fetches only `bool`: `beta`
/// features.assign_from(Fixed(7_u32)).await.unwrap(); // `Fixed<u32>` fetches `u32`: `limit`
/// assert!(features.beta);
/// assert_eq!(features.limit, 7);
/// # });
/// ```
#[macro_export]
macro_rules! serves_source {
    (impl<$($g:ident),* $(,)?> $ty:ty => $name:tt) => {
        impl<$($g),*> $crate::__private::ServesSource for $ty {
            type Tag = $crate::source_tag!($name);
        }
    };
    ($ty:ty => $name:tt) => {
        impl $crate::__private::ServesSource for $ty {
            type Tag = $crate::source_tag!($name);
        }
    };
}

/// The field of a `#[derive(AsyncAssign)]` struct that `fetch_from` a source of tag `Tag`
/// and has type `T`; `K` numbers the field's source name in the struct; `G` is
/// [`Chosen`] where [`AssignFrom`] asks, and the guard of two fields of one source and type
/// (see the [module docs](self)). Not public API.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no field that `assign_from` can set from this fetcher",
    label = "no `fetch_from` field of `{Self}` of the source this fetcher serves has the type it fetches",
    note = "`assign_from` sets the one field whose `fetch_from` names the source the fetcher serves (`ServesSource`) and whose type the fetcher fetches; a fetcher of any type (like `DatabaseFetcher`) among fields of several types of its source takes the type by turbofish: `assign_from::<u16, _>(fetcher)`"
)]
pub trait FieldFrom<Tag, T, K, G> {
    /// What `#[component(...)]` says about the field (names it in errors), whether its
    /// type is a [`SecretValue`](crate::SecretValue), and the field.
    fn field(&mut self) -> (&'static FieldSpec, bool, &mut T);
}

/// The `K` of [`FieldFrom`]: the number of a field's source name within its struct.
#[doc(hidden)]
pub struct Pick<const K: usize>;

/// The `G` [`AssignFrom`] asks [`FieldFrom`] for; a guarded impl (two candidate fields)
/// requires a trait of it that nothing implements.
#[doc(hidden)]
pub struct Chosen;

/// Sets the field whose source and type the fetcher `F` serves, with the value `F` fetches.
///
/// `#[derive(AsyncAssign)]` gives every field with `fetch_from = "<name>"` to
/// `assign_from`: a fetcher that [serves](ServesSource) `<name>` and fetches the field's
/// type sets it. Implemented for every type; a call compiles when exactly one field
/// qualifies:
///
/// * one field of the fetcher's source: that field;
/// * several, of different types: the one of the type the fetcher fetches (a fetcher of any
///   type, like `DatabaseFetcher`, takes it by turbofish: `assign_from::<u16, _>(f)`);
/// * two of one type: a compile error at the call naming both fields and their
///   `fetch_<field>` methods (the struct itself compiles).
///
/// The returned [`Assignment`] runs the fetch when awaited (or chained with
/// `async_assign`/`future_assign` and `build`); the field is set only on success. A failure
/// is the field's error: it names the struct, the field, its `fetch_from` source (and the
/// fetcher's key when the fetcher names one) and says it came from `assign_from`; a secret
/// field's error never carries the fetcher's message.
///
/// ```
/// use component_model_async::{
///     async_trait, serves_source, AssignFrom, AsyncAssign, ComponentError, ComponentFetcher,
///     EnvSource, FetchRequest, SourceFetcher,
/// };
///
/// /// Reads feature flags from wherever (here, memory): the user's own fetcher of the
/// /// `flags` source, fetching `bool` and `u32`.
/// struct FlagsFetcher(&'static str);
/// serves_source!(FlagsFetcher => "flags");
///
/// #[async_trait]
/// impl ComponentFetcher<bool> for FlagsFetcher {
///     type Error = std::io::Error;
///     async fn fetch_component(&self) -> Result<bool, Self::Error> {
///         Ok(self.0 == "on")
///     }
/// }
/// #[async_trait]
/// impl ComponentFetcher<u32> for FlagsFetcher {
///     type Error = std::io::Error;
///     async fn fetch_component(&self) -> Result<u32, Self::Error> {
///         self.0.parse().map_err(|_| std::io::Error::other("not a number"))
///     }
/// }
///
/// #[derive(AsyncAssign, Default)]
/// struct AppConfig {
///     #[component(fetch_from = "flags", key = "beta")]
///     beta: bool,
///     #[component(fetch_from = "flags", key = "rollout")]
///     rollout_percent: u32,
///     #[component(fetch_from = "env", key = "APP_HOST")]
///     host: String,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut config = AppConfig::default();
///
/// // The one `env` field: a fetcher of `env` (here a built-in source's fetcher) sets it.
/// let env = EnvSource::from_map([("APP_HOST", "example.org")]);
/// config
///     .assign_from(SourceFetcher::new(env, FetchRequest::for_key("env", "APP_HOST")))
///     .await?;
/// assert_eq!(config.host, "example.org");
///
/// // Two `flags` fields of different types: this fetcher fetches both types, so the call
/// // names the type (a fetcher of one type needs no turbofish).
/// config.assign_from::<bool, _>(FlagsFetcher("on")).await?;
/// config.assign_from::<u32, _>(FlagsFetcher("25")).await?;
/// assert!(config.beta);
/// assert_eq!(config.rollout_percent, 25);
///
/// // A failure is the field's error, and sets nothing.
/// let err = config.assign_from::<u32, _>(FlagsFetcher("lots")).await.unwrap_err();
/// assert_eq!(err.field_name(), Some("rollout_percent"));
/// assert_eq!(err.source_name(), Some("flags"));
/// assert_eq!(
///     err.to_string(),
///     "AppConfig.rollout_percent: flags: failed: via `assign_from`: not a number"
/// );
/// assert_eq!(config.rollout_percent, 25);
/// # Ok::<(), ComponentError>(())
/// # }).unwrap();
/// ```
///
/// Fields the call cannot choose between are a compile error at the call, not of the
/// struct (two `String` fields of one source are common):
///
/// ```compile_fail
/// use component_model_async::{AssignFrom, AsyncAssign, EnvSource, FetchRequest, SourceFetcher};
///
/// #[derive(AsyncAssign, Default)]
/// struct Names {
///     #[component(fetch_from = "env")]
///     first: String,
///     #[component(fetch_from = "env")]
///     last: String,
/// }
///
/// # async fn run() {
/// let mut names = Names::default();
/// let env = SourceFetcher::new(EnvSource::process(), FetchRequest::for_key("env", "FIRST"));
/// // error: `assign_from` cannot choose between the `String` fields `first` and `last` of
/// // `Names`: ... fetch them by name with `fetch_first()` / `fetch_last()` ...
/// names.assign_from::<String, _>(env).await;
/// # }
/// ```
pub trait AssignFrom<F: ServesSource> {
    /// Fetches with `fetcher` and sets the field whose `fetch_from` source `fetcher`
    /// serves and whose type `T` it fetches (`K` is inferred, always `_`).
    fn assign_from<'a, T, K>(&'a mut self, fetcher: F) -> Assignment<'a, Self, ComponentError>
    where
        Self: FieldFrom<F::Tag, T, K, Chosen> + Sized,
        F: ComponentFetcher<T> + Send + Sync + 'a,
        F::Error: Into<BoxError>,
        T: Send + 'static;
}

impl<S, F: ServesSource> AssignFrom<F> for S {
    fn assign_from<'a, T, K>(&'a mut self, fetcher: F) -> Assignment<'a, S, ComponentError>
    where
        S: FieldFrom<F::Tag, T, K, Chosen> + Sized,
        F: ComponentFetcher<T> + Send + Sync + 'a,
        F::Error: Into<BoxError>,
        T: Send + 'static,
    {
        let (spec, secret_type, _) = <S as FieldFrom<F::Tag, T, K, Chosen>>::field(self);
        let secret = spec.sensitive || secret_type;
        Assignment::new(self).step(async move {
            match fetcher.fetch_component().await {
                Ok(v) => Ok(move |this: &mut S| {
                    *<S as FieldFrom<F::Tag, T, K, Chosen>>::field(this).2 = v;
                }),
                Err(e) => Err(fetch_error(spec, secret, e.into())),
            }
        })
    }
}

/// The error of an `assign_from` fetch, as the field's: struct, field, the field's
/// `fetch_from` source, the fetcher's key when its error names one, `via assign_from`.
fn fetch_error(spec: &'static FieldSpec, secret: bool, cause: BoxError) -> ComponentError {
    let kind = crate::resilience::kind_of(cause.as_ref());
    let inner = cause.downcast_ref::<ComponentError>();
    let mut provenance = inner
        .and_then(ComponentError::provenance)
        .cloned()
        .unwrap_or_else(|| Provenance {
            key_label: "key".into(),
            ..Provenance::default()
        });
    provenance.owner = Some(spec.owner.into());
    provenance.field = Some(spec.field.into());
    provenance.source = Some(spec.source.into());
    let b = ComponentError::field(kind).provenance(provenance);
    if secret {
        return b
            .detail("via `assign_from`: the fetcher failed (its message is hidden because the field is secret)")
            .build();
    }
    match inner {
        // The fetcher's own field error (`DatabaseFetcher`, `SourceFetcher`, ...): its key is
        // above; its detail and cause follow, said once.
        Some(e) => {
            let detail = match e.detail() {
                Some(d) => format!("via `assign_from`: {d}"),
                None => "via `assign_from`".to_owned(),
            };
            b.detail(detail).cause(Relayed(cause)).build()
        }
        None => b.detail("via `assign_from`").cause(cause).build(),
    }
}

/// A fetcher's [`ComponentError`] kept as a cause: shows only its cause's text (its
/// provenance and detail are already in the new error); its `source()` is that cause's.
struct Relayed(BoxError);

impl Relayed {
    fn inner(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.0
            .downcast_ref::<ComponentError>()
            .and_then(ComponentError::cause)
    }
}

impl fmt::Display for Relayed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner() {
            Some(c) => fmt::Display::fmt(c, f),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Relayed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl StdError for Relayed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner().map(|c| c as &(dyn StdError + 'static))
    }
}

// The built-in sources and fetchers serve their backend.
serves_source!(crate::EnvSource => "env");
serves_source!(crate::ArgsSource => "args");
serves_source!(crate::SecretFileSource => "secret_file");
serves_source!(crate::LocalCacheSource => "local_cache");
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
serves_source!(crate::DatabaseSource => "database");
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
serves_source!(crate::DatabaseFetcher => "database");
#[cfg(feature = "http")]
serves_source!(crate::HttpSource => "http");
#[cfg(feature = "http")]
serves_source!(crate::ApiFetcher => "http");
#[cfg(feature = "consul")]
serves_source!(crate::ConsulSource => "consul");
#[cfg(feature = "consul")]
serves_source!(crate::ConsulFetcher => "consul");
#[cfg(feature = "vault")]
serves_source!(crate::VaultSource => "vault");
#[cfg(feature = "vault")]
serves_source!(crate::VaultFetcher => "vault");
#[cfg(feature = "redis")]
serves_source!(crate::RedisSource => "redis");
#[cfg(feature = "file")]
serves_source!(crate::FileSource => "file");

/// A [`SourceFetcher`](crate::SourceFetcher) serves what its source serves.
impl<S: ServesSource> ServesSource for crate::SourceFetcher<S> {
    type Tag = S::Tag;
}

/// A retried fetcher serves what the fetcher it retries serves.
impl<F: ServesSource> ServesSource for crate::resilience::AsyncRetry<F> {
    type Tag = F::Tag;
}

/// A fetcher with a timeout serves what the fetcher it bounds serves.
impl<F: ServesSource> ServesSource for crate::resilience::WithTimeout<F> {
    type Tag = F::Tag;
}
