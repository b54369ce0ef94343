//! A small page layout over pdf-writer: A4 pages, a cursor running down the page, text in the PDF
//! standard-14 fonts (Helvetica, Helvetica-Bold, Courier; WinAnsiEncoding, nothing embedded, widths
//! written so every viewer lays text out as measured here), wrapped paragraphs, tables, and vector
//! drawing for the charts. Each text run is its own `BT … ET`, so text extraction sees one line per run.
//!
//! Deterministic by construction: objects are numbered in the order pages are made, numbers are written
//! by pdf-writer (ryu), the file ID is a hash of the content, and the only date is the one given.

use pdf_writer::{Buf, Content, Date, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use sha2::{Digest, Sha256};

use super::helvetica::{HELVETICA_BOLD_WIDTHS, HELVETICA_WIDTHS};

pub const PAGE_W: f32 = 595.276;
pub const PAGE_H: f32 = 841.89;
pub const MARGIN: f32 = 56.0;
pub const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
const TOP: f32 = PAGE_H - MARGIN;
/// Room kept for the footer.
const BOTTOM: f32 = MARGIN + 14.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Font {
    Regular,
    Bold,
    Mono,
}

impl Font {
    fn name(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"F1"),
            Font::Bold => Name(b"F2"),
            Font::Mono => Name(b"F3"),
        }
    }

    /// Advance width of one WinAnsi byte in 1/1000 em.
    fn advance(self, b: u8) -> u16 {
        let i = usize::from(b.max(32)) - 32;
        match self {
            Font::Regular => HELVETICA_WIDTHS[i],
            Font::Bold => HELVETICA_BOLD_WIDTHS[i],
            Font::Mono => 600,
        }
    }
}

/// Text as WinAnsiEncoding bytes. Characters outside it are spelled in ASCII where that reads the same
/// (`≤` as `<=`), `?` otherwise.
pub fn win_ansi(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' '..='~' | '\u{A0}'..='\u{FF}' => out.push(c as u8),
            '€' => out.push(0x80),
            '‚' => out.push(0x82),
            '…' => out.push(0x85),
            '‘' => out.push(0x91),
            '’' => out.push(0x92),
            '“' => out.push(0x93),
            '”' => out.push(0x94),
            '•' => out.push(0x95),
            '–' => out.push(0x96),
            '—' => out.push(0x97),
            '™' => out.push(0x99),
            '≤' => out.extend_from_slice(b"<="),
            '≥' => out.extend_from_slice(b">="),
            '→' => out.extend_from_slice(b"->"),
            'Δ' => out.extend_from_slice(b"delta "),
            '✓' => out.extend_from_slice(b"ok"),
            '✗' => out.extend_from_slice(b"x"),
            '\t' => out.push(b' '),
            _ => out.push(b'?'),
        }
    }
    out
}

/// Width of `s` in points.
pub fn width(font: Font, size: f32, s: &str) -> f32 {
    win_ansi(s)
        .iter()
        .map(|&b| f32::from(font.advance(b)))
        .sum::<f32>()
        * size
        / 1000.0
}

/// `s` cut to fit `max` points, with an ellipsis when cut.
pub fn fit(font: Font, size: f32, s: &str, max: f32) -> String {
    if width(font, size, s) <= max {
        return s.to_owned();
    }
    let mut out = String::new();
    for c in s.chars() {
        let candidate = format!("{out}{c}…");
        if width(font, size, &candidate) > max {
            break;
        }
        out.push(c);
    }
    out + "…"
}

