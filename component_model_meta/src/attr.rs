//! Parsing of `#[component(...)]` into typed values, keeping each key's tokens for spans.
//!
//! Parsing accepts every key any derive of this crate knows; which keys make sense for
//! which derive is decided in `valid.rs`.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::{Expr, Lit, LitStr};

use crate::ctxt::Ctxt;
use crate::symbol::*;

/// One parsed key: its value and the tokens it came from (for error spans).
#[derive(Clone)]
pub struct Spanned<T> {
    pub value: T,
    pub tokens: TokenStream,
}

impl<T> Spanned<T> {
    /// The span of the key's first token.
    pub fn tokens_span(&self) -> proc_macro2::Span {
        self.tokens
            .clone()
            .into_iter()
            .next()
            .map_or_else(proc_macro2::Span::call_site, |t| t.span())
    }
}

impl<T> ToTokens for Spanned<T> {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend(self.tokens.clone());
    }
}

/// Holds at most one value of a key and reports a second one as a duplicate.
pub struct Attr<T> {
    name: &'static str,
    value: Option<Spanned<T>>,
}

impl<T> Attr<T> {
    fn none(name: &'static str) -> Self {
        Attr { name, value: None }
    }

    fn set(&mut self, cx: &Ctxt, tokens: TokenStream, value: T) {
        if self.value.is_some() {
            cx.error_spanned_by(
                &tokens,
                format!("duplicate component attribute `{}`", self.name),
            );
        } else {
            self.value = Some(Spanned { value, tokens });
        }
    }

    pub fn get(&self) -> Option<&Spanned<T>> {
        self.value.as_ref()
    }

    pub fn is_some(&self) -> bool {
        self.value.is_some()
    }
}

/// A string value with the literal it came from.
pub type Str = Spanned<String>;

/// `secret = "path"` names a Vault path; a bare `secret` marks the value as secret.
#[derive(Clone)]
pub enum SecretAttr {
    Flag,
    Path(String),
}

/// `name = <literal>` that is no key of the derive: a parameter of the field's source.
#[derive(Clone)]
pub struct Param {
    /// The key as written.
    pub name: String,
    /// The key's tokens.
    pub tokens: TokenStream,
    /// The value as text: a string's content, a number's digits, `true`/`false`.
    pub value: String,
    /// The literal as written, for errors about the value.
    pub lit: Lit,
}

/// Attributes found on one field.
pub struct FieldAttrs {
    pub skip: Attr<()>,
    pub fetch_from: Attr<String>,
    pub key: Attr<String>,
    pub secret: Attr<SecretAttr>,
    /// `secret_file = "path"`: the value is the file's content (turned into
    /// `fetch_from = "secret_file", key = "path", secret`).
    pub secret_file: Attr<String>,
    pub field: Attr<String>,
    pub pointer: Attr<String>,
    pub source: Attr<String>,
    pub fallback: Attr<String>,
    pub ttl: Attr<Duration>,
    pub cache_for: Attr<Duration>,
    pub retry_attempts: Attr<u32>,
    pub circuit_breaker: Attr<bool>,
    pub stale_for: Attr<Duration>,
    pub retry_backoff: Attr<Duration>,
    pub max_concurrency: Attr<u32>,
    pub watch: Attr<bool>,
    pub watch_interval: Attr<Duration>,
    pub fallback_to: Attr<String>,
    pub stream_from: Attr<String>,
    pub timeout: Attr<Duration>,
    pub max_size: Attr<u64>,
    pub fetcher: Attr<Expr>,
    /// `nested`: the field's type derives `AsyncAssign` and joins this struct's fetch.
    pub nested: Attr<()>,
    /// `env_prefix` of a `nested` field.
    pub env_prefix: Attr<String>,
    /// `key_prefix` of a `nested` field.
    pub key_prefix: Attr<String>,
    /// `overrides = [...]`: this field's precedence sources above its own (replacing the
    /// struct's).
    pub overrides: Attr<Vec<Str>>,
    /// `defaults = [...]`: this field's precedence sources below its own.
    pub defaults: Attr<Vec<Str>>,
    /// `env = "PORT"`: the variable env sources read this field from.
    pub env: Attr<String>,
    /// `connect = "{dsn}"`: the address of the client the field is read through, made
    /// of fetched values.
    pub connect: Attr<String>,
    /// Set by [`crate::ast::Input::from_syn`]: the field names no source and is read from
    /// the struct's precedence sources.
    pub precedence_read: bool,
    /// Every `name = <literal>` that is no key of the derive: the source's own
    /// parameters, in written order, checked by the backend's rules by name.
    pub params: Vec<Param>,
    /// The rules of every `validate(...)`, in written order.
    pub rules: Vec<crate::rules::Rule>,
    /// The first `validate`'s tokens, for errors about the field's rules as a whole.
    pub validate: Option<TokenStream>,
    /// Every `#[component]` attribute on the field, for spans of derive-level errors.
    pub originals: Vec<syn::Attribute>,
    /// `stream_from` together with `fetch_from` or `fetcher` (reported once).
    conflict: bool,
}

