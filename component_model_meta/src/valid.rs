//! Checks on parsed input, so the expanders may assume valid attributes. Every problem is
//! recorded in the `Ctxt`; nothing stops at the first one.

use quote::ToTokens;

use crate::ast::{Field, Input, Style};
use crate::ctxt::Ctxt;

/// What a sync derive accepts.
pub fn check_sync(cx: &Ctxt, input: &Input<'_>, derive: &str, needs_names: bool) {
    match input.style {
        Style::Named => {}
        Style::Tuple if !needs_names => {}
        Style::Tuple => cx.error_spanned_by(
            input.name_tokens(),
            format!(
                "`#[derive({derive})]` needs named fields: it generates `<field>_set` and `<field>_with` methods; use `#[derive(Assign, ComponentFrom)]` for tuple structs"
            ),
        ),
        Style::Unit => cx.error_spanned_by(
            input.name_tokens(),
            format!("`#[derive({derive})]` needs a struct with fields; `{}` has none", input.ident),
        ),
    }
    for field in &input.fields {
        check_skip(cx, field);
        if !field.attrs.fetch_from.is_some() {
            for p in &field.attrs.params {
                cx.error_spanned_by(&p.tokens, unknown_field_key(&p.name));
            }
        }
    }
}

/// "unknown component field attribute `x`" for a `name = <literal>` on a field whose
/// source would otherwise read it as its own key.
fn unknown_field_key(name: &str) -> String {
    match crate::symbol::suggest_close(name, crate::symbol::FIELD_KEYS) {
        Some(s) => format!("unknown component field attribute `{name}`; did you mean `{s}`?"),
        None => format!(
            "unknown component field attribute `{name}`; expected one of: {}, or a key of the field's source (with `fetch_from`)",
            crate::symbol::FIELD_KEYS.join(", ")
        ),
    }
}

fn check_skip(cx: &Ctxt, field: &Field<'_>) {
    if let Some(skip) = field.attrs.skip.get()
        && (field.attrs.is_fetched() || field.attrs.is_nested())
    {
        cx.error_spanned_by(
                skip,
                "`skip` cannot be combined with `fetch_from`, `fetcher` or `nested`: a skipped field is never fetched",
            );
    }
}

/// Field rules check a fetched value: not on a skipped field (never fetched), nor on a
/// `nested` field (its value is a struct of fetched fields, each with its own rules).
fn check_rules_placement(cx: &Ctxt, field: &Field<'_>) {
    let Some(tokens) = &field.attrs.validate else {
        return;
    };
    if field.attrs.skip.is_some() {
        cx.error_spanned_by(
            tokens,
            "`validate` checks a fetched value; a `skip` field is never fetched",
        );
    } else if field.attrs.is_nested() {
        cx.error_spanned_by(
            tokens,
            "`validate` on a `nested` field: put the rules on the fields of the nested struct, or struct rules on it (`#[component(validate_with = path)]`, `#[component(validate(garde))]`), or on this struct (naming `\"<field>.<sub-field>\"` in `Violations::at`)",
        );
    } else if !field.attrs.is_fetched() && !field.attrs.stream_from.is_some() {
        cx.error_spanned_by(
            tokens,
            "`validate` checks a fetched value; this field has no source (`fetch_from`, `fetcher`, or the struct's `overrides`/`defaults`) and takes `Default`",
        );
    }
}

/// A parsed `fetch_from` value: `"consul"`, `"database:analytics"` (base `database`).
pub struct SourceName<'a> {
    pub base: &'a str,
}

pub fn split_source(name: &str) -> SourceName<'_> {
    SourceName {
        base: name.split_once(':').map_or(name, |(base, _)| base),
    }
}