/// Greedy word wrap to `max` points; a word longer than a line is split.
pub fn wrap(font: Font, size: f32, s: &str, max: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in s.split(' ') {
        let candidate = if line.is_empty() {
            word.to_owned()
        } else {
            format!("{line} {word}")
        };
        if width(font, size, &candidate) <= max {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        let mut rest = word.to_owned();
        while width(font, size, &rest) > max {
            let mut head = String::new();
            for c in rest.chars() {
                if width(font, size, &format!("{head}{c}")) > max {
                    break;
                }
                head.push(c);
            }
            if head.is_empty() {
                break;
            }
            rest = rest[head.len()..].to_owned();
            lines.push(head);
        }
        line = rest;
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// An RGB colour.
pub type Rgb = (f32, f32, f32);
pub const BLACK: Rgb = (0.0, 0.0, 0.0);
pub const GREY: Rgb = (0.45, 0.45, 0.45);
pub const LIGHT: Rgb = (0.85, 0.85, 0.85);
pub const BLUE: Rgb = (0.16, 0.38, 0.66);
pub const GREEN: Rgb = (0.12, 0.50, 0.25);
pub const RED: Rgb = (0.72, 0.15, 0.15);

/// The document being laid out.
pub struct Doc {
    pages: Vec<Content>,
    page: Content,
    /// The cursor: the top of the next block, in points from the bottom.
    pub y: f32,
    footer: String,
}

impl Doc {
    pub fn new(footer: String) -> Doc {
        Doc {
            pages: Vec::new(),
            page: Content::new(),
            y: TOP,
            footer,
        }
    }

    /// Start a new page.
    pub fn new_page(&mut self) {
        let done = std::mem::replace(&mut self.page, Content::new());
        self.pages.push(done);
        self.y = TOP;
    }

    /// Make sure `h` points fit below the cursor, else start a new page.
    pub fn need(&mut self, h: f32) {
        // On a fresh page a new page would not give more room.
        if self.y - h < BOTTOM && self.y < TOP {
            self.new_page();
        }
    }

    /// One line of text with its baseline at `(x, y)`.
    pub fn text_at(&mut self, x: f32, y: f32, font: Font, size: f32, color: Rgb, s: &str) {
        self.page
            .set_fill_rgb(color.0, color.1, color.2)
            .begin_text()
            .set_font(font.name(), size)
            .next_line(round(x), round(y))
            .show(Str(&win_ansi(s)))
            .end_text();
    }

    /// A line of text at the cursor, then move down.
    pub fn line(&mut self, font: Font, size: f32, color: Rgb, s: &str) {
        let lead = size * 1.35;
        self.need(lead);
        self.y -= lead;
        let y = self.y + size * 0.3;
        self.text_at(MARGIN, y, font, size, color, s);
    }

    pub fn space(&mut self, h: f32) {
        self.y -= h;
    }

    /// A section heading, kept with at least `keep` points of what follows.
    pub fn heading(&mut self, s: &str, keep: f32) {
        self.need(40.0 + keep);
        self.space(10.0);
        self.line(Font::Bold, 14.0, BLACK, s);
        self.rule(GREY);
        self.space(4.0);
    }

    pub fn subheading(&mut self, s: &str, keep: f32) {
        self.need(24.0 + keep);
        self.space(4.0);
        self.line(Font::Bold, 10.5, BLACK, s);
    }

    /// A horizontal rule under the cursor.
    pub fn rule(&mut self, color: Rgb) {
        self.space(3.0);
        self.stroke_line(MARGIN, self.y, PAGE_W - MARGIN, self.y, 0.6, color);
        self.space(3.0);
    }

    /// A wrapped paragraph.
    pub fn para(&mut self, font: Font, size: f32, s: &str) {
        for l in wrap(font, size, s, CONTENT_W) {
            self.line(font, size, BLACK, &l);
        }
        self.space(3.0);
    }

    /// Key–value lines (keys bold in a column of `key_w` points).
    pub fn pairs(&mut self, rows: &[(String, String)], size: f32, key_w: f32) {
        for (k, v) in rows {
            let lines = wrap(Font::Regular, size, v, CONTENT_W - key_w);
            for (i, l) in lines.iter().enumerate() {
                let lead = size * 1.45;
                self.need(lead);
                self.y -= lead;
                let y = self.y + size * 0.3;
                if i == 0 {
                    self.text_at(MARGIN, y, Font::Bold, size, BLACK, k);
                }
                self.text_at(MARGIN + key_w, y, Font::Regular, size, BLACK, l);
            }
        }
        self.space(4.0);
    }

    /// A table: a bold header row, a rule, one line per row; cells cut to their column. `right` marks
    /// right-aligned (numeric) columns. The header repeats on a new page.
    pub fn table(
        &mut self,
        header: &[&str],
        widths: &[f32],
        right: &[bool],
        rows: &[Vec<String>],
        size: f32,
    ) {
        let lead = size * 1.5;
        let draw_row = |doc: &mut Doc, cells: &[String], font: Font, color: Rgb| {
            doc.y -= lead;
            let y = doc.y + size * 0.35;
            let mut x = MARGIN;
            for (i, cell) in cells.iter().enumerate() {
                let w = widths[i];
                let text = fit(font, size, cell, w - 4.0);
                let tx = if right.get(i).copied().unwrap_or(false) {
                    x + w - 4.0 - width(font, size, &text)
                } else {
                    x
                };
                doc.text_at(tx, y, font, size, color, &text);
                x += w;
            }
        };
        let header_cells: Vec<String> = header.iter().map(|s| s.to_string()).collect();
        let header_row = |doc: &mut Doc| {
            draw_row(doc, &header_cells, Font::Bold, BLACK);
            let end = MARGIN + widths.iter().sum::<f32>();
            doc.stroke_line(MARGIN, doc.y, end, doc.y, 0.5, GREY);
        };
        self.need(lead * 3.0);
        header_row(self);
        for row in rows {
            if self.y - lead < BOTTOM {
                self.new_page();
                header_row(self);
            }
            let color = if row.first().is_some_and(|c| c.starts_with('!')) {
                RED
            } else {
                BLACK
            };
            let cells: Vec<String> = row
                .iter()
                .map(|c| c.strip_prefix('!').unwrap_or(c).to_owned())
                .collect();
            draw_row(self, &cells, Font::Regular, color);
        }
        self.space(6.0);
    }

    /// Preformatted lines in Courier, wrapped at the column the width allows.
    pub fn mono(&mut self, text: &str, size: f32) {
        let cols = (CONTENT_W / (0.6 * size)).floor() as usize;
        for raw in text.lines() {
            let chars: Vec<char> = raw.chars().collect();
            if chars.is_empty() {
                self.line(Font::Mono, size, BLACK, "");
                continue;
            }
            // The first line takes `cols` characters, continuations two fewer after their indent.
            let first = cols.max(3).min(chars.len());
            self.line(
                Font::Mono,
                size,
                BLACK,
                &chars[..first].iter().collect::<String>(),
            );
            for chunk in chars[first..].chunks(cols.max(3) - 2) {
                let s: String = chunk.iter().collect();
                self.line(Font::Mono, size, BLACK, &format!("  {s}"));
            }
        }
        self.space(4.0);
    }

    pub fn stroke_line(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, w: f32, c: Rgb) {
        self.page
            .set_line_width(w)
            .set_stroke_rgb(c.0, c.1, c.2)
            .move_to(round(x1), round(y1))
            .line_to(round(x2), round(y2))
            .stroke();
    }

    pub fn fill_rect(&mut self, x: f32, y: f32, w: f32, h: f32, c: Rgb) {
        self.page
            .set_fill_rgb(c.0, c.1, c.2)
            .rect(round(x), round(y), round(w), round(h))
            .fill_nonzero();
    }

    pub fn stroke_rect(&mut self, x: f32, y: f32, w: f32, h: f32, lw: f32, c: Rgb) {
        self.page
            .set_line_width(lw)
            .set_stroke_rgb(c.0, c.1, c.2)
            .rect(round(x), round(y), round(w), round(h))
            .stroke();
    }

    /// The finished PDF. `date` is the only date written (creation and modification).
    pub fn finish(mut self, title: &str, subject: &str, date: Date) -> Vec<u8> {
        self.new_page();
        let streams = footed(std::mem::take(&mut self.pages), &self.footer);
        let id = file_id(&streams, title);

        let catalog = Ref::new(1);
        let tree = Ref::new(2);
        let info = Ref::new(3);
        let fonts = [Ref::new(4), Ref::new(5), Ref::new(6)];
        let mut pdf = Pdf::new();
        pdf.set_file_id((id.clone(), id));
        pdf.catalog(catalog).pages(tree);
        pdf.document_info(info)
            .title(TextStr(title))
            .subject(TextStr(subject))
            .creator(TextStr("plumbline"))
            .producer(TextStr(concat!(
                "plumbline ",
                env!("CARGO_PKG_VERSION"),
                " (pdf-writer)"
            )))
            .creation_date(date)
            .modified_date(date);
        write_fonts(&mut pdf, fonts);
        let kids = write_pages(&mut pdf, tree, fonts, &streams);
        pdf.pages(tree)
            .kids(kids.iter().copied())
            .count(streams.len() as i32);
        pdf.finish()
    }
}

/// Each page's content stream, with its footer (`footer · page i of n`).
fn footed(pages: Vec<Content>, footer: &str) -> Vec<Buf> {
    let total = pages.len();
    let mut streams = Vec::with_capacity(total);
    for (i, mut c) in pages.into_iter().enumerate() {
        let label = format!("{footer} · page {} of {total}", i + 1);
        c.set_fill_rgb(GREY.0, GREY.1, GREY.2)
            .begin_text()
            .set_font(Font::Regular.name(), 7.5)
            .next_line(MARGIN, MARGIN - 18.0)
            .show(Str(&win_ansi(&label)))
            .end_text();
        streams.push(c.finish());
    }
    streams
}

/// The file ID: the first 16 bytes of the SHA-256 of the content streams and the title.
fn file_id(streams: &[Buf], title: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for s in streams {
        hasher.update(s.as_slice());
    }
    hasher.update(title.as_bytes());
    let digest = hasher.finalize();
    digest[..16].to_vec()
}

/// The three standard-14 fonts (Helvetica, Helvetica-Bold, Courier) as objects `fonts`, with their
/// widths.
fn write_fonts(pdf: &mut Pdf, fonts: [Ref; 3]) {
    for (r, (base, widths)) in fonts.iter().zip([
        ("Helvetica", Some(&HELVETICA_WIDTHS)),
        ("Helvetica-Bold", Some(&HELVETICA_BOLD_WIDTHS)),
        ("Courier", None),
    ]) {
        let mut f = pdf.type1_font(*r);
        f.base_font(Name(base.as_bytes()))
            .encoding_predefined(Name(b"WinAnsiEncoding"))
            .first_char(32)
            .last_char(255);
        match widths {
            Some(w) => f.widths(w.iter().map(|&x| f32::from(x))),
            None => f.widths(std::iter::repeat_n(600.0, 224)),
        };
        f.finish();
    }
}

/// One page object per content stream, under the page tree `tree`, using `fonts`: the pages'
/// references, in order.
fn write_pages(pdf: &mut Pdf, tree: Ref, fonts: [Ref; 3], streams: &[Buf]) -> Vec<Ref> {
    let mut kids = Vec::with_capacity(streams.len());
    let mut next = 7;
    for data in streams {
        let (page_id, content_id) = (Ref::new(next), Ref::new(next + 1));
        next += 2;
        pdf.stream(content_id, data);
        let mut page = pdf.page(page_id);
        page.parent(tree)
            .media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
            .contents(content_id);
        let mut res = page.resources();
        let mut fs = res.fonts();
        fs.pair(Font::Regular.name(), fonts[0]);
        fs.pair(Font::Bold.name(), fonts[1]);
        fs.pair(Font::Mono.name(), fonts[2]);
        fs.finish();
        res.finish();
        page.finish();
        kids.push(page_id);
    }
    kids
}

/// Coordinates to 0.01 pt: tidy numbers, the same on every machine.
fn round(v: f32) -> f32 {
    (v * 100.0).round() / 100.0
}

/// `2026-11-28T01:02:03Z` as a PDF date (UTC). `None` when it is not in that form.
pub fn date(rfc3339: &str) -> Option<Date> {
    let b = rfc3339.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| rfc3339.get(r)?.parse::<u16>().ok();
    Some(
        Date::new(n(0..4)?)
            .month(u8::try_from(n(5..7)?).ok()?)
            .day(u8::try_from(n(8..10)?).ok()?)
            .hour(u8::try_from(n(11..13)?).ok()?)
            .minute(u8::try_from(n(14..16)?).ok()?)
            .second(u8::try_from(n(17..19)?).ok()?)
            .utc_offset_hour(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_measured_with_the_fonts_widths() {
        // "Hi" in Helvetica: H 722 + i 222 → 0.944 em.
        assert!((width(Font::Regular, 10.0, "Hi") - 9.44).abs() < 1e-4);
        assert!((width(Font::Mono, 10.0, "Hi") - 12.0).abs() < 1e-4);
        assert_eq!(win_ansi("a≤b – é…"), b"a<=b \x96 \xe9\x85".to_vec());
    }

    #[test]
    fn wrapping_keeps_every_word_and_fits() {
        let s = "the quick brown fox jumps over the lazy dog ".repeat(8);
        let lines = wrap(Font::Regular, 10.0, s.trim(), 200.0);
        assert!(lines.len() > 3);
        assert!(lines.iter().all(|l| width(Font::Regular, 10.0, l) <= 200.0));
        assert_eq!(lines.join(" "), s.trim());
        let cut = fit(Font::Regular, 10.0, &s, 60.0);
        assert!(cut.ends_with('…') && width(Font::Regular, 10.0, &cut) <= 60.0);
    }

    #[test]
    fn manifest_dates_become_pdf_dates() {
        assert!(date("2026-11-28T01:02:03Z").is_some());
        assert!(date("2026-11-28 01:02:03").is_none());
        assert!(date("garbage").is_none());
    }
}