/// Attributes found on the struct.
pub struct ContainerAttrs {
    pub krate: Attr<syn::Path>,
    pub timeout: Attr<Duration>,
    pub env_prefix: Attr<String>,
    pub watch: Attr<bool>,
    pub watch_interval: Attr<Duration>,
    /// `nested_only`: fetched only as a `nested` field of another struct, so no fetch
    /// methods of its own.
    pub nested_only: Attr<bool>,
    /// `overrides = [...]`: the precedence sources above every field's own.
    pub overrides: Attr<Vec<Str>>,
    /// `defaults = [...]`: the precedence sources below every field's own.
    pub defaults: Attr<Vec<Str>>,
    /// `profile_env = "APP_PROFILE"`: the variable naming the profile.
    pub profile_env: Attr<String>,
    /// `key_prefix = "app/"`: before every convention key of a key-value store.
    pub key_prefix: Attr<String>,
    /// `table = "settings"`: the key/value table a database's convention reads.
    pub table: Attr<String>,
    /// `validate(garde)` on the struct.
    pub rules: Vec<crate::rules::Rule>,
    /// `validate(timeout = "..")` on the struct: the time an async struct rule may take.
    pub validate_timeout: Attr<Duration>,
    /// `validate_with = path`: `fn(&Self, &Sources) -> Result<(), Violations>`.
    pub validate_with: Attr<syn::Path>,
    /// `validate_with_async = path`: the same, an `async fn`.
    pub validate_with_async: Attr<syn::Path>,
    /// `validate_concurrency = 16`: how many async rules run at once.
    pub validate_concurrency: Attr<u32>,
    pub originals: Vec<syn::Attribute>,
}

