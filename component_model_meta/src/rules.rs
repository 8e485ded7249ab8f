//! `validate(...)`: parsing of field and struct rules into [`Rule`]s, with the checks a
//! rule's own arguments need (bounds in order, a pattern that compiles, a non-empty
//! `one_of`). Whether a rule applies to the field's type is the runtime's traits' to say
//! (`component_model_async::rules`), spanned at the rule; the expansion is
//! `expand_rules.rs`.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::{Expr, Lit, LitStr};

use crate::ctxt::Ctxt;

/// Every rule `validate(...)` knows on a field, for "unknown rule" messages.
pub const FIELD_RULES: &[&str] = &[
    "range",
    "len",
    "pattern",
    "one_of",
    "non_empty",
    "url",
    "with",
    "with_async",
    "garde",
    "timeout",
];

/// What `validate(...)` knows on the struct.
pub const STRUCT_RULES: &[&str] = &["garde", "timeout"];

/// One rule, with the tokens it came from (for spans) and its name in messages.
#[derive(Clone)]
pub struct Rule {
    pub kind: RuleKind,
    /// The rule's name as written (`range`), for spans.
    pub span: Span,
    /// The rule as errors name it: `range 1..=65535`, `with_async is_unique`.
    pub name: String,
    /// `timeout` of the `validate(...)` it is in (async rules only).
    pub timeout: Option<Duration>,
}

#[derive(Clone)]
pub enum RuleKind {
    /// The bounds, boxed (an `Expr` is large).
    Range {
        min: Option<Box<Expr>>,
        max: Option<Box<Expr>>,
    },
    Len {
        min: Option<usize>,
        max: Option<usize>,
    },
    Pattern(LitStr),
    OneOfText(Vec<LitStr>),
    OneOf(Vec<Expr>),
    NonEmpty,
    Url,
    With(syn::Path),
    WithAsync(syn::Path),
    Garde,
}

impl Rule {
    pub fn is_async(&self) -> bool {
        matches!(self.kind, RuleKind::WithAsync(_))
    }
}

/// Tokens as short text for a rule's name (`- 5` → `-5`, `a :: B` → `a::B`).
fn text(tokens: &dyn ToTokens) -> String {
    let raw = tokens.to_token_stream().to_string();
    raw.replace(" :: ", "::")
        .replace("- ", "-")
        .replace(" . ", ".")
}

fn bounds(min: Option<String>, max: Option<String>) -> String {
    format!(
        "{}..{}",
        min.unwrap_or_default(),
        max.map(|m| format!("={m}")).unwrap_or_default()
    )
}

/// The integer value of a literal expression (`-5`, `1_000`), when it is one.
fn int_value(e: &Expr) -> Option<i128> {
    match e {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse().ok(),
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => int_value(expr).map(|v| -v),
        Expr::Group(g) => int_value(&g.expr),
        _ => None,
    }
}

/// Whether `name(...)` follows, with something inside the parentheses.
fn has_arguments(meta: &ParseNestedMeta<'_>) -> bool {
    let ahead = meta.input.fork();
    let inside = (|| -> syn::Result<bool> {
        let content;
        syn::parenthesized!(content in ahead);
        Ok(!content.is_empty())
    })();
    inside.unwrap_or(false)
}

/// A number literal's value (`-5`, `1_000`, `0.5`), when the bound is one: for checking
/// `min <= max` at compile time.
fn number(e: &Expr) -> Option<f64> {
    match e {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse().ok(),
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => number(expr).map(|v| -v),
        Expr::Group(g) => number(&g.expr),
        other => int_value(other).map(|v| v as f64),
    }
}

