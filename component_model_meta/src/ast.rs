//! The derive input reduced to what the expanders need: struct name, generics, fields and
//! their parsed `#[component]` attributes.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident};
use syn::{DeriveInput, Generics, Ident, Member, Type, Visibility};

use crate::attr::{ContainerAttrs, FieldAttrs};
use crate::ctxt::Ctxt;

pub struct Input<'a> {
    pub original: &'a DeriveInput,
    pub ident: &'a Ident,
    pub generics: &'a Generics,
    pub attrs: ContainerAttrs,
    pub style: Style,
    pub fields: Vec<Field<'a>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Named,
    Tuple,
    Unit,
}

pub struct Field<'a> {
    pub original: &'a syn::Field,
    pub member: Member,
    pub ty: &'a Type,
    pub vis: &'a Visibility,
    pub attrs: FieldAttrs,
}

impl<'a> Input<'a> {
    /// Reads the input; `None` (with an error recorded) when it is not a struct.
    pub fn from_syn(cx: &Ctxt, input: &'a DeriveInput, derive: &str) -> Option<Self> {
        let attrs = ContainerAttrs::from_attrs(cx, &input.attrs);
        let data = match &input.data {
            syn::Data::Struct(data) => data,
            syn::Data::Enum(e) => {
                cx.error_spanned_by(
                    e.enum_token,
                    format!(
                        "`#[derive({derive})]` works on structs with named fields, not on enums"
                    ),
                );
                return None;
            }
            syn::Data::Union(u) => {
                cx.error_spanned_by(
                    u.union_token,
                    format!(
                        "`#[derive({derive})]` works on structs with named fields, not on unions"
                    ),
                );
                return None;
            }
        };
        let style = match &data.fields {
            syn::Fields::Named(_) => Style::Named,
            syn::Fields::Unnamed(_) => Style::Tuple,
            syn::Fields::Unit => Style::Unit,
        };
        let fields = data
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| Field {
                original: f,
                member: match &f.ident {
                    Some(id) => Member::Named(id.clone()),
                    None => Member::Unnamed(syn::Index::from(i)),
                },
                ty: &f.ty,
                vis: &f.vis,
                attrs: FieldAttrs::from_attrs(cx, &f.attrs),
            })
            .collect();
        let mut input = Input {
            original: input,
            ident: &input.ident,
            generics: &input.generics,
            attrs,
            style,
            fields,
        };
        // A field that names no source is read from the precedence sources, when it has
        // any (its own lists, else the struct's).
        for i in 0..input.fields.len() {
            let f = &input.fields[i];
            let a = &f.attrs;
            let unsourced = !a.is_fetched()
                && !a.is_nested()
                && !a.skip.is_some()
                && !a.stream_from.is_some()
                && !a.secret_file.is_some();
            if unsourced && input.has_precedence(f) {
                input.fields[i].attrs.precedence_read = true;
            }
        }
        Some(input)
    }

    /// The field's precedence sources above its own: its `overrides`, else the struct's
    /// (not for a `fetcher` field, whose type need not deserialize, nor a `stream_from`
    /// field, whose value is the stream's: those take only their own lists).
    pub fn overrides<'s>(&'s self, f: &'s Field<'_>) -> &'s [crate::attr::Str] {
        let inherited = self.attrs.overrides.get().filter(|_| Self::inherits(f));
        f.attrs
            .overrides
            .get()
            .or(inherited)
            .map_or(&[], |l| l.value.as_slice())
    }

    /// The field's precedence sources below its own: its `defaults`, else the struct's
    /// (see [`Input::overrides`]).
    pub fn defaults<'s>(&'s self, f: &'s Field<'_>) -> &'s [crate::attr::Str] {
        let inherited = self.attrs.defaults.get().filter(|_| Self::inherits(f));
        f.attrs
            .defaults
            .get()
            .or(inherited)
            .map_or(&[], |l| l.value.as_slice())
    }

    /// Whether the field takes the struct's precedence lists.
    fn inherits(f: &Field<'_>) -> bool {
        !f.attrs.fetcher.is_some() && !f.attrs.is_streamed()
    }

    /// Whether the field has precedence sources.
    pub fn has_precedence(&self, f: &Field<'_>) -> bool {
        !self.overrides(f).is_empty() || !self.defaults(f).is_empty()
    }

    /// The path generated code uses to reach the runtime: `#[component(crate = ...)]` or `default`.
    pub fn krate(&self, default: TokenStream) -> TokenStream {
        match self.attrs.krate.get() {
            Some(p) => p.value.to_token_stream(),
            None => default,
        }
    }

    /// The tokens to point at when the whole struct is wrong (its name).
    pub fn name_tokens(&self) -> TokenStream {
        self.ident.to_token_stream()
    }
}

impl Field<'_> {
    /// The field's name without a raw-identifier prefix (`r#type` gives `type`).
    pub fn plain_name(&self) -> String {
        match &self.member {
            Member::Named(id) => {
                let s = id.to_string();
                s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
            }
            Member::Unnamed(i) => i.index.to_string(),
        }
    }

    /// `<field>_<suffix>` as an identifier (`r#type` + `set` gives `type_set`).
    pub fn method(&self, prefix: &str, suffix: &str) -> Ident {
        let name = self.plain_name();
        let span = self
            .original
            .ident
            .as_ref()
            .map(|i| i.span())
            .unwrap_or_else(proc_macro2::Span::call_site);
        match (prefix.is_empty(), suffix.is_empty()) {
            (true, false) => format_ident!("{}_{}", name, suffix, span = span),
            (false, true) => format_ident!("{}_{}", prefix, name, span = span),
            _ => format_ident!("{}_{}_{}", prefix, name, suffix, span = span),
        }
    }

    /// The type as a short human-readable string (`Vec<String>`), for messages.
    pub fn type_string(&self) -> String {
        type_string(self.ty)
    }

    /// The field's `///` doc comment: its lines, one leading space each taken off, joined
    /// with `\n` and trimmed; `None` without one.
    pub fn doc(&self) -> Option<String> {
        let mut lines = Vec::new();
        for attr in &self.original.attrs {
            if !attr.path().is_ident("doc") {
                continue;
            }
            if let syn::Meta::NameValue(nv) = &attr.meta
                && let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) = &nv.value
            {
                let line = s.value();
                lines.push(
                    line.strip_prefix(' ')
                        .unwrap_or(&line)
                        .trim_end()
                        .to_owned(),
                );
            }
        }
        let text = lines.join("\n");
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    }
}

pub fn type_string(ty: &Type) -> String {
    let raw = ty.to_token_stream().to_string();
    raw.replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" <", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace("& ", "&")
        .replace("' ", "'")
}

/// Gives every token of `tokens` the span `span`, so an error raised by what they expand to
/// points at the user's attribute rather than at the derive.
pub fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = proc_macro2::TokenTree::Group(group);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}