impl FieldAttrs {
    pub fn from_attrs(cx: &Ctxt, attrs: &[syn::Attribute]) -> Self {
        let mut a = FieldAttrs {
            skip: Attr::none(SKIP),
            fetch_from: Attr::none(FETCH_FROM),
            key: Attr::none(KEY),
            secret: Attr::none(SECRET),
            secret_file: Attr::none(SECRET_FILE),
            field: Attr::none(FIELD),
            pointer: Attr::none(POINTER),
            source: Attr::none(SOURCE),
            fallback: Attr::none(FALLBACK),
            ttl: Attr::none(TTL),
            cache_for: Attr::none(CACHE_FOR),
            retry_attempts: Attr::none(RETRY_ATTEMPTS),
            circuit_breaker: Attr::none(CIRCUIT_BREAKER),
            stale_for: Attr::none(STALE_FOR),
            retry_backoff: Attr::none(RETRY_BACKOFF),
            max_concurrency: Attr::none(MAX_CONCURRENCY),
            watch: Attr::none(WATCH),
            watch_interval: Attr::none(WATCH_INTERVAL),
            fallback_to: Attr::none(FALLBACK_TO),
            stream_from: Attr::none(STREAM_FROM),
            timeout: Attr::none(TIMEOUT),
            max_size: Attr::none(MAX_SIZE),
            fetcher: Attr::none(FETCHER),
            nested: Attr::none(NESTED),
            env_prefix: Attr::none(ENV_PREFIX),
            key_prefix: Attr::none(KEY_PREFIX),
            overrides: Attr::none(OVERRIDES),
            defaults: Attr::none(DEFAULTS),
            env: Attr::none(ENV),
            connect: Attr::none(CONNECT),
            precedence_read: false,
            params: Vec::new(),
            rules: Vec::new(),
            validate: None,
            originals: Vec::new(),
            conflict: false,
        };
        for attr in attrs.iter().filter(|at| at.path().is_ident(COMPONENT)) {
            a.originals.push(attr.clone());
            if let syn::Meta::Path(_) = attr.meta {
                cx.error_spanned_by(
                    attr,
                    "expected `#[component(...)]` with at least one key, e.g. `#[component(fetch_from = \"env\")]`",
                );
                continue;
            }
            let result = attr.parse_nested_meta(|meta| {
                let name = meta_name(&meta);
                let tokens = meta.path.to_token_stream();
                match name.as_str() {
                    SKIP => a.skip.set(cx, tokens, flag(&meta)?),
                    FETCH_FROM => a.fetch_from.set(cx, tokens, string(&meta)?.value()),
                    KEY => a.key.set(cx, tokens, string(&meta)?.value()),
                    SECRET => {
                        let value = if meta.input.peek(syn::Token![=]) {
                            SecretAttr::Path(string(&meta)?.value())
                        } else {
                            SecretAttr::Flag
                        };
                        a.secret.set(cx, tokens, value);
                    }
                    SECRET_FILE => a.secret_file.set(cx, tokens, string(&meta)?.value()),
                    FIELD => a.field.set(cx, tokens, string(&meta)?.value()),
                    POINTER => a.pointer.set(cx, tokens, string(&meta)?.value()),
                    SOURCE => a.source.set(cx, tokens, string(&meta)?.value()),
                    FALLBACK => a.fallback.set(cx, tokens, string(&meta)?.value()),
                    TTL => a.ttl.set(cx, tokens, duration(&meta)?),
                    CACHE_FOR => a.cache_for.set(cx, tokens, duration(&meta)?),
                    TIMEOUT => a.timeout.set(cx, tokens, duration(&meta)?),
                    MAX_SIZE => a.max_size.set(cx, tokens, size(&meta)?),
                    RETRY_ATTEMPTS => a.retry_attempts.set(cx, tokens, count(&meta)?),
                    CIRCUIT_BREAKER => a.circuit_breaker.set(cx, tokens, boolean(&meta)?),
                    STALE_FOR => a.stale_for.set(cx, tokens, duration(&meta)?),
                    RETRY_BACKOFF => a.retry_backoff.set(cx, tokens, duration(&meta)?),
                    MAX_CONCURRENCY => a.max_concurrency.set(cx, tokens, count(&meta)?),
                    WATCH => a.watch.set(cx, tokens, boolean(&meta)?),
                    WATCH_INTERVAL => a.watch_interval.set(cx, tokens, duration(&meta)?),
                    FALLBACK_TO => a.fallback_to.set(cx, tokens, string(&meta)?.value()),
                    STREAM_FROM => a.stream_from.set(cx, tokens, string(&meta)?.value()),
                    FETCHER => {
                        let expr: Expr = meta.value()?.parse()?;
                        a.fetcher.set(cx, tokens, expr);
                    }
                    NESTED => a.nested.set(cx, tokens, flag(&meta)?),
                    ENV_PREFIX => a.env_prefix.set(cx, tokens, string(&meta)?.value()),
                    KEY_PREFIX => a.key_prefix.set(cx, tokens, string(&meta)?.value()),
                    OVERRIDES => a.overrides.set(cx, tokens, list(&meta)?),
                    DEFAULTS => a.defaults.set(cx, tokens, list(&meta)?),
                    ENV => a.env.set(cx, tokens, string(&meta)?.value()),
                    CONNECT => a.connect.set(cx, tokens, string(&meta)?.value()),
                    VALIDATE => {
                        a.validate.get_or_insert(tokens);
                        crate::rules::parse(cx, &meta, false, &mut a.rules)?;
                    }
                    VALIDATE_WITH | VALIDATE_WITH_ASYNC | VALIDATE_CONCURRENCY => {
                        skip_value(&meta)?;
                        return Err(meta.error(format!(
                            "`{name}` is a container attribute: put it on the struct; on a field, list rules with `validate(...)` (`validate(with = path)` for a function)"
                        )));
                    }
                    CRATE => {
                        skip_value(&meta)?;
                        return Err(meta.error(format!(
                            "`{name}` is a container attribute; put it on the struct: `#[component({name} = ...)]`"
                        )));
                    }
                    NESTED_ONLY => {
                        skip_value(&meta)?;
                        return Err(meta.error(
                            "`nested_only` is a container attribute: put `#[component(nested_only)]` on the sub-struct; this field needs only `nested`",
                        ));
                    }
                    _ => match param(&meta)? {
                        Some(p) => {
                            if a.params.iter().any(|q| q.name == p.name) {
                                cx.error_spanned_by(
                                    &p.tokens,
                                    format!("duplicate component attribute `{}`", p.name),
                                );
                            } else {
                                a.params.push(p);
                            }
                        }
                        None => {
                            return Err(meta.error(unknown_message(&name, FIELD_KEYS, "field")));
                        }
                    },
                }
                Ok(())
            });
            if let Err(err) = result {
                cx.syn_error(err);
            }
        }
        a.stream_to_fetch(cx);
        a.secret_file_to_fetch(cx);
        a
    }

