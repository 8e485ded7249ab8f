//! [`Source::preflight`](crate::Source::preflight) of the `redis` source: every request
//! checked with commands that answer about a key, never with its value, all in ONE
//! pipeline (plus the `SCAN` steps of a subtree):
//!
//! * a string key: `TYPE` (`none` is [`Access::Missing`], `string` readable, any other
//!   type [`Access::Invalid`]: "is a list, the field reads a string");
//! * a member of a hash (`field = "port"`): `TYPE` (must be `hash`) and `HEXISTS`;
//! * a whole hash (`field = "*"`): `TYPE` and `HLEN` (more members than `max_keys` is
//!   invalid, as fetch would fail);
//! * a stream (`topic`): `TYPE` (must be `stream`);
//! * a subtree (`prefix`): `SCAN ... MATCH <prefix>*` as fetch does, counting the keys
//!   (names only; no `MGET`).
//!
//! `WRONGPASS`/`NOAUTH` are [`Access::Unauthenticated`]; `NOPERM` on a key (an ACL key
//! pattern) is [`Access::Denied`]; an ACL that refuses the check's command itself (`TYPE`)
//! leaves the request [`Access::Unchecked`] (fetch may still be allowed `GET`).

use super::*;
use crate::source::{Access, Probe};

/// What one request asks of the pipeline.
enum Check<'a> {
    /// `TYPE` of the key, which must be `expect` (`string`, `stream`).
    Type(&'a str, &'static str),
    /// `TYPE` (a hash) and `HEXISTS` of a member.
    Member(&'a str, &'a str),
    /// `TYPE` (a hash) and `HLEN`, at most `max_keys`.
    Hash(&'a str, usize),
    /// A `SCAN` of the prefix, apart.
    Prefix,
    /// Nothing to send: the probe is known.
    Known(Probe),
}

impl Check<'_> {
    /// How many commands it adds to the pipeline.
    fn commands(&self) -> usize {
        match self {
            Check::Type(..) => 1,
            Check::Member(..) | Check::Hash(..) => 2,
            Check::Prefix | Check::Known(_) => 0,
        }
    }
}

/// What a refused round trip (a connection that could not be opened, a handshake refused)
/// means for every request.
fn connection_probe(e: &SourceError) -> Probe {
    let text = e.to_string();
    match e.kind() {
        ErrorKind::Unauthorized if text.contains("NOPERM") => {
            Probe::new(Access::Denied).with_detail(text)
        }
        ErrorKind::Unauthorized => Probe::new(Access::Unauthenticated).with_detail(text),
        _ => Probe::from_error(e),
    }
}

impl RedisSource {
    /// What an error reply to one of a request's commands means.
    fn command_probe(&self, e: &RedisError, command: &str, key: &str) -> Probe {
        match e.code() {
            Some("NOAUTH" | "WRONGPASS") => {
                Probe::new(Access::Unauthenticated).with_detail(format!(
                    "redis at {} refused {command}: {} (the URL's credentials)",
                    self.address(),
                    e.code().unwrap_or_default()
                ))
            }
            Some("NOPERM") => {
                let detail = e.detail().unwrap_or_default();
                if detail.contains("to run the") {
                    Probe::unchecked(format!(
                        "the ACL of this user does not allow {command} (NOPERM), so `{key}` was not checked"
                    ))
                } else {
                    Probe::new(Access::Denied).with_detail(format!(
                        "the ACL of this user does not allow key `{key}` (NOPERM)"
                    ))
                }
            }
            _ => Probe::from_error(&self.error(e, &Exceeded::default(), command)),
        }
    }

