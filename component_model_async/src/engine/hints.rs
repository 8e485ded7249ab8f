//! "No source named …": the closest registered or built-in name (a typo), else how to
//! register it. The one place the engine reads the catalog of built-in backends.

use crate::sources::Sources;

/// For a name nothing is registered under: the closest registered or built-in name
/// (a typo), else how to register it (a built-in backend says how).
pub(super) fn unknown_source(sources: &Sources, name: &str) -> String {
    let registered = sources.names();
    let builtins = crate::fetchers::BUILTINS
        .iter()
        .flat_map(|b| b.names.iter().copied());
    let candidates = registered.iter().map(String::as_str).chain(builtins);
    let base = name.split(':').next().unwrap_or(name);
    let close = candidates
        .map(|c| (strsim::levenshtein(base, c), c))
        .filter(|(d, c)| *d > 0 && *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    let register = format!("register one with `Sources::new().register(\"{name}\", ...)`");
    match (close, crate::fetchers::builtin(name)) {
        (Some(c), _) if crate::fetchers::builtin(name).is_none() => {
            format!("did you mean `{c}`?")
        }
        (_, Some(b)) => format!("{register} ({})", b.hint),
        (_, None) => register,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_of_a_builtin_is_named_and_a_builtin_says_how_to_register_it() {
        let sources = Sources::new();
        assert_eq!(unknown_source(&sources, "consol"), "did you mean `consul`?");
        assert!(unknown_source(&sources, "consul").contains("ConsulSource"));
        assert!(unknown_source(&sources, "zzz_unheard_of").starts_with("register one"));
        assert_eq!(strsim::levenshtein("kitten", "sitting"), 3);
    }
}
