//! The `args` source: values given on the command line.
//!
//! Declares: name `args` (registered by [`Sources::with_args`](crate::Sources::with_args));
//! attribute key `key` (the argument's path, `db.port`); without one a field reads the
//! argument named after its path below the struct (`port`, or `db.port` for a `nested`
//! field `db`); key label `argument`. Values are text, converted like any other.
//!
//! Three forms are read: `--set a.b=v`, `--a.b=v` and `--a.b v`. Item 0 (the program
//! name) is skipped, and anything else (`-v`, a positional argument, `--flag` followed by
//! another flag) is ignored. When a path is given twice, the last one wins, as a shell
//! user expects.
//!
//! Preflight: an argument given is [`Access::Readable`](crate::Access), one not given
//! `Missing`; nothing is shown of its value.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::error::SourceError;
use crate::fetchers::Builtin;
use crate::source::{FetchRequest, Preflighting, Probe, RawValue, Source};

/// Reads values given on the command line: `--set db.port=5432`, `--db.port=5432` or
/// `--db.port 5432`.
///
/// ```
/// use component_model_async::{ArgsSource, AsyncAssign, Sources};
///
/// #[derive(AsyncAssign, Debug)]
/// struct Cli {
///     #[component(fetch_from = "args")]
///     port: u16,
///     #[component(fetch_from = "args", key = "log.level", fallback = "info")]
///     log_level: String,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sources = Sources::new().with_args(["app", "--port", "8080", "--verbose"]);
/// let cli = Cli::fetch_all_components_with(&sources).await.unwrap();
/// assert_eq!((cli.port, cli.log_level.as_str()), (8080, "info"));
/// # });
/// ```
#[derive(Clone, Default)]
pub struct ArgsSource {
    values: Arc<HashMap<String, String>>,
}

impl fmt::Debug for ArgsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The paths given, never their values.
        let mut paths: Vec<&str> = self.values.keys().map(String::as_str).collect();
        paths.sort_unstable();
        f.debug_struct("ArgsSource").field("paths", &paths).finish()
    }
}

impl ArgsSource {
    /// Reads `args` (item 0, the program name, is skipped): `std::env::args()` or a list.
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let args: Vec<String> = args.into_iter().skip(1).map(Into::into).collect();
        let mut values = HashMap::new();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            i += 1;
            let Some(flag) = arg.strip_prefix("--") else {
                continue; // a positional argument or a short flag
            };
            if flag == "set" {
                if let Some((path, value)) = args.get(i).and_then(|a| a.split_once('=')) {
                    values.insert(path.to_owned(), value.to_owned());
                    i += 1;
                }
                continue;
            }
            if let Some((path, value)) = flag.split_once('=') {
                values.insert(path.to_owned(), value.to_owned());
            } else if let Some(value) = args.get(i).filter(|v| !v.starts_with("--")) {
                values.insert(flag.to_owned(), value.clone());
                i += 1;
            }
        }
        ArgsSource {
            values: Arc::new(values),
        }
    }

    /// The value given for `path`, if any.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.values.get(path).map(String::as_str)
    }
}

/// The path a request reads: its key, else the field's path below its struct.
fn path(request: &FetchRequest) -> &str {
    request.key().unwrap_or(request.field())
}

#[async_trait::async_trait]
impl Source for ArgsSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.get(path(request))
            .map(RawValue::from)
            .ok_or_else(SourceError::not_found)
    }

    fn location(&self) -> Option<String> {
        Some("the command line".to_owned())
    }

    /// Given or not (see the module docs).
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        let probes = requests
            .iter()
            .map(|r| {
                let path = path(r);
                match self.get(path) {
                    Some(_) => Probe::readable().with_detail(format!("`--{path}` is given")),
                    None => Probe::missing().with_detail(format!("`--{path}` is not given")),
                }
            })
            .collect();
        Box::pin(std::future::ready(probes))
    }

    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        Some(("argument", format!("--{}", path(request))))
    }

    /// `--<path>`: the field's path below its struct (`--db.port`); an argument is
    /// ignored.
    fn convention(
        &self,
        request: FetchRequest,
        field: &crate::FieldPath<'_>,
    ) -> Result<FetchRequest, String> {
        Ok(request.with_key(field.path.to_owned()))
    }

    fn takes_key_prefix(&self) -> bool {
        false // paths are the struct's own (`db.port`), not store keys
    }
}

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["args"],
    hint: "`Sources::with_args(std::env::args())` registers it",
    from_env: |_| Vec::new(),
};

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> ArgsSource {
        ArgsSource::new(std::iter::once("prog").chain(list.iter().copied()))
    }

    #[test]
    fn the_three_forms_are_read_and_everything_else_ignored() {
        let a = args(&[
            "--set",
            "db.port=5432",
            "--log.level=debug",
            "--host",
            "example.org",
            "-v",
            "positional",
            "--verbose",
            "--set",
            "not-a-pair",
            "--last",
            "1",
            "--last",
            "2",
        ]);
        assert_eq!(a.get("db.port"), Some("5432"));
        assert_eq!(a.get("log.level"), Some("debug"));
        assert_eq!(a.get("host"), Some("example.org"));
        assert_eq!(a.get("verbose"), None); // followed by another flag
        assert_eq!(a.get("last"), Some("2"));
        assert_eq!(a.get("v"), None);
        assert_eq!(a.get("prog"), None);
        assert!(!format!("{a:?}").contains("5432"), "a value in Debug");
    }

    #[tokio::test]
    async fn a_request_reads_its_key_else_its_field_path_and_names_the_argument() {
        let a = args(&["--port", "80", "--db.port", "5432"]);
        let by_field = FetchRequest::for_source("args").in_field("App", "db.port");
        assert_eq!(a.fetch(&by_field).await.unwrap(), RawValue::from("5432"));
        let by_key = FetchRequest::for_key("args", "port");
        assert_eq!(a.fetch(&by_key).await.unwrap(), RawValue::from("80"));
        let missing = FetchRequest::for_key("args", "nope");
        assert_eq!(
            a.fetch(&missing).await.unwrap_err().kind(),
            crate::ErrorKind::NotFound
        );
        assert_eq!(
            a.native_key(&missing),
            Some(("argument", "--nope".to_owned()))
        );
    }
}
