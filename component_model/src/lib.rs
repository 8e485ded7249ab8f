//! Typed components for Rust structs.
//!
//! **Sync** (always available): assign a field by its type, build structs from components,
//! and convert structs into their components.
//!
//! ```
//! use component_model::{Assign, ComponentModel};
//!
//! #[derive(ComponentModel, Default, Debug, PartialEq)]
//! struct Person {
//!     age: i32,
//!     name: String,
//! }
//!
//! let mut p = Person::default();
//! p.assign(13);          // i32 -> age
//! p.assign("John");      // &str -> String -> name
//! assert_eq!(p, Person { age: 13, name: "John".into() });
//!
//! let p = Person::default().impute(40).name_with("Ann");
//! assert_eq!(p.age, 40);
//! let name: String = (&p).into(); // ComponentFrom
//! assert_eq!(name, "Ann");
//! ```
//!
//! **Async** (feature `async`): `#[derive(AsyncAssign)]` fetches every field concurrently
//! from env, a database, an HTTP API, Consul or Vault, and reports every failure at once;
//! see [`component_model_async`] (re-exported here).
//!
//! # Cargo features
//!
//! | feature | enables |
//! |---|---|
//! | (none) | the sync derives: `Assign`, `ComponentModel`, `ComponentsAssign`, `ComponentFrom`, `FromComponents` |
//! | `async` | `#[derive(AsyncAssign)]`, `Sources`, `Live`, env/args/`.env`/secret files, validation rules (pulls in `component_model_async`, `tokio`, `futures`, `serde`, `regex`, `url`) |
//! | `postgres`, `mysql`, `sqlite`, `http`, `consul`, `vault`, `redis`, `etcd`, `file`, `kafka`, `nats`, `mqtt`, `websocket`, `metrics`, `garde`, `schema`, `test-util` | `async` and that backend or tool of `component_model_async` (see its feature table for what each pulls in) |
//!
//! # Which per-type impls are generated
//!
//! `Assign<T, _>`, `From<&Struct> for T` and the `*ComponentsAssign` trait are keyed by a
//! field's type, so two fields whose types can be the same would make conflicting impls.
//! The rule: a field gets per-type impls only when no other field's type can unify with
//! its own (lifetimes ignored, a generic parameter unifies with anything). Every field stays
//! reachable through its `<field>_set` / `<field>_with` methods. `From<&Struct> for T` is
//! also left out for a field whose type is a bare generic parameter (`T`), which the orphan
//! rules forbid, and `From<T> for Struct` (`FromComponents`) needs at least one field whose
//! type is not generic. `#[component(skip)]` leaves a field out of all of them (and
//! `FromComponents` fills it with `Default`).

#![forbid(unsafe_code)]
// On docs.rs (`--cfg docsrs`, nightly): each feature-gated item shows its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod assign;

pub use assign::{Assign, AssignWithType, OptionExt};
pub use component_model_meta::{
    Assign, ComponentFrom, ComponentModel, ComponentsAssign, FromComponents,
};

#[cfg(feature = "async")]
pub use component_model_async::{self, *};

#[cfg(feature = "async")]
pub use component_model_meta::AsyncAssign;

/// Not public API: what generated code reaches.
#[doc(hidden)]
pub mod __private {
    /// Implemented by `#[derive(AsyncAssign)]`; a sync derive that sees `fetch_from` and
    /// friends requires it, so those keys are never silently ignored.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` has `#[component(...)]` keys of `AsyncAssign` but does not derive `AsyncAssign`",
        label = "these keys are read only by `#[derive(AsyncAssign)]`",
        note = "add `#[derive(AsyncAssign)]` (cargo feature `async` of component_model), or remove the keys"
    )]
    pub trait AsyncAssignDerived {}

    #[cfg(feature = "async")]
    pub use component_model_async::__private as asynchronous;
}

/// The README's Rust snippets, compiled as doc tests with the features the README uses
/// (`cargo test --workspace` enables them all): a snippet that no longer compiles fails
/// the tests. Fragments that continue an earlier snippet say so and are `ignore`.
#[cfg(all(
    doctest,
    feature = "async",
    feature = "consul",
    feature = "vault",
    feature = "postgres",
    feature = "file",
    feature = "etcd",
    feature = "nats",
    feature = "test-util"
))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