/// What `#[derive(AsyncAssign)]` accepts.
pub fn check_async(cx: &Ctxt, input: &Input<'_>) {
    match input.style {
        Style::Named => {}
        Style::Tuple => cx.error_spanned_by(
            input.name_tokens(),
            "`#[derive(AsyncAssign)]` needs named fields: field names give env variable names, errors and `fetch_<field>` methods",
        ),
        Style::Unit => cx.error_spanned_by(
            input.name_tokens(),
            format!("`#[derive(AsyncAssign)]` needs a struct with fields; `{}` has none", input.ident),
        ),
    }
    if let Some(t) = input.attrs.timeout.get()
        && t.value.is_zero()
    {
        cx.error_spanned_by(t, "`timeout` must be greater than zero");
    }
    if let Some(t) = input.attrs.timeout.get()
        && input.attrs.is_nested_only()
    {
        cx.error_spanned_by(
            t,
            "`timeout` bounds `fetch_with_resilience` and `fetch_with_cache`, which a `nested_only` struct does not have; the parent's `timeout` bounds the whole tree",
        );
    }
    if let Some(t) = input.attrs.watch_interval.get()
        && t.value.is_zero()
    {
        cx.error_spanned_by(t, "`watch_interval` must be greater than zero");
    }

    if let Some(p) = input.attrs.env_prefix.get() {
        check_env_prefix(cx, p);
    }
    check_precedence_container(cx, input);
    if let Some(n) = input.attrs.validate_concurrency.get()
        && input.attrs.is_nested_only()
    {
        cx.error_spanned_by(
            n,
            "`validate_concurrency` bounds a fetch of this struct, which a `nested_only` struct never has; the parent's `validate_concurrency` bounds the whole tree",
        );
    }
    if let Some(t) = input.attrs.validate_timeout.get()
        && !input.attrs.validate_with_async.is_some()
    {
        cx.error_spanned_by(
            t,
            "`timeout` in the struct's `validate(...)` bounds its `validate_with_async` rule; the struct has none",
        );
    }
    crate::refs::check(cx, input);
    for field in &input.fields {
        check_skip(cx, field);
        check_rules_placement(cx, field);
        check_precedence_field(cx, field);
        if field.attrs.is_nested() {
            check_nested(cx, input, field);
        } else {
            check_prefixes_need_nested(cx, field);
            check_async_field(cx, field);
        }
    }
}

/// The struct's precedence keys: each listed source well formed, `profile_env` a
/// variable name, `table` a plain identifier, `{@...}` only `{@profile}`; and no two fields
/// that an environment reads under one variable name.
fn check_precedence_container(cx: &Ctxt, input: &Input<'_>) {
    let c = &input.attrs;
    check_precedence_lists(cx, [&c.overrides, &c.defaults]);
    if let Some(p) = c.profile_env.get()
        && !is_variable_name(&p.value)
    {
        cx.error_spanned_by(
            p,
            format!("`profile_env` names an environment variable (ASCII letters, digits, `_`), found {:?}", p.value),
        );
    }
    if let Some(t) = c.table.get()
        && !is_sql_identifier(&t.value)
    {
        cx.error_spanned_by(
            t,
            format!(
                "`table` must be a plain SQL identifier (letters, digits, `_`, `.`), found {:?}",
                t.value
            ),
        );
    }
    if let Some(p) = c.key_prefix.get() {
        check_profile_placeholders(cx, p, &p.value);
    }
    check_env_names(cx, input);
}

/// Two fields an environment would read under one variable: a compile error at the
/// second.
fn check_env_names(cx: &Ctxt, input: &Input<'_>) {
    let mut seen: Vec<(String, String)> = Vec::new();
    for f in &input.fields {
        let a = &f.attrs;
        if a.skip.is_some() || a.is_nested() || f.original.ident.is_none() {
            continue;
        }
        let own_env =
            a.fetch_from.get().is_some_and(|s| s.value.trim() == "env") && a.key.get().is_none();
        let env_source = |l: &[crate::attr::Str]| l.iter().any(|e| e.value.trim() == "env");
        let reads_env = own_env || env_source(input.overrides(f)) || env_source(input.defaults(f));
        if !reads_env {
            continue;
        }
        let name = match a.env.get() {
            Some(e) => e.value.clone(),
            None => format!(
                "{}{}",
                input
                    .attrs
                    .env_prefix
                    .get()
                    .map(|p| p.value.clone())
                    .unwrap_or_default(),
                f.plain_name().to_uppercase()
            ),
        };
        let field = f.plain_name();
        match seen.iter().find(|(n, _)| *n == name) {
            Some((_, other)) => cx.error_spanned_by(
                a.env
                    .get()
                    .map(|e| e.to_token_stream())
                    .unwrap_or_else(|| f.original.ident.to_token_stream()),
                format!("fields `{other}` and `{field}` are both read from the variable `{name}`: give one of them another with `env = \"...\"`"),
            ),
            None => seen.push((name, field)),
        }
    }
}