    /// `secret_file = "path"` is `fetch_from = "secret_file", key = "path", secret`, spanned
    /// at `secret_file`; it names the whole source, so another source or key is an error.
    fn secret_file_to_fetch(&mut self, cx: &Ctxt) {
        let Some(file) = self.secret_file.get().cloned() else {
            return;
        };
        let path_secret = match self.secret.get() {
            Some(s) if matches!(s.value, SecretAttr::Path(_)) => Some(s.to_token_stream()),
            _ => None,
        };
        let mut conflict = false;
        for (name, tokens) in [
            (
                "fetch_from",
                self.fetch_from.get().map(|s| s.to_token_stream()),
            ),
            (
                "stream_from",
                self.stream_from.get().map(|s| s.to_token_stream()),
            ),
            ("fetcher", self.fetcher.get().map(|s| s.to_token_stream())),
            ("key", self.key.get().map(|s| s.to_token_stream())),
            ("secret = \"...\"", path_secret),
            ("nested", self.nested.get().map(|s| s.to_token_stream())),
        ] {
            if let Some(tokens) = tokens {
                cx.error_spanned_by(
                    tokens,
                    format!("`secret_file` already says where the value comes from (the file's content): remove `{name}`"),
                );
                conflict = true;
            }
        }
        let spanned = |value| Spanned {
            value,
            tokens: file.tokens.clone(),
        };
        if conflict {
            // Said once: the field still reads as a `secret_file` field from here on, so
            // no "`key` needs `fetch_from`" follows.
            self.conflict = true;
            if !self.is_fetched() && self.stream_from.get().is_none() {
                self.fetch_from.value = Some(spanned("secret_file".to_owned()));
            }
            return;
        }
        self.fetch_from.value = Some(spanned("secret_file".to_owned()));
        self.key.value = Some(spanned(file.value.clone()));
        if self.secret.value.is_none() {
            self.secret.value = Some(Spanned {
                value: SecretAttr::Flag,
                tokens: file.tokens.clone(),
            });
        }
    }

