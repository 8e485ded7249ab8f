//! Code generation for `#[derive(AsyncAssign)]`. Assumes `valid.rs` accepted the input.
//!
//! Generated, inside `const _: () = { ... };`:
//! - one `static FieldSpec` per field (what `#[component(...)]` says), one `static Nest` per
//!   `nested` field (where its sub-struct goes);
//! - `Nested`: how the struct's fields join a plan (`plan`) and how the struct is built from
//!   the outcomes (`take`) — the only per-struct logic; the fetch itself is generic runtime
//!   code (`fetch_all::<Self>`), type-checked once, not once per struct;
//! - `FieldSlot<F, IntoT>` for each field type only one field has (not for `nested`
//!   fields); `AsyncAssign<F, IntoT>` and `FutureAssign<F, Fut>` are generic impls in the
//!   runtime over it (per-type impls of those two, `FutureAssign`'s with a generic
//!   associated type and five bounds, took more compile time than all else of a field);
//! - inherent `fetch_all_components[_with]`, `fetch_available_components[_with]`,
//!   `fetch_with_resilience[_with]`, `component_sources[_with]` and `fetch_<field>[_with]`
//!   per fetched or nested field, each a call into the runtime.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::Type;
use syn::spanned::Spanned;

use crate::ast::{Field, Input};
use crate::attr::SecretAttr;
use crate::shape;
use crate::valid::split_source;

/// Which crate the generated code reaches the runtime through.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// `component_model` with feature `async` (the facade).
    Facade,
    /// `component_model_async` directly.
    Direct,
}

