//! The `file` source: values from configuration files on disk.
//!
//! `#[component(fetch_from = "file", path = "config.toml", pointer = "/server/port")]`
//! reads `config.toml` (relative to the working directory, or to
//! [`FileSource::with_base_dir`]), parses it by its extension — `.toml`, `.json`,
//! `.yaml`/`.yml` — into a JSON document, and takes the `pointer` (or `field`) out of it;
//! a file with another extension is one text value. Every distinct file of one fetch is
//! read once, through a size bound (16 MiB by default, [`FileSource::with_max_size`]).
//! A missing file or pointer is not found; a file that does not parse is a decode error
//! naming the file, line and column.
//!
//! A table read whole: `path = "app.toml", prefix = "features"` reads the table at
//! `features` (dots nest: `prefix = "a.b"`; `prefix = ""` is the whole document) as one
//! JSON object of its members, for a `HashMap<String, T>`, a `BTreeMap` or a struct; at
//! most `max_keys = N` members (default 10 000) and the field's `max_size` bytes (keys and values), else
//! `too large`. A missing table is not found; a value that is not a table a decode error.
//!
//! Watched (for a [`Live`](crate::Live)) with the notify crate on the files' directories,
//! not the files, so editors that write a new file and rename it over the old one (vim,
//! `sed -i`) and Kubernetes ConfigMap volumes (a `..data` symlink swapped atomically) are
//! seen; a watch that fails is re-established by the `Live` and everything re-read.
//!
//! ## Preflight
//!
//! [`Source::preflight`](crate::Source::preflight) checks each file by its metadata: a
//! missing file is [`Access::Missing`](crate::Access), one the process may not open
//! `Denied`, a directory or a file over the size limit `Invalid`, a FIFO or a device is
//! not opened (`Unchecked`); the file is opened and closed. For a request that is not
//! secret and names a place in the document (`pointer`, `field`, `prefix`), the file is
//! parsed in memory and the place looked up: `Missing` when it is not there, `Invalid`
//! when the file does not parse. A secret request is checked by the file's metadata
//! alone.
//!
//! ## What this module declares
//!
//! * name `file`, cargo feature `file`, always registered by
//!   [`Sources::from_env`](crate::Sources::from_env) (relative to the working directory);
//! * attribute keys: `path` (required), with `pointer`/`field` to select, or `prefix` (a
//!   table read whole) with `max_keys`; any other key is a compile error that names these
//!   (and suggests the closest key);
//! * key label `path`; values are not secret; coalescing: one read per distinct file.

#[cfg(feature = "file")]
mod source;
#[cfg(feature = "file")]
pub use source::*;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["file"],
    hint: "`Sources::from_env()` registers it with cargo feature `file`; or register a `FileSource`",
    from_env: |_| {
        #[cfg(feature = "file")]
        return vec![("file", std::sync::Arc::new(FileSource::new()) as _)];
        #[cfg(not(feature = "file"))]
        Vec::new()
    },
};

/// Compile-time rules of `fetch_from = "file"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_file {
    (@path path $($rest:ident)*) => {};
    (@path $other:ident $($rest:ident)*) => {
        $crate::__component_model_rules_file! { @path $($rest)* }
    };
    (@path) => {
        ::core::compile_error!("the `file` source needs `path = \"...\"`, the file to read (e.g. `path = \"config.toml\", pointer = \"/server/port\"`)");
    };
    ($entry:tt has [$($names:ident)*]) => {
        $crate::__component_model_feature_file! { $entry }
        $crate::__component_model_rules_file! { @path $($names)* }
    };
    ($entry:tt param path) => {};
    ($entry:tt param prefix) => {};
    ($entry:tt param max_keys) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "file" [path prefix max_keys] }
    };
}

#[cfg(feature = "file")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_file {
    ($entry:tt) => {};
}
#[cfg(not(feature = "file"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_file {
    (facade) => {
        ::core::compile_error!("backend `file` needs cargo feature `file` of component_model: `component_model = { features = [\"file\"] }`");
    };
    (direct) => {
        ::core::compile_error!("backend `file` needs cargo feature `file` of component_model_async");
    };
}
