//! [`Sources`]: the registry of named backends a struct's fields are fetched from, and the
//! process-wide default used by `fetch_all_components()`.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::error::{BoxError, ComponentError};
use crate::fetcher::{ComponentFetcher, DynFetcher};
use crate::fetchers::env::EnvSource;
use crate::source::Source;

/// What a user of the registry (the engine: its plans) keeps per [`Sources`] value, by a
/// key of its own: emptied by every change of the registry, empty in a clone. The registry
/// stores it without knowing what it is (it knows no engine).
#[derive(Default)]
pub(crate) struct Memo(
    std::sync::Mutex<HashMap<MemoKey, Arc<dyn Any + Send + Sync>, foldhash::fast::RandomState>>,
);

/// A key of the [`Memo`]: three words the user of the memo chooses (the engine: a struct
/// type's name pointer and length, and its `plan` function).
pub(crate) type MemoKey = (usize, usize, usize);

impl Clone for Memo {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl Memo {
    /// What is kept under `key`, if it is a `T`.
    pub(crate) fn get<T: Any + Send + Sync>(&self, key: MemoKey) -> Option<Arc<T>> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&key).cloned()?.downcast::<T>().ok()
    }

    /// Keeps `value` under `key`.
    pub(crate) fn insert<T: Any + Send + Sync>(&self, key: MemoKey, value: Arc<T>) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(key, value);
    }
}

/// How many clients opened from fetched addresses a [`Sources`] keeps, unless
/// [`Sources::with_max_dynamic_clients`] says otherwise.
pub(crate) const DEFAULT_MAX_DYNAMIC_CLIENTS: usize = 8;

/// The opening of one client, awaited by every caller that asks for its address meanwhile
/// (one opening however many fields or fetches ask at once), and the client once open.
type Opening = futures::future::Shared<
    futures::future::BoxFuture<'static, Result<Arc<dyn Source>, crate::error::SourceError>>,
>;

/// The clients opened from fetched addresses (`connect = "{field}"`), by backend and
/// address, the least recently used dropped beyond the bound.
///
/// Hand-written rather than a cache crate: `moka` (already a dependency) evicts in
/// maintenance passes, so its bound is passed until one runs, and it cannot remove an
/// entry only while it still holds the failed opening; `lru` would be a new dependency for
/// these few lines. The bound is small (8 by default), so finding the least recently used
/// is a scan.
pub(crate) struct DynamicClients {
    max: usize,
    slots: std::sync::Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    /// Advanced by every use: a slot's `used` says when it was last used.
    tick: u64,
    map: HashMap<ClientKey, Slot, foldhash::fast::RandomState>,
}

struct Slot {
    opening: Opening,
    used: u64,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    kind: crate::fetchers::connect::Kind,
    address: Address,
}

/// A fetched address: it may hold a password, so it is never shown and is zeroed when
/// dropped.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Address(String);

impl Drop for Address {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for DynamicClients {
    /// How many are kept, never their addresses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamicClients")
            .field("open", &self.lock().map.len())
            .field("max", &self.max)
            .finish()
    }
}

