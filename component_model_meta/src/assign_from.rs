//! `AssignFrom<F>`: the seed's assignment by handing over a fetcher (issue 31, item 9).
//! `expand_async::expand` calls [`expand`]; its output goes into the generated
//! `const _: () = { use <runtime> as __cm_rt; ... };` block.
//!
//! For every field with `fetch_from = "<name>"` (not `skip`), one impl
//! `FieldFrom<source_tag!("<base name>"), FieldType, Pick<k>, Chosen>`, `k` numbering the
//! base names in order of first use (the tag named once per name, by a type alias). The runtime implements `AssignFrom<F>` once over it.
//! No two impls can overlap (the derive never causes E0119):
//! - fields of one base name and one type (as written) share one impl, guarded: generic
//!   over `__CmG` instead of `Chosen`, it needs `__CmG` to implement a trait declared here whose `on_unimplemented` message names the
//!   fields and their `fetch_<field>` methods. The runtime asks for `__CmG = Chosen`, which
//!   implements none, so only a call that would have to choose fails, with that message; the
//!   struct itself compiles (two `String` fields from `env` are common);
//! - types of one base name that could be equal after substituting generic parameters (or
//!   one type written two ways, `String` and `std::string::String`) get no impl: an
//!   `assign_from` of them is "no field", never a conflict;
//! - different base names differ in `Pick<k>`, even when they name one backend
//!   (`database` and `postgres`), so two such fields of one type leave the call ambiguous
//!   (type annotations needed) instead of conflicting.
//!
//! The derive knows no backend by name: `source_tag!` (runtime crate) maps names to tags.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::{Field, Input, Style};
use crate::shape;
use crate::valid::split_source;

/// The field's index in the struct (its `__CM_SPEC_<i>`) and the field.
type Indexed<'a> = (usize, &'a Field<'a>);