    /// One [`Probe`] per request, in order (see the module docs).
    pub(super) async fn preflight_all(&self, requests: &[FetchRequest]) -> Vec<Probe> {
        let checks: Vec<Check<'_>> = requests.iter().map(check_of).collect();
        let mut pipe = ::redis::pipe();
        pipe.ignore_errors();
        for check in &checks {
            match *check {
                Check::Type(key, _) => {
                    pipe.cmd("TYPE").arg(key);
                }
                Check::Member(key, member) => {
                    pipe.cmd("TYPE").arg(key);
                    pipe.cmd("HEXISTS").arg(key).arg(member);
                }
                Check::Hash(key, _) => {
                    pipe.cmd("TYPE").arg(key);
                    pipe.cmd("HLEN").arg(key);
                }
                Check::Prefix | Check::Known(_) => {}
            }
        }
        let sent: usize = checks.iter().map(Check::commands).sum();
        let what = format!("the preflight's {sent} commands");
        let (replies, prefixes) = futures::join!(
            async {
                match sent {
                    0 => Ok(Vec::new()),
                    _ => self.round_trip(&pipe, &what).await,
                }
            },
            futures::future::join_all(
                requests
                    .iter()
                    .zip(&checks)
                    .filter(|(_, c)| matches!(c, Check::Prefix))
                    .map(|(r, _)| self.check_prefix(r))
            )
        );
        let mut replies = match replies {
            Ok(replies) => replies.into_iter(),
            Err(e) => {
                let probe = connection_probe(&e);
                return checks
                    .into_iter()
                    .map(|c| match c {
                        Check::Known(p) => p,
                        _ => probe.clone(),
                    })
                    .collect();
            }
        };
        let mut prefixes = prefixes.into_iter();
        // `None`: redis answered fewer commands than were sent.
        let mut next = || replies.next();
        checks
            .into_iter()
            .map(|check| match check {
                Check::Known(p) => p,
                Check::Prefix => prefixes
                    .next()
                    .unwrap_or_else(|| Probe::unchecked("not checked")),
                Check::Type(key, expect) => {
                    let ty = next();
                    self.typed(key, ty, expect, Probe::readable)
                }
                Check::Member(key, member) => {
                    let (ty, exists) = (next(), next());
                    self.typed(key, ty, "hash", || match exists {
                        Some(Ok(Value::Int(1) | Value::Boolean(true))) => Probe::readable()
                            .with_detail(format!("member `{member}` of hash `{key}` exists")),
                        Some(Ok(_)) => Probe::missing()
                            .with_detail(format!("no member `{member}` in hash `{key}`")),
                        Some(Err(e)) => self.command_probe(&e, "HEXISTS", key),
                        None => Probe::unchecked("redis answered fewer commands than were sent"),
                    })
                }
                Check::Hash(key, max_keys) => {
                    let (ty, len) = (next(), next());
                    self.typed(key, ty, "hash", || match len {
                        Some(Ok(Value::Int(n))) if usize::try_from(n).unwrap_or(0) > max_keys => {
                            Probe::new(Access::Invalid).with_detail(format!(
                                "hash `{key}` has {n} members, more than `max_keys` ({max_keys})"
                            ))
                        }
                        Some(Ok(Value::Int(n))) => Probe::readable().with_detail(format!(
                            "hash `{key}`: {n} member{}",
                            if n == 1 { "" } else { "s" }
                        )),
                        Some(Ok(_)) => Probe::readable(),
                        Some(Err(e)) => self.command_probe(&e, "HLEN", key),
                        None => Probe::unchecked("redis answered fewer commands than were sent"),
                    })
                }
            })
            .collect()
    }

    /// The probe of a key whose `TYPE` answered `ty`: `none` is missing, `expect` goes on
    /// with `then`, another type is invalid.
    fn typed(
        &self,
        key: &str,
        ty: Option<RedisResult<Value>>,
        expect: &str,
        then: impl FnOnce() -> Probe,
    ) -> Probe {
        let ty = match ty {
            Some(Ok(Value::SimpleString(t))) => t,
            Some(Ok(Value::BulkString(b))) => String::from_utf8_lossy(&b).into_owned(),
            Some(Ok(Value::Okay)) => "string".to_owned(),
            Some(Err(e)) => return self.command_probe(&e, "TYPE", key),
            _ => {
                return Probe::unchecked(format!(
                    "redis answered TYPE of `{key}` with something else than a type"
                ));
            }
        };
        match ty.as_str() {
            "none" => Probe::missing().with_detail(format!("no key `{key}`")),
            t if t == expect => then(),
            t => {
                let reads = match expect {
                    "string" => {
                        "the field reads a string (`field = \"...\"` reads a member of a hash)"
                    }
                    "hash" => "the field reads a member of a hash",
                    _ => "the field reads a stream",
                };
                let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                Probe::new(Access::Invalid)
                    .with_detail(format!("key `{key}` is {article} {t}, {reads}"))
            }
        }
    }

