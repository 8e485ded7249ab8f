//! The engine's contract with generated code: [`Nested`] (a struct plans its fields and
//! takes them back), [`NestedOps`], and [`Nest`] (how a `nested` field's prefixes apply).
//! The derive implements `Nested` for every `#[derive(AsyncAssign)]` struct.

use super::plan::{Plan, PlanFn, TakeFn};
use super::state::Outcomes;
use super::validate::StructRules;

/// A struct whose fields can join a fetch plan: implemented by `#[derive(AsyncAssign)]`,
/// and for `Option<T>` of such a struct (absent when none of its fields is found).
///
/// Not meant to be implemented by hand; the derive's `#[component(nested)]` requires it.
///
/// A struct fetched only as part of others can say `#[component(nested_only)]`: it keeps
/// this impl (and so its place in any tree) but gets no fetch methods of its own, which
/// saves their compile time (15 methods, plus two per field):
///
/// ```
/// use component_model_async::{AsyncAssign, EnvSource, Sources};
///
/// #[derive(AsyncAssign, Debug, Default)]
/// #[component(nested_only)] // only ever fetched as a branch of `App`
/// struct Endpoint {
///     #[component(fetch_from = "env")]
///     host: String,
///     #[component(fetch_from = "env", fallback = "443")]
///     port: u16,
/// }
///
/// #[derive(AsyncAssign, Debug)]
/// #[component(env_prefix = "APP_")]
/// struct App {
///     #[component(nested)]
///     primary: Endpoint, // APP_PRIMARY_HOST
///     #[component(nested, env_prefix = "RO_")]
///     replica: Endpoint, // APP_RO_HOST
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sources = Sources::new().with_env(EnvSource::from_map([
///     ("APP_PRIMARY_HOST", "db-1"),
///     ("APP_RO_HOST", "db-2"),
///     ("APP_RO_PORT", "5433"),
/// ]));
/// let app = App::fetch_all_components_with(&sources).await.unwrap();
/// assert_eq!((app.primary.host.as_str(), app.primary.port), ("db-1", 443));
/// assert_eq!((app.replica.host.as_str(), app.replica.port), ("db-2", 5433));
/// // One branch alone, through the parent (the prefixes are the parent's):
/// let replica = App::fetch_replica_with(&sources).await.unwrap();
/// assert_eq!(replica.host, "db-2");
/// # });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a `nested` component: it does not `#[derive(AsyncAssign)]`",
    label = "`nested` needs a struct that derives `AsyncAssign` (or an `Option` of one)",
    note = "add `#[derive(AsyncAssign)]` to the struct, or fetch this field with `fetch_from`/`fetcher` instead of `nested`"
)]
pub trait Nested: Sized {
    /// The struct's `profile_env`: the variable naming the profile `{@profile}` stands
    /// for, when [`Sources::with_profile`](crate::Sources::with_profile) names none.
    const PROFILE_ENV: Option<&'static str> = None;

    /// The struct's `validate_concurrency`: how many async rules run at once.
    const VALIDATE_CONCURRENCY: usize = super::validate::DEFAULT_CONCURRENCY;

    /// The struct's fields as a reference (`{database.host}`) from a struct it is
    /// `nested` in sees them: checked at compile time by that struct's derive.
    const FIELDS: &'static [FieldInfo] = &[];

    /// Adds every fetched field of `Self`, recursively, to `plan`, in field order.
    fn plan(plan: &mut Plan<'_>);

    /// Takes `Self` out of `out`, in the order [`Nested::plan`] added its fields; errors go
    /// into `out`. `available`: failed fields take their `fallback` or `Default`.
    fn take(out: &mut Outcomes<'_>, available: bool) -> Option<Self>;

    /// Adds the struct rules of `self` (`validate_with`, `validate_with_async`,
    /// `validate(garde)` on the struct) and of its `nested` fields, recursively, to
    /// `rules`. A struct with neither has none.
    #[inline]
    fn rules<'a>(&'a self, rules: &mut StructRules<'a>) {
        let _ = rules;
    }
}

/// A field of a [`Nested`] struct, as a reference into it sees it.
#[derive(Debug, Clone, Copy)]
pub struct FieldInfo {
    /// The field's name.
    pub name: &'static str,
    /// Whether a reference may stand for its value: text, an integer or `bool` (or an
    /// `Option` of one), fetched.
    pub referable: bool,
    /// Whether its value is secret (a reference to it is allowed only in `connect`).
    pub secret: bool,
    /// A `nested` field's own fields, when known (a struct's entry for its `nested`
    /// fields leaves them out: naming the type there would report a type that is not
    /// `Nested` twice); a reference further down is checked when the fetch is planned.
    pub nested: &'static [FieldInfo],
    /// Whether the field is a `nested` struct.
    pub is_struct: bool,
}

/// What [`FieldInfo::check`] found of a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefCheck {
    /// The reference names a field it may stand for.
    Ok,
    /// No field has that name.
    Unknown,
    /// The field's type is no text, integer or `bool`, or it is a struct.
    NotReferable,
    /// The field is secret, and the reference is not in `connect`.
    Secret,
}

impl FieldInfo {
    /// A field's entry.
    pub const fn new(
        name: &'static str,
        referable: bool,
        secret: bool,
        nested: &'static [FieldInfo],
    ) -> Self {
        FieldInfo {
            name,
            referable,
            secret,
            nested,
            is_struct: false,
        }
    }

    /// The entry of a `nested` field: its fields are not listed (see
    /// [`FieldInfo::nested`]).
    pub const fn nested_struct(name: &'static str) -> Self {
        FieldInfo {
            name,
            referable: false,
            secret: false,
            nested: &[],
            is_struct: true,
        }
    }

    /// What `path` (`host`, `pool.size`) finds in `fields`; `connect`: whether the
    /// reference is in a `connect` (the only place a secret may stand).
    pub const fn check(fields: &[FieldInfo], path: &str, connect: bool) -> RefCheck {
        let bytes = path.as_bytes();
        let mut fields = fields;
        let mut start = 0;
        loop {
            let mut end = start;
            while end < bytes.len() && bytes[end] != b'.' {
                end += 1;
            }
            let mut i = 0;
            let mut found: Option<&FieldInfo> = None;
            while i < fields.len() {
                if same(fields[i].name.as_bytes(), bytes, start, end) {
                    found = Some(&fields[i]);
                    break;
                }
                i += 1;
            }
            let Some(field) = found else {
                return RefCheck::Unknown;
            };
            if end == bytes.len() {
                return match (field.referable, field.secret && !connect) {
                    (false, _) => RefCheck::NotReferable,
                    (true, true) => RefCheck::Secret,
                    (true, false) => RefCheck::Ok,
                };
            }
            if field.is_struct && field.nested.is_empty() {
                // A struct whose fields are not listed: checked when planned.
                return RefCheck::Ok;
            }
            fields = field.nested;
            start = end + 1;
        }
    }
}

/// Whether `name` is `path[start..end]`.
const fn same(name: &[u8], path: &[u8], start: usize, end: usize) -> bool {
    if name.len() != end - start {
        return false;
    }
    let mut i = 0;
    while i < name.len() {
        if name[i] != path[start + i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A sub-struct's [`Nested`] functions, taken once where a `nested` field is declared, so
/// a type that is not `Nested` is reported there once, not at every use.
pub struct NestedOps<T> {
    /// `T::plan`.
    pub plan: PlanFn,
    /// `T::take`.
    pub take: TakeFn<T>,
    /// `T::rules`.
    pub rules: for<'a> fn(&'a T, &mut StructRules<'a>),
}

impl<T> Clone for NestedOps<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for NestedOps<T> {}

impl<T> NestedOps<T> {
    /// The functions of `T`.
    pub const fn of() -> Self
    where
        T: Nested,
    {
        NestedOps {
            plan: T::plan,
            take: T::take,
            rules: T::rules,
        }
    }
}

impl<S: Nested> Nested for Option<S> {
    fn plan(plan: &mut Plan<'_>) {
        plan.optional::<S>();
    }

    fn take(out: &mut Outcomes<'_>, available: bool) -> Option<Self> {
        out.optional::<S>(available)
    }

    fn rules<'a>(&'a self, rules: &mut StructRules<'a>) {
        if let Some(s) = self {
            s.rules(rules);
        }
    }
}

/// Where a `nested` field puts its sub-struct: what `#[component(nested, ...)]` says.
/// Built by the derive as a `static`.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Nest {
    /// The struct that has the field.
    pub owner: &'static str,
    /// The field name.
    pub field: &'static str,
    /// The owner's own `env_prefix` (used when the owner is the root of the fetch).
    pub owner_env_prefix: &'static str,
    /// `env_prefix = "..."` on the field; `None`: the field name upper-cased and `_`.
    pub env_prefix: Option<&'static str>,
    /// `key_prefix = "..."` on the field.
    pub key_prefix: Option<&'static str>,
    /// The owner's own `key_prefix` (the struct's, for convention keys; used when the
    /// owner is the root of the fetch).
    pub owner_key_prefix: Option<&'static str>,
    /// The owner's `profile_env` (for `fetch_<field>` of the nested field).
    pub owner_profile_env: Option<&'static str>,
}

impl Nest {
    /// A nesting with no prefixes of its own.
    pub const fn new(
        owner: &'static str,
        field: &'static str,
        owner_env_prefix: &'static str,
    ) -> Self {
        Nest {
            owner,
            field,
            owner_env_prefix,
            env_prefix: None,
            key_prefix: None,
            owner_key_prefix: None,
            owner_profile_env: None,
        }
    }

    /// Sets the owner's `profile_env`.
    #[must_use]
    pub const fn owner_profile_env(mut self, name: &'static str) -> Self {
        self.owner_profile_env = Some(name);
        self
    }

    /// Sets the owner's `key_prefix`.
    #[must_use]
    pub const fn owner_key_prefix(mut self, prefix: &'static str) -> Self {
        self.owner_key_prefix = Some(prefix);
        self
    }

    /// Sets `env_prefix`.
    #[must_use]
    pub const fn env_prefix(mut self, prefix: &'static str) -> Self {
        self.env_prefix = Some(prefix);
        self
    }

    /// Sets `key_prefix`.
    #[must_use]
    pub const fn key_prefix(mut self, prefix: &'static str) -> Self {
        self.key_prefix = Some(prefix);
        self
    }
}