/// The `FieldFrom` impls of a struct, and the guard traits of fields that share a source
/// and a type.
pub fn expand(input: &Input<'_>, cm: &TokenStream) -> TokenStream {
    if input.style != Style::Named {
        return TokenStream::new();
    }
    // Fields by base source name, names in order of first use.
    let mut groups: Vec<(String, Vec<Indexed<'_>>)> = Vec::new();
    for (i, f) in input.fields.iter().enumerate() {
        if f.attrs.skip.is_some() || f.attrs.sources_conflict() || f.attrs.is_nested() {
            continue;
        }
        let Some(from) = f.attrs.fetch_from.get() else {
            continue;
        };
        let base = split_source(from.value.trim()).base.to_owned();
        match groups.iter_mut().find(|(b, _)| *b == base) {
            Some((_, fields)) => fields.push((i, f)),
            None => groups.push((base, vec![(i, f)])),
        }
    }
    let mut out = TokenStream::new();
    for (k, (base, fields)) in groups.iter().enumerate() {
        // One cluster per type as written.
        let mut clusters: Vec<(String, Vec<Indexed<'_>>)> = Vec::new();
        for &(i, f) in fields {
            let ty = f.type_string();
            match clusters.iter_mut().find(|(t, _)| *t == ty) {
                Some((_, c)) => c.push((i, f)),
                None => clusters.push((ty, vec![(i, f)])),
            }
        }
        let reps: Vec<&syn::Type> = clusters.iter().map(|(_, c)| c[0].1.ty).collect();
        let overlapping = shape::ambiguous(&reps, input.generics);
        // The source's tag, named once per source name (one macro call, not one per field).
        let tag = format_ident!("__CmFromTag_{}", k);
        out.extend(quote! {
            #[allow(non_camel_case_types)]
            type #tag = #cm::source_tag!(#base);
        });
        for (c, ((_, cluster), overlaps)) in clusters.iter().zip(overlapping).enumerate() {
            if overlaps {
                continue;
            }
            out.extend(field_from(input, cm, (base, &tag), k, c, cluster));
        }
    }
    out
}

/// The impl for the fields of one base name `base` (number `k`, tag alias `tag`) and one
/// type: plain for one field, guarded for several.
fn field_from(
    input: &Input<'_>,
    cm: &TokenStream,
    (base, tag): (&str, &syn::Ident),
    k: usize,
    c: usize,
    cluster: &[Indexed<'_>],
) -> TokenStream {
    let name = input.ident;
    // The field the impl sets (the second of several: where the ambiguity starts).
    let &(i, f) = cluster.get(1).unwrap_or(&cluster[0]);
    let ty = f.ty;
    let span = f
        .original
        .ident
        .as_ref()
        .map_or_else(|| f.original.span(), |id| id.span());
    let spec = format_ident!("__CM_SPEC_{}", i);
    let member = f.member.to_token_stream();
    let params = shape::type_params(input.generics);
    // A standard type is never a `SecretValue` (and `not_secret` checked it is the
    // standard one for the field's plan already): no probe to resolve.
    let secret = if shape::is_plain_std(ty, &params) {
        quote!(false)
    } else {
        quote_spanned! {ty.span()=> (&#cm::probe::SecretProbe::<#ty>::new()).probe_secret() }
    };
    let (_, ty_generics, _) = input.generics.split_for_impl();
    let mut g = input.generics.clone();
    // One field: the impl for `Chosen` alone (not generic over it). Several: generic over
    // `__CmG`, which must implement the guard trait, which nothing implements.
    let (guard, chosen) = if cluster.len() > 1 {
        let t = format_ident!("__CmAssignFromChoice_{}_{}", k, c, span = span);
        g.params.push(syn::parse_quote!(__CmG));
        g.make_where_clause()
            .predicates
            .push(syn::parse_quote_spanned!(span=> __CmG: #t));
        (guard_trait(input, &t, base, cluster, span), quote!(__CmG))
    } else {
        (TokenStream::new(), quote!(#cm::Chosen))
    };
    let (ig, _, wc) = g.split_for_impl();
    let k = proc_macro2::Literal::usize_unsuffixed(k);
    quote! {
        #guard
        #[automatically_derived]
        impl #ig #cm::FieldFrom<#tag, #ty, #cm::Pick<#k>, #chosen> for #name #ty_generics #wc {
            #[inline]
            fn field(&mut self) -> (&'static #cm::FieldSpec, bool, &mut #ty) {
                (&#spec, #secret, &mut self.#member)
            }
        }
    }
}

/// The trait nothing implements that guards the impl of several fields of one source and
/// type: its message is the error of an `assign_from` that would have to choose.
fn guard_trait(
    input: &Input<'_>,
    t: &syn::Ident,
    base: &str,
    cluster: &[Indexed<'_>],
    span: Span,
) -> TokenStream {
    let owner = input.ident.to_string();
    let ty = escape(&cluster[0].1.type_string());
    let base = escape(base);
    let names: Vec<String> = cluster.iter().map(|(_, f)| f.plain_name()).collect();
    let listed = list(&names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>());
    let message = format!(
        "`assign_from` cannot choose between the `{ty}` fields {listed} of `{owner}`: a fetcher of `{base}` fetching `{ty}` fits each"
    );
    let label = format!("this fetcher serves `{base}` and fetches `{ty}`: it fits {listed}");
    let second = &names[1];
    let note = if input.attrs.is_nested_only() {
        format!(
            "fetch with the fetcher and set the field by name: `config.{second} = fetcher.fetch_component().await?`"
        )
    } else {
        let methods: Vec<String> = names.iter().map(|n| format!("`fetch_{n}()`")).collect();
        format!(
            "fetch them by name with {} (each reads its own key), or fetch with the fetcher and set the field by name: `config.{second} = fetcher.fetch_component().await?`",
            methods.join(" / ")
        )
    };
    quote_spanned! {span=>
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
        pub trait #t {}
    }
}

/// `a`, `a and b`, `a, b and c`.
fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Braces are placeholders in `on_unimplemented` text.
fn escape(s: &str) -> String {
    s.replace('{', "{{").replace('}', "}}")
}
