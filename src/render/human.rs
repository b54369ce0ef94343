//! The terminal renderer: one line per gate with its time, then each finding pointing at the line that
//! must change and the line that holds the contract, then a one-line tally. Colour is emitted as ANSI
//! styles; the binary writes through `anstream`, which strips them when stdout is not a terminal or
//! `NO_COLOR` is set.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::Duration;

use anstyle::{AnsiColor, Style};

use crate::check::Outcome;
use crate::finding::{Finding, Location, Severity};
use crate::render::{Verdict, identity};
use crate::text::plural;

const RED: Style = AnsiColor::Red.on_default().bold();
const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
const CYAN: Style = AnsiColor::Cyan.on_default().bold();
const GREEN: Style = AnsiColor::Green.on_default().bold();
const BLUE: Style = AnsiColor::Blue.on_default().bold();
const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

fn sev_style(s: Severity) -> Style {
    match s {
        Severity::Error => RED,
        Severity::Warning => YELLOW,
        Severity::Note => CYAN,
    }
}

pub fn duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{} ms", ms.round() as u64)
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// Reads source lines for snippets, each file once.
#[derive(Default)]
pub struct Sources {
    files: HashMap<String, Option<Vec<String>>>,
}

impl Sources {
    fn line(&mut self, path: &str, line: u32) -> Option<String> {
        let lines = self.files.entry(path.to_owned()).or_insert_with(|| {
            std::fs::read_to_string(path)
                .ok()
                .map(|t| t.lines().map(str::to_owned).collect())
        });
        lines.as_ref()?.get(line.checked_sub(1)? as usize).cloned()
    }
}

/// The header line: tool, pipeline, versions.
pub fn header(outcome: &Outcome) -> String {
    format!(
        "{} {}{}\n",
        paint(BOLD, "plumbline"),
        env!("CARGO_PKG_VERSION"),
        identity(outcome)
    )
}

pub fn render(outcome: &Outcome, sources: &mut Sources) -> String {
    let mut s = header(outcome);
    let width = outcome
        .gates
        .iter()
        .map(|g| g.gate.len())
        .max()
        .unwrap_or(0);
    let summary_width = outcome
        .gates
        .iter()
        .filter(|g| g.skipped.is_none())
        .map(|g| g.summary.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(20, 64);
    for g in &outcome.gates {
        if let Some(why) = &g.skipped {
            let _ = writeln!(
                s,
                "  {} {:<width$}   {}",
                paint(DIM, "–"),
                g.gate,
                paint(DIM, &format!("skipped: {why}"))
            );
            continue;
        }
        let verdict = Verdict::of(g);
        let (mark, what) = verdict.parts();
        let mark = match verdict {
            Verdict::Errors(_) => paint(RED, mark),
            Verdict::Warnings(_) => paint(YELLOW, mark),
            _ => paint(GREEN, mark),
        };
        let _ = writeln!(
            s,
            "  {mark} {:<width$}   {:<summary_width$} {}",
            g.gate,
            what,
            paint(DIM, &duration(g.duration))
        );
    }
    if !outcome.findings.is_empty() {
        s.push('\n');
    }
    for f in &outcome.findings {
        finding(&mut s, f, sources);
        s.push('\n');
    }
    let c = outcome.counts();
    let staged = match outcome.staged_commands {
        Some((n, took)) => format!(
            " · {} on the staged tree (checked out in {})",
            plural(n, "command"),
            duration(took)
        ),
        None => String::new(),
    };
    let _ = writeln!(
        s,
        "{}, {}, {} · {}{staged} · {}",
        plural(c.errors, "error"),
        plural(c.warnings, "warning"),
        plural(c.notes, "note"),
        ran_and_skipped(outcome),
        duration(outcome.duration)
    );
    s
}

fn ran_and_skipped(outcome: &Outcome) -> String {
    let skipped = outcome.gates.iter().filter(|g| g.skipped.is_some()).count();
    let ran = plural(outcome.gates.len() - skipped, "gate");
    if skipped == 0 {
        ran
    } else {
        format!("{ran} · {skipped} skipped")
    }
}

/// The width (in characters) of the token starting at character `start` of `line`: a quoted string up
/// to its closing quote, else a run of name characters.
fn token_width(line: &str, start: usize) -> usize {
    let rest: Vec<char> = line.chars().skip(start).collect();
    match rest.first() {
        Some(&q) if q == '"' || q == '\'' => rest
            .iter()
            .skip(1)
            .position(|&c| c == q)
            .map_or(rest.len(), |i| i + 2),
        Some(_) => rest
            .iter()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
            .count()
            .max(1),
        None => 1,
    }
}

/// How many characters of a source line a snippet shows.
const SNIPPET_WIDTH: usize = 120;

/// `line` cut to [`SNIPPET_WIDTH`] characters around character `at` (the caret), with `…` where it was
/// cut, and how many characters the cut moved the caret left.
fn one_screen_line(line: &str, at: Option<usize>) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= SNIPPET_WIDTH {
        return (line.to_owned(), 0);
    }
    let start = at
        .map_or(0, |a| a.saturating_sub(SNIPPET_WIDTH / 3))
        .min(chars.len() - SNIPPET_WIDTH);
    let end = start + SNIPPET_WIDTH;
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push('…');
    }
    // The leading `…` takes the place of one character.
    (out, start.saturating_sub(usize::from(start > 0)))
}