/// Every entry of the lists given.
fn check_precedence_lists(cx: &Ctxt, lists: [&crate::attr::Attr<Vec<crate::attr::Str>>; 2]) {
    for list in lists.into_iter().filter_map(|l| l.get()) {
        for entry in &list.value {
            check_precedence_entry(cx, entry);
        }
    }
}

/// A plain SQL identifier (`config`, `app.settings`): never text spliced into SQL.
fn is_sql_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// An environment variable's name: ASCII letters, digits and `_`.
fn is_variable_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One precedence source as written: `"<fetch_from name>"` or
/// `"<fetch_from name>@<argument>"`.
fn check_precedence_entry(cx: &Ctxt, entry: &crate::attr::Str) {
    let text = entry.value.as_str();
    let (name, argument) = match text.split_once('@') {
        Some((n, a)) => (n.trim(), Some(a)),
        None => (text.trim(), None),
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if !name_ok {
        cx.error_spanned_by(
            entry,
            format!("a precedence source is `\"<fetch_from name>\"` or `\"<fetch_from name>@<argument>\"` (`\"env\"`, `\"file@config/{{@profile}}.toml\"`, `\"database:analytics@settings\"`); found {text:?}"),
        );
        return;
    }
    if let Some(argument) = argument {
        if argument.trim().is_empty() {
            cx.error_spanned_by(
                entry,
                format!("`{name}@` names no argument: write `{name}@<a file, a key prefix, a secret path or a table>`, or `{name}` alone"),
            );
            return;
        }
        check_profile_placeholders(cx, entry, argument);
    }
}

/// `{@...}` in `text` is `{@profile}` and nothing else (`{field}` references are another
/// thing, `${VAR}` a third).
fn check_profile_placeholders(cx: &Ctxt, tokens: impl ToTokens, text: &str) {
    let mut rest = text;
    while let Some(at) = rest.find("{@") {
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            cx.error_spanned_by(
                tokens,
                format!("a `{{@` without its closing `}}` in {text:?}: write `{{@profile}}`"),
            );
            return;
        };
        let name = &after[..end];
        if name != "profile" {
            cx.error_spanned_by(
                &tokens,
                format!("unknown placeholder `{{@{name}}}` in {text:?}; the only one is `{{@profile}}` (the profile: `Sources::with_profile`, else `profile_env`, else `default`)"),
            );
        }
        rest = &after[end + 1..];
    }
}

/// A field's precedence keys: `overrides`/`defaults`/`env` on a field that is read at
/// all, `env` not beside a `key` of an `env` field, `{@...}` in its keys only `{@profile}`.
fn check_precedence_field(cx: &Ctxt, field: &Field<'_>) {
    let a = &field.attrs;
    let place = if a.is_nested() {
        Some("a `nested` field (put it on the fields of its struct, or on that struct)")
    } else if a.skip.is_some() {
        Some("a `skip` field (it is never read)")
    } else {
        None
    };
    for (name, tokens) in [
        ("overrides", a.overrides.get().map(|s| s.to_token_stream())),
        ("defaults", a.defaults.get().map(|s| s.to_token_stream())),
        ("env", a.env.get().map(|s| s.to_token_stream())),
    ] {
        if let (Some(tokens), Some(place)) = (tokens, place) {
            cx.error_spanned_by(tokens, format!("`{name}` does not apply to {place}"));
        }
    }
    check_precedence_lists(cx, [&a.overrides, &a.defaults]);
    if let Some(env) = a.env.get()
        && !is_variable_name(&env.value)
    {
        cx.error_spanned_by(
            env,
            format!(
                "`env` names an environment variable (ASCII letters, digits, `_`), found {:?}",
                env.value
            ),
        );
    }
    if let (Some(_), Some(key), Some(from)) = (a.env.get(), a.key.get(), a.fetch_from.get())
        && from.value.trim() == "env"
    {
        cx.error_spanned_by(
            key,
            "`env` and `key` both name this field's variable: keep `env = \"...\"` (it is also the name every env precedence source reads)",
        );
    }
    if let Some(k) = a.key.get() {
        check_profile_placeholders(cx, k, &k.value);
    }
    if let Some(crate::attr::SecretAttr::Path(p)) = a.secret.get().map(|s| &s.value) {
        let tokens = a.secret.get().map(|s| s.to_token_stream());
        check_profile_placeholders(cx, tokens, p);
    }
    for p in a
        .params
        .iter()
        .filter(|p| p.name != "query" && p.name != "table")
    {
        check_profile_placeholders(cx, &p.tokens, &p.value);
    }
}