impl DynamicClients {
    fn new(max: usize) -> Self {
        DynamicClients {
            max,
            slots: std::sync::Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The opening kept for `key`, or `open()` kept for it (and the least recently used
    /// beyond the bound dropped: its pool closes once no fetch holds it).
    fn opening(&self, key: &ClientKey, open: impl FnOnce() -> Opening) -> Opening {
        let mut evicted = Vec::new();
        let opening = {
            let mut slots = self.lock();
            slots.tick += 1;
            let tick = slots.tick;
            if let Some(slot) = slots.map.get_mut(key) {
                slot.used = tick;
                return slot.opening.clone();
            }
            let opening = open();
            slots.map.insert(
                key.clone(),
                Slot {
                    opening: opening.clone(),
                    used: tick,
                },
            );
            while slots.map.len() > self.max {
                let oldest = slots
                    .map
                    .iter()
                    .min_by_key(|(_, slot)| slot.used)
                    .map(|(k, _)| k.clone());
                match oldest.and_then(|k| slots.map.remove(&k)) {
                    Some(slot) => evicted.push(slot),
                    None => break,
                }
            }
            opening
        };
        // Dropped outside the lock.
        drop(evicted);
        opening
    }

    /// Forgets `key` if it still holds `opening` (which failed): the next request opens
    /// again.
    fn forget(&self, key: &ClientKey, opening: &Opening) {
        let removed = {
            let mut slots = self.lock();
            match slots.map.get(key) {
                Some(slot) if slot.opening.ptr_eq(opening) => slots.map.remove(key),
                _ => None,
            }
        };
        drop(removed);
    }
}

/// A named backend as stored in [`Sources`].
#[derive(Clone)]
pub(crate) enum Entry {
    /// Serves many keys of many types; values are converted from [`RawValue`](crate::RawValue).
    Raw(Arc<dyn Source>),
    /// Serves exactly one type, `type_id`.
    Typed(TypedEntry),
}

#[derive(Clone)]
pub(crate) struct TypedEntry {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
    /// An `Arc<dyn DynFetcher<T>>` for the `T` of `type_id`.
    pub(crate) fetcher: Arc<dyn Any + Send + Sync>,
}

impl TypedEntry {
    pub(crate) fn downcast<T: 'static>(&self) -> Option<Arc<dyn DynFetcher<T>>> {
        self.fetcher
            .downcast_ref::<Arc<dyn DynFetcher<T>>>()
            .cloned()
    }
}

/// Markers that let [`Sources::register`] take either kind of backend.
pub mod register {
    use std::marker::PhantomData;
    /// The value is a [`Source`](crate::Source).
    pub struct AsSource;
    /// The value is an already shared `Arc<dyn Source>` (a layered source, or one source
    /// registered under several names).
    pub struct AsShared;
    /// The value is a [`ComponentFetcher<T>`](crate::ComponentFetcher).
    pub struct AsFetcher<T>(PhantomData<fn() -> T>);
}

/// Something [`Sources::register`] accepts: a [`Source`], an `Arc<dyn Source>`, or a
/// [`ComponentFetcher<T>`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` can't be registered as a source",
    label = "neither a `Source` nor a `ComponentFetcher<T>`",
    note = "implement `component_model_async::Source` (many keys, many types) or `ComponentFetcher<T>` (one value of type `T`)"
)]
pub trait IntoEntry<M> {
    #[doc(hidden)]
    fn into_entry(self) -> EntryHandle;
}

/// Opaque registry entry (see [`IntoEntry`]).
#[doc(hidden)]
pub struct EntryHandle(pub(crate) Entry);

impl<S: Source> IntoEntry<register::AsSource> for S {
    fn into_entry(self) -> EntryHandle {
        EntryHandle(Entry::Raw(Arc::new(self)))
    }
}

impl IntoEntry<register::AsShared> for Arc<dyn Source> {
    fn into_entry(self) -> EntryHandle {
        EntryHandle(Entry::Raw(self))
    }
}

impl<T, F> IntoEntry<register::AsFetcher<T>> for F
where
    F: ComponentFetcher<T> + Send + Sync + 'static,
    F::Error: Into<BoxError>,
    T: Send + 'static,
{
    fn into_entry(self) -> EntryHandle {
        let erased: Arc<dyn DynFetcher<T>> = Arc::new(self);
        EntryHandle(Entry::Typed(TypedEntry {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            fetcher: Arc::new(erased),
        }))
    }
}

/// The named backends fields are fetched from.
///
/// `fetch_from = "name"` looks `name` up here. `env` is always present (the process
/// environment unless replaced with [`Sources::with_env`]); anything else is registered:
/// a [`Source`] (serves many keys of many types) or a plain [`ComponentFetcher<T>`]
/// (serves fields of type `T`).
///
/// ```
/// use component_model_async::{async_trait, ComponentFetcher, EnvSource, Sources};
///
/// struct MockDb;
/// #[async_trait]
/// impl ComponentFetcher<i32> for MockDb {
///     type Error = std::convert::Infallible;
///     async fn fetch_component(&self) -> Result<i32, Self::Error> { Ok(42) }
/// }
///
/// let sources = Sources::new()
///     .with_env(EnvSource::from_map([("HOST", "localhost")]))
///     .register("mock_db", MockDb);
/// assert!(sources.contains("mock_db"));
/// assert!(sources.contains("env"));
/// ```
#[derive(Clone)]
pub struct Sources {
    entries: HashMap<String, Entry>,
    env: EnvSource,
    /// Layers built for the attributes, and their state (cache, circuits, permits).
    layers: Arc<crate::resilience::Registry>,
    /// What the engine built from these sources, kept for the next fetch (emptied by
    /// every change, empty in a clone).
    memo: Box<Memo>,
    /// The profile `{@profile}` stands for (`Sources::with_profile`).
    profile: Option<Arc<str>>,
    /// Clients opened from fetched addresses (`connect = "{field}"`), shared by clones;
    /// a new (empty) set for a new environment, which they inherit credentials from.
    dynamic: Arc<DynamicClients>,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Sources")
            .field("names", &names)
            .field("env", &self.env)
            .field("dynamic_clients", &self.dynamic)
            .finish()
    }
}