    /// `stream_from = "kafka"` is `fetch_from = "kafka"` on a field that is always watched:
    /// from here on the source is `fetch_from` (spanned at `stream_from`), and
    /// [`FieldAttrs::is_streamed`] remembers how it was written.
    fn stream_to_fetch(&mut self, cx: &Ctxt) {
        let Some(stream) = self.stream_from.get().cloned() else {
            return;
        };
        if self.fetch_from.is_some() || self.fetcher.is_some() {
            cx.error_spanned_by(
                &stream,
                "`stream_from` already names the source (and watches it): remove `fetch_from`/`fetcher`, or use `fetch_from` with `watch` for a source that is read again on change",
            );
            self.conflict = true;
            return;
        }
        if let Some(w) = self.watch.get()
            && !w.value
        {
            cx.error_spanned_by(
                w,
                "a `stream_from` field is always watched: remove `watch = false`, or read the stream once with `fetch_from`",
            );
        }
        self.fetch_from.value = Some(stream);
    }

    /// Whether `stream_from` or `secret_file` came with another source (an error already).
    pub fn sources_conflict(&self) -> bool {
        self.conflict
    }

    /// Whether the field was written with `stream_from` (it is always watched).
    pub fn is_streamed(&self) -> bool {
        self.stream_from.is_some()
    }

    /// What the field says to its source, by name, with the tokens of each key (for
    /// spans): `key` first, then `secret = "path"` as `secret`, `source` (a database
    /// pool), then every parameter as written. The backend's rules decide which it reads.
    pub fn backend_params(&self) -> Vec<(String, TokenStream)> {
        let mut out = Vec::with_capacity(self.params.len() + 1);
        if let Some(k) = self.key.get() {
            out.push((KEY.to_owned(), k.to_token_stream()));
        }
        if let Some(s) = self.secret.get()
            && matches!(s.value, SecretAttr::Path(_))
        {
            out.push((SECRET.to_owned(), s.to_token_stream()));
        }
        if let Some(s) = self.source.get() {
            out.push((SOURCE.to_owned(), s.to_token_stream()));
        }
        out.extend(
            self.params
                .iter()
                .map(|p| (p.name.clone(), p.tokens.clone())),
        );
        out
    }

    /// The parameter `name`, if the field has it.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Whether the field says where its value comes from.
    pub fn is_fetched(&self) -> bool {
        self.fetch_from.is_some() || self.fetcher.is_some() || self.precedence_read
    }

    /// Whether any key of `#[derive(AsyncAssign)]` is present (anything but `skip`).
    pub fn async_key_tokens(&self) -> Option<TokenStream> {
        self.originals
            .first()
            .filter(|_| self.has_async_keys())
            .map(|a| a.to_token_stream())
    }

    fn has_async_keys(&self) -> bool {
        self.fetch_from.is_some()
            || self.secret_file.is_some()
            || self.key.is_some()
            || self.secret.is_some()
            || self.field.is_some()
            || self.pointer.is_some()
            || self.source.is_some()
            || self.fallback.is_some()
            || self.ttl.is_some()
            || self.cache_for.is_some()
            || self.retry_attempts.is_some()
            || self.circuit_breaker.is_some()
            || self.stale_for.is_some()
            || self.retry_backoff.is_some()
            || self.max_concurrency.is_some()
            || self.watch.is_some()
            || self.watch_interval.is_some()
            || self.fallback_to.is_some()
            || self.stream_from.is_some()
            || self.timeout.is_some()
            || self.max_size.is_some()
            || self.fetcher.is_some()
            || self.nested.is_some()
            || self.env_prefix.is_some()
            || self.key_prefix.is_some()
            || self.overrides.is_some()
            || self.defaults.is_some()
            || self.env.is_some()
            || !self.params.is_empty()
            || self.validate.is_some()
    }

    /// Whether the field is a `nested` sub-struct.
    pub fn is_nested(&self) -> bool {
        self.nested.is_some()
    }
}

