//! Which fields may get a per-type impl (`Assign<T, _>`, `From<&S> for T`, ...).
//!
//! Two impls for types that could be equal after substituting generic parameters would
//! conflict (E0119). The rule, documented for users: a field gets a per-type impl only when
//! no other field's type can unify with it. Lifetimes are ignored (`&'a str` and `&'b str`
//! are the same type for this rule), a generic parameter unifies with any type, and two
//! paths unify when their last segments have the same name and their arguments unify.

use syn::{GenericArgument, Generics, PathArguments, Type};

#[derive(Debug, Clone)]
enum Shape {
    Var,
    Node(String, Vec<Shape>),
}

fn shape(ty: &Type, params: &[String]) -> Shape {
    match ty {
        Type::Paren(p) => shape(&p.elem, params),
        Type::Group(g) => shape(&g.elem, params),
        Type::Path(p) if p.qself.is_some() => Shape::Var,
        Type::Path(p) => {
            let first = p.path.segments.first().map(|s| s.ident.to_string());
            if let Some(first) = &first
                && params.contains(first)
            {
                // `T` or `T::Assoc`: could be anything.
                return Shape::Var;
            }
            let Some(last) = p.path.segments.last() else {
                return Shape::Node(String::new(), vec![]);
            };
            let mut children = Vec::new();
            if let PathArguments::AngleBracketed(args) = &last.arguments {
                for arg in &args.args {
                    match arg {
                        GenericArgument::Type(t) => children.push(shape(t, params)),
                        GenericArgument::Lifetime(_) => {}
                        other => children.push(Shape::Node(
                            quote::ToTokens::to_token_stream(other).to_string(),
                            vec![],
                        )),
                    }
                }
            }
            Shape::Node(last.ident.to_string(), children)
        }
        Type::Reference(r) => Shape::Node(
            if r.mutability.is_some() { "&mut" } else { "&" }.into(),
            vec![shape(&r.elem, params)],
        ),
        Type::Tuple(t) => Shape::Node(
            "()".into(),
            t.elems.iter().map(|e| shape(e, params)).collect(),
        ),
        Type::Array(a) => Shape::Node("[;]".into(), vec![shape(&a.elem, params)]),
        Type::Slice(s) => Shape::Node("[]".into(), vec![shape(&s.elem, params)]),
        Type::Ptr(p) => Shape::Node("*".into(), vec![shape(&p.elem, params)]),
        Type::ImplTrait(_) | Type::Infer(_) | Type::Macro(_) => Shape::Var,
        other => Shape::Node(quote::ToTokens::to_token_stream(other).to_string(), vec![]),
    }
}

fn may_unify(a: &Shape, b: &Shape) -> bool {
    match (a, b) {
        (Shape::Var, _) | (_, Shape::Var) => true,
        (Shape::Node(ha, ca), Shape::Node(hb, cb)) => {
            ha == hb && ca.len() == cb.len() && ca.iter().zip(cb).all(|(x, y)| may_unify(x, y))
        }
    }
}

fn contains_var(s: &Shape) -> bool {
    match s {
        Shape::Var => true,
        Shape::Node(_, c) => c.iter().any(contains_var),
    }
}

/// The names of the type parameters of `generics`.
pub fn type_params(generics: &Generics) -> Vec<String> {
    generics
        .type_params()
        .map(|p| p.ident.to_string())
        .collect()
}

/// For each type in `types`, whether it conflicts with another one (`true` = ambiguous).
pub fn ambiguous(types: &[&Type], generics: &Generics) -> Vec<bool> {
    let params = type_params(generics);
    let shapes: Vec<Shape> = types.iter().map(|t| shape(t, &params)).collect();
    (0..shapes.len())
        .map(|i| (0..shapes.len()).any(|j| i != j && may_unify(&shapes[i], &shapes[j])))
        .collect()
}

/// Whether the type mentions no generic type parameter at all.
pub fn is_concrete(ty: &Type, generics: &Generics) -> bool {
    !contains_var(&shape(ty, &type_params(generics)))
}

/// Whether the type is a bare generic parameter (or a reference/box of one), which the
/// orphan rules forbid as the `Self` type of `impl From<&S> for T`.
pub fn is_uncovered_param(ty: &Type, generics: &Generics) -> bool {
    let params = type_params(generics);
    match ty {
        Type::Paren(p) => is_uncovered_param(&p.elem, generics),
        Type::Group(g) => is_uncovered_param(&g.elem, generics),
        Type::Reference(r) => is_uncovered_param(&r.elem, generics),
        Type::Path(p) if p.qself.is_none() => {
            if p.path.segments.len() == 1 {
                let seg = &p.path.segments[0];
                if params.contains(&seg.ident.to_string()) {
                    return true;
                }
                if seg.ident == "Box"
                    && let PathArguments::AngleBracketed(args) = &seg.arguments
                    && let Some(GenericArgument::Type(t)) = args.args.first()
                {
                    return is_uncovered_param(t, generics);
                }
            }
            false
        }
        Type::Path(_) => true,
        _ => false,
    }
}

/// Whether `ty` is a standard type the derive can judge by name: a primitive, `String`,
/// or a `Vec`/`Option` of one. Every such type implements `Default` and none is a
/// `SecretValue` (that trait is the runtime's; a user cannot implement it for these), so
/// the generated code needs no autoref probe for it. A user type that shadows one of these
/// names fails the runtime's `probe::Plain` bound (a compile error asking for its path),
/// so it is never misjudged; a name in `params` (the struct's type parameters, from
/// [`type_params`]) is never judged.
pub fn is_plain_std(ty: &Type, params: &[String]) -> bool {
    const LEAVES: &[&str] = &[
        "bool", "char", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64",
        "i128", "isize", "f32", "f64", "String",
    ];
    const WRAPPERS: &[&str] = &["Vec", "Option"];
    let p = match ty {
        Type::Paren(p) => return is_plain_std(&p.elem, params),
        Type::Group(g) => return is_plain_std(&g.elem, params),
        Type::Path(p) => p,
        _ => return false,
    };
    if p.qself.is_some() || p.path.leading_colon.is_some() || p.path.segments.len() != 1 {
        return false;
    }
    let seg = &p.path.segments[0];
    let name = seg.ident.to_string();
    if params.contains(&name) {
        return false;
    }
    match &seg.arguments {
        PathArguments::None => LEAVES.contains(&name.as_str()),
        PathArguments::AngleBracketed(args) if WRAPPERS.contains(&name.as_str()) => {
            args.args.len() == 1
                && matches!(args.args.first(), Some(GenericArgument::Type(t)) if is_plain_std(t, params))
        }
        _ => false,
    }
}