/// `--> path:line` and, when the file is at hand, the source line; with a column, a caret line under
/// the token carries the label (as in the UX sketch), otherwise the label follows the path.
fn snippet(s: &mut String, loc: &Location, sources: &mut Sources, arrow: &str) {
    let text = loc
        .line
        .and_then(|line| sources.line(&loc.path, line).map(|t| (line, t)));
    let caret = loc.column.filter(|_| text.is_some());
    let _ = write!(s, "  {} {loc}", paint(BLUE, arrow));
    if let (Some(label), None) = (&loc.label, caret) {
        let _ = write!(s, "  {}", paint(DIM, &format!("({label})")));
    }
    s.push('\n');
    if let Some((line, text)) = text {
        // One screen line: a long line (a one-line JSON file, a wide CSV row) is cut around the caret.
        let (text, shift) =
            one_screen_line(text.trim_end(), caret.map(|c| c.saturating_sub(1) as usize));
        let caret = caret.map(|c| c - shift as u32);
        let n = line.to_string();
        let pad = " ".repeat(n.len());
        let _ = writeln!(s, "{pad} {}", paint(BLUE, "|"));
        let _ = writeln!(
            s,
            "{} {} {}",
            paint(BLUE, &n),
            paint(BLUE, "|"),
            text.trim_end()
        );
        match caret {
            Some(col) => {
                let start = col.saturating_sub(1) as usize;
                let carets = "^".repeat(token_width(&text, start));
                let label = loc
                    .label
                    .as_deref()
                    .map(|l| format!(" {l}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "{pad} {} {}{}",
                    paint(BLUE, "|"),
                    " ".repeat(start),
                    paint(BLUE, &format!("{carets}{label}"))
                );
            }
            None => {
                let _ = writeln!(s, "{pad} {}", paint(BLUE, "|"));
            }
        }
    }
}

/// One finding, rustc-style.
pub fn finding(s: &mut String, f: &Finding, sources: &mut Sources) {
    let style = sev_style(f.severity);
    let _ = writeln!(
        s,
        "{}{} {}",
        paint(style, &format!("{}[{}]", f.severity.as_str(), f.code)),
        paint(BOLD, ":"),
        paint(BOLD, &f.message)
    );
    if let Some(loc) = &f.location {
        snippet(s, loc, sources, "-->");
    }
    for r in &f.related {
        snippet(s, r, sources, ":::");
    }
    for n in &f.notes {
        let _ = writeln!(s, "  {} {n}", paint(BLUE, "= note:"));
    }
    if let Some(h) = &f.help {
        let _ = writeln!(s, "  {} {h}", paint(BLUE, "= help:"));
    }
    if let Some(d) = &f.diff {
        for line in d.lines() {
            let styled = if line.starts_with("+++") || line.starts_with("---") {
                paint(BOLD, line)
            } else if line.starts_with('+') {
                paint(GREEN, line)
            } else if line.starts_with('-') {
                paint(RED, line)
            } else if line.starts_with("@@") {
                paint(CYAN, line)
            } else {
                line.to_owned()
            };
            let _ = writeln!(s, "{styled}");
        }
    }
}

/// `--format human`.
pub struct Renderer;

impl crate::render::Render for Renderer {
    /// (The human report shows counts, not the verdict line: `fail_on` does not change it.)
    fn render(&self, outcome: &Outcome, _fail_on: Severity) -> String {
        render(outcome, &mut Sources::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn renders_gates_findings_and_tally() {
        let out = strip(&render(
            &crate::render::sample_outcome(),
            &mut Sources::default(),
        ));
        let expected = "\
plumbline 0.1.0 · momentum · profile pre-backtest
  ✗ feature-schema        1 error              3 ms
  ! docs-drift            1 warning            1.5 s
  – output-distribution   skipped: not configured: no `[slice]` in plumbline.toml

error[feature-order-mismatch]: the checkpoint has `vol_20` at index 1 where the code has `ret_5`
  --> no/such/features.py:9  (index 1)
  ::: checkpoints/m.pt  (checkpoint key `feature_cols`)
  = note: 2 of 14 positions differ
  = help: build rows by name

warning[docs-drift]: docs/C.md is out of date (block `features`)
  --> docs/C.md:33
--- a
+++ b
@@ -1 +1 @@
-x
+y

1 error, 1 warning, 0 notes · 2 gates · 1 skipped · 1.5 s
";
        assert_eq!(out, expected);
    }

    #[test]
    fn a_long_line_is_cut_to_one_screen_line_around_the_caret() {
        // A 30 KB one-line JSON file, the value at character 20,000.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        let line = format!("{{\"a\": \"{}\", \"key\": 7}}", "x".repeat(19_991));
        let at = line.find("\"key\"").unwrap();
        std::fs::write(&p, format!("{line}{}\n", " ".repeat(10_000))).unwrap();
        let mut s = String::new();
        let f =
            Finding::new(&crate::gates::feature_schema::FEATURE_ORDER_MISMATCH, "m").at(Location {
                column: Some(at as u32 + 1),
                label: Some("key".into()),
                ..Location::at(p.to_string_lossy(), 1)
            });
        finding(&mut s, &f, &mut Sources::default());
        let s = strip(&s);
        let shown = s.lines().find(|l| l.starts_with("1 | ")).unwrap();
        assert_eq!(
            shown.chars().count(),
            "1 | ".len() + SNIPPET_WIDTH + 1,
            "{s}"
        );
        assert!(
            shown.starts_with("1 | …xxx") && shown.ends_with("\"key\": 7}"),
            "{shown}"
        );
        let caret = s.lines().find(|l| l.contains('^')).unwrap();
        let col = caret.find('^').unwrap();
        assert_eq!(
            &shown[shown.char_indices().nth(col).unwrap().0..][..5],
            "\"key\"",
            "{s}"
        );
    }

    #[test]
    fn snippets_show_the_source_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.py");
        std::fs::write(&p, "a = 1\nCOLS = [\n    \"ret_5\",\n]\n").unwrap();
        let mut s = String::new();
        let f = Finding::new(&crate::gates::feature_schema::FEATURE_ORDER_MISMATCH, "m")
            .at(Location::at(p.to_string_lossy(), 3))
            .related(Location {
                column: Some(5),
                label: Some("index 0".into()),
                ..Location::at(p.to_string_lossy(), 3)
            })
            .related(Location {
                column: Some(1),
                label: Some("COLS".into()),
                ..Location::at(p.to_string_lossy(), 2)
            });
        finding(&mut s, &f, &mut Sources::default());
        let s = strip(&s);
        assert!(s.contains("3 |     \"ret_5\",\n  |\n"), "{s}");
        assert!(
            s.contains("f.py:3:5\n  |\n3 |     \"ret_5\",\n  |     ^^^^^^^ index 0\n"),
            "{s}"
        );
        assert!(
            s.contains("f.py:2:1\n  |\n2 | COLS = [\n  | ^^^^ COLS\n"),
            "{s}"
        );
    }

    #[test]
    fn colour_is_ansi_and_strippable() {
        let out = render(&crate::render::sample_outcome(), &mut Sources::default());
        assert!(
            out.contains("\x1b["),
            "styles are emitted; anstream strips them for pipes and NO_COLOR"
        );
    }
}