impl ContainerAttrs {
    pub fn from_attrs(cx: &Ctxt, attrs: &[syn::Attribute]) -> Self {
        let mut a = ContainerAttrs {
            krate: Attr::none(CRATE),
            timeout: Attr::none(TIMEOUT),
            env_prefix: Attr::none(ENV_PREFIX),
            watch: Attr::none(WATCH),
            watch_interval: Attr::none(WATCH_INTERVAL),
            nested_only: Attr::none(NESTED_ONLY),
            overrides: Attr::none(OVERRIDES),
            defaults: Attr::none(DEFAULTS),
            profile_env: Attr::none(PROFILE_ENV),
            key_prefix: Attr::none(KEY_PREFIX),
            table: Attr::none(TABLE),
            rules: Vec::new(),
            validate_timeout: Attr::none(TIMEOUT),
            validate_with: Attr::none(VALIDATE_WITH),
            validate_with_async: Attr::none(VALIDATE_WITH_ASYNC),
            validate_concurrency: Attr::none(VALIDATE_CONCURRENCY),
            originals: Vec::new(),
        };
        for attr in attrs.iter().filter(|at| at.path().is_ident(COMPONENT)) {
            a.originals.push(attr.clone());
            let result = attr.parse_nested_meta(|meta| {
                let name = meta_name(&meta);
                let tokens = meta.path.to_token_stream();
                match name.as_str() {
                    CRATE => {
                        let value = meta.value()?;
                        let path = if value.peek(LitStr) {
                            let lit: LitStr = value.parse()?;
                            lit.parse::<syn::Path>()?
                        } else {
                            value.call(syn::Path::parse_mod_style)?
                        };
                        a.krate.set(cx, tokens, path);
                    }
                    TIMEOUT => a.timeout.set(cx, tokens, duration(&meta)?),
                    ENV_PREFIX => a.env_prefix.set(cx, tokens, string(&meta)?.value()),
                    WATCH => a.watch.set(cx, tokens, boolean(&meta)?),
                    WATCH_INTERVAL => a.watch_interval.set(cx, tokens, duration(&meta)?),
                    NESTED_ONLY => a.nested_only.set(cx, tokens, boolean(&meta)?),
                    OVERRIDES => a.overrides.set(cx, tokens, list(&meta)?),
                    DEFAULTS => a.defaults.set(cx, tokens, list(&meta)?),
                    PROFILE_ENV => a.profile_env.set(cx, tokens, string(&meta)?.value()),
                    KEY_PREFIX => a.key_prefix.set(cx, tokens, string(&meta)?.value()),
                    TABLE => a.table.set(cx, tokens, string(&meta)?.value()),
                    VALIDATE => {
                        if let Some((d, t)) = crate::rules::parse(cx, &meta, true, &mut a.rules)? {
                            a.validate_timeout.set(cx, t, d);
                        }
                    }
                    VALIDATE_WITH => a.validate_with.set(cx, tokens, function(&meta)?),
                    VALIDATE_WITH_ASYNC => a.validate_with_async.set(cx, tokens, function(&meta)?),
                    VALIDATE_CONCURRENCY => {
                        let n = count(&meta)?;
                        if n == 0 {
                            return Err(meta.error("`validate_concurrency` must be at least 1"));
                        }
                        a.validate_concurrency.set(cx, tokens, n);
                    }
                    other if FIELD_KEYS.contains(&other) => {
                        skip_value(&meta)?;
                        return Err(meta.error(format!(
                            "`{name}` is a field attribute; put it on a field, not on the struct"
                        )));
                    }
                    _ => {
                        skip_value(&meta)?;
                        return Err(meta.error(unknown_message(
                            &name,
                            CONTAINER_KEYS,
                            "container",
                        )));
                    }
                }
                Ok(())
            });
            if let Err(err) = result {
                cx.syn_error(err);
            }
        }
        a
    }

    pub fn has_async_keys(&self) -> bool {
        self.timeout.is_some()
            || self.env_prefix.is_some()
            || self.nested_only.is_some()
            || self.overrides.is_some()
            || self.defaults.is_some()
            || self.profile_env.is_some()
            || self.key_prefix.is_some()
            || self.table.is_some()
            || self.has_rules()
            || self.validate_concurrency.is_some()
    }

