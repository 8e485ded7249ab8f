//! Derive macros of `component_model`. Use them through the `component_model` crate (or
//! `component_model_async` for `AsyncAssign`), which re-exports them and the traits they
//! implement; generated code only names paths through those crates.
//!
//! Each derive parses its input (`ast.rs`, `attr.rs`), validates it (`valid.rs`), and only
//! then expands it (`expand_sync.rs`, `expand_async.rs`). Every attribute error of one
//! derive is reported in the same compile.

mod ast;
mod attr;
mod ctxt;
mod expand_async;
mod expand_sync;
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