impl Default for Sources {
    fn default() -> Self {
        Self::new()
    }
}

static GLOBAL: OnceLock<Sources> = OnceLock::new();

impl Sources {
    /// What the engine built from these sources and keeps for the next fetch (its plans).
    pub(crate) fn memo(&self) -> &Memo {
        &self.memo
    }

    /// A registry with `env` (the process environment), `secret_file` (a
    /// [`SecretFileSource`](crate::SecretFileSource), for `secret_file = "..."` fields) and,
    /// with feature `http`, `api` and
    /// `http` (an [`HttpSource`](crate::HttpSource) without a base URL, for fields with an
    /// absolute `url`).
    pub fn new() -> Self {
        let env = EnvSource::process();
        let entries = crate::fetchers::defaults(&env)
            .into_iter()
            .map(|(name, source)| (name.to_owned(), Entry::Raw(source)))
            .collect();
        Sources {
            entries,
            env,
            layers: Arc::default(),
            memo: Box::default(),
            profile: None,
            dynamic: Arc::new(DynamicClients::new(DEFAULT_MAX_DYNAMIC_CLIENTS)),
        }
    }

    /// The built-in backends configured from the conventional environment variables.
    ///
    /// * `env`: the process environment;
    /// * `DATABASE_URL` (features `postgres`/`mysql`/`sqlite`): a lazily connected pool
    ///   registered as `database` and under its driver name (`postgres`, `mysql`, `sqlite`);
    /// * `api`, `http` (feature `http`): see [`Sources::new`];
    /// * `consul` (feature `consul`): [`ConsulSource`](crate::ConsulSource) from
    ///   `CONSUL_HTTP_ADDR` (default `127.0.0.1:8500`), `CONSUL_HTTP_SSL`,
    ///   `CONSUL_HTTP_TOKEN`, `CONSUL_NAMESPACE`;
    /// * `vault` (feature `vault`): [`VaultSource`](crate::VaultSource) from `VAULT_ADDR`
    ///   (default `https://127.0.0.1:8200`), `VAULT_TOKEN`, `VAULT_NAMESPACE`;
    /// * `redis` (feature `redis`): [`RedisSource`](crate::RedisSource) from `REDIS_URL`,
    ///   when it is set;
    /// * `etcd` (feature `etcd`) from `ETCDCTL_ENDPOINTS`; `kafka`, `nats` and `nats_kv`,
    ///   `mqtt` from `KAFKA_BROKERS`, `NATS_URL`, `MQTT_URL`;
    /// * `aws_secrets` and `aws_ssm` (feature `aws`): `AwsSecretsSource` and `AwsSsmSource`
    ///   when a region is known (`AWS_REGION`, `AWS_DEFAULT_REGION`, or the AWS profile's
    ///   `region`), credentials from the AWS chain;
    /// * `azure_keyvault` (feature `azure`): `AzureKeyVaultSource` from `AZURE_KEYVAULT_URL`
    ///   (or `AZURE_KEY_VAULT_URL`), credentials from the `AZURE_*` variables;
    /// * `gcp_secrets` (feature `gcp`): `GcpSecretsSource` when `GOOGLE_CLOUD_PROJECT`,
    ///   `GCLOUD_PROJECT` or `GOOGLE_APPLICATION_CREDENTIALS` is set;
    /// * `local_cache`: [`LocalCacheSource`](crate::LocalCacheSource) storing under
    ///   `COMPONENT_MODEL_CACHE_DIR`, else the platform cache directory.
    ///
    /// Variables are read from the process environment once, here.
    pub fn from_env() -> Self {
        Self::from_env_source(EnvSource::process())
    }

