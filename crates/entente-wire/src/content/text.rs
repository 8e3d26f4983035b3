//! Finding the displayable text in a body.

use super::part::{Disposition, NestedPart, PartBody, PartSemantics};

/// `text/plain;charset=utf-8`: one of the two text types every MIMI client must accept.
pub const PLAIN_TEXT: &str = "text/plain;charset=utf-8";

/// `text/markdown;variant=GFM-MIMI`: GitHub Flavored Markdown without autolinks and
/// without raw HTML (the draft's "No HTML" extension: senders replace the `<` of any
/// HTML tag with `&lt;`; [`MimiContent::text`](super::MimiContent::text) leaves that to
/// the caller).
pub const MARKDOWN: &str = "text/markdown;variant=GFM-MIMI";

/// How a piece of text is meant to be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextFormat {
    /// `text/plain`.
    Plain,
    /// `text/markdown`, any variant. "Rendering Markdown as plain text is an acceptable
    /// form of support."
    Markdown,
    /// `text/html`: render only through a sanitiser, or not at all.
    Html,
}

/// One displayable text part of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextPart<'a> {
    /// How to render `text`.
    pub format: TextFormat,
    /// The text.
    pub text: &'a str,
    /// The part's language tags (may be empty).
    pub language: &'a str,
    /// The part's disposition: a reaction's text is the reaction.
    pub disposition: Disposition,
    /// The full content type, with parameters.
    pub content_type: &'a str,
}

impl NestedPart {
    /// The text parts to show, in order.
    ///
    /// Single parts count when their type is `text/plain`, `text/markdown` or
    /// `text/html` with a UTF-8 (or US-ASCII, or absent) charset and their content is
    /// UTF-8. A `chooseOne` multipart contributes its first alternative with any text,
    /// preferring one that is not only HTML; `singleUnit` and `processAll` contribute
    /// every part's text. Multiparts with unknown semantics, null parts and external
    /// parts contribute nothing.
    pub fn text_parts(&self) -> Vec<TextPart<'_>> {
        let mut out = Vec::new();
        collect(self, &mut out);
        out
    }
}

/// Recursion is bounded by [`MAX_PART_DEPTH`](super::MAX_PART_DEPTH), which every
/// `MultiPart` enforces.
fn collect<'a>(part: &'a NestedPart, out: &mut Vec<TextPart<'a>>) {
    match &part.body {
        PartBody::Null | PartBody::External(_) => {}
        PartBody::Single(single) => {
            let format = text_format(&single.content_type);
            if let (Some(format), Ok(text)) = (format, std::str::from_utf8(&single.content)) {
                out.push(TextPart {
                    format,
                    text,
                    language: &part.language,
                    disposition: part.disposition,
                    content_type: &single.content_type,
                });
            }
        }
        PartBody::Multi(multi) => match multi.semantics() {
            PartSemantics::ChooseOne => {
                let mut chosen = Vec::new();
                for alternative in multi.parts() {
                    let mut texts = Vec::new();
                    collect(alternative, &mut texts);
                    let html_only = texts.iter().all(|t| t.format == TextFormat::Html);
                    if !texts.is_empty() && (chosen.is_empty() || !html_only) {
                        chosen = texts;
                        if !html_only {
                            break;
                        }
                    }
                }
                out.extend(chosen);
            }
            PartSemantics::SingleUnit | PartSemantics::ProcessAll => {
                multi.parts().iter().for_each(|p| collect(p, out));
            }
            PartSemantics::Unknown(_) => {}
        },
    }
}

/// The text format of a content type, if it is text we can show as UTF-8.
fn text_format(content_type: &str) -> Option<TextFormat> {
    let mut fields = content_type.split(';');
    let media_type = fields.next()?.trim();
    let format = [
        ("text/plain", TextFormat::Plain),
        ("text/markdown", TextFormat::Markdown),
        ("text/html", TextFormat::Html),
    ]
    .into_iter()
    .find(|(name, _)| media_type.eq_ignore_ascii_case(name))?
    .1;
    for parameter in fields {
        let (name, value) = parameter.split_once('=')?;
        let value = value.trim().trim_matches('"');
        let utf8 = value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("us-ascii");
        if name.trim().eq_ignore_ascii_case("charset") && !utf8 {
            return None;
        }
    }
    Some(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_parsing() {
        assert_eq!(text_format(PLAIN_TEXT), Some(TextFormat::Plain));
        assert_eq!(text_format("text/plain"), Some(TextFormat::Plain));
        assert_eq!(text_format(MARKDOWN), Some(TextFormat::Markdown));
        assert_eq!(
            text_format("Text/HTML; charset=\"UTF-8\""),
            Some(TextFormat::Html)
        );
        assert_eq!(text_format("text/plain;charset=iso-8859-1"), None);
        assert_eq!(text_format("text/plain;charset"), None);
        assert_eq!(text_format("image/png"), None);
        assert_eq!(text_format(""), None);
    }
}
