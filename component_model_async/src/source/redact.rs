//! Credentials kept out of messages: URLs with their passwords masked.

/// `scheme://user:password@host/...` with the password replaced by `***`, for messages.
///
/// ```
/// use component_model_async::source_support::redact_url;
///
/// assert_eq!(redact_url("postgres://app:s3cret@db:5432/test"), "postgres://app:***@db:5432/test");
/// assert_eq!(redact_url("https://example.org/x?y=1"), "https://example.org/x?y=1");
/// // Credentials in the query (`redis+unix:///s?pass=…`, `?token=…`) are masked too.
/// assert_eq!(redact_url("redis+unix:///run/redis.sock?db=1&pass=hunter2"), "redis+unix:///run/redis.sock?db=1&pass=***");
/// // A password with a raw `/`, `?`, `#` or `@`, or a URL without a scheme, is masked as well:
/// // everything up to the last `@` is taken for credentials.
/// assert_eq!(redact_url("postgres://app:pa/ss?x#y@db/test"), "postgres://app:***@db/test");
/// assert_eq!(redact_url("app:s3cret@nats:4222"), "app:***@nats:4222");
/// ```
pub fn redact_url(url: &str) -> String {
    // Everything up to the last `@` is credentials, whatever it holds: a password may
    // have a raw `/`, `?` or `#` (an invalid URL, but one a user writes, and one an error
    // about it shows). A `@` in a path or query makes this mask more than it must.
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let (masked, url) = match rest.rfind('@') {
        Some(at) if !scheme.is_empty() || rest[..at].contains(':') => {
            let userinfo = &rest[..at];
            let shown = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            (Some(format!("{scheme}{shown}@")), &rest[at + 1..])
        }
        _ => (None, url),
    };
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = match masked {
        Some(prefix) => format!("{prefix}{head}"),
        None => redact_userinfo(head),
    };
    if let Some(query) = query {
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret_param(name) => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
    }
    out
}

/// Query parameter names that carry credentials.
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "password",
        "passwd",
        "token",
        "secret",
        "api_key",
        "apikey",
        "key",
        "access_token",
        "auth",
    ]
    .contains(&name.as_str())
        || name.ends_with("password")
        || name.ends_with("token")
        || name.ends_with("secret")
}

/// `scheme://user:***@host...` for the part before the query.
fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let shown = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_owned()
            };
            format!("{}{}@{}", &url[..scheme_end + 3], shown, &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}
