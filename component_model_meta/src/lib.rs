//! Derive macros of `component_model`. Use them through the `component_model` crate (or
//! `component_model_async` for `AsyncAssign`), which re-exports them and the traits they
//! implement; generated code only names paths through those crates:
//!
//! ```text
//! use component_model::AsyncAssign;   // features = ["async"]
//!
//! #[derive(AsyncAssign, Debug)]
//! struct App {
//!     #[component(fetch_from = "env", validate(range(min = 1, max = 65535)))]
//!     port: u16,
//! }
//! // let app = App::fetch_all_components().await?;
//! ```
//!
//! (Compiled in `component_model`'s docs; a proc-macro crate cannot run its own
//! derives in doc tests.) This crate has no cargo features.
//!
//! Each derive parses its input (`ast.rs`, `attr.rs`), validates it (`valid.rs`), and only
//! then expands it (`expand_sync.rs`, `expand_async.rs`). Every attribute error of one
//! derive is reported in the same compile.

mod assign_from;
mod ast;
mod attr;
mod ctxt;
mod expand_async;
mod expand_rules;
mod expand_sync;
mod refs;
mod rules;
mod shape;
mod symbol;
mod valid;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

use ctxt::Ctxt;
use expand_sync::Parts;

fn sync_derive(input: TokenStream, derive: &str, parts: Parts, needs_names: bool) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let cx = Ctxt::new();
    let Some(parsed) = ast::Input::from_syn(&cx, &input, derive) else {
        return match cx.check() {
            Err(e) => e.to_compile_error().into(),
            Ok(()) => TokenStream::new(),
        };
    };
    valid::check_sync(&cx, &parsed, derive, needs_names);
    match cx.check() {
        Ok(()) => expand_sync::expand(&parsed, parts, derive).into(),
        Err(e) => ctxt::to_compile_errors(e).into(),
    }
}

/// Derives everything the component model offers: `Assign` per field type,
/// `<Struct>ComponentsAssign`, `From<&Struct>` per field type (`ComponentFrom`),
/// `From<T>` for the struct (`FromComponents`), and `<field>_set` / `<field>_with` per field.
///
/// Per-type impls are generated only for field types no other field can share (see the
/// `component_model` crate docs); `_set`/`_with` reach every field.
#[proc_macro_derive(ComponentModel, attributes(component))]
pub fn component_model(input: TokenStream) -> TokenStream {
    let parts = Parts {
        assign: true,
        components_assign: true,
        component_from: true,
        from_components: true,
        setters: true,
    };
    sync_derive(input, "ComponentModel", parts, true)
}

/// Derives `Assign<T, IntoT>` for each field type only one field has.
#[proc_macro_derive(Assign, attributes(component))]
pub fn assign(input: TokenStream) -> TokenStream {
    let parts = Parts {
        assign: true,
        ..Parts::default()
    };
    sync_derive(input, "Assign", parts, false)
}

/// Derives the trait `<Struct>ComponentsAssign`, assigning every field from one value.
/// Needs `Assign` (or `ComponentModel`) too.
#[proc_macro_derive(ComponentsAssign, attributes(component))]
pub fn components_assign(input: TokenStream) -> TokenStream {
    let parts = Parts {
        components_assign: true,
        ..Parts::default()
    };
    sync_derive(input, "ComponentsAssign", parts, false)
}

/// Derives `From<&Struct>` for each field type only one field has.
#[proc_macro_derive(ComponentFrom, attributes(component))]
pub fn component_from(input: TokenStream) -> TokenStream {
    let parts = Parts {
        component_from: true,
        ..Parts::default()
    };
    sync_derive(input, "ComponentFrom", parts, false)
}

/// Derives `From<T>` for the struct, for any `T: Clone` convertible into every field type.
#[proc_macro_derive(FromComponents, attributes(component))]
pub fn from_components(input: TokenStream) -> TokenStream {
    let parts = Parts {
        from_components: true,
        ..Parts::default()
    };
    sync_derive(input, "FromComponents", parts, false)
}

fn async_derive(input: TokenStream, entry: expand_async::Entry) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let cx = Ctxt::new();
    let Some(parsed) = ast::Input::from_syn(&cx, &input, "AsyncAssign") else {
        return match cx.check() {
            Err(e) => e.to_compile_error().into(),
            Ok(()) => TokenStream::new(),
        };
    };
    valid::check_async(&cx, &parsed);
    match cx.check() {
        Ok(()) => expand_async::expand(&parsed, entry).into(),
        Err(e) => {
            let mut out = ctxt::to_compile_errors(e);
            out.extend(expand_async::backend_checks(&parsed, entry));
            // Rules are type-checked too, so one that does not apply to its field's type
            // is reported with the other errors.
            let cm = expand_async::runtime_path(&parsed, entry);
            out.extend(expand_rules::functions(&parsed, &cm, false));
            // References into nested structs are checked against them here too.
            out.extend(refs::assertions(&cm, &parsed));
            out.extend(expand_async::fallback_stub(&parsed, entry));
            out.into()
        }
    }
}

/// Derives `AsyncAssign`/`FutureAssign` per field type and the concurrent fetch methods
/// (`fetch_all_components`, ...) from `#[component(fetch_from = ..., ...)]` field attributes.
/// Paths go through `component_model` (feature `async`).
#[proc_macro_derive(AsyncAssign, attributes(component))]
pub fn async_assign(input: TokenStream) -> TokenStream {
    async_derive(input, expand_async::Entry::Facade)
}