    /// Whether the struct has rules of its own (`validate_with`, `validate_with_async`,
    /// `validate(garde)`).
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty() || self.validate_with.is_some() || self.validate_with_async.is_some()
    }

    /// Whether the struct is fetched only as a `nested` field (`nested_only`).
    pub fn is_nested_only(&self) -> bool {
        self.nested_only.get().is_some_and(|b| b.value)
    }
}

pub fn meta_name(meta: &ParseNestedMeta<'_>) -> String {
    meta.path
        .get_ident()
        .map(|i| i.to_string())
        .unwrap_or_else(|| meta.path.to_token_stream().to_string().replace(' ', ""))
}

fn unknown_message(name: &str, known: &[&'static str], place: &str) -> String {
    let mut msg = format!("unknown component {place} attribute `{name}`");
    if let Some(s) = suggest(name, known) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    } else {
        msg.push_str(&format!("; expected one of: {}", known.join(", ")));
    }
    msg
}

/// An unknown `name = <literal>` as a parameter of the field's source; `None` (the value
/// consumed) when it is no such thing: a path, a bare flag, a list, an expression.
fn param(meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Param>> {
    let Some(ident) = meta.path.get_ident().cloned() else {
        skip_value(meta)?;
        return Ok(None);
    };
    if !meta.input.peek(syn::Token![=]) {
        skip_value(meta)?;
        return Ok(None);
    }
    let mut expr: Expr = meta.value()?.parse()?;
    // A literal passed through a `macro_rules!` (`table = $table`) comes in a group.
    while let Expr::Group(g) = expr {
        expr = *g.expr;
    }
    let Expr::Lit(syn::ExprLit { lit, .. }) = expr else {
        return Ok(None);
    };
    let value = match &lit {
        Lit::Str(s) => s.value(),
        Lit::Int(i) => i.base10_digits().to_owned(),
        Lit::Float(f) => f.base10_digits().to_owned(),
        Lit::Bool(b) => b.value.to_string(),
        Lit::Char(c) => c.value().to_string(),
        _ => {
            return Err(syn::Error::new_spanned(
                &lit,
                format!("`{ident}` expects a string, a number or `true`/`false`"),
            ));
        }
    };
    Ok(Some(Param {
        name: ident.to_string(),
        tokens: meta.path.to_token_stream(),
        value,
        lit,
    }))
}

/// Consumes `= value` or `(...)` after an unknown key so parsing can continue.
pub fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _ = meta.parse_nested_meta(|m| skip_value(&m));
    }
    Ok(())
}

pub fn string(meta: &ParseNestedMeta<'_>) -> syn::Result<LitStr> {
    let name = meta_name(meta);
    let value = meta
        .value()
        .map_err(|_| meta.error(format!("`{name}` expects a string: `{name} = \"...\"`")))?;
    match value.parse::<Lit>()? {
        Lit::Str(s) => Ok(s),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{name}` expects a string literal, e.g. `{name} = \"...\"`"),
        )),
    }
}

/// `name = ["a", "b@c"]`: a list of string literals (`[]` for none), each with its tokens.
fn list(meta: &ParseNestedMeta<'_>) -> syn::Result<Vec<Str>> {
    let name = meta_name(meta);
    let value = meta.value().map_err(|_| {
        meta.error(format!(
            "`{name}` expects a list of sources: `{name} = [\"env\", \"file@config/default.toml\"]`"
        ))
    })?;
    let expr: Expr = value.parse()?;
    let Expr::Array(array) = expr else {
        return Err(syn::Error::new_spanned(
            expr,
            format!(
                "`{name}` expects a list in brackets: `{name} = [\"env\", \"file@config/default.toml\"]`"
            ),
        ));
    };
    array
        .elems
        .iter()
        .map(|e| match e {
            Expr::Lit(syn::ExprLit {
                lit: Lit::Str(s), ..
            }) => Ok(Spanned {
                value: s.value(),
                tokens: s.to_token_stream(),
            }),
            other => Err(syn::Error::new_spanned(
                other,
                format!("`{name}` lists sources as strings: `\"<fetch_from name>\"` or `\"<fetch_from name>@<argument>\"`"),
            )),
        })
        .collect()
}

