//! [`SourceFetcher`]: any [`Source`] and one [`FetchRequest`] as a [`ComponentFetcher<T>`],
//! converted like a derived field. `ApiFetcher`, `ConsulFetcher` and `VaultFetcher` are this
//! fetcher over their backend's source.

use std::fmt;

use serde::de::DeserializeOwned;

use crate::convert::{self, Target};
use crate::error::{ComponentError, ErrorKind, Provenance};
use crate::fetcher::ComponentFetcher;
use crate::source::{FetchRequest, FieldSpec, Source};

/// Reads one request from a source and converts the value into any `serde::Deserialize`
/// type: `field`/`pointer` applied, an absent key is `None` for an `Option<_>`, secrets
/// (the request's, the source's or a `secrecy` type) never shown.
///
/// ```
/// use component_model_async::{ComponentFetcher, EnvSource, FetchRequest, SourceFetcher};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let env = EnvSource::from_map([("LIMITS", r#"{"max": 8}"#)]);
/// let max = SourceFetcher::new(env, FetchRequest::for_key("env", "LIMITS")).with_pointer("/max");
/// let value: u32 = max.fetch_component().await.unwrap();
/// assert_eq!(value, 8);
/// # });
/// ```
#[derive(Clone)]
pub struct SourceFetcher<S> {
    source: S,
    request: FetchRequest,
    pointer: Option<String>,
}

impl<S: fmt::Debug> fmt::Debug for SourceFetcher<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceFetcher")
            .field("source", &self.source)
            .field("request", &self.request)
            .field("pointer", &self.pointer)
            .finish()
    }
}

impl<S: Source> SourceFetcher<S> {
    /// Reads `request` from `source`.
    pub fn new(source: S, request: FetchRequest) -> Self {
        SourceFetcher {
            source,
            request,
            pointer: None,
        }
    }

    /// Converts only the part of the value at this JSON pointer (`"/settings/port"`).
    #[must_use]
    pub fn with_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = Some(pointer.into());
        self
    }

    /// Marks the value secret: never shown in errors or logs. (A derived field knows from
    /// its type's [`SecretValue`](crate::SecretValue); a generic fetcher cannot ask a
    /// trait of `T`, so it recognises only `secrecy` types by name, the request's and the
    /// source's secrecy, and this.)
    #[must_use]
    pub fn secret(mut self) -> Self {
        self.request = self.request.sensitive(true);
        self
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The request.
    pub fn request(&self) -> &FetchRequest {
        &self.request
    }

    /// Changes the source (a builder method of a backend's fetcher).
    #[must_use]
    pub fn map_source(mut self, f: impl FnOnce(S) -> S) -> Self {
        self.source = f(self.source);
        self
    }

    /// Changes the request (a builder method of a backend's fetcher).
    #[must_use]
    pub fn map_request(mut self, f: impl FnOnce(FetchRequest) -> FetchRequest) -> Self {
        self.request = f(self.request);
        self
    }

    /// Where the value comes from, as the source names it.
    pub fn provenance(&self) -> Provenance {
        let r = &self.request;
        let (label, key) = match self.source.native_key(r) {
            Some((label, key)) => (label, Some(key)),
            None => ("key", None),
        };
        let named = !r.owner().is_empty();
        Provenance {
            owner: named.then(|| r.owner().to_owned().into()),
            field: named.then(|| r.field().to_owned().into()),
            source: Some(r.source_name().to_owned().into()),
            key_label: label.into(),
            bound_key: (label == "query")
                .then(|| r.bound_key().map(str::to_owned))
                .flatten(),
            key,
            location: self.source.location(),
        }
    }
}

#[async_trait::async_trait]
impl<T, S> ComponentFetcher<T> for SourceFetcher<S>
where
    T: DeserializeOwned + Send + 'static,
    S: Source,
{
    type Error = ComponentError;

    async fn fetch_component(&self) -> Result<T, ComponentError> {
        let provenance = || self.provenance();
        if let Some(p) = self.pointer.as_deref()
            && !p.is_empty()
            && !p.starts_with('/')
        {
            return Err(ComponentError::field(ErrorKind::Config)
                .provenance(provenance())
                .detail(format!(
                    "`{p}` is not a JSON pointer: it must start with `/`"
                ))
                .build());
        }
        let fetched = self.source.fetch(&self.request).await.map_err(|e| {
            let builder = ComponentError::field(e.kind()).provenance(provenance());
            e.into_field_error(builder)
        });
        let spec = FieldSpec::new("", "value", std::any::type_name::<T>(), "");
        let sensitive = self.request.is_sensitive()
            || self.source.is_sensitive()
            || convert::is_secret_type::<T>();
        let mut target = Target::new(&spec, &provenance, sensitive);
        target.select = match self.source.selects_field() {
            true => None,
            false => self.request.select(),
        };
        target.pointer = self.pointer.as_deref();
        target.unwrap_single = self.source.unwraps_single_member();
        convert::standalone(fetched, &target)
    }
}
