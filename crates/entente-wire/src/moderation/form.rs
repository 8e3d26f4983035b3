//! The small parsers of a provider's moderators' web page: HTML form bodies
//! (`application/x-www-form-urlencoded`) and the `Cookie` header, and HTML
//! escaping. Anyone who can reach the listener can send these, so they are
//! bounded and never panic (`fuzz/fuzz_targets/moderation_form.rs`).

use percent_encoding::percent_decode;

/// Largest form body accepted.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// Most fields in a form.
pub const MAX_FIELDS: usize = 32;

/// Why a form body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the form is larger than {MAX_FORM_BYTES} bytes")]
    TooLarge,
    #[error("the form has more than {MAX_FIELDS} fields")]
    TooManyFields,
    #[error("a form field is not UTF-8 after decoding")]
    NotUtf8,
}

/// A decoded form: `name=value` pairs in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// The first value of `name`, or `""`.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// Parses an `application/x-www-form-urlencoded` body: `&`-separated `name=value`
/// pairs, `+` for space, percent escapes; a pair without `=` has an empty value.
pub fn parse_form(body: &[u8]) -> Result<Form, FormError> {
    if body.len() > MAX_FORM_BYTES {
        return Err(FormError::TooLarge);
    }
    let mut fields = Vec::new();
    for pair in body.split(|b| *b == b'&') {
        if pair.is_empty() {
            continue;
        }
        if fields.len() == MAX_FIELDS {
            return Err(FormError::TooManyFields);
        }
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        fields.push((decode_component(name)?, decode_component(value)?));
    }
    Ok(Form(fields))
}

fn decode_component(raw: &[u8]) -> Result<String, FormError> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let bytes: Vec<u8> = percent_decode(&plus_as_space).collect();
    String::from_utf8(bytes).map_err(|_| FormError::NotUtf8)
}

/// The value of cookie `name` in a `Cookie` header (`a=1; b=2`), if present.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (n, v) = part.trim().split_once('=')?;
        (n.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let f = parse_form(b"token=ab%20c&name=J+Doe&empty&x=%E2%9C%93").unwrap();
        assert_eq!(f.get("token"), "ab c");
        assert_eq!(f.get("name"), "J Doe");
        assert_eq!(f.get("empty"), "");
        assert_eq!(f.get("x"), "\u{2713}");
        assert_eq!(f.get("missing"), "");
        assert_eq!(parse_form(b"a=%FF"), Err(FormError::NotUtf8));
        assert_eq!(
            parse_form(&vec![b'a'; MAX_FORM_BYTES + 1]),
            Err(FormError::TooLarge)
        );
        let many = "a=1&".repeat(MAX_FIELDS + 1);
        assert_eq!(parse_form(many.as_bytes()), Err(FormError::TooManyFields));
        // A bad escape is kept literally, as browsers do.
        assert_eq!(parse_form(b"a=%zz").unwrap().get("a"), "%zz");
    }

    #[test]
    fn cookies() {
        assert_eq!(
            cookie("a=1; entente_mod=xyz; b=2", "entente_mod"),
            Some("xyz")
        );
        assert_eq!(cookie("entente_mod_x=1", "entente_mod"), None);
        assert_eq!(cookie("", "a"), None);
        assert_eq!(cookie(";;=;a", "a"), None);
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape(r#"<script>alert("x&'y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;&#39;y&quot;)&lt;/script&gt;"
        );
    }
}
