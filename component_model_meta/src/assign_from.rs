//! `AssignFrom<F>`: the seed's assignment by handing over a fetcher (issue 31, item 9).
//! Owned by the helper building it; `expand_async::expand` calls [`expand`].

use proc_macro2::TokenStream;

use crate::ast::Input;

/// The `AssignFrom` impls of a struct (none yet).
pub fn expand(input: &Input<'_>, cm: &TokenStream) -> TokenStream {
    let _ = (input, cm);
    TokenStream::new()
}
