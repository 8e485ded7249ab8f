//! `validate(...)`: parsing of field and struct rules into [`Rule`]s, with the checks a
//! rule's own arguments need (bounds in order, a pattern that compiles, a non-empty
//! `one_of`). Whether a rule applies to the field's type is the runtime's traits' to say
//! (`component_model_async::rules`), spanned at the rule; the expansion is
//! `expand_rules.rs`.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::{Expr, Lit, LitInt, LitStr};

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

/// `validate(...)` on a field (`on_struct`: on the struct), appended to `rules`; its
/// `timeout`, if it has one (on a field also set on its async rules). A rule whose own
/// arguments are wrong is reported and left out; the others are kept.
pub fn parse(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    on_struct: bool,
    rules: &mut Vec<Rule>,
) -> syn::Result<Option<(Duration, TokenStream)>> {
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(if on_struct {
            "`validate` lists rules: `#[component(validate(garde))]`, or name a function with `validate_with = path`"
        } else {
            "`validate` lists rules: `#[component(validate(range(min = 1, max = 65535)))]`"
        }));
    }
    let first = rules.len();
    let mut timeout: Option<(Duration, TokenStream)> = None;
    meta.parse_nested_meta(|m| {
        let name = crate::attr::meta_name(&m);
        let span = m.path.to_token_stream().into_iter().next().map_or_else(Span::call_site, |t| t.span());
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
            return Err(m.error(msg));
        }
        let rule = |kind, name: String| Rule {
            kind,
            span,
            name,
            timeout: None,
        };
        match name.as_str() {
            "range" => {
                let (mut min, mut max) = (None, None);
                if !has_arguments(&m) {
                    crate::attr::skip_value(&m)?;
                    return Err(m.error("`range` takes bounds: `range(min = 1, max = 65535)`"));
                }
                m.parse_nested_meta(|b| {
                    let which = crate::attr::meta_name(&b);
                    let slot = match which.as_str() {
                        "min" => &mut min,
                        "max" => &mut max,
                        other => {
                            crate::attr::skip_value(&b)?;
                            return Err(b.error(format!(
                                "`range` takes `min` and `max`, not `{other}`: `range(min = 1, max = 65535)`"
                            )));
                        }
                    };
                    let e: Expr = b.value()?.parse()?;
                    if slot.replace(e).is_some() {
                        return Err(b.error(format!("duplicate `{which}`")));
                    }
                    Ok(())
                })?;
                if min.is_none() && max.is_none() {
                    return Err(m.error("`range` needs `min`, `max` or both: `range(min = 1, max = 65535)`"));
                }
                if let (Some(a), Some(b)) = (min.as_ref().and_then(int_value), max.as_ref().and_then(int_value))
                    && a > b
                {
                    return Err(m.error(format!("`range` is empty: `min` ({a}) is above `max` ({b})")));
                }
                let name = format!(
                    "range {}",
                    bounds(min.as_ref().map(|e| text(e)), max.as_ref().map(|e| text(e)))
                );
                rules.push(rule(
                    RuleKind::Range {
                        min: min.map(Box::new),
                        max: max.map(Box::new),
                    },
                    name,
                ));
            }
            "len" => {
                let (mut min, mut max) = (None, None);
                if !has_arguments(&m) {
                    crate::attr::skip_value(&m)?;
                    return Err(m.error("`len` takes bounds: `len(min = 1, max = 64)`"));
                }
                m.parse_nested_meta(|b| {
                    let which = crate::attr::meta_name(&b);
                    let slot = match which.as_str() {
                        "min" => &mut min,
                        "max" => &mut max,
                        other => {
                            crate::attr::skip_value(&b)?;
                            return Err(b.error(format!(
                                "`len` takes `min` and `max`, not `{other}`: `len(min = 1, max = 64)`"
                            )));
                        }
                    };
                    let lit: LitInt = b.value()?.parse().map_err(|e| {
                        syn::Error::new(e.span(), format!("`{which}` of `len` is a whole number of characters, items or bytes"))
                    })?;
                    let n: usize = lit.base10_parse()?;
                    if slot.replace(n).is_some() {
                        return Err(b.error(format!("duplicate `{which}`")));
                    }
                    Ok(())
                })?;
                if min.is_none() && max.is_none() {
                    return Err(m.error("`len` needs `min`, `max` or both: `len(min = 1, max = 64)`"));
                }
                if let (Some(a), Some(b)) = (min, max)
                    && a > b
                {
                    return Err(m.error(format!("`len` is empty: `min` ({a}) is above `max` ({b})")));
                }
                let name = format!("len {}", bounds(min.map(|n| n.to_string()), max.map(|n| n.to_string())));
                rules.push(rule(RuleKind::Len { min, max }, name));
            }
            "pattern" => {
                let lit = crate::attr::string(&m)?;
                match regex_syntax::Parser::new().parse(&lit.value()) {
                    Ok(_) => {
                        let name = format!("pattern {}", lit.value());
                        rules.push(rule(RuleKind::Pattern(lit), name));
                    }
                    Err(e) => cx.error_spanned_by(
                        &lit,
                        format!("`pattern` is not a valid regular expression (`regex` syntax):\n{e}"),
                    ),
                }
            }
            "one_of" => {
                let value = m.value().map_err(|_| {
                    m.error("`one_of` expects a list: `one_of = [\"eu-1\", \"us-1\"]`")
                })?;
                let expr: Expr = value.parse()?;
                let Expr::Array(array) = expr else {
                    return Err(syn::Error::new_spanned(expr, "`one_of` expects a list in brackets: `one_of = [\"eu-1\", \"us-1\"]`"));
                };
                if array.elems.is_empty() {
                    return Err(syn::Error::new_spanned(array, "`one_of` needs at least one value"));
                }
                let strings: Vec<LitStr> = array
                    .elems
                    .iter()
                    .filter_map(|e| match e {
                        Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                if strings.len() == array.elems.len() {
                    let name = format!(
                        "one_of [{}]",
                        strings.iter().map(|s| format!("{:?}", s.value())).collect::<Vec<_>>().join(", ")
                    );
                    rules.push(rule(RuleKind::OneOfText(strings), name));
                } else if !strings.is_empty() {
                    return Err(syn::Error::new_spanned(array, "`one_of` lists strings or values of the field's type, not both"));
                } else {
                    let items: Vec<Expr> = array.elems.iter().cloned().collect();
                    let name = format!(
                        "one_of [{}]",
                        items.iter().map(|e| text(e)).collect::<Vec<_>>().join(", ")
                    );
                    rules.push(rule(RuleKind::OneOf(items), name));
                }
            }
            "non_empty" | "url" | "garde" => {
                crate::attr::flag(&m)?;
                let kind = match name.as_str() {
                    "non_empty" => RuleKind::NonEmpty,
                    "url" => RuleKind::Url,
                    _ => RuleKind::Garde,
                };
                rules.push(rule(kind, name.clone()));
            }
            "with" => {
                let p = crate::attr::function(&m)?;
                let name = format!("with {}", text(&p));
                rules.push(rule(RuleKind::With(p), name));
            }
            "with_async" => {
                let p = crate::attr::function(&m)?;
                let name = format!("with_async {}", text(&p));
                rules.push(rule(RuleKind::WithAsync(p), name));
            }
            "timeout" => {
                let tokens = m.path.to_token_stream();
                let d = crate::attr::duration(&m)?;
                if d.is_zero() {
                    return Err(m.error("`timeout` must be greater than zero"));
                }
                if timeout.replace((d, tokens)).is_some() {
                    return Err(m.error("duplicate `timeout`"));
                }
            }
            _ => unreachable!("every known rule is handled"),
        }
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
