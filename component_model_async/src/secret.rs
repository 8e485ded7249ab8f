//! [`SecretValue`]: types whose values are secret, recognised by a trait (not by name).

/// Marks a type whose values are secret: a field of this type is never shown in errors or
/// logs, whatever its source (as if it had a bare `secret` attribute).
///
/// Implemented for secrecy's `SecretBox<S>` (so [`SecretString`](crate::SecretString)),
/// and for `Option<T>`, `Vec<T>` and `Box<T>` of a secret type. Implement it for your own
/// secret wrappers:
///
/// ```
/// use component_model_async::SecretValue;
///
/// #[derive(serde::Deserialize)]
/// struct ApiKey(String);
/// impl SecretValue for ApiKey {}
/// ```
///
/// The derive recognises the field's type as written; a generic field `T` is recognised
/// only through its `secret` attribute.
pub trait SecretValue {}

impl<S: secrecy::zeroize::Zeroize + ?Sized> SecretValue for secrecy::SecretBox<S> {}
impl<T: SecretValue> SecretValue for Option<T> {}
impl<T: SecretValue> SecretValue for Vec<T> {}
impl<T: SecretValue + ?Sized> SecretValue for Box<T> {}