/// `min = .., max = ..` inside `range(...)` or `len(...)`; `None` (reported) when they
/// are wrong. Every argument's value is consumed, so the next rule is read.
fn bounds_of(
    cx: &Ctxt,
    m: &ParseNestedMeta<'_>,
    rule: &str,
    example: &str,
) -> syn::Result<Option<(Option<Expr>, Option<Expr>)>> {
    if !has_arguments(m) {
        crate::attr::skip_value(m)?;
        cx.syn_error(m.error(format!("`{rule}` takes bounds: `{example}`")));
        return Ok(None);
    }
    let (mut min, mut max) = (None, None);
    let mut ok = true;
    m.parse_nested_meta(|b| {
        let which = crate::attr::meta_name(&b);
        let slot = match which.as_str() {
            "min" => &mut min,
            "max" => &mut max,
            other => {
                crate::attr::skip_value(&b)?;
                cx.syn_error(b.error(format!(
                    "`{rule}` takes `min` and `max`, not `{other}`: `{example}`"
                )));
                ok = false;
                return Ok(());
            }
        };
        let e: Expr = b.value()?.parse()?;
        if slot.replace(e).is_some() {
            cx.syn_error(b.error(format!("duplicate `{which}`")));
            ok = false;
        }
        Ok(())
    })?;
    if !ok {
        return Ok(None);
    }
    if min.is_none() && max.is_none() {
        cx.syn_error(m.error(format!("`{rule}` needs `min`, `max` or both: `{example}`")));
        return Ok(None);
    }
    if let (Some(a), Some(b)) = (min.as_ref().and_then(number), max.as_ref().and_then(number))
        && a > b
    {
        cx.syn_error(m.error(format!(
            "`{rule}` is empty: `min` ({}) is above `max` ({})",
            text(min.as_ref().unwrap_or_else(|| unreachable!())),
            text(max.as_ref().unwrap_or_else(|| unreachable!()))
        )));
        return Ok(None);
    }
    Ok(Some((min, max)))
}

/// A bound of `len`: a whole number.
fn count(cx: &Ctxt, e: Option<Expr>) -> Result<Option<usize>, ()> {
    let Some(e) = e else { return Ok(None) };
    match &e {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse().map(Some).map_err(|err| cx.syn_error(err)),
        _ => {
            cx.error_spanned_by(
                &e,
                "a bound of `len` is a whole number of characters, items or bytes",
            );
            Err(())
        }
    }
}