fn check_env_prefix(cx: &Ctxt, p: &crate::attr::Str) {
    if !p
        .value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        cx.error_spanned_by(
            p,
            format!(
                "`env_prefix` may contain only ASCII letters, digits and `_`, found {:?}",
                p.value
            ),
        );
    }
}

/// `env_prefix`/`key_prefix` on a field only place a `nested` sub-struct.
fn check_prefixes_need_nested(cx: &Ctxt, field: &Field<'_>) {
    let a = &field.attrs;
    if let Some(p) = a.env_prefix.get() {
        cx.error_spanned_by(
            p,
            "`env_prefix` on a field needs `nested` (it places a nested struct's variables); for this struct's own fields put it on the struct: `#[component(env_prefix = \"...\")]`",
        );
    }
    if let Some(p) = a.key_prefix.get() {
        cx.error_spanned_by(
            p,
            "`key_prefix` needs `nested` on the same field: it is prepended to the keys of a nested struct's fields",
        );
    }
}

/// A `nested` field takes its values from its own struct's fields: it names no source and
/// no key of its own, only where the sub-struct goes (`env_prefix`, `key_prefix`), and it
/// cannot contain the struct it is in.
fn check_nested(cx: &Ctxt, input: &Input<'_>, field: &Field<'_>) {
    let a = &field.attrs;
    let ty = field.type_string();
    for (name, tokens) in [
        (
            "fetch_from",
            a.fetch_from
                .get()
                .filter(|_| !a.is_streamed())
                .map(|s| s.to_token_stream()),
        ),
        ("fetcher", a.fetcher.get().map(|s| s.to_token_stream())),
    ] {
        if let Some(tokens) = tokens {
            cx.error_spanned_by(
                tokens,
                format!("`nested` and `{name}` cannot be used together: the fields of `{ty}` say where their values come from"),
            );
        }
    }
    let mut others: Vec<(String, proc_macro2::TokenStream)> = source_keys(field);
    for (name, tokens) in [
        ("secret", a.secret.get().map(|s| s.to_token_stream())),
        ("fallback", a.fallback.get().map(|s| s.to_token_stream())),
        ("timeout", a.timeout.get().map(|s| s.to_token_stream())),
        ("max_size", a.max_size.get().map(|s| s.to_token_stream())),
        (
            "retry_attempts",
            a.retry_attempts.get().map(|s| s.to_token_stream()),
        ),
        ("ttl", a.ttl.get().map(|s| s.to_token_stream())),
        ("cache_for", a.cache_for.get().map(|s| s.to_token_stream())),
        (
            "circuit_breaker",
            a.circuit_breaker.get().map(|s| s.to_token_stream()),
        ),
        ("stale_for", a.stale_for.get().map(|s| s.to_token_stream())),
        (
            "retry_backoff",
            a.retry_backoff.get().map(|s| s.to_token_stream()),
        ),
        (
            "max_concurrency",
            a.max_concurrency.get().map(|s| s.to_token_stream()),
        ),
        (
            "stream_from",
            a.stream_from.get().map(|s| s.to_token_stream()),
        ),
        ("watch", a.watch.get().map(|s| s.to_token_stream())),
        (
            "watch_interval",
            a.watch_interval.get().map(|s| s.to_token_stream()),
        ),
    ] {
        if let Some(t) = tokens {
            others.push((name.to_owned(), t));
        }
    }
    for (name, tokens) in others {
        cx.error_spanned_by(
            tokens,
            format!("`{name}` does not apply to a `nested` field; put it on the fields of `{ty}` (a nested field takes only `env_prefix` and `key_prefix`)"),
        );
    }
    if let Some(p) = a.env_prefix.get() {
        check_env_prefix(cx, p);
    }
    if mentions(field.ty, input.ident) {
        cx.error_spanned_by(
            field.ty,
            format!("`nested` field `{}` contains `{}` itself: a struct cannot nest itself (its fetch would never end)", field.plain_name(), input.ident),
        );
    }
}

