//! [`Partial`]: a value fetched in degraded mode, with the errors of the fields that fell
//! back to their `fallback` or `Default`.

use crate::error::ComponentError;

/// The result of `fetch_available_components()`: the struct, and what went wrong.
///
/// ```
/// use component_model_async::{AsyncAssign, EnvSource, Sources};
///
/// #[derive(AsyncAssign, Debug)]
/// struct Config {
///     #[component(fetch_from = "env")]
///     port: u16,
///     #[component(fetch_from = "env", fallback = "localhost")]
///     host: String,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sources = Sources::new().with_env(EnvSource::from_map([("PORT", "not a number")]));
/// let partial = Config::fetch_available_components_with(&sources).await.unwrap();
/// assert_eq!(partial.value.port, 0); // Default, because it failed
/// assert_eq!(partial.value.host, "localhost"); // fallback, because it is absent
/// assert_eq!(partial.errors.len(), 1);
/// assert!(!partial.is_complete());
/// # });
/// ```
#[derive(Debug)]
pub struct Partial<T> {
    /// The struct, with failed fields at their `fallback` or `Default`.
    pub value: T,
    /// One error per failed field.
    pub errors: Vec<ComponentError>,
}

impl<T> Partial<T> {
    /// Whether every field was fetched.
    pub fn is_complete(&self) -> bool {
        self.errors.is_empty()
    }

    /// The value if every field was fetched, else the errors.
    pub fn into_result(self) -> Result<T, Vec<ComponentError>> {
        if self.errors.is_empty() {
            Ok(self.value)
        } else {
            Err(self.errors)
        }
    }
}