/// `validate(...)` on a field (`on_struct`: on the struct), appended to `rules`; its
/// `timeout`, if it has one (on a field also set on its async rules). A rule whose own
/// arguments are wrong is reported and left out; the others are still read and kept, so
/// every error of the attribute is reported in one compile.
pub fn parse(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    on_struct: bool,
    rules: &mut Vec<Rule>,
) -> syn::Result<Option<(Duration, TokenStream)>> {
    if !has_arguments(meta) {
        crate::attr::skip_value(meta)?;
        cx.syn_error(meta.error(if on_struct {
            "`validate` lists rules: `#[component(validate(garde))]`, or name a function with `validate_with = path`"
        } else {
            "`validate` lists rules: `#[component(validate(range(min = 1, max = 65535)))]`"
        }));
        return Ok(None);
    }
    let first = rules.len();
    let mut timeout: Option<(Duration, TokenStream)> = None;
    meta.parse_nested_meta(|m| {
        // A problem of this rule alone: reported, the rule left out, the next one read.
        macro_rules! refuse {
            ($err:expr) => {{
                cx.syn_error($err);
                return Ok(());
            }};
        }
        let name = crate::attr::meta_name(&m);
        let span = m
            .path
            .to_token_stream()
            .into_iter()
            .next()
            .map_or_else(Span::call_site, |t| t.span());
        let known = if on_struct { STRUCT_RULES } else { FIELD_RULES };
        if !known.contains(&name.as_str()) {
            crate::attr::skip_value(&m)?;
            let mut msg = format!("unknown validation rule `{name}`");
            if on_struct && FIELD_RULES.contains(&name.as_str()) {
                msg = format!(
                    "`{name}` is a field rule: put `validate({name}...)` on a field; on the struct, name a function with `validate_with = path` (or `validate_with_async`)"
                );
            } else if let Some(s) = crate::symbol::suggest(&name, known) {
                msg.push_str(&format!("; did you mean `{s}`?"));
            } else {
                msg.push_str(&format!("; expected one of: {}", known.join(", ")));
            }
            refuse!(m.error(msg));
        }
        let rule = |kind, name: String| Rule {
            kind,
            span,
            name,
            timeout: None,
        };
        let made = match name.as_str() {
            "range" => {
                let Some((min, max)) =
                    bounds_of(cx, &m, "range", "range(min = 1, max = 65535)")?
                else {
                    return Ok(());
                };
                let name = format!(
                    "range {}",
                    bounds(min.as_ref().map(|e| text(e)), max.as_ref().map(|e| text(e)))
                );
                rule(
                    RuleKind::Range {
                        min: min.map(Box::new),
                        max: max.map(Box::new),
                    },
                    name,
                )
            }
            "len" => {
                let Some((min, max)) = bounds_of(cx, &m, "len", "len(min = 1, max = 64)")?
                else {
                    return Ok(());
                };
                let (Ok(min), Ok(max)) = (count(cx, min), count(cx, max)) else {
                    return Ok(());
                };
                let name = format!(
                    "len {}",
                    bounds(min.map(|n| n.to_string()), max.map(|n| n.to_string()))
                );
                rule(RuleKind::Len { min, max }, name)
            }
            "pattern" => {
                let lit = crate::attr::string(&m)?;
                // Compiled as the runtime compiles it (syntax and size limits alike).
                if let Err(e) = regex::Regex::new(&lit.value()) {
                    refuse!(syn::Error::new_spanned(
                        &lit,
                        format!("`pattern` is not a valid regular expression (`regex` syntax):\n{e}"),
                    ));
                }
                let name = format!("pattern {}", lit.value());
                rule(RuleKind::Pattern(lit), name)
            }
            "one_of" => {
                let Ok(value) = m.value() else {
                    refuse!(m.error("`one_of` expects a list: `one_of = [\"eu-1\", \"us-1\"]`"));
                };
                let expr: Expr = value.parse()?;
                let Expr::Array(array) = expr else {
                    refuse!(syn::Error::new_spanned(
                        expr,
                        "`one_of` expects a list in brackets: `one_of = [\"eu-1\", \"us-1\"]`"
                    ));
                };
                if array.elems.is_empty() {
                    refuse!(syn::Error::new_spanned(array, "`one_of` needs at least one value"));
                }
                let strings: Vec<LitStr> = array
                    .elems
                    .iter()
                    .filter_map(|e| match e {
                        Expr::Lit(syn::ExprLit {
                            lit: Lit::Str(s), ..
                        }) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                if strings.len() == array.elems.len() {
                    let name = format!(
                        "one_of [{}]",
                        strings
                            .iter()
                            .map(|s| format!("{:?}", s.value()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    rule(RuleKind::OneOfText(strings), name)
                } else if !strings.is_empty() {
                    refuse!(syn::Error::new_spanned(
                        array,
                        "`one_of` lists strings or values of the field's type, not both"
                    ));
                } else {
                    let items: Vec<Expr> = array.elems.iter().cloned().collect();
                    let name = format!(
                        "one_of [{}]",
                        items.iter().map(|e| text(e)).collect::<Vec<_>>().join(", ")
                    );
                    rule(RuleKind::OneOf(items), name)
                }
            }
            "non_empty" | "url" | "garde" => {
                if let Err(e) = crate::attr::flag(&m) {
                    refuse!(e);
                }
                let kind = match name.as_str() {
                    "non_empty" => RuleKind::NonEmpty,
                    "url" => RuleKind::Url,
                    _ => RuleKind::Garde,
                };
                rule(kind, name.clone())
            }
            "with" | "with_async" => {
                let p = crate::attr::function(&m)?;
                let name = format!("{name} {}", text(&p));
                match name.starts_with("with_async") {
                    true => rule(RuleKind::WithAsync(p), name),
                    false => rule(RuleKind::With(p), name),
                }
            }
            "timeout" => {
                let tokens = m.path.to_token_stream();
                let d = crate::attr::duration(&m)?;
                if d.is_zero() {
                    refuse!(m.error("`timeout` must be greater than zero"));
                }
                if timeout.replace((d, tokens)).is_some() {
                    refuse!(m.error("duplicate `timeout`"));
                }
                return Ok(());
            }
            _ => unreachable!("every known rule is handled"),
        };
        // The same rule twice would only say the same thing twice.
        if rules.iter().any(|r| r.name == made.name) {
            refuse!(m.error(format!("duplicate rule `{}`", made.name)));
        }
        rules.push(made);
        Ok(())
    })?;
    if let Some((d, tokens)) = &timeout {
        let group = &mut rules[first..];
        if !on_struct && !group.iter().any(Rule::is_async) {
            cx.error_spanned_by(
                tokens,
                "`timeout` bounds the async rules of its `validate(...)`; this one has none (add `with_async = path`)",
            );
        }
        for r in group.iter_mut() {
            r.timeout = Some(*d);
        }
    }
    Ok(timeout)
}
