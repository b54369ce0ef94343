//! Generated blocks in Markdown: `<!-- plumbline:begin NAME -->` … `<!-- plumbline:end NAME -->`.
//! Everything outside the markers belongs to people and is never touched.

use crate::finding::Location;

pub const BEGIN: &str = "<!-- plumbline:begin ";
pub const END: &str = "<!-- plumbline:end ";

/// One generated block. Lines are 1-based; `body` is the text strictly between the marker lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub name: String,
    pub begin_line: u32,
    pub end_line: u32,
    pub body: String,
    /// The file uses CRLF line ends here; a rendered body must too.
    pub crlf: bool,
}

impl Block {
    /// `body` with this block's line ends.
    pub fn with_line_ends(&self, body: &str) -> String {
        if self.crlf {
            body.replace("\r\n", "\n").replace('\n', "\r\n")
        } else {
            body.to_owned()
        }
    }
}

/// Why the markers of a file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerError {
    pub line: u32,
    pub message: String,
}

fn marker<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let t = line.trim();
    t.strip_prefix(prefix)?.strip_suffix("-->").map(str::trim)
}

/// A fenced code block opener or closer (``` or ~~~, three or more), as CommonMark has them.
fn fence(line: &str) -> Option<(char, usize)> {
    let t = line.trim_start();
    if line.len() - t.len() > 3 {
        return None;
    }
    let c = t.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = t.chars().take_while(|x| *x == c).count();
    (n >= 3).then_some((c, n))
}

/// Find the blocks of a Markdown file. Unbalanced, nested, unnamed or duplicated markers are errors.
/// Markers inside fenced code blocks are text (a document may show how markers look).
pub fn parse(text: &str) -> Result<Vec<Block>, MarkerError> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut open: Option<(String, u32, usize, bool)> = None;
    let mut in_fence: Option<(char, usize)> = None;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let n = i as u32 + 1;
        let start = offset;
        offset += line.len();
        if let Some((c, len)) = in_fence {
            if fence(line).is_some_and(|(c2, len2)| c2 == c && len2 >= len) {
                in_fence = None;
            }
            continue;
        }
        if let Some(f) = fence(line) {
            in_fence = Some(f);
            continue;
        }
        let err = |message: String| Err(MarkerError { line: n, message });
        if let Some(name) = marker(line, BEGIN) {
            if name.is_empty() {
                return err("begin marker without a block name".into());
            }
            if let Some((other, at, _, _)) = &open {
                return err(format!(
                    "block `{name}` begins inside block `{other}` (opened at line {at})"
                ));
            }
            if blocks.iter().any(|b| b.name == name) {
                return err(format!("block `{name}` appears twice"));
            }
            open = Some((name.to_owned(), n, offset, line.ends_with("\r\n")));
        } else if let Some(name) = marker(line, END) {
            match open.take() {
                Some((open_name, at, body_start, crlf)) if open_name == name => {
                    blocks.push(Block {
                        name: open_name,
                        begin_line: at,
                        end_line: n,
                        body: text[body_start..start].to_owned(),
                        crlf,
                    });
                }
                Some((open_name, at, _, _)) => {
                    return err(format!(
                        "end of block `{name}` while block `{open_name}` (line {at}) is open"
                    ));
                }
                None => return err(format!("end of block `{name}` without a begin")),
            }
        } else if line.trim_start().starts_with("<!--")
            && (line.contains("plumbline:begin") || line.contains("plumbline:end"))
        {
            return err(format!(
                "malformed marker `{}` (expected `<!-- plumbline:begin NAME -->`)",
                line.trim()
            ));
        }
    }
    if let Some((name, at, _, _)) = open {
        return Err(MarkerError {
            line: at,
            message: format!("block `{name}` is never closed"),
        });
    }
    Ok(blocks)
}

/// Replace the bodies of the blocks `bodies` returns something for (with the file's own line ends),
/// leaving every other byte as it was.
pub fn rewrite(text: &str, bodies: &dyn Fn(&str) -> Option<String>) -> Result<String, MarkerError> {
    Ok(rewrite_parsed(text, &parse(text)?, bodies))
}

/// [`rewrite`] for blocks already parsed from `text`.
pub fn rewrite_parsed(
    text: &str,
    blocks: &[Block],
    bodies: &dyn Fn(&str) -> Option<String>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut offset = 0usize;
    let mut line_starts = vec![0usize];
    for line in text.split_inclusive('\n') {
        offset += line.len();
        line_starts.push(offset);
    }
    let mut copied = 0usize;
    for b in blocks {
        let Some(body) = bodies(&b.name) else {
            continue;
        };
        // Body spans from the start of the line after `begin` to the start of the `end` line.
        let body_start = line_starts[b.begin_line as usize];
        let body_end = line_starts[b.end_line as usize - 1];
        out.push_str(&text[copied..body_start]);
        if !out.ends_with('\n') {
            out.push_str(if b.crlf { "\r\n" } else { "\n" });
        }
        out.push_str(&b.with_line_ends(&body));
        copied = body_end;
    }
    out.push_str(&text[copied..]);
    out
}

