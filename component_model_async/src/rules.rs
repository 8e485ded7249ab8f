//! The field rules of `#[component(validate(...))]`, as the generated code calls them: one
//! function per rule, each given the converted value and whether it may be shown, each
//! answering `Ok(())` or the [`Violations`] that name what is wrong. A value that may not
//! be shown (a secret field, a secret type, a value from a secret source) is described by
//! its length only.
//!
//! Which types a rule applies to is a trait per rule ([`Ranged`], [`Measured`],
//! [`Textual`]), so `range` on a `String` is a compile error at the rule, with a message
//! that says what `range` applies to. On an `Option<T>` every rule applies to `Some` only.
//!
//! The functions can be called directly too, e.g. in a `validate_with` function or a
//! [`LiveBuilder::validate`](crate::LiveBuilder::validate) validator:
//!
//! ```
//! use component_model_async::rules;
//!
//! assert!(rules::range(&8080u16, Some(1), Some(65535), false).is_ok());
//! let e = rules::len("ab", Some(3), None, false).unwrap_err();
//! assert_eq!(e.to_string(), "`ab` (2 characters) is shorter than 3");
//! let secret = component_model_async::SecretString::from("hunter2");
//! let e = rules::len(&secret, Some(12), None, false).unwrap_err();
//! assert_eq!(e.to_string(), "a secret value of 7 bytes (not shown) is shorter than 12");
//! ```
//!
//! Patterns are compiled by the `regex` crate (checked at compile time by the derive with
//! `regex-syntax`, the same parser), once per process; URLs are parsed by the `url` crate
//! (WHATWG URL parsing, as browsers and `reqwest` do). Both are well-kept crates: a rule
//! written by hand would disagree with them at the edges.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::{self, Display};
use std::sync::{Arc, OnceLock};

use crate::violations::Violations;

/// At most 64 characters of a value, for a message.
fn short(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((at, _)) => format!("`{}…`", &text[..at]),
        None => format!("`{text}`"),
    }
}

/// `1..=65535`, `1..`, `..=10`: bounds as `range` and `len` print them.
pub fn bounds<B: Display>(min: Option<&B>, max: Option<&B>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("{a}..={b}"),
        (Some(a), None) => format!("{a}.."),
        (None, Some(b)) => format!("..={b}"),
        (None, None) => "..".to_owned(),
    }
}

/// A type `range(min = .., max = ..)` applies to: a number, or an `Option` of one.
#[diagnostic::on_unimplemented(
    message = "`validate(range(..))` applies to numbers, not to `{Self}`",
    label = "`range` needs an integer or a float (or an `Option` of one)",
    note = "for the length of a string or a collection use `validate(len(min = .., max = ..))`"
)]
pub trait Ranged {
    /// The type of the bounds.
    type Bound: PartialOrd + Display;
    /// The number, or `None` for an `Option` that is `None`.
    fn number(&self) -> Option<&Self::Bound>;
}

macro_rules! ranged {
    ($($t:ty)*) => {$(
        impl Ranged for $t {
            type Bound = $t;
            fn number(&self) -> Option<&$t> {
                Some(self)
            }
        }
    )*};
}
ranged!(i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize f32 f64);

impl<T: Ranged> Ranged for Option<T> {
    type Bound = T::Bound;
    fn number(&self) -> Option<&T::Bound> {
        self.as_ref().and_then(T::number)
    }
}

/// `validate(range(min = .., max = ..))`: within the bounds, both inclusive.
pub fn range<T: Ranged + ?Sized>(
    v: &T,
    min: Option<T::Bound>,
    max: Option<T::Bound>,
    hidden: bool,
) -> Result<(), Violations> {
    let Some(n) = v.number() else { return Ok(()) };
    let below = min.as_ref().is_some_and(|m| n < m);
    let above = max.as_ref().is_some_and(|m| n > m);
    // NaN is within no range.
    let nan = n.partial_cmp(n).is_none();
    if !(below || above || nan) {
        return Ok(());
    }
    let value = if hidden {
        "the value (not shown)".to_owned()
    } else {
        n.to_string()
    };
    let range = bounds(min.as_ref(), max.as_ref());
    Err(match (below, above) {
        (true, _) => format!(
            "{value} is below the minimum of {}, outside {range}",
            fmt_opt(&min)
        ),
        (_, true) => format!(
            "{value} is above the maximum of {}, outside {range}",
            fmt_opt(&max)
        ),
        _ => format!("{value} is not within {range}"),
    }
    .into())
}