    /// A subtree's keys counted with `SCAN` as fetch finds them (names only): more than
    /// `max_keys` is invalid; none is readable (fetch answers an empty table).
    async fn check_prefix(&self, request: &FetchRequest) -> Probe {
        let tree = match Subtree::of(request) {
            Some(Ok(tree)) => tree,
            Some(Err(e)) => return Probe::from_error(&e),
            None => return Probe::new(Access::Invalid).with_detail("no `prefix`"),
        };
        let prefix = tree.prefix();
        let glob = glob_prefix(prefix);
        let what = format!("SCAN of prefix `{prefix}`");
        let mut keys: std::collections::BTreeSet<String> = Default::default();
        let mut cursor = "0".to_owned();
        loop {
            let mut pipe = ::redis::pipe();
            pipe.ignore_errors();
            pipe.cmd("SCAN")
                .arg(&cursor)
                .arg("MATCH")
                .arg(&glob)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let reply = match self.round_trip(&pipe, &what).await {
                Ok(replies) => replies.into_iter().next(),
                Err(e) => return connection_probe(&e),
            };
            let parts = match reply {
                Some(Ok(Value::Array(parts))) if parts.len() == 2 => parts,
                Some(Err(e)) => return self.command_probe(&e, "SCAN", prefix),
                _ => {
                    return Probe::unchecked(format!(
                        "redis answered the {what} with something else than a cursor and keys"
                    ));
                }
            };
            let mut parts = parts.into_iter();
            let (Some(next), Some(Value::Array(found))) = (parts.next(), parts.next()) else {
                return Probe::unchecked(format!("redis answered the {what} without a key list"));
            };
            keys.extend(found.iter().filter_map(text_of));
            if keys.len() > tree.max_keys() {
                return Probe::new(Access::Invalid).with_detail(format!(
                    "more than {} keys under prefix `{prefix}` (`max_keys`)",
                    tree.max_keys()
                ));
            }
            cursor = text_of(&next).unwrap_or_else(|| "0".to_owned());
            if cursor == "0" {
                break;
            }
        }
        match keys.len() {
            0 => Probe::readable().with_detail(format!(
                "no key under prefix `{prefix}`: the field reads an empty table"
            )),
            n => Probe::readable().with_detail(format!(
                "{n} key{} under prefix `{prefix}`",
                if n == 1 { "" } else { "s" }
            )),
        }
    }
}

/// What the pipeline asks about `request`.
fn check_of(request: &FetchRequest) -> Check<'_> {
    if let Some(topic) = request.topic() {
        return Check::Type(topic, "stream");
    }
    if Subtree::is_subtree(request) {
        return Check::Prefix;
    }
    if whole_hash(request) {
        let key = request.key().unwrap_or_default();
        return match Subtree::whole(request, format!("in hash `{key}`")) {
            Ok(tree) => Check::Hash(key, tree.max_keys()),
            Err(e) => Check::Known(Probe::from_error(&e)),
        };
    }
    match Read::of(request) {
        Ok(Read::String(key)) => Check::Type(key, "string"),
        Ok(Read::Member(key, member)) => Check::Member(key, member),
        Err(e) => Check::Known(
            Probe::new(Access::Invalid)
                .with_detail(e.message().map_or_else(|| e.to_string(), str::to_owned)),
        ),
    }
}