/// Whether `ty` names `Self` or `ident` anywhere (`Self`, `Option<Box<Config>>`).
fn mentions(ty: &syn::Type, ident: &syn::Ident) -> bool {
    fn walk(tokens: proc_macro2::TokenStream, ident: &syn::Ident) -> bool {
        tokens.into_iter().any(|t| match t {
            proc_macro2::TokenTree::Ident(i) => i == "Self" || i == *ident,
            proc_macro2::TokenTree::Group(g) => walk(g.stream(), ident),
            _ => false,
        })
    }
    walk(ty.to_token_stream(), ident)
}

/// One field of `#[derive(AsyncAssign)]`, in named steps. Which keys a backend reads and
/// requires is not decided here: each backend module of the runtime crate declares its own
/// rules, and the expansion asks them (see `expand_async::backend_rules`). What is checked
/// here holds for every source.
fn check_async_field(cx: &Ctxt, field: &Field<'_>) {
    let a = &field.attrs;
    if let (Some(_), Some(fetcher)) = (a.fetch_from.get(), a.fetcher.get()) {
        cx.error_spanned_by(
            fetcher,
            "`fetcher` and `fetch_from` cannot be used together: choose a named source or a fetcher expression",
        );
    }
    let dependent = source_keys(field);
    if !a.is_fetched() {
        check_keys_without_source(cx, field, &dependent);
    } else if a.precedence_read {
        check_precedence_read_keys(cx, field, &dependent);
    }
    check_values(cx, field);
    if !a.fetch_from.is_some() && a.fetcher.is_some() {
        check_fetcher_keys(cx, &dependent);
        for (name, tokens) in layer_keys(field) {
            cx.error_spanned_by(
                tokens,
                format!("`{name}` wraps a named source (`fetch_from`); a `fetcher` expression gets only `timeout` and `retry_attempts`"),
            );
        }
    }
    if let Some(from) = a.fetch_from.get()
        && check_source_name(cx, from)
    {
        check_sql_keys(cx, field, from);
    }
}

/// Keys that only make sense with a source, with their tokens, those present: what the
/// field says to its source (`key`, `source`, every parameter) and `field`, `pointer`,
/// `fallback_to`.
fn source_keys(field: &Field<'_>) -> Vec<(String, proc_macro2::TokenStream)> {
    let a = &field.attrs;
    let mut keys: Vec<_> = a
        .backend_params()
        .into_iter()
        .filter(|(name, _)| name != "secret")
        .collect();
    for (name, tokens) in [
        ("field", a.field.get().map(|s| s.to_token_stream())),
        ("pointer", a.pointer.get().map(|s| s.to_token_stream())),
        (
            "fallback_to",
            a.fallback_to.get().map(|s| s.to_token_stream()),
        ),
    ] {
        if let Some(tokens) = tokens {
            keys.push((name.to_owned(), tokens));
        }
    }
    keys
}

fn check_keys_without_source(
    cx: &Ctxt,
    field: &Field<'_>,
    dependent: &[(String, proc_macro2::TokenStream)],
) {
    let a = &field.attrs;
    for (name, tokens) in dependent {
        // A misspelt key of the derive reads better as one than as a source's key.
        let is_param = a.param(name).is_some();
        match crate::symbol::suggest_close(name, crate::symbol::FIELD_KEYS) {
            Some(_) if is_param => cx.error_spanned_by(tokens, unknown_field_key(name)),
            _ => cx.error_spanned_by(
                tokens,
                format!("`{name}` needs `fetch_from = \"...\"` on the same field to say which source it belongs to"),
            ),
        }
    }
    for (name, present) in [
        ("fallback", a.fallback.get().map(|s| s.to_token_stream())),
        ("timeout", a.timeout.get().map(|s| s.to_token_stream())),
        ("max_size", a.max_size.get().map(|s| s.to_token_stream())),
        (
            "retry_attempts",
            a.retry_attempts.get().map(|s| s.to_token_stream()),
        ),
        (
            "retry_backoff",
            a.retry_backoff.get().map(|s| s.to_token_stream()),
        ),
        ("watch", a.watch.get().map(|s| s.to_token_stream())),
        (
            "watch_interval",
            a.watch_interval.get().map(|s| s.to_token_stream()),
        ),
    ] {
        if let Some(tokens) = present {
            cx.error_spanned_by(
                tokens,
                format!("`{name}` needs `fetch_from` or `fetcher` on the same field"),
            );
        }
    }
    for (name, tokens) in layer_keys(field) {
        cx.error_spanned_by(
            tokens,
            format!(
                "`{name}` needs `fetch_from = \"...\"` on the same field: it wraps a named source"
            ),
        );
    }
}