pub fn location(path: &str, line: u32) -> Location {
    Location::at(path, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Title\n\n<!-- plumbline:begin a -->\nold a\n<!-- plumbline:end a -->\nprose\n<!-- plumbline:begin b -->\n<!-- plumbline:end b -->\n";

    #[test]
    fn finds_blocks_with_lines() {
        let b = parse(DOC).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(
            (
                b[0].name.as_str(),
                b[0].begin_line,
                b[0].end_line,
                b[0].body.as_str()
            ),
            ("a", 3, 5, "old a\n")
        );
        assert_eq!(b[1].body, "");
    }

    #[test]
    fn rewrites_only_block_bodies() {
        let out = rewrite(DOC, &|n| Some(format!("new {n}\n"))).unwrap();
        assert_eq!(
            out,
            "# Title\n\n<!-- plumbline:begin a -->\nnew a\n<!-- plumbline:end a -->\nprose\n<!-- plumbline:begin b -->\nnew b\n<!-- plumbline:end b -->\n"
        );
        let same = rewrite(DOC, &|_| None).unwrap();
        assert_eq!(same, DOC);
    }

    #[test]
    fn broken_markers_are_errors() {
        assert_eq!(
            parse("<!-- plumbline:begin a -->\n").unwrap_err().message,
            "block `a` is never closed"
        );
        assert_eq!(parse("x\n<!-- plumbline:end a -->\n").unwrap_err().line, 2);
        assert!(
            parse("<!-- plumbline:begin a -->\n<!-- plumbline:begin b -->\n")
                .unwrap_err()
                .message
                .contains("inside")
        );
        assert!(parse("<!-- plumbline:begin a -->\n<!-- plumbline:end a -->\n<!-- plumbline:begin a -->\n<!-- plumbline:end a -->\n").unwrap_err().message.contains("twice"));
        assert!(
            parse("<!-- plumbline:begin a\n")
                .unwrap_err()
                .message
                .contains("malformed")
        );
        assert!(
            parse("prose about `plumbline:begin` markers\n")
                .unwrap()
                .is_empty()
        );
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn fenced_examples_are_left_alone() {
        let doc = "intro\n````markdown\n<!-- plumbline:begin features -->\nexample\n<!-- plumbline:end features -->\n````\n<!-- plumbline:begin a -->\nold\n<!-- plumbline:end a -->\n";
        let b = parse(doc).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!((b[0].name.as_str(), b[0].begin_line), ("a", 7));
        let out = rewrite(doc, &|n| Some(format!("new {n}\n"))).unwrap();
        assert_eq!(out, doc.replace("old\n", "new a\n"));
    }

    #[test]
    fn crlf_files_keep_their_line_ends() {
        let doc = "x\r\n<!-- plumbline:begin a -->\r\nold\r\n<!-- plumbline:end a -->\r\ny\r\n";
        let b = parse(doc).unwrap();
        assert!(b[0].crlf);
        assert_eq!(b[0].body, "old\r\n");
        let out = rewrite(doc, &|_| Some("one\ntwo\n".into())).unwrap();
        assert_eq!(
            out,
            "x\r\n<!-- plumbline:begin a -->\r\none\r\ntwo\r\n<!-- plumbline:end a -->\r\ny\r\n"
        );
        assert_eq!(b[0].with_line_ends("one\n"), "one\r\n");
    }

    #[test]
    fn marker_at_end_of_file_without_newline() {
        let doc = "<!-- plumbline:begin a -->\n<!-- plumbline:end a -->";
        assert_eq!(
            rewrite(doc, &|_| Some("b\n".into())).unwrap(),
            "<!-- plumbline:begin a -->\nb\n<!-- plumbline:end a -->"
        );
        let doc = "<!-- plumbline:begin a --><!-- x -->\n";
        assert!(parse(doc).is_err() || parse(doc).unwrap().is_empty());
    }
}

#[cfg(test)]
mod fence_and_marker_tests {
    use super::*;

    const BLOCK: &str = "<!-- plumbline:begin a -->\nx\n<!-- plumbline:end a -->\n";

    #[test]
    fn what_opens_and_closes_a_fence() {
        // Three spaces of indentation still open a fence; four make an indented code line, not a fence.
        assert!(parse(&format!("   ```\n{BLOCK}```\n")).unwrap().is_empty());
        assert_eq!(parse(&format!("    ```\n{BLOCK}")).unwrap().len(), 1);
        // A fence closes only with the same character, at least as long.
        assert!(
            parse(&format!("~~~~\n{BLOCK}~~~\n```\n"))
                .unwrap()
                .is_empty()
        );
        assert_eq!(parse(&format!("```\n```\n{BLOCK}")).unwrap().len(), 1);
        assert!(
            parse(&format!("```\n~~~\n{BLOCK}")).unwrap().is_empty(),
            "~~~ does not close ```"
        );
        // Other repeated characters (a rule, an HTML comment) are not fences.
        assert_eq!(parse(&format!("---\n***\n<<<\n{BLOCK}")).unwrap().len(), 1);
    }

    #[test]
    fn an_end_marker_must_name_the_open_block() {
        let err = parse("<!-- plumbline:begin a -->\n<!-- plumbline:end b -->\n").unwrap_err();
        assert_eq!(
            (err.line, err.message.as_str()),
            (2, "end of block `b` while block `a` (line 1) is open")
        );
    }
}
