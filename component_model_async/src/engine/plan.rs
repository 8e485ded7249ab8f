//! The plan stage: what generated code builds — one [`Slot`] per field, with its request
//! (`${VAR}`s resolved, nested prefixes applied), its routes and its conversion — and the
//! plans kept per [`Sources`] so a struct is planned once and run many times.

use std::any::TypeId;
use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::de::DeserializeOwned;

use super::contract::{Nest, Nested};
use super::precedence::{self, Candidate, Precedence};
use super::slot::{Decoders, Route, SchemaFn, Slot, TypedCall, for_source};
use super::state::Outcomes;
use super::validate::Check;
use super::view::ComponentSource;
use crate::fetcher::{DynFetcher, IntoFetcher};
use crate::source::{FetchRequest, FieldPath, FieldSpec, Source};
use crate::sources::{Entry, Sources};

pub type PlanFn = fn(&mut Plan<'_>);
/// [`Nested::take`] of a sub-struct, as a function pointer.
pub type TakeFn<S> = fn(&mut Outcomes<'_>, bool) -> Option<S>;

/// Which slot a result belongs to, and its type.
pub struct Handle<T> {
    pub(super) index: usize,
    pub(super) _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Handle<T> {}

impl<T> Handle<T> {
    /// The handle of a field a [`Plan::only`] passed over: it names no slot.
    fn passed() -> Self {
        Handle {
            index: usize::MAX,
            _type: PhantomData,
        }
    }
}

/// One struct's fetch, being planned. Built by generated code; see the crate docs.
pub struct Plan<'s> {
    pub(super) sources: &'s Sources,
    /// Shared with the [`Sources`]' plan cache once built (see [`Plan::of`]).
    pub(super) slots: Arc<Vec<Slot>>,
    /// The last source looked up by name: fields of one struct mostly share a few sources.
    last: Option<(&'static str, Arc<dyn Source>)>,
    /// The `nested` fields being planned, innermost last.
    scopes: Vec<Frame>,
    /// `Option<Nested>` fields, in the order they were planned (see [`Group`]).
    pub(super) groups: Arc<Vec<Group>>,
    /// Checks of converted values, by field (the validate stage runs them).
    pub(super) checks: Arc<Vec<(usize, Check)>>,
    /// `fetch_<field>`: the one field planned (and the fields it references, by path);
    /// every other is passed over.
    only: Option<Only>,
    /// Whether the plan is the same on every fetch from these `Sources`: no `${VAR}` was
    /// read, no `fetcher = ...` value was made, nothing failed to plan (its error or
    /// warning is said on every fetch).
    reusable: AtomicBool,
    /// The root struct's `profile_env`: the variable naming the profile when
    /// [`Sources::with_profile`] did not.
    profile_env: Option<&'static str>,
    /// The profile, once something needed it.
    profile: std::sync::OnceLock<Arc<str>>,
    /// How many async rules run at once (the root struct's `validate_concurrency`).
    pub(crate) validate_concurrency: usize,
    /// Whether some field references others (or opens a client with `connect`): the
    /// resolve stage schedules the run by its references.
    pub(super) linked: bool,
}

/// The fields a `fetch_<field>` plans: the field, and the fields it references (by path
/// below the root struct), found by a first pass over the struct's fields.
struct Only {
    spec: &'static FieldSpec,
    paths: Vec<String>,
    /// The first pass: every field's path and the fields it references.
    seen: Option<std::sync::Mutex<Vec<(String, &'static FieldSpec)>>>,
}

/// `name` (as a reference writes it) below `path`'s struct: `region` next to
/// `replica.pool` is `replica.region`.
fn beside(path: &str, name: &str) -> String {
    match path.rsplit_once('.') {
        Some((scope, _)) => format!("{scope}.{name}"),
        None => name.to_owned(),
    }
}

/// A struct type: its `type_name` and its `Nested::plan` function (`type_name` alone is not
/// guaranteed unique; two types sharing both would have identical plans anyway). Plans are
/// kept in the `Sources`' memo under it: a struct's requests, routes and batches are the
/// same on every fetch unless a `${VAR}` is read while planning, so `fetch_*` plans a
/// struct once per `Sources` and runs it many times. A clone of the `Sources` starts
/// empty, and every method that changes one (`register`, `with_env`, `layer`) empties it.
fn plan_key<T: Nested>() -> crate::sources::MemoKey {
    let name = std::any::type_name::<T>();
    let plan: PlanFn = T::plan;
    (name.as_ptr() as usize, name.len(), plan as usize)
}

#[derive(Clone)]
struct Built {
    slots: Arc<Vec<Slot>>,
    groups: Arc<Vec<Group>>,
    checks: Arc<Vec<(usize, Check)>>,
    linked: bool,
}

/// A `nested` field being planned: where its sub-struct's fields go.
struct Frame {
    /// The struct at the root of the fetch.
    owner: &'static str,
    /// `replica` or `replica.pool`.
    path: String,
    /// The env prefix of the sub-struct's fields (`APP_REPLICA_`).
    env_prefix: String,
    /// Prepended to `key`, `path` and `secret` below; `Err`: a `${VAR}` in it is unset.
    key_prefix: Result<String, Arc<str>>,
    /// The root struct's own `key_prefix`, before `key_prefix` in convention keys.
    root_key_prefix: &'static str,
}

/// The slots of an `Option<Nested>` field: `start..end`, and how many groups nest inside.
#[derive(Clone, Copy)]
pub(super) struct Group {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) inner: usize,
}

impl<'s> Plan<'s> {
    /// An empty plan over `sources`.
    pub fn new(sources: &'s Sources) -> Self {
        Self::with_capacity(sources, 0)
    }

    /// An empty plan with room for `fields` fields.
    pub fn with_capacity(sources: &'s Sources, fields: usize) -> Self {
        Plan {
            sources,
            slots: Arc::new(Vec::with_capacity(fields)),
            last: None,
            scopes: Vec::new(),
            groups: Arc::default(),
            checks: Arc::default(),
            only: None,
            reusable: AtomicBool::new(true),
            profile_env: None,
            profile: std::sync::OnceLock::new(),
            validate_concurrency: super::validate::DEFAULT_CONCURRENCY,
            linked: false,
        }
    }

    /// A plan of `T` built now (not from the `Sources`' memo).
    pub(crate) fn fresh<T: Nested>(sources: &'s Sources) -> Self {
        let mut plan = Self::new(sources);
        plan.profile_env = T::PROFILE_ENV;
        plan.validate_concurrency = T::VALIDATE_CONCURRENCY;
        T::plan(&mut plan);
        plan.link();
        plan
    }

    /// Links each field to the fields its keys reference (`spec.refs`, by path beside
    /// it): it waits for them, and they are converted as soon as they are fetched. A
    /// reference to a field that is not in the plan fails the field (the derive refuses
    /// unknown references at compile time; a hand-written plan may still make one).
    /// The derive's plans are linked; a plan built by hand with fields whose specs have
    /// [`refs`](FieldSpec::refs) or [`connect`](FieldSpec::connect) calls it once every
    /// field is added.
    pub fn link(&mut self) {
        if !self
            .slots
            .iter()
            .any(|s| !s.spec.refs.is_empty() || s.spec.connect.is_some())
        {
            self.linked = self.slots.iter().any(|s| !s.after.is_empty());
            return;
        }
        self.linked = true;
        let slots = Arc::make_mut(&mut self.slots);
        for i in 0..slots.len() {
            let refs = slots[i].spec.refs;
            let mut after = Vec::with_capacity(refs.len());
            let mut missing = None;
            for name in refs {
                let path = beside(&slots[i].field, name);
                match slots.iter().position(|s| s.field == path) {
                    Some(at) => after.push(at),
                    None => missing = Some(path),
                }
            }
            for &at in &after {
                slots[at].referenced = true;
            }
            let slot = &mut slots[i];
            if let Some(path) = missing {
                slot.primary = Some(Route::Fail(
                    format!("the field references `{path}`, which is not fetched with it").into(),
                ));
                slot.precedence = None;
                slot.unlinked = true;
                continue;
            }
            let planned: Vec<usize> = slot
                .after
                .iter()
                .copied()
                .filter(|a| !after.contains(a))
                .collect();
            after.extend(planned);
            slot.after = after;
        }
    }

    /// The `Sources` the plan fetches from.
    pub(crate) fn sources(&self) -> &'s Sources {
        self.sources
    }

    /// Names the variable that names the profile (the root struct's `profile_env`).
    pub(crate) fn set_profile_env(&mut self, name: Option<&'static str>) {
        self.profile_env = name;
    }

    /// The profile `{@profile}` stands for: [`Sources::with_profile`]'s, else the
    /// variable the root struct's `profile_env` names (read through the `Sources`'
    /// environment, `.env` included: the plan is then one of this fetch), else `default`.
    fn profile(&self) -> Arc<str> {
        self.profile
            .get_or_init(|| {
                if let Some(p) = self.sources.chosen_profile() {
                    return p;
                }
                self.profile_env
                    .and_then(|name| self.lookup(name))
                    .filter(|p| !p.is_empty())
                    .map_or_else(|| Arc::from("default"), Arc::from)
            })
            .clone()
    }

    /// The plan of `T` from `sources`: built by `T::plan` the first time, then taken from
    /// the `Sources`' cache while nothing in it can differ (see [`plan_key`]).
    pub(crate) fn of<T: Nested>(sources: &'s Sources) -> Self {
        let key = plan_key::<T>();
        if let Some(built) = sources.memo().get::<Built>(key) {
            let mut plan = Self::new(sources);
            plan.slots = built.slots.clone();
            plan.groups = built.groups.clone();
            plan.checks = built.checks.clone();
            plan.linked = built.linked;
            plan.validate_concurrency = T::VALIDATE_CONCURRENCY;
            return plan;
        }
        let plan = Self::fresh::<T>(sources);
        if plan.reusable.load(Ordering::Relaxed) {
            let built = Built {
                slots: plan.slots.clone(),
                groups: plan.groups.clone(),
                checks: plan.checks.clone(),
                linked: plan.linked,
            };
            sources.memo().insert(key, Arc::new(built));
        }
        plan
    }

    /// The environment of the `Sources`, for `${VAR}` placeholders: reading it makes the
    /// plan one of this fetch only.
    fn lookup(&self, name: &str) -> Option<String> {
        self.reusable.store(false, Ordering::Relaxed);
        self.sources.env().get(name)
    }

    /// A plan of one field of a struct: its `Nested::plan` passes over every field but
    /// the one with `spec` (and every nested struct), so a `fetch_<field>` method needs no
    /// code of its own per field.
    pub fn only(sources: &'s Sources, spec: &'static FieldSpec) -> Self {
        let mut plan = Self::with_capacity(sources, 1);
        plan.only = Some(Only {
            spec,
            paths: Vec::new(),
            seen: None,
        });
        plan
    }

    /// A plan of the field with `spec` of `S` and of every field it references (directly
    /// or through others): `fetch_<field>` fetches the field's inputs too.
    pub(crate) fn only_of<S: Nested>(sources: &'s Sources, spec: &'static FieldSpec) -> Self {
        let fresh = |paths: Vec<String>, seen| {
            let mut plan = Self::with_capacity(sources, paths.len() + 1);
            plan.profile_env = S::PROFILE_ENV;
            plan.validate_concurrency = S::VALIDATE_CONCURRENCY;
            plan.only = Some(Only { spec, paths, seen });
            plan
        };
        if spec.refs.is_empty() && spec.connect.is_none() {
            let mut plan = fresh(Vec::new(), None);
            S::plan(&mut plan);
            return plan;
        }
        // A first pass finds every field's path and references; no field is planned.
        let mut probe = fresh(Vec::new(), Some(std::sync::Mutex::default()));
        S::plan(&mut probe);
        let seen = probe
            .only
            .take()
            .and_then(|o| o.seen)
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .unwrap_or_default();
        let own = seen
            .iter()
            .find(|(_, s)| std::ptr::eq(*s, spec))
            .map_or_else(|| spec.field.to_owned(), |(p, _)| p.clone());
        let mut paths: Vec<String> = Vec::new();
        let mut todo = vec![own];
        while let Some(path) = todo.pop() {
            let refs = seen.iter().find(|(p, _)| *p == path).map(|(_, s)| s.refs);
            for name in refs.unwrap_or_default() {
                let input = beside(&path, name);
                if !paths.contains(&input) {
                    todo.push(input.clone());
                    paths.push(input);
                }
            }
        }
        let mut plan = fresh(paths, None);
        S::plan(&mut plan);
        plan.link();
        plan
    }

    /// The path of a field with `spec` planned now (below the nested fields being planned).
    fn path_of(&self, spec: &'static FieldSpec) -> String {
        match self.scopes.last() {
            None => spec.field.to_owned(),
            Some(frame) => format!("{}.{}", frame.path, spec.field),
        }
    }

    /// Whether the fields of the `nested` field at `path` are planned: always, but in a
    /// `fetch_<field>` only when one of them is referenced (or in its first pass).
    fn wants_nested(&self, path: &str) -> bool {
        let Some(only) = &self.only else {
            return true;
        };
        only.seen.is_some()
            || only.paths.iter().any(|p| {
                p.strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('.'))
            })
    }

    /// Whether the field with `spec` is planned (not in a [`Plan::only`] of another field):
    /// a `fetcher = ...` expression is evaluated only then.
    #[inline]
    pub fn wants(&self, spec: &'static FieldSpec) -> bool {
        let Some(only) = &self.only else {
            return true;
        };
        if let Some(seen) = &only.seen {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.push((self.path_of(spec), spec));
            return false;
        }
        std::ptr::eq(only.spec, spec)
            || (!only.paths.is_empty() && only.paths.contains(&self.path_of(spec)))
    }

    /// Plans the sub-struct of a `nested` field (`plan` is its [`Nested::plan`]): its
    /// fields join this plan with their paths below the field and the field's prefixes.
    pub fn nest(&mut self, nest: &'static Nest, plan: PlanFn) {
        if self.only.is_some() {
            let path = match self.scopes.last() {
                None => nest.field.to_owned(),
                Some(frame) => format!("{}.{}", frame.path, nest.field),
            };
            if !self.wants_nested(&path) {
                return;
            }
        }
        let lookup = |name: &str| self.lookup(name);
        let own_key_prefix = nest
            .key_prefix
            .map(|p| crate::placeholder::expand(p, &lookup).map_err(|e| Arc::from(e.to_string())))
            .transpose();
        let segment = match nest.env_prefix {
            Some(p) => p.to_owned(),
            None => format!("{}_", nest.field.to_uppercase()),
        };
        let frame = match self.scopes.last() {
            None => Frame {
                owner: nest.owner,
                path: nest.field.to_owned(),
                env_prefix: format!("{}{segment}", nest.owner_env_prefix),
                key_prefix: own_key_prefix.map(|p| p.map(Cow::into_owned).unwrap_or_default()),
                root_key_prefix: nest.owner_key_prefix.unwrap_or_default(),
            },
            Some(parent) => Frame {
                owner: parent.owner,
                path: format!("{}.{}", parent.path, nest.field),
                env_prefix: format!("{}{segment}", parent.env_prefix),
                key_prefix: match (&parent.key_prefix, own_key_prefix) {
                    (Err(e), _) => Err(e.clone()),
                    (Ok(_), Err(e)) => Err(e),
                    (Ok(outer), Ok(own)) => Ok(format!("{outer}{}", own.unwrap_or_default())),
                },
                root_key_prefix: parent.root_key_prefix,
            },
        };
        self.scopes.push(frame);
        plan(self);
        self.scopes.pop();
    }

    /// Plans `Option<S>`: its fields are remembered as a group, absent together.
    pub fn optional<S: Nested>(&mut self) {
        if self.only.is_some() {
            return;
        }
        let at = self.groups.len();
        let start = self.slots.len();
        Arc::make_mut(&mut self.groups).push(Group {
            start,
            end: start,
            inner: 0,
        });
        S::plan(self);
        let inner = self.groups.len() - at - 1;
        let end = self.slots.len();
        let groups = Arc::make_mut(&mut self.groups);
        groups[at].end = end;
        groups[at].inner = inner;
    }

    /// Gives the field of `spec` planned last its type's JSON Schema: what the derive's
    /// `schema` probe found (feature `schema`, a type implementing `JsonSchema`).
    pub fn schema(&mut self, spec: &'static FieldSpec, schema: Option<SchemaFn>) {
        let Some(schema) = schema else { return };
        if let Some(at) = self.slots.iter().rposition(|s| std::ptr::eq(s.spec, spec)) {
            Arc::make_mut(&mut self.slots)[at].schema = Some(schema);
        }
    }

    /// The JSON Schema of slot `index`'s type, when known.
    pub(super) fn schema_of(&self, index: usize) -> Option<serde_json::Value> {
        self.slots.get(index).and_then(|s| s.schema).map(|f| f())
    }

    /// Every field planned so far, as the sources resolve it.
    pub fn describe(&self) -> Vec<ComponentSource> {
        self.slots
            .iter()
            .map(|slot| {
                let p = slot.provenance();
                ComponentSource {
                    path: format!("{}.{}", slot.owner, slot.field),
                    spec: slot.spec,
                    key_label: p.key_label.into_owned(),
                    key: p.key,
                    location: p.location,
                    problem: match &slot.primary {
                        // A client `connect` opens is opened by a fetch, not by planning.
                        Some(Route::Fail(_)) if slot.spec.connect.is_some() && !slot.unlinked => {
                            None
                        }
                        Some(Route::Fail(detail)) => Some(detail.to_string()),
                        _ => None,
                    },
                }
            })
            .collect()
    }

    /// The field's request, with `${VAR}`s resolved and, when nested, its path and env
    /// variable name in the tree.
    fn request_for(&self, spec: &'static FieldSpec) -> Result<FetchRequest, Arc<str>> {
        let lookup = |name: &str| self.lookup(name);
        let request = FetchRequest::resolved(spec, &lookup)
            .map_err(|e| Arc::from(e.to_string()))?
            .with_profile(&|| self.profile())
            .map_err(Arc::from)?;
        Ok(match self.scopes.last() {
            None => request,
            Some(frame) => request
                .in_field(frame.owner, format!("{}.{}", frame.path, spec.field))
                .with_default_key(match spec.env {
                    Some(name) => name.to_owned(),
                    None => format!("{}{}", frame.env_prefix, spec.field.to_uppercase()),
                }),
        })
    }

    /// `request` with the `key_prefix` of the nested fields around it, as `source` reads
    /// it: not for a source that keys by field name (its variables take `env_prefix`),
    /// never for SQL text nor a key bound into SQL.
    fn prefixed(
        &self,
        request: FetchRequest,
        source: &dyn Source,
    ) -> Result<FetchRequest, Arc<str>> {
        let Some(frame) = self.scopes.last() else {
            return Ok(request);
        };
        let prefix = frame.key_prefix.as_ref().map_err(Arc::clone)?;
        if prefix.is_empty() || !source.takes_key_prefix() {
            return Ok(request);
        }
        Ok(request.with_key_prefix(prefix))
    }

    fn slot(&self, spec: &'static FieldSpec, sensitive: bool) -> Slot {
        let (request, failure) = match self.request_for(spec) {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(Route::Fail(e))),
        };
        let (owner, field) = match self.scopes.last() {
            None => (spec.owner, Cow::Borrowed(spec.field)),
            Some(frame) => (
                frame.owner,
                Cow::Owned(format!("{}.{}", frame.path, spec.field)),
            ),
        };
        Slot {
            spec,
            owner,
            field,
            source: None,
            sensitive,
            request,
            primary: failure,
            fallback: None,
            fallback_request: None,
            decoders: None,
            after: Vec::new(),
            referenced: false,
            unlinked: false,
            precedence: None,
            schema: None,
        }
    }

    fn route<T: Send + 'static>(&mut self, name: &'static str, spec: &'static FieldSpec) -> Route {
        if let Some((last, src)) = &self.last
            && *last == name
        {
            return Route::Raw(src.clone());
        }
        let fail = |detail: String| Route::Fail(detail.into());
        match self.sources.entry(name) {
            Some(Entry::Raw(s)) => {
                self.last = Some((name, s.clone()));
                Route::Raw(s.clone())
            }
            Some(Entry::Typed(_))
                if spec.cache_for.is_some()
                    || spec.circuit_breaker
                    || spec.max_concurrency.is_some() =>
            {
                let key = match (spec.cache_for, spec.circuit_breaker) {
                    (Some(_), _) => "cache_for",
                    (None, true) => "circuit_breaker",
                    (None, false) => "max_concurrency",
                };
                fail(format!(
                    "`{key}` works on a `Source`, and `{name}` is registered as a typed `ComponentFetcher` (only `timeout` and `retry_attempts` apply to one): register a `Source` under `{name}`, or drop `{key}`"
                ))
            }
            Some(Entry::Typed(t)) if t.type_id == TypeId::of::<T>() => match t.downcast::<T>() {
                Some(f) => Route::Typed(typed_call(f)),
                None => fail(format!(
                    "source `{name}` could not be used for `{}`",
                    spec.type_name
                )),
            },
            Some(Entry::Typed(t)) => fail(format!(
                "source `{name}` is a fetcher of `{}`, but the field is `{}`",
                t.type_name, spec.type_name
            )),
            None => fail(format!(
                "no source named `{name}` is registered; {}",
                super::hints::unknown_source(self.sources, name)
            )),
        }
    }

    /// Adds a field fetched from a named source (`fetch_from`); `secret_type` says whether
    /// its type is a [`SecretValue`](crate::SecretValue).
    pub fn add<T: DeserializeOwned + Send + 'static>(
        &mut self,
        spec: &'static FieldSpec,
        secret_type: bool,
    ) -> Handle<T> {
        if !self.wants(spec) {
            return Handle::passed();
        }
        let sensitive = spec.sensitive || secret_type;
        let mut slot = self.slot(spec, sensitive);
        slot.decoders = Some(Decoders::of::<T>());
        if spec.source.is_empty() {
            // No `fetch_from`: read from the struct's precedence sources alone.
            slot.request = None;
            if slot.primary.is_none() {
                self.plan_precedence(&mut slot, sensitive);
            }
        } else if slot.primary.is_none() {
            let mut primary = match (spec.connect, self.sources.entry(spec.source)) {
                // Its client is opened from fetched values, when they are.
                (Some(_), None) => Route::Fail(
                    "the client `connect` names was not opened (a value it references failed)"
                        .into(),
                ),
                _ => self.route::<T>(spec.source, spec),
            };
            if let Route::Raw(s) = &primary {
                // Secrecy and value handling follow the source, not its name.
                slot.sensitive |= s.is_sensitive();
                slot.source = Some(s.clone());
                if let Some(r) = slot.request.take() {
                    match self.prefixed(r, s.as_ref()) {
                        Ok(r) => slot.request = Some(for_source(r, s.as_ref())),
                        Err(e) => primary = Route::Fail(e),
                    }
                }
            }
            if let (Route::Raw(s), Some(r)) = (&primary, &slot.request)
                && r.native_key().is_none()
                && !s.keys_by_field_name()
            {
                // Nothing names the key: the source's convention reads the field by its path.
                let r = slot.request.take().expect("checked");
                match self
                    .field_path(spec, &slot.field, None)
                    .and_then(|field| s.convention(r, &field))
                {
                    Ok(r) => slot.request = Some(for_source(r, s.as_ref())),
                    Err(why) => primary = Route::Fail(why.into()),
                }
            }
            slot.primary = Some(primary);
            slot.fallback = spec.fallback_to.map(|name| self.route::<T>(name, spec));
            if let Some(Route::Fail(why)) = &slot.fallback {
                // Said now, not only when the fallback is needed.
                tracing::warn!(
                    target: "component_model_async::engine",
                    field = format_args!("{}.{}", slot.owner, slot.field),
                    fallback_to = spec.fallback_to.unwrap_or_default(),
                    reason = %why,
                    "the field's `fallback_to` source cannot be used"
                );
            }
            self.plan_fallback_request(&mut slot);
            self.plan_precedence(&mut slot, spec.sensitive || secret_type);
            // Layers (a shared cache tier) see what the engine knows: the value is secret.
            if slot.sensitive {
                slot.request = slot.request.take().map(|r| r.sensitive(true));
                slot.fallback_request = slot.fallback_request.take().map(|r| r.sensitive(true));
            }
        }
        if slot.precedence.is_none() && spec.has_precedence() && !spec.source.is_empty() {
            // The field's own source could not be planned (an unset `${VAR}` in its key):
            // it fails in its place among the precedence sources, which may still answer.
            self.plan_precedence(&mut slot, sensitive);
        }
        self.push(slot)
    }

    /// What a source's convention sees of the field at `path` (`argument`: the
    /// precedence source's, placeholders replaced).
    /// `Err`: a placeholder in a `key_prefix` cannot be replaced (an unset `${VAR}`).
    fn field_path<'a>(
        &self,
        spec: &'static FieldSpec,
        path: &'a str,
        argument: Option<&'a str>,
    ) -> Result<FieldPath<'a>, String> {
        let prefix_error = |e: String| format!("in the `key_prefix`: {e}");
        let (env_name, key_prefix) = match self.scopes.last() {
            None => (
                spec.default_key
                    .map_or_else(|| Cow::Owned(spec.field.to_uppercase()), Cow::Borrowed),
                self.expand(spec.key_prefix.unwrap_or_default())
                    .map_err(prefix_error)?,
            ),
            Some(frame) => (
                Cow::Owned(format!("{}{}", frame.env_prefix, spec.field.to_uppercase())),
                format!(
                    "{}{}",
                    self.expand(frame.root_key_prefix).map_err(prefix_error)?,
                    frame
                        .key_prefix
                        .as_deref()
                        .map_err(|e| prefix_error(e.to_string()))?
                ),
            ),
        };
        let env_name = spec.env.map_or(env_name, Cow::Borrowed);
        Ok(FieldPath::new(path)
            .with_env_name(env_name)
            .with_key_prefix(key_prefix)
            .with_table(spec.config_table.unwrap_or("config"))
            .with_argument(argument))
    }

    /// `text` with `{@profile}` and `${VAR}` replaced.
    fn expand(&self, text: &str) -> Result<String, String> {
        let text = if text.contains("{@") {
            crate::source::expand_profile_text(text, &self.profile())?
        } else {
            text.to_owned()
        };
        if !text.contains("${") {
            return Ok(text);
        }
        let lookup = |name: &str| self.lookup(name);
        crate::placeholder::expand_str(&text, &lookup)
            .map(Cow::into_owned)
            .map_err(|e| e.to_string())
    }

    /// The field's precedence sources, when it has `overrides` or `defaults`: each
    /// reads the field by its convention; the field's own source sits between them.
    fn plan_precedence(&mut self, slot: &mut Slot, field_secret: bool) {
        let spec = slot.spec;
        if !spec.has_precedence() {
            return;
        }
        let mut candidates = Vec::with_capacity(spec.overrides.len() + spec.defaults.len() + 1);
        for entry in spec.overrides {
            candidates.push(self.candidate(slot, entry));
        }
        let own = match &slot.primary {
            Some(route) if !spec.source.is_empty() => {
                candidates.push(Candidate {
                    label: spec.source.into(),
                    name: spec.source,
                    route: route.clone(),
                    request: slot.request.clone(),
                });
                Some(candidates.len() - 1)
            }
            _ => None,
        };
        for entry in spec.defaults {
            candidates.push(self.candidate(slot, entry));
        }
        // A value that may come from a secret source is handled as a secret, and every
        // request of a secret field says so (layers such as a shared cache tier see it).
        for c in &candidates {
            if c.source().is_some_and(Source::is_sensitive) {
                slot.sensitive = true;
            }
        }
        if slot.sensitive {
            for c in &mut candidates {
                c.request = c.request.take().map(|r| r.sensitive(true));
            }
        }
        // Said now, not only when no source above it answers.
        for c in &candidates {
            if let Route::Fail(why) = &c.route {
                tracing::warn!(
                    target: "component_model_async::engine",
                    field = format_args!("{}.{}", slot.owner, slot.field),
                    source = &*c.label,
                    reason = %why,
                    "a precedence source of the field cannot be used"
                );
            }
        }
        slot.precedence = Some(Arc::new(Precedence {
            candidates,
            own,
            field_secret,
        }));
    }

    /// One precedence source of the field of `slot`, as written (`"file@app.toml"`).
    fn candidate(&mut self, slot: &Slot, entry: &'static str) -> Candidate {
        let (name, argument) = precedence::split(entry);
        let fail = |label: String, why: String| Candidate {
            label: label.into(),
            name,
            route: Route::Fail(why.into()),
            request: None,
        };
        let argument = match argument.map(|a| self.expand(a)).transpose() {
            Ok(a) => a,
            Err(why) => return fail(entry.to_owned(), format!("in `{entry}`: {why}")),
        };
        let label = match &argument {
            Some(a) => format!("{name}@{a}"),
            None => name.to_owned(),
        };
        let source = match self.sources.entry(name) {
            Some(Entry::Raw(s)) => s.clone(),
            Some(Entry::Typed(t)) => {
                return fail(
                    label,
                    format!(
                        "`{name}` is a typed fetcher (of `{}`); a precedence source must be a `Source`, which reads any field by its path",
                        t.type_name
                    ),
                );
            }
            None => {
                return fail(
                    label,
                    format!(
                        "no source named `{name}` is registered; {}",
                        super::hints::unknown_source(self.sources, name)
                    ),
                );
            }
        };
        let base = FetchRequest::for_source(name)
            .in_field(slot.owner, slot.field.clone())
            .sensitive(slot.sensitive);
        let convention = self
            .field_path(slot.spec, &slot.field, argument.as_deref())
            .and_then(|field| source.convention(base, &field));
        match convention {
            Ok(request) => Candidate {
                label: label.into(),
                name,
                request: Some(for_source(request, source.as_ref())),
                route: Route::Raw(source),
            },
            Err(why) => fail(
                label.clone(),
                format!("`{label}` cannot read the field: {why}"),
            ),
        }
    }

    /// Adds a field fetched by a fetcher expression (`fetcher = ...`).
    pub fn add_fetcher<T, F, M>(
        &mut self,
        spec: &'static FieldSpec,
        secret_type: bool,
        fetcher: F,
    ) -> Handle<T>
    where
        T: Send + 'static,
        F: IntoFetcher<T, M>,
    {
        if !self.wants(spec) {
            return Handle::passed();
        }
        // The fetcher value is made by the struct's `plan` on every fetch.
        self.reusable.store(false, Ordering::Relaxed);
        let sensitive = spec.sensitive || secret_type;
        let mut slot = self.slot(spec, sensitive);
        if slot.primary.is_none() {
            let erased: Arc<dyn DynFetcher<T>> = Arc::new(fetcher.into_fetcher());
            slot.primary = Some(Route::Typed(typed_call(erased)));
            slot.fallback = spec.fallback_to.map(|name| self.route::<T>(name, spec));
            self.plan_fallback_request(&mut slot);
            self.plan_precedence(&mut slot, sensitive);
            if slot.sensitive {
                slot.fallback_request = slot.fallback_request.take().map(|r| r.sensitive(true));
            }
        }
        self.push(slot)
    }

    /// Makes a fetcher field's `fallback` literal and `fallback_to` answers decodable.
    pub fn decodes<T: DeserializeOwned + Send + 'static>(
        &mut self,
        handle: Handle<T>,
    ) -> Handle<T> {
        if let Some(slot) = Arc::make_mut(&mut self.slots).get_mut(handle.index) {
            slot.decoders = Some(Decoders::of::<T>());
        }
        handle
    }

    /// In a [`Plan::only`], the one field (its inputs are planned beside it).
    pub(crate) fn first<T>(&self) -> Option<Handle<T>> {
        let index = match self.only.as_ref().map(|o| o.spec) {
            Some(spec) => self.slots.iter().position(|s| std::ptr::eq(s.spec, spec))?,
            None => (!self.slots.is_empty()).then_some(0)?,
        };
        Some(Handle {
            index,
            _type: PhantomData,
        })
    }

    /// A value that may come from a secret `fallback_to` source is secret; that source
    /// gets the request in its own wire form.
    fn plan_fallback_request(&self, slot: &mut Slot) {
        if let Some(Route::Raw(fb)) = &slot.fallback {
            slot.sensitive |= fb.is_sensitive();
            slot.fallback_request = self
                .request_for(slot.spec)
                .and_then(|r| self.prefixed(r, fb.as_ref()))
                .ok()
                .and_then(|r| {
                    // The environment reads the field's own variable (`APP_PORT`, not the
                    // Consul key `app/port`); another source the same key, or its
                    // convention when nothing names one.
                    let r = if fb.keys_by_field_name() {
                        FetchRequest::for_source(slot.spec.fallback_to.unwrap_or_default())
                            .in_field(slot.owner, slot.field.clone())
                    } else if r.native_key().is_some() {
                        return Some(r);
                    } else {
                        r
                    };
                    self.field_path(slot.spec, &slot.field, None)
                        .and_then(|field| fb.convention(r, &field))
                        .ok()
                })
                .map(|r| for_source(r, fb.as_ref()));
        }
    }

    fn push<T>(&mut self, slot: Slot) -> Handle<T> {
        if (matches!(slot.primary, Some(Route::Fail(_))) && slot.spec.connect.is_none())
            || matches!(slot.fallback, Some(Route::Fail(_)))
        {
            self.reusable.store(false, Ordering::Relaxed);
        }
        Arc::make_mut(&mut self.slots).push(slot);
        Handle {
            index: self.slots.len() - 1,
            _type: PhantomData,
        }
    }

    /// Checks the value of the field of `handle` after conversion, before assembly, in
    /// the validate stage with `check` (given the value and whether it may be shown);
    /// each failure is an error of that field (kind `Invalid`, naming field, source, key
    /// and `rule`). A field that failed to fetch or convert is not checked.
    pub fn rule<T: Send + Sync + 'static>(
        &mut self,
        handle: Handle<T>,
        rule: &'static str,
        check: super::validate::SyncRule<T>,
    ) {
        if handle.index < self.slots.len() {
            Arc::make_mut(&mut self.checks).push((handle.index, Check::sync(rule, check)));
        }
    }

    /// [`Plan::rule`] with an async `check`: the async rules of every field run
    /// concurrently (at most the struct's `validate_concurrency` at a time), each within
    /// `timeout` and the fetch's deadline (past them, a `Timeout` error naming the rule).
    pub fn rule_async<T: Send + Sync + 'static>(
        &mut self,
        handle: Handle<T>,
        rule: &'static str,
        timeout: Option<std::time::Duration>,
        check: super::validate::AsyncRule<T>,
    ) {
        if handle.index < self.slots.len() {
            let timeout = timeout.unwrap_or(super::validate::DEFAULT_TIMEOUT);
            let check = Check::later(rule, timeout, check);
            Arc::make_mut(&mut self.checks).push((handle.index, check));
        }
    }

    /// Makes the field of `handle` wait for the field of `after` (the resolve stage
    /// fetches it in a later wave).
    pub fn after<T, U>(&mut self, handle: Handle<T>, after: Handle<U>) {
        if after.index < self.slots.len()
            && after.index != handle.index
            && let Some(slot) = Arc::make_mut(&mut self.slots).get_mut(handle.index)
            && !slot.after.contains(&after.index)
        {
            slot.after.push(after.index);
            self.linked = true;
        }
    }
}

pub(super) fn typed_call<T: Send + 'static>(f: Arc<dyn DynFetcher<T>>) -> TypedCall {
    Arc::new(super::fetch::Typed(f))
}