/// `AsyncAssign` as re-exported by `component_model_async` (paths through that crate).
#[doc(hidden)]
#[proc_macro_derive(AsyncAssignDirect, attributes(component))]
pub fn async_assign_direct(input: TokenStream) -> TokenStream {
    async_derive(input, expand_async::Entry::Direct)
}

/// What a backend's compile-time rules expand a key they do not read to (not public API):
/// `__unknown_backend_key! { <key> "<source>" [<the backend's keys>] }` becomes a
/// `compile_error!` spanned at `<key>` that names the source's keys and suggests the
/// closest one (or a key of the derive) when the key looks misspelt. One invocation per
/// key, so every unknown key of a struct is reported in the same compile.
#[doc(hidden)]
#[proc_macro]
pub fn __unknown_backend_key(input: TokenStream) -> TokenStream {
    match syn::parse::Parser::parse(unknown_key::parse, input) {
        Ok(k) => k.error().into(),
        Err(e) => e.to_compile_error().into(),
    }
}

mod unknown_key {
    use proc_macro2::TokenStream;
    use quote::quote_spanned;
    use syn::parse::ParseStream;

    pub struct UnknownKey {
        key: syn::Ident,
        source: String,
        known: Vec<String>,
    }

    pub fn parse(input: ParseStream<'_>) -> syn::Result<UnknownKey> {
        let key = input.call(<syn::Ident as syn::ext::IdentExt>::parse_any)?;
        let source: syn::LitStr = input.parse()?;
        let list;
        syn::bracketed!(list in input);
        let mut known = Vec::new();
        while !list.is_empty() {
            known.push(
                list.call(<syn::Ident as syn::ext::IdentExt>::parse_any)?
                    .to_string(),
            );
        }
        Ok(UnknownKey {
            key,
            source: source.value(),
            known,
        })
    }

    impl UnknownKey {
        fn message(&self) -> String {
            let (key, source) = (self.key.to_string(), &self.source);
            match key.as_str() {
                "secret" => {
                    return format!(
                        "`secret = \"...\"` (a secret's path) is not used by the `{source}` source; a bare `secret` marks the value as secret"
                    );
                }
                "source" => {
                    return format!(
                        "`source` names a database pool; the `{source}` source has none (register another source name instead)"
                    );
                }
                _ => {}
            }
            let mut msg = format!("`{key}` is not used by the `{source}` source");
            let known: Vec<&str> = self.known.iter().map(String::as_str).collect();
            let suggestion = crate::symbol::suggest_among_short(&key, &known)
                .or_else(|| crate::symbol::suggest_close(&key, crate::symbol::FIELD_KEYS));
            if let Some(s) = suggestion {
                msg.push_str(&format!("; did you mean `{s}`?"));
            }
            let list: Vec<String> = self.known.iter().map(|k| format!("`{k}`")).collect();
            match list.as_slice() {
                [] => msg.push_str(&format!(" (the `{source}` source reads no key of its own)")),
                [one] => msg.push_str(&format!(" (the `{source}` source reads {one})")),
                [init @ .., last] => msg.push_str(&format!(
                    " (the `{source}` source reads {} and {last})",
                    init.join(", ")
                )),
            }
            msg
        }

        pub fn error(&self) -> TokenStream {
            let msg = self.message();
            quote_spanned!(self.key.span()=> ::core::compile_error!{ #msg })
        }
    }

    #[cfg(test)]
    mod tests {
        use quote::quote;

        fn message(tokens: proc_macro2::TokenStream) -> String {
            syn::parse::Parser::parse2(super::parse, tokens)
                .unwrap()
                .message()
        }

        #[test]
        fn a_near_miss_of_the_backends_key_is_suggested_and_its_keys_listed() {
            assert_eq!(
                message(quote!(dcc "consul" [key dc])),
                "`dcc` is not used by the `consul` source; did you mean `dc`? (the `consul` source reads `key` and `dc`)"
            );
        }

        #[test]
        fn a_near_miss_of_a_derive_key_is_suggested_when_no_backend_key_is_near() {
            assert_eq!(
                message(quote!(retry_atempts "env" [key])),
                "`retry_atempts` is not used by the `env` source; did you mean `retry_attempts`? (the `env` source reads `key`)"
            );
        }

        #[test]
        fn another_backends_key_gets_the_list_without_a_guess() {
            assert_eq!(
                message(quote!(ns "consul" [key dc])),
                "`ns` is not used by the `consul` source (the `consul` source reads `key` and `dc`)"
            );
            assert_eq!(
                message(quote!(dc "vault" [secret mount kv_version])),
                "`dc` is not used by the `vault` source (the `vault` source reads `secret`, `mount` and `kv_version`)"
            );
            assert_eq!(
                message(quote!(path "kafka" [])),
                "`path` is not used by the `kafka` source (the `kafka` source reads no key of its own)"
            );
        }

        #[test]
        fn secret_and_source_keep_their_own_explanations() {
            assert!(
                message(quote!(secret "consul" [key dc]))
                    .contains("a bare `secret` marks the value as secret")
            );
            assert!(message(quote!(source "http" [url path])).contains("names a database pool"));
        }
    }
}
