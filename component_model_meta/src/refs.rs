//! References between fields: `key = "{region}/db/pool"` makes a field wait for `region`
//! and use its value. Found in the texts that name a place (`key`, `secret`, `field`,
//! `connect`, the source's parameters but SQL text, precedence arguments), checked here
//! (unknown names with a suggestion, cycles, types, secrets), expanded into the field's
//! `FieldSpec::refs` and, for a reference into a `nested` struct, a `const` assertion on
//! that struct's `Nested::FIELDS`.
//!
//! `${VAR}` and `{@profile}` are other placeholders; `{{` and `}}` are literal braces; a
//! lone `{` or `}` is an error.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::Type;

use crate::ast::{Field, Input};
use crate::ctxt::Ctxt;

/// One `{name}` in one text of a field.
pub struct Ref {
    /// As written: `region`, `database.host`.
    pub name: String,
    /// Whether it is in `connect` (where a secret may stand).
    pub in_connect: bool,
    pub tokens: TokenStream,
}

/// Backend parameters that are SQL text or identifiers: never scanned.
const SQL: &[&str] = &["query", "table", "dc"];

/// The texts of `field` that may hold references, with where they are and their tokens.
fn texts(field: &Field<'_>) -> Vec<(String, bool, TokenStream)> {
    let a = &field.attrs;
    let mut out = Vec::new();
    if let Some(k) = a.key.get() {
        out.push((k.value.clone(), false, k.tokens.clone()));
    }
    if let Some(s) = a.secret.get()
        && let crate::attr::SecretAttr::Path(p) = &s.value
    {
        out.push((p.clone(), false, s.tokens.clone()));
    }
    if let Some(f) = a.field.get() {
        out.push((f.value.clone(), false, f.tokens.clone()));
    }
    if let Some(c) = a.connect.get() {
        out.push((c.value.clone(), true, c.tokens.clone()));
    }
    for p in &a.params {
        if !SQL.contains(&p.name.as_str()) {
            out.push((p.value.clone(), false, p.tokens.clone()));
        }
    }
    for list in [&a.overrides, &a.defaults] {
        for entry in list.get().map(|l| l.value.as_slice()).unwrap_or_default() {
            if let Some((_, argument)) = entry.value.split_once('@') {
                out.push((argument.to_owned(), false, entry.tokens.clone()));
            }
        }
    }
    out
}