fn fmt_opt<B: Display>(b: &Option<B>) -> String {
    b.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// What a length counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Characters of a string.
    Chars,
    /// Items of a collection.
    Items,
    /// Bytes of a secret.
    Bytes,
}

impl Unit {
    fn of(self, n: usize) -> String {
        let (one, many) = match self {
            Unit::Chars => ("character", "characters"),
            Unit::Items => ("item", "items"),
            Unit::Bytes => ("byte", "bytes"),
        };
        format!("{n} {}", if n == 1 { one } else { many })
    }
}

/// A type `len(..)` and `non_empty` apply to: a string (its characters), a collection (its
/// items), a secret string (its bytes), or an `Option` of one.
#[diagnostic::on_unimplemented(
    message = "`validate(len(..))` and `validate(non_empty)` apply to strings, collections and secrets, not to `{Self}`",
    label = "this type has no length a rule can check",
    note = "for a number use `validate(range(min = .., max = ..))`"
)]
pub trait Measured {
    /// The length and what it counts, or `None` for an `Option` that is `None`.
    fn measure(&self) -> Option<(usize, Unit)>;
    /// The value as text for a message, when it is text and not secret.
    fn text(&self) -> Option<&str> {
        None
    }
}

impl Measured for str {
    fn measure(&self) -> Option<(usize, Unit)> {
        Some((self.chars().count(), Unit::Chars))
    }
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

macro_rules! measured_text {
    ($($t:ty)*) => {$(
        impl Measured for $t {
            fn measure(&self) -> Option<(usize, Unit)> {
                str::measure(self)
            }
            fn text(&self) -> Option<&str> {
                Some(self)
            }
        }
    )*};
}
measured_text!(String Box<str> Arc<str> Cow<'_, str>);

macro_rules! measured_items {
    ($($t:ident < $($p:ident),* >)*) => {$(
        impl<$($p),*> Measured for $t<$($p),*> {
            fn measure(&self) -> Option<(usize, Unit)> {
                Some((self.len(), Unit::Items))
            }
        }
    )*};
}
measured_items!(Vec<T> VecDeque<T> BTreeSet<T> BTreeMap<K, V>);

impl<T> Measured for [T] {
    fn measure(&self) -> Option<(usize, Unit)> {
        Some((self.len(), Unit::Items))
    }
}

impl<K, V, S> Measured for HashMap<K, V, S> {
    fn measure(&self) -> Option<(usize, Unit)> {
        Some((self.len(), Unit::Items))
    }
}

impl<T, S> Measured for HashSet<T, S> {
    fn measure(&self) -> Option<(usize, Unit)> {
        Some((self.len(), Unit::Items))
    }
}

impl Measured for secrecy::SecretString {
    fn measure(&self) -> Option<(usize, Unit)> {
        use secrecy::ExposeSecret;
        Some((self.expose_secret().len(), Unit::Bytes))
    }
}

impl<T: Measured> Measured for Option<T> {
    fn measure(&self) -> Option<(usize, Unit)> {
        self.as_ref().and_then(T::measure)
    }
    fn text(&self) -> Option<&str> {
        self.as_ref().and_then(T::text)
    }
}

/// How a value whose length is wrong is named: itself (a non-secret string), or its length.
fn measured<T: Measured + ?Sized>(v: &T, n: usize, unit: Unit, hidden: bool) -> String {
    match v.text() {
        Some(t) if !hidden && unit == Unit::Chars => format!("{} ({})", short(t), unit.of(n)),
        _ if hidden || unit == Unit::Bytes => {
            format!("a secret value of {} (not shown)", unit.of(n))
        }
        _ => format!("a value of {}", unit.of(n)),
    }
}

/// `validate(len(min = .., max = ..))`: characters of a string, items of a collection,
/// bytes of a secret, within the bounds (both inclusive).
pub fn len<T: Measured + ?Sized>(
    v: &T,
    min: Option<usize>,
    max: Option<usize>,
    hidden: bool,
) -> Result<(), Violations> {
    let Some((n, unit)) = v.measure() else {
        return Ok(());
    };
    let what = || measured(v, n, unit, hidden);
    match (min, max) {
        (Some(m), _) if n < m => Err(format!("{} is shorter than {m}", what()).into()),
        (_, Some(m)) if n > m => Err(format!("{} is longer than {m}", what()).into()),
        _ => Ok(()),
    }
}

/// `validate(non_empty)`: at least one character, item or byte.
pub fn non_empty<T: Measured + ?Sized>(v: &T, _hidden: bool) -> Result<(), Violations> {
    match v.measure() {
        Some((0, _)) => Err("the value is empty".into()),
        _ => Ok(()),
    }
}

/// A type `pattern`, `url` and text `one_of` apply to: a string, a secret string, or an
/// `Option` of one.
#[diagnostic::on_unimplemented(
    message = "`validate(pattern = ..)`, `validate(url)` and `validate(one_of = [\"..\"])` apply to strings, not to `{Self}`",
    label = "this rule needs a `String` (or `SecretString`, or an `Option` of one)",
    note = "for numbers use `validate(range(..))` or `validate(one_of = [1, 2])`"
)]
pub trait Textual {
    /// The text, or `None` for an `Option` that is `None`.
    fn text(&self) -> Option<&str>;
    /// Whether the type is a secret (its text is never shown).
    fn secret(&self) -> bool {
        false
    }
}

