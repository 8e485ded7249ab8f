//! Code generation for validation rules: one hidden associated function per field with
//! rules, `__cm_rules_<i>(plan, handle)`, registering each rule with the plan (called from
//! `Nested::plan`), and `__cm_struct_rules`, adding the struct's rules and walking its
//! `nested` fields (called from `Nested::rules`). Both are also emitted when other
//! attributes are invalid, so a rule that does not apply to its field's type is reported
//! with the other errors. A struct without rules and without `nested` fields gets none of
//! this.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Type;

use crate::ast::{Field, Input};
use crate::rules::{Rule, RuleKind};

/// The function registering field `i`'s rules.
pub fn field_fn(i: usize) -> syn::Ident {
    format_ident!("__cm_rules_{}", i)
}

/// Whether field `f` has rules to register (a `nested` or skipped field's are refused).
pub fn has_field_rules(f: &Field<'_>) -> bool {
    !f.attrs.rules.is_empty() && !f.attrs.is_nested() && !f.attrs.skip.is_some()
}

/// Whether the struct's `Nested::rules` has anything to do: rules of its own, or
/// `nested` fields whose structs may have some.
pub fn walks(input: &Input<'_>) -> bool {
    input.attrs.has_rules()
        || input
            .fields
            .iter()
            .any(|f| f.attrs.is_nested() && !f.attrs.skip.is_some())
}

/// `T` of a field written `Option<T>`: rules apply to `Some` only, so a `with` function
/// takes `&T`.
fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first() {
        Some(syn::GenericArgument::Type(t)) if args.args.len() == 1 => Some(t),
        _ => None,
    }
}