/// The references of `text`, or why its braces are wrong.
pub fn parse(text: &str) -> Result<Vec<String>, String> {
    let mut refs = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("${") || rest.starts_with("{@") {
            // Another placeholder, checked elsewhere: up to its `}`.
            match rest.find('}') {
                Some(end) => i += end + 1,
                None => i = b.len(),
            }
        } else if rest.starts_with("{{") || rest.starts_with("}}") {
            i += 2;
        } else if rest.starts_with('{') {
            let Some(end) = rest.find('}') else {
                return Err(format!(
                    "a `{{` without its closing `}}` in {text:?}: `{{name}}` references the field `name`; a literal brace is written `{{{{`"
                ));
            };
            let name = &rest[1..end];
            let valid = !name.is_empty()
                && name.split('.').all(|s| {
                    s.chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
            if !valid {
                return Err(format!(
                    "`{{{name}}}` in {text:?} is no reference: `{{name}}` references the field `name` (`{{database.host}}` a field of a `nested` struct); a literal brace is written `{{{{` or `}}}}`"
                ));
            }
            if !refs.iter().any(|r| r == name) {
                refs.push(name.to_owned());
            }
            i += end + 1;
        } else if rest.starts_with('}') {
            return Err(format!(
                "a lone `}}` in {text:?}: a literal brace is written `}}}}`"
            ));
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    Ok(refs)
}

/// `text` with `{{` and `}}` made single braces (a field without references: its texts
/// are final at compile time).
pub fn unescape(text: &str) -> String {
    text.replace("{{", "\u{0}")
        .replace("}}", "}")
        .replace('\u{0}', "{")
}

/// Every reference of `field`, parse errors recorded in `cx`.
pub fn of_field(cx: &Ctxt, field: &Field<'_>) -> Vec<Ref> {
    let mut out: Vec<Ref> = Vec::new();
    for (text, in_connect, tokens) in texts(field) {
        match parse(&text) {
            Ok(names) => {
                for name in names {
                    match out.iter_mut().find(|r| r.name == name) {
                        Some(r) => r.in_connect &= in_connect,
                        None => out.push(Ref {
                            name,
                            in_connect,
                            tokens: tokens.clone(),
                        }),
                    }
                }
            }
            Err(why) => cx.error_spanned_by(&tokens, why),
        }
    }
    out
}

/// Whether `ty` may stand in a key: text, an integer, `bool`, or an `Option` of one.
fn referable(ty: &Type) -> bool {
    let Type::Path(p) = ty else {
        return false;
    };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    let name = last.ident.to_string();
    if name == "Option"
        && let syn::PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(syn::GenericArgument::Type(inner)) = args.args.first()
    {
        return referable(inner);
    }
    matches!(
        name.as_str(),
        "String"
            | "SecretString"
            | "bool"
            | "u8"
            | "u16"
            | "u32"
            | "u64"
            | "u128"
            | "usize"
            | "i8"
            | "i16"
            | "i32"
            | "i64"
            | "i128"
            | "isize"
    )
}

/// Whether `ty` names a secret type (`SecretString`, `SecretBox<..>`, `Option` of one).
fn secret_type(ty: &Type) -> bool {
    let text = ty.to_token_stream().to_string();
    text.contains("Secret")
}

/// Whether `ty` is written `Option<..>`.
fn is_option(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Option"))
}

fn is_secret(field: &Field<'_>) -> bool {
    field.attrs.secret.is_some() || secret_type(field.ty)
}

/// Whether a reference can read `field` at all: it is fetched.
fn fetched(field: &Field<'_>) -> bool {
    field.attrs.is_fetched() || field.attrs.precedence_read
}

/// Checks every reference of the struct: names, types, secrets, cycles.
pub fn check(cx: &Ctxt, input: &Input<'_>) {
    let names: Vec<String> = input.fields.iter().map(|f| f.plain_name()).collect();
    let known: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut edges: Vec<Vec<(usize, TokenStream)>> = vec![Vec::new(); input.fields.len()];
    for (at, field) in input.fields.iter().enumerate() {
        let refs = of_field(cx, field);
        if let Some(c) = field.attrs.connect.get()
            && refs.iter().all(|r| !r.in_connect)
        {
            cx.error_spanned_by(c, "`connect` names the address of a client made of fetched values: write `connect = \"{dsn}\"` (a field holding the address), or register the source instead");
        }
        if refs.is_empty() || field.attrs.is_nested() || field.attrs.skip.is_some() {
            continue; // nothing to check, or texts that are errors of their own
        }
        for r in refs {
            let (head, rest) = match r.name.split_once('.') {
                Some((h, rest)) => (h, Some(rest)),
                None => (r.name.as_str(), None),
            };
            let Some(target) = input.fields.iter().position(|f| f.plain_name() == head) else {
                let mut msg = format!("`{{{}}}` references no field of `{}`", r.name, input.ident);
                match crate::symbol::suggest(head, &known) {
                    Some(s) => msg.push_str(&format!("; did you mean `{s}`?")),
                    None => msg.push_str(&format!(
                        " (a literal brace is written `{{{{`, as in a Redis Cluster hash tag: `{{{{{}}}}}`)",
                        r.name
                    )),
                }
                cx.error_spanned_by(&r.tokens, msg);
                continue;
            };
            let t = &input.fields[target];
            if target == at {
                cx.error_spanned_by(
                    &r.tokens,
                    format!(
                        "`{{{}}}`: the field `{head}` references itself (a cycle of references)",
                        r.name
                    ),
                );
                continue;
            }
            match rest {
                Some(_) if !t.attrs.is_nested() => cx.error_spanned_by(
                    &r.tokens,
                    format!("`{{{}}}`: `{head}` is not a `nested` struct, so it has no fields to reference", r.name),
                ),
                Some(_) if is_option(t.ty) => cx.error_spanned_by(
                    &r.tokens,
                    format!("`{{{}}}`: `{head}` is an `Option` of a struct, which may be absent as a whole; reference a field of a struct that is always there", r.name),
                ),
                Some(_) => {} // a `const` assertion on the struct's `Nested::FIELDS`
                None if t.attrs.is_nested() => cx.error_spanned_by(
                    &r.tokens,
                    format!("`{{{head}}}` is a `nested` struct: reference one of its fields, `{{{head}.<field>}}`"),
                ),
                None if t.attrs.skip.is_some() || !fetched(t) => cx.error_spanned_by(
                    &r.tokens,
                    format!("`{{{head}}}` references a field that is never fetched: give `{head}` a `fetch_from`"),
                ),
                None if !referable(t.ty) => cx.error_spanned_by(
                    &r.tokens,
                    format!(
                        "`{{{head}}}` references a `{}`: a reference stands for text, an integer or a `bool` (or an `Option` of one)",
                        t.type_string()
                    ),
                ),
                None if is_secret(t) && !r.in_connect => cx.error_spanned_by(
                    &r.tokens,
                    format!("`{{{head}}}` is secret: it may be referenced only in `connect` (keys are printed in errors and the report)"),
                ),
                None => edges[at].push((target, r.tokens.clone())),
            }
        }
    }
    // Cycles among the struct's own fields (a nested struct's fields reference only
    // their own struct and below, so no cycle passes through one).
    let mut state = vec![0u8; edges.len()]; // 0 new, 1 on the stack, 2 done
    let mut stack: Vec<usize> = Vec::new();
    fn visit(
        i: usize,
        edges: &[Vec<(usize, TokenStream)>],
        state: &mut [u8],
        stack: &mut Vec<usize>,
        names: &[String],
        cx: &Ctxt,
    ) {
        state[i] = 1;
        stack.push(i);
        for (next, tokens) in &edges[i] {
            match state[*next] {
                0 => visit(*next, edges, state, stack, names, cx),
                1 => {
                    let from = stack.iter().position(|s| s == next).unwrap_or(0);
                    let mut chain: Vec<String> = stack[from..]
                        .iter()
                        .map(|s| format!("`{}`", names[*s]))
                        .collect();
                    chain.push(format!("`{}`", names[*next]));
                    cx.error_spanned_by(
                        tokens,
                        format!(
                            "a cycle of references: {} (each waits for the next to be fetched)",
                            chain.join(" → ")
                        ),
                    );
                }
                _ => {}
            }
        }
        stack.pop();
        state[i] = 2;
    }
    for i in 0..edges.len() {
        if state[i] == 0 {
            visit(i, &edges, &mut state, &mut stack, &names, cx);
        }
    }
}

/// `.refs(&[...])` and `.connect(...)` of the field's spec.
pub fn spec_chain(field: &Field<'_>) -> TokenStream {
    let cx = Ctxt::new();
    let refs = of_field(&cx, field);
    let _ = cx.check();
    let mut out = TokenStream::new();
    if !refs.is_empty() {
        let names = refs.iter().map(|r| r.name.as_str());
        out.extend(quote!(.refs(&[ #( #names ),* ])));
    }
    if let Some(c) = field.attrs.connect.get() {
        let c = &c.value;
        out.extend(quote!(.connect(#c)));
    }
    out
}

/// Whether the field's texts are final at compile time (no reference: `{{` unescaped).
pub fn has_refs(field: &Field<'_>) -> bool {
    texts(field)
        .iter()
        .any(|(t, _, _)| parse(t).is_ok_and(|r| !r.is_empty()))
}

/// The `const` assertions of the references into `nested` structs.
pub fn assertions(cm: &TokenStream, input: &Input<'_>) -> TokenStream {
    let cx = Ctxt::new();
    let mut out = TokenStream::new();
    for field in &input.fields {
        for r in of_field(&cx, field) {
            let Some((head, rest)) = r.name.split_once('.') else {
                continue;
            };
            let Some(target) = input.fields.iter().find(|f| f.plain_name() == head) else {
                continue;
            };
            // A generic struct's nested type is checked when the fetch runs.
            if !target.attrs.is_nested()
                || is_option(target.ty)
                || !crate::shape::is_concrete(target.ty, input.generics)
            {
                continue;
            }
            let ty = target.ty;
            let connect = r.in_connect;
            let span = r
                .tokens
                .clone()
                .into_iter()
                .next()
                .map_or_else(proc_macro2::Span::call_site, |t| t.span());
            let unknown = format!(
                "`{{{}}}` references no field `{rest}` of the struct of `{head}`",
                r.name
            );
            let not = format!(
                "`{{{}}}` references a field that stands for no text, integer or `bool` (or is never fetched)",
                r.name
            );
            let secret = format!(
                "`{{{}}}` is secret: it may be referenced only in `connect` (keys are printed in errors and the report)",
                r.name
            );
            // Literal panic messages: their braces are not format arguments.
            let [unknown, not, secret] =
                [unknown, not, secret].map(|m| m.replace('{', "{{").replace('}', "}}"));
            out.extend(quote_spanned! {span=>
                const _: () = match #cm::FieldInfo::check(<#ty as #cm::Nested>::FIELDS, #rest, #connect) {
                    #cm::RefCheck::Ok => (),
                    #cm::RefCheck::Unknown => ::core::panic!(#unknown),
                    #cm::RefCheck::NotReferable => ::core::panic!(#not),
                    #cm::RefCheck::Secret => ::core::panic!(#secret),
                };
            });
        }
    }
    let _ = cx.check();
    out
}

/// `const FIELDS` of `impl Nested`: each field as a reference into the struct sees it.
pub fn fields_const(cm: &TokenStream, input: &Input<'_>) -> TokenStream {
    let entries = input
        .fields
        .iter()
        .filter(|f| !f.attrs.skip.is_some())
        .map(|f| {
            let name = f.plain_name();
            let secret = is_secret(f);
            if f.attrs.is_nested() && !is_option(f.ty) {
                // Its own fields are not listed: naming its type here would report a
                // type that is not `Nested` a second time. `{a.b.c}` is checked down to
                // `b` at compile time, below it when the fetch is planned.
                quote!(#cm::FieldInfo::nested_struct(#name))
            } else if f.attrs.is_nested() {
                // An `Option` of a struct: no reference reaches into it.
                quote!(#cm::FieldInfo::new(#name, false, #secret, &[]))
            } else {
                let ok = fetched(f) && referable(f.ty);
                quote!(#cm::FieldInfo::new(#name, #ok, #secret, &[]))
            }
        });
    quote!(const FIELDS: &'static [#cm::FieldInfo] = &[ #( #entries ),* ];)
}
