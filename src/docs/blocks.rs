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

/// Find the blocks of a Markdown file. Unbalanced, nested, unnamed or duplicated markers are errors.
pub fn parse(text: &str) -> Result<Vec<Block>, MarkerError> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut open: Option<(String, u32, usize)> = None;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let n = i as u32 + 1;
        let start = offset;
        offset += line.len();
        if let Some(name) = marker(line, BEGIN) {
            if name.is_empty() {
                return Err(MarkerError {
                    line: n,
                    message: "begin marker without a block name".into(),
                });
            }
            if let Some((other, at, _)) = &open {
                return Err(MarkerError {
                    line: n,
                    message: format!(
                        "block `{name}` begins inside block `{other}` (opened at line {at})"
                    ),
                });
            }
            if blocks.iter().any(|b| b.name == name) {
                return Err(MarkerError {
                    line: n,
                    message: format!("block `{name}` appears twice"),
                });
            }
            open = Some((name.to_owned(), n, offset));
        } else if let Some(name) = marker(line, END) {
            match open.take() {
                Some((open_name, at, body_start)) if open_name == name => {
                    blocks.push(Block {
                        name: open_name,
                        begin_line: at,
                        end_line: n,
                        body: text[body_start..start].to_owned(),
                    });
                }
                Some((open_name, at, _)) => {
                    return Err(MarkerError {
                        line: n,
                        message: format!(
                            "end of block `{name}` while block `{open_name}` (line {at}) is open"
                        ),
                    });
                }
                None => {
                    return Err(MarkerError {
                        line: n,
                        message: format!("end of block `{name}` without a begin"),
                    });
                }
            }
        } else if line.trim_start().starts_with("<!--")
            && (line.contains("plumbline:begin") || line.contains("plumbline:end"))
        {
            return Err(MarkerError {
                line: n,
                message: format!(
                    "malformed marker `{}` (expected `<!-- plumbline:begin NAME -->`)",
                    line.trim()
                ),
            });
        }
    }
    if let Some((name, at, _)) = open {
        return Err(MarkerError {
            line: at,
            message: format!("block `{name}` is never closed"),
        });
    }
    Ok(blocks)
}

/// Replace the bodies of the named blocks, leaving every other byte as it was.
pub fn rewrite(text: &str, bodies: &dyn Fn(&str) -> Option<String>) -> Result<String, MarkerError> {
    let blocks = parse(text)?;
    let mut out = String::with_capacity(text.len());
    let mut skipping = false;
    let mut idx = 0usize;
    for line in text.split_inclusive('\n') {
        if marker(line, BEGIN).is_some() {
            out.push_str(line);
            let block = &blocks[idx];
            if let Some(body) = bodies(&block.name) {
                if !line.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str(&body);
                skipping = true;
            }
            continue;
        }
        if marker(line, END).is_some() {
            idx += 1;
            skipping = false;
        }
        if !skipping {
            out.push_str(line);
        }
    }
    Ok(out)
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