impl Textual for str {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

macro_rules! textual {
    ($($t:ty)*) => {$(
        impl Textual for $t {
            fn text(&self) -> Option<&str> {
                Some(self)
            }
        }
    )*};
}
textual!(String Box<str> Arc<str> Cow<'_, str>);

impl Textual for secrecy::SecretString {
    fn text(&self) -> Option<&str> {
        use secrecy::ExposeSecret;
        Some(self.expose_secret())
    }
    fn secret(&self) -> bool {
        true
    }
}

impl<T: Textual> Textual for Option<T> {
    fn text(&self) -> Option<&str> {
        self.as_ref().and_then(T::text)
    }
    fn secret(&self) -> bool {
        self.as_ref().is_some_and(T::secret)
    }
}

/// The text of a value for a message: itself, or its length when it may not be shown.
fn named<T: Textual + ?Sized>(v: &T, text: &str, hidden: bool) -> String {
    if hidden || v.secret() {
        format!(
            "a secret value of {} (not shown)",
            Unit::Bytes.of(text.len())
        )
    } else {
        short(text)
    }
}

/// `source` compiled, once per process: a plan that is not kept (`fetch_<field>`) does not
/// compile it again. (A `Regex` clone shares the compiled program.)
fn compiled(source: &'static str) -> Result<regex::Regex, String> {
    static COMPILED: OnceLock<std::sync::Mutex<HashMap<&'static str, regex::Regex>>> =
        OnceLock::new();
    let map = COMPILED.get_or_init(Default::default);
    if let Some(re) = map.lock().unwrap_or_else(|e| e.into_inner()).get(source) {
        return Ok(re.clone());
    }
    let re = regex::Regex::new(source).map_err(|e| e.to_string())?;
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(source, re.clone());
    Ok(re)
}

/// A `pattern = ".."`, compiled the first time a value is checked (once per process).
pub struct Pattern {
    source: &'static str,
    compiled: OnceLock<Result<regex::Regex, String>>,
}

impl Pattern {
    /// The pattern `source` (`regex` syntax; the derive has checked it).
    pub const fn new(source: &'static str) -> Self {
        Pattern {
            source,
            compiled: OnceLock::new(),
        }
    }

    fn regex(&self) -> Result<&regex::Regex, Violations> {
        self.compiled
            .get_or_init(|| compiled(self.source))
            .as_ref()
            .map_err(|e| format!("the pattern `{}` does not compile: {e}", self.source).into())
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

/// `validate(pattern = "..")`: the text matches (anchor it with `^...$` to match whole).
pub fn pattern<T: Textual + ?Sized>(
    v: &T,
    pattern: &Pattern,
    hidden: bool,
) -> Result<(), Violations> {
    let Some(text) = v.text() else { return Ok(()) };
    if pattern.regex()?.is_match(text) {
        return Ok(());
    }
    Err(format!(
        "{} does not match `{}`",
        named(v, text, hidden),
        pattern.source
    )
    .into())
}

/// `validate(url)`: an absolute URL, as the `url` crate (WHATWG) parses one.
pub fn url<T: Textual + ?Sized>(v: &T, hidden: bool) -> Result<(), Violations> {
    let Some(text) = v.text() else { return Ok(()) };
    match ::url::Url::parse(text) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{} is not a URL: {e}", named(v, text, hidden)).into()),
    }
}

/// `validate(one_of = ["eu-1", "us-1"])` on text: one of the strings, exactly.
pub fn one_of_text<T: Textual + ?Sized>(
    v: &T,
    allowed: &[&str],
    hidden: bool,
) -> Result<(), Violations> {
    let Some(text) = v.text() else { return Ok(()) };
    if allowed.contains(&text) {
        return Ok(());
    }
    let mut message = format!("{} is not one of {}", named(v, text, hidden), list(allowed));
    if !(hidden || v.secret())
        && let Some(near) = allowed
            .iter()
            .map(|a| (strsim::levenshtein(text, a), a))
            .filter(|(d, a)| *d > 0 && *d <= 2.max(a.len() / 4))
            .min_by_key(|(d, _)| *d)
            .map(|(_, a)| a)
    {
        message.push_str(&format!("; did you mean `{near}`?"));
    }
    Err(message.into())
}

/// `validate(one_of = [80, 443])` on any other type than text (a number, a `char`, an
/// enum): one of the values, compared with `==` (and printed with `Debug`).
pub fn one_of<T: PartialEq + fmt::Debug>(
    v: &T,
    allowed: &[T],
    hidden: bool,
) -> Result<(), Violations> {
    if allowed.contains(v) {
        return Ok(());
    }
    let value = if hidden {
        "the value (not shown)".to_owned()
    } else {
        format!("{v:?}")
    };
    Err(format!("{value} is not one of {}", list(allowed)).into())
}

fn list<B: fmt::Debug>(items: &[B]) -> String {
    items
        .iter()
        .map(|i| format!("`{}`", format!("{i:?}").trim_matches('"')))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `validate(with = path)`: the function's error, as its `Display` says.
///
/// The function's words may quote the value, so a value that may not be shown (a secret
/// field, a secret type, a value from a secret source) gets a fixed message instead.
pub fn with<E: Display>(r: Result<(), E>, hidden: bool) -> Result<(), Violations> {
    r.map_err(|e| match hidden {
        true => Violations::from(
            "refused (the rule's message is not shown: it may quote the value, which is secret)",
        ),
        false => e.to_string().into(),
    })
}

/// `validate(with_async = path)`: the future's error, as its `Display` says.
pub async fn with_async<E: Display>(
    f: impl std::future::Future<Output = Result<(), E>>,
    hidden: bool,
) -> Result<(), Violations> {
    with(f.await, hidden)
}

/// `validate_with = path`: the function's answer (`Violations`, or anything that converts
/// into them: a `String`, a `&str`, a `Vec<String>`).
pub fn struct_rule<E: Into<Violations>>(r: Result<(), E>) -> Result<(), Violations> {
    r.map_err(Into::into)
}

/// `validate_with_async = path`: the future's answer, as [`struct_rule`].
pub async fn struct_rule_async<E: Into<Violations>>(
    f: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), Violations> {
    f.await.map_err(Into::into)
}

/// `validate(garde)`: the value's [`garde::Validate`] impl, each message at its path below
/// the field (or struct).
#[cfg(feature = "garde")]
pub fn garde<T: garde::Validate + ?Sized>(v: &T) -> Result<(), Violations>
where
    T::Context: Default,
{
    match v.validate() {
        Ok(()) => Ok(()),
        Err(report) => report
            .iter()
            .map(|(path, error)| Violations::at(path.to_string(), error.message()))
            .collect::<Violations>()
            .into_result(),
    }
}

/// The `garde` feature is off: `validate(garde)` cannot be checked.
#[cfg(not(feature = "garde"))]
#[diagnostic::on_unimplemented(
    message = "`validate(garde)` needs the `garde` feature",
    label = "validated with `garde`",
    note = "enable it: `component_model_async = {{ version = \"..\", features = [\"garde\"] }}` (or `component_model`'s `garde` feature)"
)]
pub trait GardeFeature {}

/// `validate(garde)` without the `garde` feature: a compile error saying to enable it.
#[cfg(not(feature = "garde"))]
pub fn garde<T: GardeFeature + ?Sized>(_: &T) -> Result<(), Violations> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(r: Result<(), Violations>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn range_names_the_bound_it_crossed() {
        assert!(range(&8080u16, Some(1), Some(65535), false).is_ok());
        assert_eq!(
            message(range(&0u16, Some(1), Some(65535), false)),
            "0 is below the minimum of 1, outside 1..=65535"
        );
        assert_eq!(
            message(range(&70_000u32, None, Some(65535), false)),
            "70000 is above the maximum of 65535, outside ..=65535"
        );
        assert_eq!(
            message(range(&70_000u32, None, Some(65535), true)),
            "the value (not shown) is above the maximum of 65535, outside ..=65535"
        );
        assert!(range(&f64::NAN, Some(0.0), None, false).is_err());
        assert!(range(&None::<u16>, Some(1), None, false).is_ok());
        assert!(range(&Some(0u16), Some(1), None, false).is_err());
    }

    #[test]
    fn len_counts_characters_items_and_secret_bytes() {
        assert!(len("héllo", Some(5), Some(5), false).is_ok());
        assert_eq!(
            message(len("ab", Some(4), None, false)),
            "`ab` (2 characters) is shorter than 4"
        );
        assert_eq!(
            message(len(&vec![1, 2, 3], None, Some(2), false)),
            "a value of 3 items is longer than 2"
        );
        let secret = secrecy::SecretString::from("hunter2!!");
        let m = message(len(&secret, Some(12), None, false));
        assert_eq!(
            m,
            "a secret value of 9 bytes (not shown) is shorter than 12"
        );
        assert!(!m.contains("hunter2"));
        let m = message(len("hunter2", Some(12), None, true));
        assert!(!m.contains("hunter2"), "{m}");
        assert!(non_empty("", false).is_err());
        assert!(non_empty(&None::<String>, false).is_ok());
    }

    #[test]
    fn text_rules_hide_secrets() {
        static P: Pattern = Pattern::new("^[a-z][a-z0-9-]*$");
        assert!(pattern("eu-1", &P, false).is_ok());
        assert_eq!(
            message(pattern("EU", &P, false)),
            "`EU` does not match `^[a-z][a-z0-9-]*$`"
        );
        let secret = secrecy::SecretString::from("TopSecret");
        let m = message(pattern(&secret, &P, false));
        assert!(!m.contains("TopSecret") && m.contains("9 bytes"), "{m}");
        assert!(url("https://example.com/x", false).is_ok());
        assert!(message(url("htp//x", false)).starts_with("`htp//x` is not a URL"));
        assert_eq!(
            message(one_of_text("eu-2", &["eu-1", "us-1"], false)),
            "`eu-2` is not one of `eu-1`, `us-1`; did you mean `eu-1`?"
        );
        assert!(!message(one_of_text("eu-2", &["eu-1"], true)).contains("eu-2"));
        assert!(one_of(&443u16, &[80, 443], false).is_ok());
        assert_eq!(
            message(one_of(&8080u16, &[80, 443], false)),
            "8080 is not one of `80`, `443`"
        );
    }
}