/// `name = path::to::f` or `name = "path::to::f"`.
pub fn function(meta: &ParseNestedMeta<'_>) -> syn::Result<syn::Path> {
    let name = meta_name(meta);
    let value = meta.value().map_err(|_| {
        meta.error(format!(
            "`{name}` expects a function: `{name} = path::to::f`"
        ))
    })?;
    if value.peek(LitStr) {
        let lit: LitStr = value.parse()?;
        return lit.parse();
    }
    value.parse()
}

pub fn flag(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let name = meta_name(meta);
        let _: Expr = meta.value()?.parse()?;
        return Err(meta.error(format!(
            "`{name}` takes no value; write `#[component({name})]`"
        )));
    }
    Ok(())
}

fn boolean(meta: &ParseNestedMeta<'_>) -> syn::Result<bool> {
    if !meta.input.peek(syn::Token![=]) {
        return Ok(true);
    }
    let name = meta_name(meta);
    match meta.value()?.parse::<Lit>()? {
        Lit::Bool(b) => Ok(b.value),
        Lit::Str(s) => match s.value().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(syn::Error::new_spanned(
                s,
                format!("`{name}` expects `true` or `false`"),
            )),
        },
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{name}` expects `true` or `false`"),
        )),
    }
}

fn count(meta: &ParseNestedMeta<'_>) -> syn::Result<u32> {
    let name = meta_name(meta);
    let bad = |tokens: &dyn ToTokens, text: &str| {
        syn::Error::new_spanned(
            tokens.to_token_stream(),
            format!(
                "`{name}` expects a whole number from 0 to {}, found `{text}`",
                u32::MAX
            ),
        )
    };
    let value = meta.value()?;
    if value.peek(syn::Token![-]) {
        let expr: Expr = value.parse()?;
        let text = expr.to_token_stream().to_string().replace(' ', "");
        return Err(bad(&expr, &text));
    }
    match value.parse::<Lit>()? {
        Lit::Int(i) => i
            .base10_parse::<u32>()
            .map_err(|_| bad(&i, i.base10_digits())),
        Lit::Str(s) => s
            .value()
            .trim()
            .parse::<u32>()
            .map_err(|_| bad(&s, &s.value())),
        other => {
            let text = other.to_token_stream().to_string();
            Err(bad(&other, &text))
        }
    }
}

/// `max_size = "64KiB"`: bytes as a number, or with a unit (`B`, `KiB`, `MiB`, `GiB`,
/// or decimal `kB`, `MB`, `GB`).
fn size(meta: &ParseNestedMeta<'_>) -> syn::Result<u64> {
    let lit = meta.value()?.parse::<Lit>()?;
    let parsed = match &lit {
        Lit::Int(i) => i.base10_parse::<u64>().ok(),
        Lit::Str(s) => parse_size(&s.value()),
        _ => None,
    };
    match parsed {
        Some(n) if n > 0 => Ok(n),
        _ => Err(syn::Error::new_spanned(
            lit,
            "`max_size` expects a size greater than zero: bytes (`65536`) or with a unit (`\"64KiB\"`, `\"16MiB\"`, `\"1GB\"`)",
        )),
    }
}

pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "B" | "b" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Parses `"3600"` (seconds), `"30s"`, `"5m"`, `"1h"`, `"250ms"`, or an integer of seconds.
pub fn duration(meta: &ParseNestedMeta<'_>) -> syn::Result<Duration> {
    let name = meta_name(meta);
    let value = meta.value()?;
    match value.parse::<Lit>()? {
        Lit::Int(i) => i
            .base10_parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| syn::Error::new_spanned(i, e)),
        Lit::Str(s) => parse_duration(&s.value()).map_err(|why| {
            syn::Error::new_spanned(
                &s,
                format!("`{name}`: invalid duration {:?}: {why}; write seconds (\"3600\") or a unit (\"250ms\", \"30s\", \"5m\", \"1h\")", s.value()),
            )
        }),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{name}` expects a duration string such as \"30s\""),
        )),
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty".into());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| e.to_string())
}