/// A field without `fetch_from` read from its struct's precedence sources: it reads each
/// by its convention key, so keys for a source of its own (and the layers that would wrap
/// one) have nothing to apply to.
fn check_precedence_read_keys(
    cx: &Ctxt,
    field: &Field<'_>,
    dependent: &[(String, proc_macro2::TokenStream)],
) {
    let a = &field.attrs;
    let mut keys: Vec<(String, proc_macro2::TokenStream)> = dependent.to_vec();
    for (name, tokens) in [
        ("timeout", a.timeout.get().map(|s| s.to_token_stream())),
        (
            "retry_attempts",
            a.retry_attempts.get().map(|s| s.to_token_stream()),
        ),
        (
            "retry_backoff",
            a.retry_backoff.get().map(|s| s.to_token_stream()),
        ),
    ] {
        if let Some(tokens) = tokens {
            keys.push((name.to_owned(), tokens));
        }
    }
    keys.extend(
        layer_keys(field)
            .into_iter()
            .map(|(n, t)| (n.to_owned(), t)),
    );
    for (name, tokens) in keys {
        cx.error_spanned_by(
            tokens,
            format!("`{name}` needs `fetch_from = \"...\"` on the same field: without one, the field is read from its struct's precedence sources, each by its convention key"),
        );
    }
}

/// Values that are wrong whatever the source: a zero timeout, a pointer without `/`, a
/// fallback that cannot be the field's type.
fn check_values(cx: &Ctxt, field: &Field<'_>) {
    let a = &field.attrs;
    for d in [&a.ttl, &a.cache_for].into_iter().filter_map(|d| d.get()) {
        if d.value.is_zero() {
            cx.error_spanned_by(
                d,
                "a cache duration must be greater than zero (leave the key out not to cache)",
            );
        }
    }
    if let (Some(_), Some(c)) = (a.ttl.get(), a.cache_for.get()) {
        cx.error_spanned_by(
            c,
            "`ttl` and `cache_for` are the same setting: write one of them",
        );
    }
    if let Some(s) = a.stale_for.get()
        && !a.ttl.is_some()
        && !a.cache_for.is_some()
    {
        cx.error_spanned_by(s, "`stale_for` needs `cache_for` (or `ttl`) on the same field: only a cached value can be served stale");
    }
    if let Some(n) = a.max_concurrency.get()
        && n.value == 0
    {
        cx.error_spanned_by(n, "`max_concurrency` must be at least 1");
    }
    if let Some(b) = a.retry_backoff.get()
        && a.retry_attempts.get().is_none_or(|n| n.value == 0)
    {
        cx.error_spanned_by(
            b,
            "`retry_backoff` needs `retry_attempts` (at least 1) on the same field",
        );
    }
    if let Some(t) = a.timeout.get()
        && t.value.is_zero()
    {
        cx.error_spanned_by(t, "`timeout` must be greater than zero");
    }
    if let Some(t) = a.watch_interval.get()
        && t.value.is_zero()
    {
        cx.error_spanned_by(t, "`watch_interval` must be greater than zero");
    }
    if let Some(p) = a.pointer.get()
        && !p.value.is_empty()
        && !p.value.starts_with('/')
    {
        cx.error_spanned_by(
                p,
                format!("`pointer` is a JSON pointer and must start with `/`, e.g. \"/settings/port\"; found {:?}", p.value),
            );
    }
    if let Some(fb) = a.fallback.get() {
        check_fallback_literal(cx, field, fb);
    }
}