fn some_or_none<T: quote::ToTokens>(v: Option<T>) -> TokenStream {
    match v {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

/// One rule's registration.
fn register(cm: &TokenStream, f: &Field<'_>, rule: &Rule) -> TokenStream {
    let span = rule.span;
    let name = &rule.name;
    let optional = option_inner(f.ty).is_some();
    // Spanned at the rule: a rule that does not apply to the field's type is reported at
    // the rule, where the value is handed to it.
    let v = quote_spanned!(span=> __cm_v);
    let h = quote_spanned!(span=> __cm_hidden);
    // The built-in rules are one generic method call each (no closure per field to
    // type-check); the method's bound says which types the rule applies to.
    let call = |method: &str, args: TokenStream| {
        let m = format_ident!("{}", method, span = span);
        quote_spanned!(span=> __cm_plan.#m(__cm_h, #name #args);)
    };
    let check = match &rule.kind {
        RuleKind::Range { min, max } => {
            let (min, max) = (some_or_none(min.as_ref()), some_or_none(max.as_ref()));
            return call("rule_range", quote!(, #min, #max));
        }
        RuleKind::Len { min, max } => {
            let lit = |n: &usize| Literal::usize_unsuffixed(*n);
            let (min, max) = (
                some_or_none(min.as_ref().map(lit)),
                some_or_none(max.as_ref().map(lit)),
            );
            return call("rule_len", quote!(, #min, #max));
        }
        RuleKind::Pattern(lit) => return call("rule_pattern", quote!(, #lit)),
        RuleKind::OneOfText(items) => {
            return call("rule_one_of_text", quote!(, &[ #( #items ),* ]));
        }
        // On an `Option<T>` the values are `T`s.
        RuleKind::OneOf(items) if optional => {
            return call("rule_one_of_some", quote!(, &[ #( #items ),* ]));
        }
        RuleKind::OneOf(items) => return call("rule_one_of", quote!(, &[ #( #items ),* ])),
        RuleKind::NonEmpty => return call("rule_non_empty", TokenStream::new()),
        RuleKind::Url => return call("rule_url", TokenStream::new()),
        RuleKind::Garde => quote_spanned!(span=> #cm::rules::garde(#v)),
        RuleKind::With(path) if optional => quote_spanned! {span=>
            match #v {
                ::core::option::Option::Some(__cm_v) => #cm::rules::with(#path(__cm_v), #h),
                ::core::option::Option::None => ::core::result::Result::Ok(()),
            }
        },
        RuleKind::With(path) => quote_spanned!(span=> #cm::rules::with(#path(#v), #h)),
        RuleKind::WithAsync(path) => {
            let timeout = some_or_none(rule.timeout.map(crate::expand_async::duration_tokens));
            let fut = if optional {
                quote_spanned! {span=> ::std::boxed::Box::pin(async move {
                    match #v {
                        ::core::option::Option::Some(__cm_v) => #cm::rules::with_async(#path(__cm_v), #h).await,
                        ::core::option::Option::None => ::core::result::Result::Ok(()),
                    }
                })}
            } else {
                quote_spanned!(span=> ::std::boxed::Box::pin(#cm::rules::with_async(#path(#v), #h)))
            };
            return quote! {
                __cm_plan.rule_async(__cm_h, #name, #timeout, |#v, #h| #fut);
            };
        }
    };
    quote! {
        __cm_plan.rule(__cm_h, #name, |#v, #h| { let _ = #h; #check });
    }
}

/// The registration of field `f`'s rules, as statements of `Nested::plan` with the
/// field's handle in `__cm_h`.
pub fn field_calls(cm: &TokenStream, f: &Field<'_>) -> TokenStream {
    f.attrs.rules.iter().map(|r| register(cm, f, r)).collect()
}

/// `fn __cm_rules_<i>` for each field with rules (only when other attributes are invalid), and `fn __cm_struct_rules` when the
/// struct walks (see [`walks`]); `full`: with the walk into `nested` fields (not when
/// other attributes are invalid: their errors would repeat).
pub fn functions(input: &Input<'_>, cm: &TokenStream, full: bool) -> TokenStream {
    let mut fns = TokenStream::new();
    // With valid attributes the field rules are registered inline in `Nested::plan`
    // ([`field_calls`]); only the type check is emitted here when others are invalid.
    for (i, f) in input.fields.iter().enumerate().filter(|_| !full) {
        if !has_field_rules(f) {
            continue;
        }
        let ident = field_fn(i);
        let ty = f.ty;
        let rules = f.attrs.rules.iter().map(|r| register(cm, f, r));
        fns.extend(quote! {
            #[doc(hidden)]
            #[inline]
            fn #ident(__cm_plan: &mut #cm::Plan<'_>, __cm_h: #cm::Handle<#ty>) {
                #( #rules )*
            }
        });
    }
    if walks(input) {
        let a = &input.attrs;
        let timeout = some_or_none(
            a.validate_timeout
                .get()
                .map(|t| crate::expand_async::duration_tokens(t.value)),
        );
        let mut body = TokenStream::new();
        if let Some(p) = a.validate_with.get() {
            let path = &p.value;
            let name = format!("validate_with {}", path_text(path));
            body.extend(quote_spanned! {p.tokens_span()=>
                __cm_r.check(#name, #cm::rules::struct_rule(#path(self, __cm_r.sources())));
            });
        }
        if let Some(p) = a.validate_with_async.get() {
            let path = &p.value;
            let name = format!("validate_with_async {}", path_text(path));
            body.extend(quote_spanned! {p.tokens_span()=>
                __cm_r.check_async(#name, #timeout, #cm::rules::struct_rule_async(#path(self, __cm_r.sources())));
            });
        }
        for rule in &a.rules {
            if let RuleKind::Garde = rule.kind {
                let span = rule.span;
                body.extend(quote_spanned! {span=>
                    __cm_r.check("garde", #cm::rules::garde(self));
                });
            }
        }
        if full {
            for (i, f) in input.fields.iter().enumerate() {
                // Through the field's `NestedOps` (a type that is not `Nested` is reported
                // there, once).
                let Some(ops) = crate::expand_async::nested_ops(f, i) else {
                    continue;
                };
                if f.attrs.skip.is_some() {
                    continue;
                }
                let member = &f.member;
                let field = f.plain_name();
                body.extend(quote! {
                    __cm_r.enter(#field);
                    (Self::#ops.rules)(&self.#member, __cm_r);
                    __cm_r.leave();
                });
            }
        }
        fns.extend(quote! {
            #[doc(hidden)]
            #[inline]
            fn __cm_struct_rules<'__cm_a>(&'__cm_a self, __cm_r: &mut #cm::StructRules<'__cm_a>) {
                #body
            }
        });
    }
    if fns.is_empty() {
        return fns;
    }
    let name = input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        #[allow(dead_code, non_snake_case, clippy::all)]
        impl #impl_generics #name #ty_generics #where_clause {
            #fns
        }
    }
}

fn path_text(p: &syn::Path) -> String {
    quote!(#p).to_string().replace(' ', "")
}

/// `fn rules` of `impl Nested`, when the struct walks.
pub fn nested_rules(input: &Input<'_>, cm: &TokenStream) -> TokenStream {
    if !walks(input) {
        return TokenStream::new();
    }
    quote! {
        #[inline]
        fn rules<'__cm_a>(&'__cm_a self, __cm_r: &mut #cm::StructRules<'__cm_a>) {
            Self::__cm_struct_rules(self, __cm_r)
        }
    }
}

/// `const VALIDATE_CONCURRENCY` of `impl Nested`, when the struct sets it.
pub fn concurrency(input: &Input<'_>) -> TokenStream {
    match input.attrs.validate_concurrency.get() {
        Some(n) => {
            let n = n.value as usize;
            quote!(const VALIDATE_CONCURRENCY: usize = #n;)
        }
        None => TokenStream::new(),
    }
}
