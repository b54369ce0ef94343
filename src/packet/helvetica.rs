//! Advance widths of the two standard-14 fonts the packet uses (text measurement and `/Widths`).
//!
//! Generated from the Adobe Core14 AFM files (crate pdf-core-14-font-afms 0.1.1) and the WinAnsiEncoding
//! glyph names (lopdf 0.47 src/encodings/mappings.rs). Advance widths in 1/1000 em for codes 32..=255.
//! Copyright (c) 1985, 1987, 1989, 1990, 1997 Adobe Systems Incorporated. All Rights Reserved.
//! Helvetica is a trademark of Linotype-Hell AG and/or its subsidiaries. (AFM license: APAFML, see MustRead.html)
/// Helvetica, WinAnsiEncoding, index = code - 32.
pub const HELVETICA_WIDTHS: [u16; 224] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // 0x20
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0x30
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // 0x40
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // 0x50
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // 0x60
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 350, // 0x70
    556, 350, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 350, 611, 350, // 0x80
    350, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 350, 500, 667, // 0x90
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333, // 0xA0
    400, 584, 333, 333, 333, 556, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611, // 0xB0
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278, // 0xC0
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611, // 0xD0
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278, // 0xE0
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500, // 0xF0
];
/// Helvetica-Bold, WinAnsiEncoding, index = code - 32.
pub const HELVETICA_BOLD_WIDTHS: [u16; 224] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, // 0x20
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, // 0x30
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778, // 0x40
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, // 0x50
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, // 0x60
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, 350, // 0x70
    556, 350, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 350, 611, 350, // 0x80
    350, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 350, 500, 667, // 0x90
    278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333, // 0xA0
    400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611, // 0xB0
    722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278, // 0xC0
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611, // 0xD0
    556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278, // 0xE0
    611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556, // 0xF0
];

#[cfg(test)]
mod tests {
    use super::*;

    /// `(code, width)` for every `C` line of an AFM file, and width by glyph name.
    fn afm(text: &str) -> (Vec<(u8, u16)>, std::collections::BTreeMap<String, u16>) {
        let mut by_code = Vec::new();
        let mut by_name = std::collections::BTreeMap::new();
        for line in text.lines().filter(|l| l.starts_with("C ")) {
            let field = |key: &str| {
                line.split(';')
                    .map(str::trim)
                    .find_map(|f| f.strip_prefix(key))
                    .map(str::trim)
            };
            let code: i32 = field("C ").unwrap().parse().unwrap();
            let wx: u16 = field("WX ").unwrap().parse().unwrap();
            let name = field("N ").unwrap().to_owned();
            if (32..=126).contains(&code) {
                by_code.push((code as u8, wx));
            }
            by_name.insert(name, wx);
        }
        (by_code, by_name)
    }

    /// The tables agree with Adobe's AFM metrics: ASCII by code (except 39 and 96, which
    /// StandardEncoding and WinAnsiEncoding name differently) and the WinAnsi-only glyphs by name.
    #[test]
    fn width_tables_match_the_adobe_metrics() {
        for (table, text) in [
            (&HELVETICA_WIDTHS, pdf_core_14_font_afms::HELVETICA),
            (
                &HELVETICA_BOLD_WIDTHS,
                pdf_core_14_font_afms::HELVETICA_BOLD,
            ),
        ] {
            let (by_code, by_name) = afm(text);
            for (code, wx) in by_code {
                if code == 39 || code == 96 {
                    continue;
                }
                assert_eq!(table[usize::from(code) - 32], wx, "code {code}");
            }
            for (code, name) in [
                (39u8, "quotesingle"),
                (96, "grave"),
                (0x80, "Euro"),
                (0x85, "ellipsis"),
                (0x91, "quoteleft"),
                (0x92, "quoteright"),
                (0x95, "bullet"),
                (0x96, "endash"),
                (0x97, "emdash"),
                (0xB7, "periodcentered"),
                (0xD7, "multiply"),
                (0xE9, "eacute"),
                (0xFC, "udieresis"),
            ] {
                let want = by_name
                    .get(name)
                    .copied()
                    // Euro is not in the 1997 AFMs; viewers use the font's own glyph.
                    .unwrap_or(table[usize::from(code) - 32]);
                assert_eq!(table[usize::from(code) - 32], want, "{name}");
            }
        }
    }
}