/// The keys that wrap a named source in layers (cache, circuit breaker, concurrency
/// limit), with their tokens when present.
fn layer_keys(field: &Field<'_>) -> Vec<(&'static str, proc_macro2::TokenStream)> {
    let a = &field.attrs;
    [
        ("ttl", a.ttl.get().map(|s| s.to_token_stream())),
        ("cache_for", a.cache_for.get().map(|s| s.to_token_stream())),
        ("stale_for", a.stale_for.get().map(|s| s.to_token_stream())),
        (
            "circuit_breaker",
            a.circuit_breaker.get().map(|s| s.to_token_stream()),
        ),
        (
            "max_concurrency",
            a.max_concurrency.get().map(|s| s.to_token_stream()),
        ),
    ]
    .into_iter()
    .filter_map(|(name, t)| t.map(|t| (name, t)))
    .collect()
}

/// A `fetcher` expression gets no source keys.
fn check_fetcher_keys(cx: &Ctxt, dependent: &[(String, proc_macro2::TokenStream)]) {
    for (name, tokens) in dependent {
        if name == "fallback_to" {
            continue;
        }
        cx.error_spanned_by(
            tokens,
            format!("`{name}` is read by named sources; a `fetcher` expression gets no `{name}`"),
        );
    }
}

/// `fetch_from` is a plain name (`consul`, `database:analytics`, `my-api.v2`).
fn check_source_name(cx: &Ctxt, from: &crate::attr::Str) -> bool {
    let name = from.value.trim();
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if !ok {
        cx.error_spanned_by(
            from,
            format!("`fetch_from` expects a source name such as \"env\", \"consul\", \"database:analytics\" or a registered name; found {:?}", from.value),
        );
    }
    ok
}

/// What the parameters of the first backends mean wherever they appear (whichever source
/// reads them): `query` is SQL text (never expanded), `table` an identifier, `source` a
/// pool name (not also given after `:`), `kv_version` 1 or 2. A backend's other keys are
/// text the backend reads at run time.
fn check_sql_keys(cx: &Ctxt, field: &Field<'_>, from: &crate::attr::Str) {
    let a = &field.attrs;
    if let Some(q) = a.param("query")
        && q.value.contains("${")
    {
        cx.error_spanned_by(
            &q.tokens,
            "`${...}` is never expanded inside SQL text; pass the value with `key = \"${VAR}\"` and bind it as `$1`/`?`",
        );
    }
    if let (Some(s), true) = (a.source.get(), from.value.contains(':')) {
        cx.error_spanned_by(
            s,
            "the pool is named twice: use either `fetch_from = \"database:name\"` or `source = \"name\"`",
        );
    }
    if let Some(t) = a.param("table")
        && !is_sql_identifier(&t.value)
    {
        cx.error_spanned_by(
            &t.tokens,
            format!(
                "`table` must be a plain SQL identifier (letters, digits, `_`, `.`), found {:?}",
                t.value
            ),
        );
    }
    if let Some(v) = a.param("kv_version")
        && !matches!(v.value.trim(), "1" | "2")
    {
        cx.error_spanned_by(
            &v.lit,
            "`kv_version` is the Vault KV secrets engine version: 1 or 2 (leave it out to detect it from the mount)",
        );
    }
}

/// For the primitive types whose parsing is known at compile time, checks the fallback.
fn check_fallback_literal(cx: &Ctxt, field: &Field<'_>, fb: &crate::attr::Str) {
    let ty = field.type_string();
    let v = fb.value.trim();
    let ok = match ty.as_str() {
        "u8" => v.parse::<u8>().is_ok(),
        "u16" => v.parse::<u16>().is_ok(),
        "u32" => v.parse::<u32>().is_ok(),
        "u64" => v.parse::<u64>().is_ok(),
        "u128" => v.parse::<u128>().is_ok(),
        "usize" => v.parse::<usize>().is_ok(),
        "i8" => v.parse::<i8>().is_ok(),
        "i16" => v.parse::<i16>().is_ok(),
        "i32" => v.parse::<i32>().is_ok(),
        "i64" => v.parse::<i64>().is_ok(),
        "i128" => v.parse::<i128>().is_ok(),
        "isize" => v.parse::<isize>().is_ok(),
        "f32" | "f64" => v.parse::<f64>().is_ok(),
        "bool" => matches!(v, "true" | "false"),
        "char" => fb.value.chars().count() == 1,
        _ => true,
    };
    if !ok {
        cx.error_spanned_by(
            fb,
            format!(
                "`fallback = {:?}` cannot be parsed as `{ty}`, the type of field `{}`",
                fb.value,
                field.plain_name()
            ),
        );
    }
}