pub fn runtime_path(input: &Input<'_>, entry: Entry) -> TokenStream {
    match entry {
        Entry::Facade => {
            let krate = input.krate(quote!(::component_model));
            quote!(#krate::__private::asynchronous)
        }
        Entry::Direct => {
            let krate = input.krate(quote!(::component_model_async));
            quote!(#krate::__private)
        }
    }
}

pub fn duration_tokens(d: Duration) -> TokenStream {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    quote!(::core::time::Duration::new(#secs, #nanos))
}

fn opt_lit(method: &str, value: Option<&str>) -> TokenStream {
    match value {
        Some(v) => {
            let m = format_ident!("{}", method);
            quote!(.#m(#v))
        }
        None => TokenStream::new(),
    }
}

fn env_name(input: &Input<'_>, f: &Field<'_>) -> String {
    let prefix = input
        .attrs
        .env_prefix
        .get()
        .map(|p| p.value.clone())
        .unwrap_or_default();
    format!("{prefix}{}", f.plain_name().to_uppercase())
}

/// A `fetcher = <expr>` as written, shortened for messages.
fn fetcher_name(expr: &syn::Expr) -> String {
    let text = expr.to_token_stream().to_string();
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = text
        .replace(" :: ", "::")
        .replace(" (", "(")
        .replace("( ", "(")
        .replace(" )", ")");
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(37).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn spec_ident(i: usize) -> syn::Ident {
    format_ident!("__CM_SPEC_{}", i)
}

fn nest_ident(i: usize) -> syn::Ident {
    format_ident!("__CM_NEST_{}", i)
}

/// `static __CM_NEST_<i>: Nest`: where a `nested` field's sub-struct goes.
fn nest_static(input: &Input<'_>, cm: &TokenStream, f: &Field<'_>, i: usize) -> TokenStream {
    let ident = nest_ident(i);
    let owner = input.ident.to_string();
    let field = f.plain_name();
    let own_prefix = input
        .attrs
        .env_prefix
        .get()
        .map(|p| p.value.clone())
        .unwrap_or_default();
    let mut chain = opt_lit(
        "env_prefix",
        f.attrs.env_prefix.get().map(|s| s.value.as_str()),
    );
    chain.extend(opt_lit(
        "key_prefix",
        f.attrs.key_prefix.get().map(|s| s.value.as_str()),
    ));
    chain.extend(opt_lit(
        "owner_key_prefix",
        input.attrs.key_prefix.get().map(|s| s.value.as_str()),
    ));
    chain.extend(opt_lit(
        "owner_profile_env",
        input.attrs.profile_env.get().map(|s| s.value.as_str()),
    ));
    quote! {
        #[allow(non_upper_case_globals)]
        static #ident: #cm::Nest = #cm::Nest::new(#owner, #field, #own_prefix) #chain;
    }
}

fn spec_static(input: &Input<'_>, cm: &TokenStream, f: &Field<'_>, i: usize) -> TokenStream {
    let a = &f.attrs;
    let ident = spec_ident(i);
    let owner = input.ident.to_string();
    let field = f.plain_name();
    let type_name = f.type_string();
    let source = match (a.fetch_from.get(), a.fetcher.get()) {
        (Some(s), _) => s.value.trim().to_owned(),
        // Named as written, so its errors say which fetcher failed.
        (None, Some(expr)) => format!("fetcher `{}`", fetcher_name(&expr.value)),
        // Read from the precedence sources alone.
        (None, None) if a.precedence_read => String::new(),
        (None, None) => "assign".to_owned(),
    };
    // `fetch_from = "database", source = "analytics"` is the pool `database:analytics`.
    let source = match a.source.get() {
        Some(pool) if !source.contains(':') => format!("{source}:{}", pool.value),
        _ => source,
    };
    // A field without references has its texts final now: `{{` and `}}` are single
    // braces. A field with references keeps them for the runtime to fill in.
    let fixed = !crate::refs::has_refs(f);
    let fix = |s: &str| match fixed {
        true => crate::refs::unescape(s),
        false => s.to_owned(),
    };
    let key = a.key.get().map(|k| fix(&k.value));
    // The key of a field that names none: its variable name, `env = "..."`, else
    // `env_prefix` + FIELD.
    let default_key = match a.env.get() {
        Some(env) => env.value.clone(),
        None => env_name(input, f),
    };
    let (secret_path, sensitive) = match a.secret.get().map(|s| &s.value) {
        Some(SecretAttr::Path(p)) => (Some(fix(p)), true),
        Some(SecretAttr::Flag) => (None, true),
        None => (None, false),
    };
    let mut chain = TokenStream::new();
    chain.extend(opt_lit("key", key.as_deref()));
    if key.is_none() {
        chain.extend(quote!(.default_key(#default_key)));
    }
    chain.extend(opt_lit(
        "select",
        a.field.get().map(|s| fix(&s.value)).as_deref(),
    ));
    chain.extend(opt_lit(
        "pointer",
        a.pointer.get().map(|s| s.value.as_str()),
    ));
    // The source's own parameters, by name (`secret = "path"` is `secret`).
    let params: Vec<(&str, String)> = secret_path
        .map(|p| ("secret", p))
        .into_iter()
        .chain(a.params.iter().map(|p| {
            let sql = matches!(p.name.as_str(), "query" | "table" | "dc");
            let value = if sql { p.value.clone() } else { fix(&p.value) };
            (p.name.as_str(), value)
        }))
        .collect();
    if !params.is_empty() {
        let (names, values): (Vec<_>, Vec<_>) = params.into_iter().unzip();
        chain.extend(quote!(.params(&[ #( (#names, #values) ),* ])));
    }
    chain.extend(opt_lit(
        "fallback",
        a.fallback.get().map(|s| s.value.as_str()),
    ));
    // Precedence: the field's lists, else the struct's; its variable; the struct's
    // convention settings.
    let c = &input.attrs;
    for (method, list) in [
        ("overrides", input.overrides(f)),
        ("defaults", input.defaults(f)),
    ] {
        if !list.is_empty() {
            let m = format_ident!("{}", method);
            let items = list.iter().map(|s| fix(&s.value));
            chain.extend(quote!(.#m(&[ #( #items ),* ])));
        }
    }
    chain.extend(opt_lit("env", a.env.get().map(|s| s.value.as_str())));
    chain.extend(opt_lit(
        "key_prefix",
        c.key_prefix.get().map(|s| s.value.as_str()),
    ));
    chain.extend(opt_lit(
        "config_table",
        c.table.get().map(|s| s.value.as_str()),
    ));
    chain.extend(opt_lit(
        "fallback_to",
        a.fallback_to.get().map(|s| s.value.as_str()),
    ));
    if sensitive {
        chain.extend(quote!(.sensitive(true)));
    }
    if let Some(t) = a.timeout.get() {
        let d = duration_tokens(t.value);
        chain.extend(quote!(.timeout(#d)));
    }
    if let Some(n) = a.retry_attempts.get() {
        let n = n.value;
        chain.extend(quote!(.retry_attempts(#n)));
    }
    if let Some(n) = a.max_size.get() {
        let n = n.value;
        chain.extend(quote!(.max_size(#n)));
    }
    if let Some(d) = a.retry_backoff.get() {
        let d = duration_tokens(d.value);
        chain.extend(quote!(.retry_backoff(#d)));
    }
    if let Some(d) = a.cache_for.get().or(a.ttl.get()) {
        let d = duration_tokens(d.value);
        chain.extend(quote!(.cache_for(#d)));
    }
    if let Some(d) = a.stale_for.get() {
        let d = duration_tokens(d.value);
        chain.extend(quote!(.stale_for(#d)));
    }
    if a.circuit_breaker.get().is_some_and(|b| b.value) {
        chain.extend(quote!(.circuit_breaker(true)));
    }
    if let Some(n) = a.max_concurrency.get() {
        let n = n.value;
        chain.extend(quote!(.max_concurrency(#n)));
    }
    chain.extend(crate::refs::spec_chain(f));
    // `watch` on the field, else on the struct.
    let watch = a.watch.get().or(c.watch.get()).is_some_and(|w| w.value);
    if watch {
        chain.extend(quote!(.watch(true)));
    }
    if a.is_streamed() {
        chain.extend(quote!(.streamed(true)));
    }
    if let Some(d) = a.watch_interval.get().or(c.watch_interval.get()) {
        let d = duration_tokens(d.value);
        chain.extend(quote!(.watch_interval(#d)));
    }
    chain.extend(opt_lit("doc", f.doc().as_deref()));
    quote! {
        #[allow(non_upper_case_globals)]
        static #ident: #cm::FieldSpec = #cm::FieldSpec::new(#owner, #field, #type_name, #source) #chain;
    }
}

/// The backend's own compile-time rules for a `fetch_from` field: one call spanned at
/// `fetch_from`, `backend!{ "<name>" <entry> has [key dc ...] }` (the names the field says
/// to its source: required keys, the cargo feature), and one per name, spanned at its key,
/// `backend!{ "<name>" <entry> param <name> }` (a name the backend does not read is an
/// error there, with the backend's keys and a suggestion). The rules live in the runtime
/// crate's backend modules; this crate knows no backend and no backend key by name.
/// [`backend_rules`] for every fetched field; also emitted when other attributes are
/// invalid, so the backends' errors join the others in one compile.
pub fn backend_checks(input: &Input<'_>, entry: Entry) -> TokenStream {
    let cm = runtime_path(input, entry);
    input
        .fields
        .iter()
        .filter(|f| !f.attrs.skip.is_some())
        .map(|f| backend_rules(&cm, f, entry))
        .collect()
}

fn backend_rules(cm: &TokenStream, f: &Field<'_>, entry: Entry) -> TokenStream {
    let Some(from) = f.attrs.fetch_from.get() else {
        return TokenStream::new();
    };
    // `stream_from` and `fetch_from` together: that error is the one to read.
    if f.attrs.sources_conflict() {
        return TokenStream::new();
    }
    let name = split_source(from.value.trim()).base.to_owned();
    let entry = match entry {
        Entry::Facade => quote!(facade),
        Entry::Direct => quote!(direct),
    };
    let params = f.attrs.backend_params();
    let span_of = |tokens: &TokenStream| {
        tokens
            .clone()
            .into_iter()
            .next()
            .map_or_else(proc_macro2::Span::call_site, |t| t.span())
    };
    let names = params.iter().map(|(name, _)| format_ident!("{}", name));
    let mut out = crate::ast::respan(
        quote! { #cm::backend!{ #name #entry has [ #( #names )* ] } },
        span_of(&from.tokens),
    );
    for (key, tokens) in &params {
        let key = format_ident!("{}", key);
        out.extend(crate::ast::respan(
            quote! { #cm::backend!{ #name #entry param #key } },
            span_of(tokens),
        ));
    }
    // Only a push backend takes `stream_from`: the checks above run inside
    // `backend!{ name entry streamed { ... } }`, which a pull backend answers with one
    // error (its other rules would only add noise), spanned at `stream_from`.
    if let Some(s) = f.attrs.stream_from.get() {
        use proc_macro2::{Delimiter, Group};
        let span = span_of(&s.tokens);
        let head = crate::ast::respan(quote! { #cm::backend! }, span);
        let inner = crate::ast::respan(quote! { #name #entry streamed }, span);
        let mut checks = Group::new(Delimiter::Brace, out);
        checks.set_span(span);
        let mut call = Group::new(Delimiter::Brace, quote! { #inner #checks });
        call.set_span(span);
        return quote! { #head #call };
    }
    out
}

/// The methods generated on the struct, with their signatures: [`expand`] gives each a
/// body, [`fallback_stub`] gives each `unimplemented!()`, so both declare exactly the same
/// API.
struct Method {
    doc: String,
    sig: TokenStream,
}

/// `fn name(args) -> FetchFuture<'_ | 'static, out>`: a plain function returning the
/// runtime's named future (no state machine, no opaque type of its own to check per struct).
fn future_sig(
    cm: &TokenStream,
    vis: &syn::Visibility,
    name: &syn::Ident,
    args: TokenStream,
    output: &TokenStream,
    borrows: bool,
) -> TokenStream {
    let lifetime = if borrows { quote!('_) } else { quote!('static) };
    quote!(#vis fn #name(#args) -> #cm::FetchFuture<#lifetime, #output>)
}

fn struct_methods(input: &Input<'_>, cm: &TokenStream) -> Vec<Method> {
    let vis = &input.original.vis;
    let timeout = struct_timeout(input);
    let timeout_doc = humantime::format_duration(timeout).to_string();
    let result_all = quote!(::core::result::Result<Self, ::std::vec::Vec<#cm::ComponentError>>);
    let result_partial =
        quote!(::core::result::Result<#cm::Partial<Self>, ::std::vec::Vec<#cm::ComponentError>>);
    let result_one = quote!(::core::result::Result<Self, #cm::ComponentError>);
    let m = |doc: &str, sig: TokenStream| Method {
        doc: doc.to_owned(),
        sig,
    };
    let fut = |doc: &str, name: &str, output: &TokenStream| {
        let name = format_ident!("{}", name);
        let with = format_ident!("{}_with", name);
        [
            Method {
                doc: doc.to_owned(),
                sig: future_sig(cm, vis, &name, TokenStream::new(), output, false),
            },
            Method {
                doc: format!("Like `{name}`, from `sources`."),
                sig: future_sig(cm, vis, &with, quote!(sources: &#cm::Sources), output, true),
            },
        ]
    };
    let mut methods = Vec::with_capacity(19);
    methods.extend(fut(
        "Fetches every field that has a source (nested structs included), concurrently, from the process-wide `Sources` (see `Sources::set_global`); fields without a source get `Default` (unless the struct declares precedence sources: then they are read from those). Returns every error, one per failed field.",
        "fetch_all_components",
        &result_all,
    ));
    methods.extend(fut(
        "Fetches what can be fetched from the process-wide `Sources`: failed fields take their `fallback` or `Default`, and the errors are returned beside the value. Fails only when a failed field has neither.",
        "fetch_available_components",
        &result_partial,
    ));
    methods.extend(fut(
        &format!(
            "Like `fetch_all_components`, bounded by the struct's timeout ({timeout_doc}): a timeout gives `ComponentError::Timeout`, one failed field its error, several `ComponentError::Multiple`."
        ),
        "fetch_with_resilience",
        &result_one,
    ));
    methods.extend(fut(
        "The seed's name for a fetch that honours `cache_for`: like `fetch_with_resilience` (every fetch method answers `cache_for`/`ttl` fields from the cache of the `Sources` while fresh).",
        "fetch_with_cache",
        &result_one,
    ));
    methods.extend(fut(
        "Like `fetch_all_components`, with a report of where each field's value came from (fetched, cache hit, stale, retried, fallback, default) and how long it took, and for a field with precedence sources what each one answered; `Display` prints it as a table. The value a field took is never shown; a value that lost only when neither its field nor its source is secret.",
        "fetch_report",
        &quote!(#cm::FetchReport<Self>),
    ));
    // A `Live` is shared between tasks: the struct must be `Send + Sync + 'static`. The
    // bound is higher-ranked so that a struct which is not only loses these methods.
    let shareable =
        quote!(where for<'__cm> Self: ::core::marker::Send + ::core::marker::Sync + 'static);
    let live =
        quote!(::core::result::Result<#cm::Live<Self>, ::std::vec::Vec<#cm::ComponentError>>);
    methods.push(m(
        "Fetches the struct, then keeps it current: a `Live<Self>` watching the fields marked `watch` (all of them when none is), from the process-wide `Sources`. See `Live::builder` for validation, history and quiescence.",
        quote!(#vis fn watch() -> #cm::FetchFuture<'static, #live> #shareable),
    ));
    methods.push(m(
        "Like `watch`, from `sources`.",
        quote!(#vis fn watch_with(sources: &#cm::Sources) -> #cm::FetchFuture<'_, #live> #shareable),
    ));
    methods.push(m(
        "The seed's live updates: fills `self` from the process-wide `Sources`, then yields each `ConfigUpdate` of a `Live` watching them (`updates.live::<Self>()` reads the applied versions).",
        quote!(#vis fn watch_for_updates(&mut self) -> #cm::FetchFuture<'_, #cm::ConfigUpdates> #shareable),
    ));
    methods.push(m(
        "Where each fetched field of this struct comes from, as `#[component(...)]` says, in field order (`nested` fields are listed by `component_sources_with`).",
        quote!(#vis fn component_sources() -> &'static [&'static #cm::FieldSpec]),
    ));
    methods.push(m(
        "Every fetched field of the tree (nested structs included), with its full path and its key as `sources` resolve it.",
        quote!(#vis fn component_sources_with(sources: &#cm::Sources) -> ::std::vec::Vec<#cm::ComponentSource>),
    ));
    methods.push(m(
        "What this configuration is, for operators: per field (nested ones included) its type, sources and keys in precedence order, fallback, secrecy, rules, settings and doc comment, resolved against the process-wide `Sources`. `Display` is a table; `to_markdown`, `toml_template`, `json_schema` turn it into a page, a defaults file and a schema. Nothing is fetched.",
        quote!(#vis fn config_doc() -> #cm::ConfigDoc),
    ));
    methods.push(m(
        "Like `config_doc`, resolved against `sources`.",
        quote!(#vis fn config_doc_with(sources: &#cm::Sources) -> #cm::ConfigDoc),
    ));
    methods.extend(fut(
        &format!(
            "Checks, for every field and every source it reads, that the source is reachable, the credentials are accepted, the key may be read and exists — without reading a secret value — all sources concurrently, bounded by the struct's timeout ({timeout_doc}). `is_ok()` says whether a fetch can be expected to succeed; `Display` is a table."
        ),
        "preflight",
        &quote!(#cm::PreflightReport),
    ));
    methods
}

/// `fetch_<field>()` and `fetch_<field>_with(&Sources)` of one fetched field.
fn field_methods(input: &Input<'_>, cm: &TokenStream, f: &Field<'_>) -> [Method; 2] {
    let vis = &input.original.vis;
    let ty = f.ty;
    let m = f.method("fetch", "");
    let m_with = format_ident!("{}_with", m);
    let result = quote!(::core::result::Result<#ty, #cm::ComponentError>);
    [
        Method {
            doc: format!(
                "Fetches only `{}` from the process-wide [`Sources`](::component_model_async::Sources).",
                f.plain_name()
            ),
            sig: future_sig(cm, vis, &m, TokenStream::new(), &result, false),
        },
        Method {
            doc: format!("Fetches only `{}` from `sources`.", f.plain_name()),
            sig: future_sig(
                cm,
                vis,
                &m_with,
                quote!(__cm_sources: &#cm::Sources),
                &result,
                true,
            ),
        },
    ]
}

fn struct_timeout(input: &Input<'_>) -> Duration {
    input
        .attrs
        .timeout
        .get()
        .map(|t| t.value)
        .unwrap_or(Duration::from_secs(30))
}

/// Fields the derive touches (not `skip`), with their index.
fn live_fields<'a>(input: &'a Input<'_>) -> Vec<(usize, &'a Field<'a>)> {
    input
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.attrs.skip.is_some())
        .collect()
}

/// Whether `ty` is a `SecretValue` (autoref probe; the probe traits are imported once at
/// the top of the generated block).
/// A standard type (see [`shape::is_plain_std`]) is known not to be one: no probe to
/// resolve (each probe is a method lookup per field, paid again in every function).
fn secret_probe(cm: &TokenStream, ty: &Type, params: &[String]) -> TokenStream {
    if shape::is_plain_std(ty, params) {
        return quote_spanned! {ty.span()=> #cm::probe::not_secret::<#ty>() };
    }
    quote_spanned! {ty.span()=> (&#cm::probe::SecretProbe::<#ty>::new()).probe_secret() }
}

/// `__cm_plan.add...(&SPEC, <is it a SecretValue>, ...)` for one field: the one place that
/// requires its type to be `Deserialize` (`fetch_<field>` runs the same `Nested::plan`), so a
/// type error is reported once.
fn plan_add(cm: &TokenStream, f: &Field<'_>, i: usize, params: &[String]) -> TokenStream {
    let ty = f.ty;
    let spec = spec_ident(i);
    let secret = secret_probe(cm, ty, params);
    match f.attrs.fetcher.get() {
        Some(expr) => {
            let e = &expr.value;
            let add = quote_spanned! {e.span()=> __cm_plan.add_fetcher::<#ty, _, _>(&#spec, #secret, #e) };
            // A `fallback` literal or a `fallback_to` source's answer is decoded into the type.
            let listed = |l: &crate::attr::Attr<Vec<crate::attr::Str>>| {
                l.get().is_some_and(|l| !l.value.is_empty())
            };
            if f.attrs.fallback.is_some()
                || f.attrs.fallback_to.is_some()
                || listed(&f.attrs.overrides)
                || listed(&f.attrs.defaults)
            {
                quote_spanned! {ty.span()=> { let __cm_h = #add; __cm_plan.decodes::<#ty>(__cm_h) } }
            } else {
                add
            }
        }
        None => quote_spanned! {ty.span()=> __cm_plan.add::<#ty>(&#spec, #secret) },
    }
}

/// The default probe of `ty`: `Some(<ty as Default>::default)` when it implements
/// `Default` (a function pointer: no closure to type-check per field); a standard type
/// (see [`shape::is_plain_std`]) is known to, and takes a plain generic call, not a probe.
fn default_probe(cm: &TokenStream, ty: &Type, params: &[String]) -> TokenStream {
    if shape::is_plain_std(ty, params) {
        return quote_spanned! {ty.span()=> #cm::probe::default_of::<#ty>() };
    }
    quote_spanned! {ty.span()=> (&#cm::probe::DefaultProbe::<#ty>::new()).probe_default() }
}

/// How a field's value is taken out of the outcomes, in planning order.
fn take_step(cm: &TokenStream, f: &Field<'_>, i: usize, params: &[String]) -> TokenStream {
    let ty = f.ty;
    let probe = default_probe(cm, ty, params);
    match nested_ops(f, i) {
        Some(ops) => quote!(__cm_out.nested(__cm_available, Self::#ops.take, #probe)),
        None => quote_spanned!(ty.span()=> __cm_out.field::<#ty>(__cm_available, #probe)),
    }
}

/// The associated const holding a `nested` field's `NestedOps`.
pub fn nested_ops(f: &Field<'_>, i: usize) -> Option<syn::Ident> {
    f.attrs
        .is_nested()
        .then(|| format_ident!("__CM_NESTED_{}", i))
}

/// `const __CM_NESTED_<i>: NestedOps<Ty> = NestedOps::of();` for each `nested` field:
/// the one place that requires the type to be `Nested`, so a type that is not is
/// reported once, at the field's type.
fn nested_consts(cm: &TokenStream, fetched: &[(usize, &Field<'_>)]) -> TokenStream {
    fetched
        .iter()
        .filter_map(|(i, f)| {
            let ops = nested_ops(f, *i)?;
            let ty = f.ty;
            let of = crate::ast::respan(quote!(#cm::NestedOps::<#ty>::of()), ty.span());
            Some(quote! {
                #[doc(hidden)]
                #[allow(non_upper_case_globals)]
                const #ops: #cm::NestedOps<#ty> = #of;
            })
        })
        .collect()
}

/// How a field joins the plan. A `fetcher = ...` expression is evaluated only when the
/// field is planned (`Plan::wants`: not while `fetch_<other field>` plans its one field).
fn plan_step(cm: &TokenStream, f: &Field<'_>, i: usize, params: &[String]) -> TokenStream {
    if let Some(ops) = nested_ops(f, i) {
        let nest = nest_ident(i);
        return quote! { __cm_plan.nest(&#nest, Self::#ops.plan); };
    }
    let mut add = plan_add(cm, f, i, params);
    if crate::expand_rules::has_field_rules(f) {
        let rules = crate::expand_rules::field_calls(cm, f);
        add = quote! { { let __cm_h = #add; #rules } };
    }
    // The type's JSON Schema for `config_doc().json_schema()`: emitted only with the
    // feature `schema` (set by the runtime's), through a macro of the runtime that is
    // empty without it too. Without the feature a struct compiles as before.
    let spec = spec_ident(i);
    let ty = f.ty;
    let schema = if cfg!(feature = "schema") {
        quote!(#cm::schema!(__cm_plan, &#spec, #ty);)
    } else {
        TokenStream::new()
    };
    if f.attrs.fetcher.is_some() {
        quote! { if __cm_plan.wants(&#spec) { #add; #schema } }
    } else {
        quote! { #add; #schema }
    }
}

/// `impl Nested`: the struct's fields join a plan in field order and are taken back in
/// the same order; fields without a source get `Default`.
fn nested_impl(
    input: &Input<'_>,
    cm: &TokenStream,
    fetched: &[(usize, &Field<'_>)],
) -> TokenStream {
    let name = input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let profile_env = match input.attrs.profile_env.get() {
        Some(p) => {
            let p = &p.value;
            quote!(const PROFILE_ENV: ::core::option::Option<&'static str> = ::core::option::Option::Some(#p);)
        }
        None => TokenStream::new(),
    };
    // The struct's type parameters, once: a field whose type mentions one is never judged
    // a standard type.
    let params = shape::type_params(input.generics);
    let plans = fetched.iter().map(|(i, f)| plan_step(cm, f, *i, &params));
    let takes = fetched.iter().map(|(i, f)| {
        let v = format_ident!("__cm_v{}", i);
        let take = take_step(cm, f, *i, &params);
        quote!(let #v = #take;)
    });
    // Every field is taken (so every error is collected) before one `let ... else`
    // checks them all: a `?` per field costs a `Try` desugaring to type-check each.
    let vs: Vec<syn::Ident> = fetched
        .iter()
        .map(|(i, _)| format_ident!("__cm_v{}", i))
        .collect();
    let check = if vs.is_empty() {
        TokenStream::new()
    } else {
        quote! {
            let ( #( ::core::option::Option::Some(#vs), )* ) = ( #( #vs, )* ) else {
                return ::core::option::Option::None;
            };
        }
    };
    let inits = input.fields.iter().enumerate().map(|(i, f)| {
        let member = &f.member;
        if (f.attrs.is_fetched() || f.attrs.is_nested()) && !f.attrs.skip.is_some() {
            let v = format_ident!("__cm_v{}", i);
            quote!(#member: #v)
        } else {
            let ty = f.ty;
            quote_spanned!(ty.span()=> #member: <#ty as ::core::default::Default>::default())
        }
    });
    let concurrency = crate::expand_rules::concurrency(input);
    let rules = crate::expand_rules::nested_rules(input, cm);
    let fields = crate::refs::fields_const(cm, input);
    quote! {
        #[automatically_derived]
        impl #impl_generics #cm::Nested for #name #ty_generics #where_clause {
            #profile_env
            #concurrency
            #fields
            #rules
            #[allow(unused_variables)]
            #[inline]
            fn plan(__cm_plan: &mut #cm::Plan<'_>) {
                #( #plans )*
            }
            #[allow(unused_variables)]
            #[inline]
            fn take(__cm_out: &mut #cm::Outcomes<'_>, __cm_available: bool) -> ::core::option::Option<Self> {
                #( #takes )*
                #check
                ::core::option::Option::Some(Self { #( #inits, )* })
            }
        }
    }
}

/// The bodies of [`struct_methods`], in the same order: calls into the runtime.
fn struct_bodies(
    input: &Input<'_>,
    cm: &TokenStream,
    spec_refs: &[syn::Ident],
) -> Vec<TokenStream> {
    let n = spec_refs.len();
    let owner = input.ident.to_string();
    let timeout = duration_tokens(struct_timeout(input));
    vec![
        quote!(#cm::fetch_all::<Self>(#cm::Sources::global())),
        quote!(#cm::fetch_all::<Self>(sources)),
        quote!(#cm::fetch_available::<Self>(#cm::Sources::global())),
        quote!(#cm::fetch_available::<Self>(sources)),
        quote!(#cm::fetch_bounded::<Self>(#owner, #timeout, #cm::Sources::global())),
        quote!(#cm::fetch_bounded::<Self>(#owner, #timeout, sources)),
        quote!(#cm::fetch_bounded::<Self>(#owner, #timeout, #cm::Sources::global())),
        quote!(#cm::fetch_bounded::<Self>(#owner, #timeout, sources)),
        quote!(#cm::fetch_report::<Self>(#owner, #cm::Sources::global())),
        quote!(#cm::fetch_report::<Self>(#owner, sources)),
        quote!(#cm::watch::<Self>(#cm::Sources::global())),
        quote!(#cm::watch::<Self>(sources)),
        quote!(#cm::watch_for_updates(self)),
        quote! {
            static __CM_SOURCES: [&#cm::FieldSpec; #n] = [ #( &#spec_refs ),* ];
            &__CM_SOURCES
        },
        quote!(#cm::describe::<Self>(sources)),
        quote!(#cm::config_doc::<Self>(#owner, #cm::Sources::global())),
        quote!(#cm::config_doc::<Self>(#owner, sources)),
        quote!(#cm::preflight::<Self>(#owner, #timeout, #cm::Sources::global())),
        quote!(#cm::preflight::<Self>(#owner, #timeout, sources)),
    ]
}

/// The bodies of [`field_methods`], in the same order.
fn field_bodies(input: &Input<'_>, cm: &TokenStream, f: &Field<'_>, i: usize) -> [TokenStream; 2] {
    let m_with = format_ident!("{}_with", f.method("fetch", ""));
    let global = quote!(Self::#m_with(#cm::Sources::global()));
    if let Some(ops) = nested_ops(f, i) {
        let nest = nest_ident(i);
        return [
            global,
            quote!(#cm::fetch_nested(__cm_sources, &#nest, Self::#ops, <Self as #cm::Nested>::VALIDATE_CONCURRENCY)),
        ];
    }
    // The struct's own plan, passing over every other field: no code per field.
    let ty = f.ty;
    let spec = spec_ident(i);
    // A field absent from every precedence source takes `Default` (probed only for such
    // a field: a probe costs compile time).
    let default = if input.has_precedence(f) {
        default_probe(cm, ty, &shape::type_params(input.generics))
    } else {
        quote!(::core::option::Option::None)
    };
    [
        global,
        quote!(#cm::fetch_field::<Self, #ty>(__cm_sources, &#spec, #default)),
    ]
}

fn with_bodies(methods: Vec<Method>, bodies: Vec<TokenStream>) -> TokenStream {
    methods
        .into_iter()
        .zip(bodies)
        // `#[inline]`: code generation happens where a method is used, not for every
        // method of every derived struct.
        .map(|(Method { doc, sig }, body)| quote!(#[doc = #doc] #[inline] #sig { #body }))
        .collect()
}

pub fn expand(input: &Input<'_>, entry: Entry) -> TokenStream {
    // Every runtime path below is `__cm_rt::...`, imported once at the top of the block:
    // the generated code is about a quarter shorter than with the full path each time,
    // and every token is parsed on every build.
    let runtime = runtime_path(input, entry);
    let cm = quote!(__cm_rt);
    let name = input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();

    let live = live_fields(input);
    let fetched: Vec<(usize, &Field<'_>)> = live
        .iter()
        .copied()
        .filter(|(_, f)| f.attrs.is_fetched() || f.attrs.is_nested())
        .collect();

    let mut specs: TokenStream = live
        .iter()
        .map(|(i, f)| spec_static(input, &cm, f, *i))
        .collect();
    specs.extend(
        fetched
            .iter()
            .filter(|(_, f)| f.attrs.is_nested())
            .map(|(i, f)| nest_static(input, &cm, f, *i)),
    );
    let mut gates = backend_checks(input, entry);
    gates.extend(crate::refs::assertions(&cm, input));

    let types: Vec<&Type> = live.iter().map(|(_, f)| f.ty).collect();
    let ambiguous = shape::ambiguous(&types, input.generics);
    let assign_impls: TokenStream = live
        .iter()
        .zip(&ambiguous)
        // A `nested` field is fetched as a tree, not assigned as one component: no
        // `AsyncAssign`/`FutureAssign` for its type (each pair costs more to compile than
        // the rest of the field; see BENCHMARKS.md).
        .filter(|((_, f), amb)| !**amb && !f.attrs.is_nested())
        .map(|((i, f), _)| assign_impl(input, &cm, f, *i))
        .collect();

    let nested = nested_impl(input, &cm, &fetched);
    // `AssignFrom<F>`: assignment by handing over a fetcher.
    let assign_from = crate::assign_from::expand(input, &cm);
    let nested_consts = nested_consts(&cm, &fetched);
    let rule_fns = crate::expand_rules::functions(input, &cm, true);
    let spec_refs: Vec<syn::Ident> = fetched
        .iter()
        .filter(|(_, f)| !f.attrs.is_nested())
        .map(|(i, _)| spec_ident(*i))
        .collect();
    // A `nested_only` struct is fetched only as part of its parents: no fetch methods of
    // its own (its keys without the parent's prefixes would be the wrong ones), and none
    // of their compile time.
    let nested_only = input.attrs.is_nested_only();
    let methods = if nested_only {
        TokenStream::new()
    } else {
        with_bodies(
            struct_methods(input, &cm),
            struct_bodies(input, &cm, &spec_refs),
        )
    };
    let per_field: TokenStream = fetched
        .iter()
        .filter(|_| !nested_only)
        .map(|(i, f)| {
            with_bodies(
                field_methods(input, &cm, f).into(),
                field_bodies(input, &cm, f, *i).into(),
            )
        })
        .collect();

    let marker = match entry {
        Entry::Facade => {
            let krate = input.krate(quote!(::component_model));
            quote! {
                #[automatically_derived]
                impl #impl_generics #krate::__private::AsyncAssignDerived for #name #ty_generics #where_clause {}
            }
        }
        Entry::Direct => TokenStream::new(),
    };

    quote! {
        #[allow(non_local_definitions, clippy::all)]
        const _: () = {
            use #runtime as __cm_rt;
            #[allow(unused_imports)]
            use __cm_rt::probe::{NoDefault as _, NotSecret as _, ViaDefault as _, ViaSecret as _};
            #gates
            #specs
            #assign_impls
            #assign_from
            #marker
            #nested
            #rule_fns

            impl #impl_generics #name #ty_generics #where_clause {
                #nested_consts
                #methods
                #per_field
            }
        };
    }
}

/// `FieldSlot<Ty, IntoT>` for a field whose type no other field has: the one impl per
/// field type. `AsyncAssign` and `FutureAssign` are generic impls in the runtime over it;
/// its `IntoT: Into<Ty>` bound is what picks the field from the type assigned.
fn assign_impl(input: &Input<'_>, cm: &TokenStream, f: &Field<'_>, i: usize) -> TokenStream {
    let name = input.ident;
    let ty = f.ty;
    let spec = spec_ident(i);
    let (_, ty_generics, _) = input.generics.split_for_impl();
    let mut g = input.generics.clone();
    g.params.push(syn::parse_quote!(__IntoT));
    g.make_where_clause()
        .predicates
        .push(syn::parse_quote!(__IntoT: ::core::convert::Into<#ty>));
    let (ig, _, wc) = g.split_for_impl();
    let member = f.member.to_token_stream();
    quote_spanned! {ty.span()=>
        #[automatically_derived]
        impl #ig #cm::FieldSlot<#ty, __IntoT> for #name #ty_generics #wc {
            const SPEC: &'static #cm::FieldSpec = &#spec;
            #[inline]
            fn slot(&mut self) -> &mut #ty {
                &mut self.#member
            }
        }
    }
}

/// When attributes are invalid, still declare the methods users call (with bodies that are
/// never compiled into a working program), so the only errors shown are the real ones.
pub fn fallback_stub(input: &Input<'_>, entry: Entry) -> TokenStream {
    let cm = runtime_path(input, entry);
    let name = input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let stub = |methods: Vec<Method>| -> TokenStream {
        let bodies = methods
            .iter()
            .map(|_| quote!(::core::unimplemented!()))
            .collect();
        with_bodies(methods, bodies)
    };
    let nested_only = input.attrs.is_nested_only();
    let methods = if nested_only {
        TokenStream::new()
    } else {
        stub(struct_methods(input, &cm))
    };
    let per_field: TokenStream = input
        .fields
        .iter()
        .filter(|f| {
            !nested_only
                && (f.attrs.is_fetched() || f.attrs.is_nested())
                && !f.attrs.skip.is_some()
                && f.original.ident.is_some()
        })
        .map(|f| stub(field_methods(input, &cm, f).into()))
        .collect();
    quote! {
        #[allow(dead_code, unused, clippy::all)]
        impl #impl_generics #name #ty_generics #where_clause {
            #methods
            #per_field
        }
        #[allow(dead_code, unused, clippy::all)]
        impl #impl_generics #cm::Nested for #name #ty_generics #where_clause {
            fn plan(_: &mut #cm::Plan<'_>) { ::core::unimplemented!() }
            fn take(_: &mut #cm::Outcomes<'_>, _: bool) -> ::core::option::Option<Self> { ::core::unimplemented!() }
        }
    }
}