    /// Like [`Sources::from_env`], reading every variable from `env` (which also becomes
    /// the `env` source): the same deployment, described by a map in a test.
    ///
    /// ```
    /// use component_model_async::{EnvSource, Sources};
    ///
    /// let sources = Sources::from_env_source(EnvSource::from_map([("VAULT_ADDR", "http://127.0.0.1:8200")]));
    /// # #[cfg(feature = "vault")]
    /// assert!(sources.contains("vault"));
    /// ```
    pub fn from_env_source(env: EnvSource) -> Self {
        let registrations: Vec<_> = crate::fetchers::BUILTINS
            .iter()
            .flat_map(|backend| (backend.from_env)(&env))
            .collect();
        registrations
            .into_iter()
            .fold(Self::new().with_env(env), |sources, (name, source)| {
                sources.register(name, source)
            })
    }

    /// Overlays the variables of the `.env` file at `path` under the environment: a
    /// variable set in the environment wins, one set only in the file is read from it by
    /// `env` fields, `${VAR}` placeholders and `X_FILE` lookups alike. A missing file is
    /// `Ok` (nothing to overlay); a malformed line is a `Config` error naming the file and
    /// the line (never its content, which may hold a secret). Parsed with `dotenvy`.
    ///
    /// ```
    /// use component_model_async::{AsyncAssign, EnvSource, Sources};
    ///
    /// #[derive(AsyncAssign, Debug)]
    /// struct Cfg {
    ///     #[component(fetch_from = "env")]
    ///     port: u16,
    ///     #[component(fetch_from = "env")]
    ///     host: String,
    /// }
    ///
    /// let dir = std::env::temp_dir().join(format!("cm-dotenv-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// std::fs::write(dir.join(".env"), "PORT=8080\nHOST=from-dotenv\n").unwrap();
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let sources = Sources::new()
    ///     .with_env(EnvSource::from_map([("HOST", "from-env")])) // a real variable wins
    ///     .with_dotenv(dir.join(".env"))
    ///     .unwrap();
    /// let cfg = Cfg::fetch_all_components_with(&sources).await.unwrap();
    /// assert_eq!((cfg.port, cfg.host.as_str()), (8080, "from-env"));
    /// assert!(Sources::new().with_dotenv(dir.join("missing.env")).is_ok());
    /// # });
    /// ```
    pub fn with_dotenv(self, path: impl AsRef<std::path::Path>) -> Result<Self, ComponentError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let error = |detail: String| {
            ComponentError::field(crate::ErrorKind::Config)
                .from_source("dotenv", "file", shown.clone())
                .detail(detail)
                .build()
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(self),
            Err(e) => return Err(error(format!("cannot read it: {e}"))),
        };
        let mut vars = HashMap::new();
        for item in dotenvy::from_read_iter(text.as_bytes()) {
            match item {
                Ok((name, value)) => {
                    vars.insert(name, value);
                }
                Err(dotenvy::Error::LineParse(line, _)) => {
                    // The line's number, found by its text (dotenvy gives the text only).
                    let number = text
                        .lines()
                        .position(|l| {
                            let wanted = line.trim();
                            l.trim_end() == line.trim_end()
                                || (!wanted.is_empty() && l.contains(wanted))
                        })
                        .map_or_else(|| "?".to_owned(), |n| (n + 1).to_string());
                    return Err(error(format!("line {number} is not `NAME=value`")));
                }
                Err(e) => return Err(error(format!("cannot be parsed: {e}"))),
            }
        }
        let env = self.env.clone().over(vars);
        Ok(self.with_env(env))
    }

    /// Registers the command line as the source `args` ([`ArgsSource`](crate::ArgsSource)):
    /// `Sources::new().with_args(std::env::args())`. Equals
    /// `.register("args", ArgsSource::new(args))`.
    #[must_use]
    pub fn with_args<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.register("args", crate::fetchers::args::ArgsSource::new(args))
    }

    /// Replaces the environment used by the `env` source and by `${VAR}` placeholders.
    #[must_use]
    pub fn with_env(mut self, env: EnvSource) -> Self {
        let (name, source) = crate::fetchers::env::registration(&env);
        self.entries.insert(name.to_owned(), Entry::Raw(source));
        self.env = env;
        self.memo = Box::default();
        // Opened clients hold credentials of the old environment.
        self.dynamic = Arc::new(DynamicClients::new(self.dynamic.max));
        self
    }

    /// Registers `source` under `name`, replacing any earlier one of that name.
    ///
    /// `source` is a [`Source`] or a [`ComponentFetcher<T>`]. A fetcher that implements
    /// `ComponentFetcher` for several types needs [`Sources::register_fetcher`] to say which.
    #[must_use]
    pub fn register<M>(mut self, name: impl Into<String>, source: impl IntoEntry<M>) -> Self {
        self.entries.insert(name.into(), source.into_entry().0);
        self.memo = Box::default();
        self
    }

    /// Wraps the [`Source`] registered as `name` in `layer` (see
    /// [`resilience`](crate::resilience)), e.g. a retry layer around the `consul` source
    /// that [`Sources::from_env`] registered. Clones of this `Sources` made afterwards share
    /// the layer and its state. A name with no `Source` registered (nothing, or a typed
    /// fetcher) is left as it is, with a warning.
    ///
    /// ```
    /// use component_model_async::resilience::RetryLayer;
    /// use component_model_async::Sources;
    ///
    /// let sources = Sources::new().layer("env", RetryLayer::new(2));
    /// assert!(sources.source("env").is_some());
    /// ```
    #[must_use]
    pub fn layer(mut self, name: &str, layer: impl crate::resilience::SourceLayer) -> Self {
        match self.entries.get_mut(name) {
            Some(Entry::Raw(source)) => *source = layer.layer(source.clone()),
            _ => tracing::warn!(
                source = name,
                "no `Source` is registered under this name; the layer was not applied"
            ),
        }
        self.memo = Box::default();
        self
    }

    /// Registers a [`LocalCacheSource`](crate::LocalCacheSource) storing under `dir` as
    /// `local_cache`: fields with `fallback_to = "local_cache"` have their values stored
    /// there after each successful fetch and read back when their source fails.
    /// ([`Sources::from_env`] registers one on `COMPONENT_MODEL_CACHE_DIR` or the platform
    /// cache directory.)
    ///
    /// ```
    /// use component_model_async::Sources;
    ///
    /// let sources = Sources::new().with_local_cache("/var/cache/my-service");
    /// assert!(sources.contains("local_cache"));
    /// ```
    #[must_use]
    pub fn with_local_cache(self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.register("local_cache", crate::LocalCacheSource::new(dir))
    }

    /// Puts a cache shared by processes behind the in-memory cache of every `cache_for`
    /// field: e.g. a [`RedisSource`](crate::RedisSource), so the instances of a fleet
    /// starting together fetch each key once between them, not once each (see
    /// [`resilience::cache`](crate::resilience::cache)). Secret values stay in memory.
    ///
    /// ```
    /// # #[cfg(feature = "redis")] {
    /// use component_model_async::{RedisSource, Sources};
    ///
    /// let sources = Sources::from_env().with_shared_cache(RedisSource::new("redis://127.0.0.1:6379"));
    /// # let _ = sources;
    /// # }
    /// ```
    #[must_use]
    pub fn with_shared_cache(self, tier: impl crate::resilience::CacheTier) -> Self {
        self.layers.set_tier(Arc::new(tier));
        self
    }

    /// Registers a fetcher of `T` under `name`, naming `T` explicitly.
    #[must_use]
    pub fn register_fetcher<T, F>(self, name: impl Into<String>, fetcher: F) -> Self
    where
        F: ComponentFetcher<T> + Send + Sync + 'static,
        F::Error: Into<BoxError>,
        T: Send + 'static,
    {
        self.register::<register::AsFetcher<T>>(name, fetcher)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.keys().cloned().collect();
        names.sort_unstable();
        names
    }

    /// Whether a source of that name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The registered [`Source`] of that name, if it is one (not a typed fetcher).
    pub fn source(&self, name: &str) -> Option<Arc<dyn Source>> {
        match self.entries.get(name)? {
            Entry::Raw(s) => Some(s.clone()),
            Entry::Typed(_) => None,
        }
    }

    /// Sets the profile that `{@profile}` stands for in keys, paths, secret paths, urls,
    /// mounts, topics and backend parameters (never in SQL text). Without one it is
    /// `default`.
    ///
    /// ```
    /// use component_model_async::{async_trait, AsyncAssign, FetchRequest, RawValue, Source, SourceError, Sources};
    ///
    /// /// Answers with the key it was asked for.
    /// struct Echo;
    /// #[async_trait]
    /// impl Source for Echo {
    ///     async fn fetch(&self, r: &FetchRequest) -> Result<RawValue, SourceError> {
    ///         Ok(RawValue::from(r.key().unwrap_or_default()))
    ///     }
    /// }
    ///
    /// #[derive(AsyncAssign, Debug)]
    /// struct Cfg {
    ///     #[component(fetch_from = "kv", key = "app/{@profile}/url")]
    ///     url: String,
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let sources = Sources::new().register("kv", Echo);
    /// assert_eq!(Cfg::fetch_all_components_with(&sources).await.unwrap().url, "app/default/url");
    /// let prod = sources.with_profile("prod");
    /// assert_eq!(Cfg::fetch_all_components_with(&prod).await.unwrap().url, "app/prod/url");
    /// # });
    /// ```
    #[must_use]
    pub fn with_profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(Arc::from(profile.into()));
        self.memo = Box::default();
        self
    }

    /// The profile `{@profile}` stands for: the one set with [`Sources::with_profile`],
    /// else `default`.
    pub fn profile(&self) -> &str {
        self.profile.as_deref().unwrap_or("default")
    }

    /// The profile set with [`Sources::with_profile`], if any.
    pub(crate) fn chosen_profile(&self) -> Option<Arc<str>> {
        self.profile.clone()
    }

    /// The environment used for `env` fields and `${VAR}` placeholders.
    pub fn env(&self) -> &EnvSource {
        &self.env
    }

    /// Forgets the values cached (by `cache_for`/`ttl` fields) from the source registered
    /// as `name` under `key` (a Consul key, a Vault `mount/path`, a URL, an env variable, a
    /// query's bound key), so the next fetch asks the source. Returns how many were
    /// forgotten (several when fields read the key differently, e.g. two `field`s).
    ///
    /// ```
    /// use component_model_async::Sources;
    ///
    /// let sources = Sources::new();
    /// assert_eq!(sources.invalidate("env", "PORT"), 0); // nothing cached yet
    /// sources.invalidate_all();
    /// ```
    pub fn invalidate(&self, name: &str, key: &str) -> usize {
        match self.entries.get(name) {
            Some(Entry::Raw(source)) => self.layers.invalidate(source, key),
            _ => 0,
        }
    }

    /// Forgets every value cached through these `Sources` (and their clones).
    pub fn invalidate_all(&self) {
        self.layers.invalidate_all();
    }

    /// Keeps at most `n` clients opened from fetched addresses (default 8): fields with
    /// `connect = "{field}"` (a database DSN, a Redis or NATS URL, a Consul or Vault
    /// address fetched into another field) reach their server through a client opened for
    /// that address, kept for the next fetch by backend and address; beyond `n`, the least
    /// recently used is dropped (a database pool then closes once no fetch holds it). `0`
    /// keeps none: each fetch opens its own client and drops it.
    ///
    /// A database, Redis or NATS client takes everything from its URL (a `rediss://` or
    /// `REDIS_CACERT` one the `REDIS_*` TLS variables too). A Consul or Vault client is
    /// configured as [`Sources::from_env`] configures the registered one, from these
    /// sources' [environment](Sources::env), at the fetched address: the token
    /// (`CONSUL_HTTP_TOKEN`; `VAULT_TOKEN`, or a token file, AppRole or Kubernetes login
    /// of its own), the namespace and the TLS variables. (Not from a source registered in
    /// code: a `VaultSource::new(..).with_token(..)` lends nothing.) Opening is bounded
    /// (10 s, less where the backend's own timeout is shorter); the address, which may
    /// hold a password, is in no message, log line or `Debug` output, and a client's
    /// location shows it with its credentials masked.
    ///
    /// The clients are shared by this `Sources` and the clones made from it afterwards
    /// (its `register`, `layer`, `with_profile` too); this call and [`Sources::with_env`]
    /// start an empty set (`with_env` keeps the bound), as the clients hold credentials of
    /// the environment.
    ///
    /// ```
    /// use component_model_async::Sources;
    ///
    /// let sources = Sources::new().with_max_dynamic_clients(2);
    /// assert_eq!(sources.max_dynamic_clients(), 2);
    /// assert_eq!(Sources::new().max_dynamic_clients(), 8);
    /// ```
    #[must_use]
    pub fn with_max_dynamic_clients(mut self, n: usize) -> Self {
        self.dynamic = Arc::new(DynamicClients::new(n));
        self
    }

    /// The most clients opened from fetched addresses these sources keep (see
    /// [`Sources::with_max_dynamic_clients`]).
    ///
    /// ```
    /// use component_model_async::Sources;
    ///
    /// assert_eq!(Sources::new().with_max_dynamic_clients(0).max_dynamic_clients(), 0);
    /// ```
    pub fn max_dynamic_clients(&self) -> usize {
        self.dynamic.max
    }

    /// A client of `backend` (a field's `fetch_from`: `database`, `database:<pool>`,
    /// `postgres`, `mysql`, `sqlite`, `redis`, `consul`, `vault`, `nats`) for `address`
    /// (a value fetched into another field, possibly a secret): the one kept for that
    /// backend and address, else one opened now (see `fetchers::connect`) and kept.
    /// Concurrent requests for an address not open yet share one opening; a failed opening
    /// is not kept. The error names the backend and what failed, never the address.
    pub(crate) async fn dynamic_source(
        &self,
        backend: &str,
        address: &str,
    ) -> Result<Arc<dyn Source>, crate::error::SourceError> {
        use crate::fetchers::connect;
        let found = connect::Kind::of(backend)?;
        found.check(address)?;
        if self.dynamic.max == 0 {
            return connect::open(backend, found.kind, address, &self.env).await;
        }
        let key = ClientKey {
            kind: found.kind,
            address: Address(address.trim().to_owned()),
        };
        let opening = self.dynamic.opening(&key, || {
            let (backend, kind, env) = (backend.to_owned(), found.kind, self.env.clone());
            let address = key.address.clone();
            let open: futures::future::BoxFuture<'static, _> =
                Box::pin(async move { connect::open(&backend, kind, &address.0, &env).await });
            futures::FutureExt::shared(open)
        });
        let opened = opening.clone().await;
        if opened.is_err() {
            self.dynamic.forget(&key, &opening);
        }
        opened
    }

    /// [`Sources::dynamic_source`], for the workspace's tests. Not public API.
    #[doc(hidden)]
    pub async fn __dynamic_source(
        &self,
        backend: &str,
        address: &str,
    ) -> Result<Arc<dyn Source>, crate::error::SourceError> {
        self.dynamic_source(backend, address).await
    }

    pub(crate) fn layers(&self) -> &crate::resilience::Registry {
        &self.layers
    }

    pub(crate) fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// Sets the process-wide default used by `fetch_all_components()`.
    ///
    /// Call it once at start-up. It fails, handing the argument back, when a default was
    /// already set or already used (the first use settles it to [`Sources::from_env`]).
    ///
    /// ```
    /// use component_model_async::{EnvSource, Sources};
    ///
    /// let first = Sources::new().with_env(EnvSource::from_map([("PORT", "8080")]));
    /// assert!(Sources::set_global(first).is_ok());
    /// assert!(Sources::set_global(Sources::new()).is_err()); // only once
    /// assert_eq!(Sources::global().env().get("PORT").as_deref(), Some("8080"));
    /// ```
    pub fn set_global(sources: Sources) -> Result<(), Sources> {
        GLOBAL.set(sources)
    }

    /// The process-wide default: what [`Sources::set_global`] set, else [`Sources::from_env`].
    pub fn global() -> &'static Sources {
        GLOBAL.get_or_init(Sources::from_env)
    }
}
