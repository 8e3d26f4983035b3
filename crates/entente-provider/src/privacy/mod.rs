//! Metadata minimisation (`docs/PRIVACY.md`): what logs may say, and how long
//! stored data is kept ([`retention`]).
//!
//! **Logs carry no user, client, device or room identifiers** by default. Log
//! lines name domains, counts, endpoints and error kinds. Free text that may
//! quote identifiers (a room-policy refusal, a peer's error message, a URL in a
//! connection error) goes through [`redact`] first, and the request log
//! ([`RequestSpan`]) records the route template (`/v1/rooms/{room}/messages`),
//! never the request URI, whose path holds the ids. `[logging] identifiers =
//! true` adds the full URI to the request log, for debugging only.

pub mod retention;

use std::fmt;

use serde::{Deserialize, Serialize};

/// `[logging]`: what logs may contain.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// Log request URIs, which hold user, client and room identifiers. For
    /// debugging only: off by default.
    #[serde(default)]
    pub identifiers: bool,
}

/// What replaces the identifying part of an identifier.
const HIDDEN: &str = "…";

/// `text` with identifiers replaced: in `mimi://<domain>/<kind>/<id>` the id goes
/// (the domain and kind stay), also percent-encoded as in request paths; in
/// `name@domain` the name goes.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let Some((at, kind)) = next_identifier(rest) else {
            out.push_str(rest);
            break;
        };
        match kind {
            Found::Uri { scheme_len, sep } => {
                let (before, from) = rest.split_at(at);
                out.push_str(before);
                let (scheme, tail) = from.split_at(scheme_len);
                out.push_str(scheme);
                let run = identifier_run(tail);
                // ASCII lowercasing keeps byte offsets: `%2F` matches `%2f`.
                let lowered = run.to_ascii_lowercase();
                // Keep the domain and the kind segment (`u`, `d`, `r`): metadata
                // of the domain level, not of a person or a room.
                let mut kept = 0;
                for _ in 0..2 {
                    match lowered.get(kept..).and_then(|r| r.find(sep)) {
                        Some(i) => kept += i + sep.len(),
                        None => {
                            kept = run.len();
                            break;
                        }
                    }
                }
                out.push_str(run.get(..kept).unwrap_or(run));
                if kept < run.len() {
                    out.push_str(HIDDEN);
                }
                rest = tail.get(run.len()..).unwrap_or("");
            }
            Found::At { name_start } => {
                out.push_str(rest.get(..name_start).unwrap_or(""));
                out.push_str(HIDDEN);
                out.push('@');
                rest = rest.get(at + 1..).unwrap_or("");
            }
        }
    }
    out
}

enum Found {
    /// A MIMI URI at the offset; its scheme (`mimi://` or `mimi%3A%2F%2F`) is
    /// `scheme_len` bytes; path segments are separated by `sep`.
    Uri {
        scheme_len: usize,
        sep: &'static str,
    },
    /// An `@` at the offset, after a local part starting at `name_start`.
    At { name_start: usize },
}

/// The first identifier in `text`: its offset (of the URI, or of the `@`).
fn next_identifier(text: &str) -> Option<(usize, Found)> {
    let lower = text.to_ascii_lowercase();
    let uri = [("mimi://", "/"), ("mimi%3a%2f%2f", "%2f")]
        .into_iter()
        .filter_map(|(scheme, sep)| {
            lower.find(scheme).map(|i| {
                (
                    i,
                    Found::Uri {
                        scheme_len: scheme.len(),
                        sep,
                    },
                )
            })
        })
        .min_by_key(|(i, _)| *i);
    let at = text.char_indices().find_map(|(i, c)| {
        if c != '@' {
            return None;
        }
        let before = text.get(..i)?;
        let name_start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_name_char(*c))
            .last()
            .map(|(j, _)| j)?;
        let domain_follows = text
            .get(i + 1..)
            .and_then(|r| r.chars().next())
            .is_some_and(|c| c.is_ascii_alphanumeric());
        domain_follows.then_some((i, Found::At { name_start }))
    });
    match (uri, at) {
        (Some(u), Some(a)) => Some(if u.0 <= a.0 { u } else { a }),
        (u, a) => u.or(a),
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '%')
}

/// The identifier at the start of `text`: up to whitespace, a quote, a bracket
/// or punctuation that ends a clause.
fn identifier_run(text: &str) -> &str {
    let end = text
        .find(|c: char| {
            c.is_whitespace()
                || matches!(
                    c,
                    '"' | '\''
                        | '`'
                        | '<'
                        | '>'
                        | '('
                        | ')'
                        | '['
                        | ']'
                        | '{'
                        | '}'
                        | ','
                        | ';'
                        | ':'
                        | '?'
                        | '&'
                        | '#'
                )
        })
        .unwrap_or(text.len());
    text.get(..end).unwrap_or(text)
}

/// Displays a value with identifiers redacted ([`redact`]): for log fields,
/// `error = %privacy::redacted(&e)`.
pub fn redacted<T: fmt::Display + ?Sized>(value: &T) -> Redacted {
    Redacted(redact(&value.to_string()))
}

/// See [`redacted`].
pub struct Redacted(String);

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The request log's span (for `tower_http`'s `TraceLayer`): the method and the
/// route template, not the URI (whose path names users, clients and rooms),
/// unless `[logging] identifiers = true`.
#[derive(Debug, Clone, Copy)]
pub struct RequestSpan {
    pub identifiers: bool,
}

impl<B> tower_http::trace::MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> tracing::Span {
        let route = request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or("(no route)", |p| p.as_str());
        if self.identifiers {
            tracing::debug_span!("request", method = %request.method(), route,
                uri = %request.uri())
        } else {
            tracing::debug_span!("request", method = %request.method(), route)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_redacted_and_domains_kept() {
        let cases = [
            (
                "mimi://a.example/u/alice (role 2) lacks canAddOthers",
                "mimi://a.example/u/… (role 2) lacks canAddOthers",
            ),
            (
                "client mimi://a.example/d/alice/laptop: bad",
                "client mimi://a.example/d/…: bad",
            ),
            (
                "for url (https://127.0.0.1:9/mimi/v1/notify/mimi%3A%2F%2Fa.example%2Fr%2Fab12)",
                "for url (https://127.0.0.1:9/mimi/v1/notify/mimi%3A%2F%2Fa.example%2Fr%2F…)",
            ),
            ("bob@b.example is banned", "…@b.example is banned"),
            (
                "two: mimi://x.example/r/1, eve@y.example.",
                "two: mimi://x.example/r/…, …@y.example.",
            ),
            ("mimi://a.example", "mimi://a.example"),
            ("nothing here @ all", "nothing here @ all"),
            ("MIMI://A.example/u/Zed", "MIMI://A.example/u/…"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn redaction_leaves_no_identifier_behind() {
        let text = "mimi://a.example/u/zq1 mimi://a.example/d/zq1/dev9 \
                    mimi%3a%2f%2fa.example%2fr%2froomhex zq1@a.example";
        let out = redact(text);
        for secret in ["zq1", "dev9", "roomhex"] {
            assert!(!out.contains(secret), "{out}");
        }
        assert_eq!(out.matches("a.example").count(), 4, "{out}");
    }
}
