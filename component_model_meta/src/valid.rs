//! Checks on parsed input, so the expanders may assume valid attributes. Every problem is
//! recorded in the `Ctxt`; nothing stops at the first one.

use quote::ToTokens;

use crate::ast::{Field, Input, Style};
use crate::attr::SecretAttr;
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
    }
}

fn check_skip(cx: &Ctxt, field: &Field<'_>) {
    if let Some(skip) = field.attrs.skip.get()
        && field.attrs.is_fetched()
    {
        cx.error_spanned_by(
                skip,
                "`skip` cannot be combined with `fetch_from` or `fetcher`: a skipped field is never fetched",
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
    if let Some(p) = input.attrs.env_prefix.get()
        && !p
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
    for field in &input.fields {
        check_skip(cx, field);
        check_async_field(cx, field);
    }
}

fn check_async_field(cx: &Ctxt, field: &Field<'_>) {
    let a = &field.attrs;
    if let (Some(_), Some(fetcher)) = (a.fetch_from.get(), a.fetcher.get()) {
        cx.error_spanned_by(
            fetcher,
            "`fetcher` and `fetch_from` cannot be used together: choose a named source or a fetcher expression",
        );
    }

    // Keys that only make sense with a source.
    let dependent: [(&str, Option<proc_macro2::TokenStream>); 13] = [
        ("key", a.key.get().map(|s| s.to_token_stream())),
        ("query", a.query.get().map(|s| s.to_token_stream())),
        ("field", a.field.get().map(|s| s.to_token_stream())),
        ("url", a.url.get().map(|s| s.to_token_stream())),
        ("path", a.path.get().map(|s| s.to_token_stream())),
        ("pointer", a.pointer.get().map(|s| s.to_token_stream())),
        ("mount", a.mount.get().map(|s| s.to_token_stream())),
        (
            "kv_version",
            a.kv_version.get().map(|s| s.to_token_stream()),
        ),
        ("dc", a.dc.get().map(|s| s.to_token_stream())),
        ("table", a.table.get().map(|s| s.to_token_stream())),
        ("source", a.source.get().map(|s| s.to_token_stream())),
        (
            "fallback_to",
            a.fallback_to.get().map(|s| s.to_token_stream()),
        ),
        ("topic", a.topic.get().map(|s| s.to_token_stream())),
    ];
    if !a.is_fetched() {
        for (name, tokens) in dependent.iter() {
            if *name == "topic" && a.stream_from.is_some() {
                continue;
            }
            if let Some(tokens) = tokens {
                cx.error_spanned_by(
                    tokens,
                    format!("`{name}` needs `fetch_from = \"...\"` on the same field to say which source it belongs to"),
                );
            }
        }
        for (name, present) in [
            ("fallback", a.fallback.get().map(|s| s.to_token_stream())),
            ("timeout", a.timeout.get().map(|s| s.to_token_stream())),
            (
                "retry_attempts",
                a.retry_attempts.get().map(|s| s.to_token_stream()),
            ),
        ] {
            if let Some(tokens) = present {
                cx.error_spanned_by(
                    tokens,
                    format!("`{name}` needs `fetch_from` or `fetcher` on the same field"),
                );
            }
        }
    }
    if let Some(s) = a.stream_from.get() {
        cx.error_spanned_by(
            s,
            "`stream_from` (live updates) is not available in this version of component_model; fetch the value with `fetch_from` and re-fetch to refresh",
        );
    }
    for (name, tokens) in [
        ("ttl", a.ttl.get().map(|s| s.to_token_stream())),
        ("cache_for", a.cache_for.get().map(|s| s.to_token_stream())),
        (
            "circuit_breaker",
            a.circuit_breaker.get().map(|s| s.to_token_stream()),
        ),
    ] {
        if let Some(tokens) = tokens {
            cx.error_spanned_by(
                tokens,
                format!("`{name}` is not available in this version of component_model (caching and circuit breaking are planned); `timeout`, `retry_attempts`, `fallback` and `fallback_to` are"),
            );
        }
    }
    if let Some(t) = a.timeout.get()
        && t.value.is_zero()
    {
        cx.error_spanned_by(t, "`timeout` must be greater than zero");
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

    let Some(from) = a.fetch_from.get() else {
        if let Some(fetcher) = a.fetcher.get() {
            for (name, tokens) in dependent.iter().take(11) {
                if let Some(tokens) = tokens {
                    cx.error_spanned_by(
                        tokens,
                        format!("`{name}` is read by named sources; a `fetcher` expression gets no `{name}`"),
                    );
                }
            }
            let _ = fetcher;
        }
        return;
    };
    let name = from.value.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    {
        cx.error_spanned_by(
            from,
            format!("`fetch_from` expects a source name such as \"env\", \"consul\", \"database:analytics\" or a registered name; found {:?}", from.value),
        );
        return;
    }
    let src = split_source(name);
    let secret_path = match a.secret.get().map(|s| &s.value) {
        Some(SecretAttr::Path(p)) => Some(p.as_str()),
        _ => None,
    };
    let not_for = |key: &str, tokens: &Option<proc_macro2::TokenStream>| {
        if let Some(tokens) = tokens {
            cx.error_spanned_by(
                tokens,
                format!("`{key}` is not used by the `{}` source", src.base),
            );
        }
    };
    let tok = |name: &str| -> Option<proc_macro2::TokenStream> {
        dependent
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, t)| t.clone())
    };
    if src.base != "vault" {
        not_for("kv_version", &tok("kv_version"));
    }
    if src.base != "consul" {
        not_for("dc", &tok("dc"));
    }
    match src.base {
        "env" => {
            for k in ["query", "url", "path", "mount", "table", "source"] {
                not_for(k, &tok(k));
            }
            if secret_path.is_some() {
                cx.error_spanned_by(
                    a.secret.get().map(|s| s.to_token_stream()).unwrap_or_default(),
                    "`secret = \"...\"` names a Vault path; to mark an env value as secret write a bare `secret`",
                );
            }
        }
        _ if !matches!(src.base, "database" | "postgres" | "mysql" | "sqlite")
            && a.source.is_some() =>
        {
            cx.error_spanned_by(
                tok("source").unwrap_or_default(),
                format!("`source` names a database pool; the `{}` source has none (register another source name instead)", src.base),
            );
        }
        "consul" => {
            if a.key.get().is_none() {
                cx.error_spanned_by(from, "the `consul` source needs `key = \"...\"`, the Consul KV key to read (e.g. `key = \"app/port\"`)");
            }
            for k in ["query", "url", "mount", "table"] {
                not_for(k, &tok(k));
            }
        }
        "vault" => {
            if secret_path.is_none() {
                cx.error_spanned_by(from, "the `vault` source needs `secret = \"...\"`, the secret's path (e.g. `secret = \"app/api-key\"`)");
            }
            for k in ["key", "query", "url", "table"] {
                not_for(k, &tok(k));
            }
        }
        "database" | "postgres" | "mysql" | "sqlite" => {
            match (a.query.get(), a.table.get(), a.key.get()) {
                (None, None, _) => cx.error_spanned_by(
                    from,
                    format!("the `{}` source needs `query = \"SELECT ...\"`, or `table = \"...\"` with `key = \"...\"`", src.base),
                ),
                (Some(q), Some(t), _) => {
                    let _ = q;
                    cx.error_spanned_by(t, "use either `query` or `table`, not both");
                }
                (None, Some(t), None) => cx.error_spanned_by(
                    t,
                    "`table` needs `key = \"...\"`: the row to read is chosen by a bound key parameter",
                ),
                _ => {}
            }
            if let Some(q) = a.query.get()
                && q.value.contains("${")
            {
                cx.error_spanned_by(
                        q,
                        "`${...}` is never expanded inside SQL text; pass the value with `key = \"${VAR}\"` and bind it as `$1`/`?`",
                    );
            }
            if let (Some(s), true) = (a.source.get(), name.contains(':')) {
                cx.error_spanned_by(s, "the pool is named twice: use either `fetch_from = \"database:name\"` or `source = \"name\"`");
            }
            if let Some(t) = a.table.get() {
                let ok = !t.value.is_empty()
                    && t.value
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && t.value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
                if !ok {
                    cx.error_spanned_by(
                        t,
                        format!("`table` must be a plain SQL identifier (letters, digits, `_`, `.`), found {:?}", t.value),
                    );
                }
            }
            for k in ["url", "mount", "pointer"] {
                not_for(k, &tok(k));
            }
        }
        "api" | "http" => {
            if a.url.get().is_none() {
                cx.error_spanned_by(
                    from,
                    format!("the `{}` source needs `url = \"https://...\"`; to use a registered base URL, register an HttpSource by name and use `path`", src.base),
                );
            }
            for k in ["query", "mount", "table", "key"] {
                not_for(k, &tok(k));
            }
        }
        "redis" => {
            if a.key.get().is_none() {
                cx.error_spanned_by(from, "the `redis` source needs `key = \"...\"`");
            }
            for k in ["query", "url", "mount", "table", "pointer"] {
                not_for(k, &tok(k));
            }
        }
        _ => {}
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
