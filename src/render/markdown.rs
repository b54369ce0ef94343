//! GitHub-flavoured Markdown for the job summary, the sticky pull-request comment and the check run's
//! summary: a verdict line a release manager can stop reading after, a table of gates with their times,
//! then the findings grouped by contract, each collapsible, with its lines and its diff.
//!
//! GitHub caps each place it is shown: a step summary at 1 MiB, a comment body at 65,536 characters, a
//! check run's summary at 65,535. The renderer keeps the verdict and the gate table whole and adds
//! findings while they fit, then says how many it left out and where the rest is; a finding is shown
//! whole or not at all (a long diff is cut at [`DIFF_LINES`] lines, which it says).

use std::fmt::Write;

use crate::check::Outcome;
use crate::finding::{ContractKind, Finding, Severity};
use crate::render::human::duration;
use crate::render::{Verdict, fence, identity};
use crate::text::{plural, thousands};

/// A step summary's cap (`$GITHUB_STEP_SUMMARY`), bytes.
pub const SUMMARY_BYTES: usize = 1 << 20;
/// An issue comment's cap, characters.
pub const COMMENT_CHARS: usize = 65_536;
/// A check run's `output.summary` cap, characters.
pub const CHECK_SUMMARY_CHARS: usize = 65_535;
/// The hidden line that marks plumbline's sticky comment (for the default check name).
pub const MARKER: &str = "<!-- plumbline:sticky -->";

/// The marker of the sticky comment of a check: one comment per check name, so two `plumbline ci` jobs
/// on one pull request (a matrix, two configs) keep a comment each.
pub fn marker(check_name: &str) -> String {
    if check_name == "plumbline" {
        MARKER.to_owned()
    } else {
        // Encoded so that no name can close the comment (`-->`) or collide with another.
        let name: String = check_name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        format!("<!-- plumbline:sticky:{name} -->")
    }
}
/// Diff lines shown per finding.
pub const DIFF_LINES: usize = 200;

/// How much text the destination takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Bytes(usize),
    Chars(usize),
}

impl Limit {
    fn cap(self) -> usize {
        match self {
            Limit::Bytes(n) | Limit::Chars(n) => n,
        }
    }

    fn size(self, s: &str) -> usize {
        match self {
            Limit::Bytes(_) => s.len(),
            Limit::Chars(_) => s.chars().count(),
        }
    }

    fn describe(self) -> String {
        match self {
            Limit::Bytes(n) if n == SUMMARY_BYTES => "a job summary holds at most 1 MiB".into(),
            Limit::Bytes(n) => format!("this text is limited to {n} bytes"),
            Limit::Chars(n) => format!("this text is limited to {} characters", thousands(n)),
        }
    }
}

/// What to render besides the outcome.
#[derive(Debug, Clone)]
pub struct Options {
    pub fail_on: Severity,
    pub limit: Limit,
    /// End with this marker (the sticky comment, [`marker`]).
    pub marker: Option<String>,
    /// Lines shown under the verdict, e.g. that annotations were left out or posting was not possible.
    pub notices: Vec<String>,
    /// Where every finding can be read, said after the note on what was cut (Markdown).
    pub elsewhere: Option<String>,
}

impl Options {
    pub fn new(fail_on: Severity, limit: Limit) -> Self {
        Options {
            fail_on,
            limit,
            marker: None,
            notices: Vec::new(),
            elsewhere: None,
        }
    }
}

/// The one line that answers "can I merge?".
pub fn verdict_line(outcome: &Outcome, fail_on: Severity) -> String {
    let c = outcome.counts();
    let mut s = String::from("plumbline · ");
    s.push_str(if outcome.fails(fail_on) {
        "✗ failed"
    } else {
        "✓ passed"
    });
    let _ = write!(
        s,
        " · {} · {}",
        plural(c.errors, "error"),
        plural(c.warnings, "warning")
    );
    if c.notes > 0 {
        let _ = write!(s, " · {}", plural(c.notes, "note"));
    }
    s.push_str(&identity(outcome));
    s
}

pub fn render(outcome: &Outcome, opts: &Options) -> String {
    let mut head = format!("### {}\n\n", verdict_line(outcome, opts.fail_on));
    for n in &opts.notices {
        let _ = writeln!(head, "> {}\n", cell(n));
    }
    head.push_str("| gate | verdict | time |\n|---|---|---|\n");
    for g in &outcome.gates {
        let (mark, what) = Verdict::of(g).parts();
        let time = match g.skipped {
            Some(_) => String::new(),
            None => duration(g.duration),
        };
        let _ = writeln!(head, "| {} | {mark} {} | {time} |", g.gate, cell(&what));
    }
    if let Some(c) = &outcome.changes {
        head.push_str(&changes_table(c));
    }

    let tail = match &opts.marker {
        Some(m) => format!("\n{m}\n"),
        None => String::new(),
    };
    // Room kept for the note on what was cut and the marker.
    let reserve = 600 + opts.limit.size(&tail);
    let budget = opts.limit.cap().saturating_sub(reserve);

    let mut body = String::new();
    let mut shown = 0;
    let mut heading: Option<ContractKind> = None;
    let ordered = grouped(&outcome.findings);
    for f in &ordered {
        let mut block = String::new();
        if heading != Some(f.contract()) {
            let n = ordered
                .iter()
                .filter(|g| g.contract() == f.contract())
                .count();
            let _ = write!(
                block,
                "\n#### {} contract · {}\n\n",
                f.contract().as_str(),
                plural(n, "finding")
            );
        }
        block.push_str(&details(f));
        if opts.limit.size(&head) + opts.limit.size(&body) + opts.limit.size(&block) > budget {
            break;
        }
        heading = Some(f.contract());
        body.push_str(&block);
        shown += 1;
    }
    let mut s = head;
    s.push_str(&body);
    let cut = ordered.len() - shown;
    if cut > 0 {
        let _ = write!(
            s,
            "\n> **{} of {} not shown here** ({}).",
            thousands(cut),
            plural(ordered.len(), "finding"),
            opts.limit.describe()
        );
        match &opts.elsewhere {
            Some(r) => {
                let _ = writeln!(s, " {r}");
            }
            None => s.push('\n'),
        }
    }
    s.push_str(&tail);
    s
}

/// The contract changes against the base: what a reviewer must approve, shown even when all passes.
fn changes_table(c: &crate::changes::Changes) -> String {
    if c.changes.is_empty() {
        return format!("\n**No contract changes against {}.**\n", c.base);
    }
    let mut s = format!(
        "\n**Contract changes against {}**\n\n| rule | change | severity |\n|---|---|---|\n",
        c.base
    );
    for ch in &c.changes {
        let verdict = if ch.accepted {
            "accepted breaking".to_owned()
        } else {
            ch.severity.as_str().to_owned()
        };
        let _ = writeln!(s, "| {} | {} | {verdict} |", ch.rule, cell(&ch.change));
    }
    s
}

/// Findings grouped by contract (in the contracts' order), errors first within a contract.
fn grouped(findings: &[Finding]) -> Vec<&Finding> {
    let mut v: Vec<&Finding> = findings.iter().collect();
    v.sort_by(|a, b| {
        a.contract()
            .cmp(&b.contract())
            .then(b.severity.cmp(&a.severity))
    });
    v
}

fn mark(s: Severity) -> &'static str {
    match s {
        Severity::Error => "✗",
        Severity::Warning => "!",
        Severity::Note => "ℹ",
    }
}

/// One finding as a collapsible block.
fn details(f: &Finding) -> String {
    let mut s = format!(
        "<details><summary>{} {} <code>{}</code>",
        mark(f.severity),
        f.severity.as_str(),
        html(f.code.id)
    );
    if let Some(loc) = &f.location {
        let _ = write!(s, " · <code>{}</code>", html(&loc.to_string()));
    }
    let first = f.message.lines().next().unwrap_or_default();
    let _ = write!(s, " — {}</summary>\n\n", inline_html(first));
    let mut sections = vec![f.message.clone()];
    let mut list = Vec::new();
    for loc in f
        .location
        .iter()
        .filter(|l| l.label.is_some())
        .chain(&f.related)
    {
        match &loc.label {
            Some(label) => list.push(format!("- `{loc}` — {label}")),
            None => list.push(format!("- `{loc}`")),
        }
    }
    list.extend(f.notes.iter().map(|n| format!("- {n}")));
    if !list.is_empty() {
        sections.push(list.join("\n"));
    }
    if let Some(h) = &f.help {
        sections.push(format!("**help:** {h}"));
    }
    if let Some(d) = &f.diff {
        let lines: Vec<&str> = d.lines().collect();
        let fence = fence(d);
        let shown: Vec<&str> = lines.iter().take(DIFF_LINES).copied().collect();
        sections.push(format!("{fence}diff\n{}\n{fence}", shown.join("\n")));
        if lines.len() > DIFF_LINES {
            sections.push(format!(
                "(diff cut at {DIFF_LINES} of {} lines)",
                thousands(lines.len())
            ));
        }
    }
    s.push_str(&sections.join("\n\n"));
    s.push_str("\n\n</details>\n");
    s
}

/// A table cell: no line breaks, `|` escaped.
fn cell(s: &str) -> String {
    s.replace('\n', " ").replace('|', "\\|")
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text for inside HTML (`<summary>`), where Markdown is not rendered: escaped, with `code` spans kept.
fn inline_html(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    if parts.len().is_multiple_of(2) {
        // An unpaired backtick: leave them all as text.
        return html(s);
    }
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i % 2 == 1 {
                format!("<code>{}</code>", html(p))
            } else {
                html(p)
            }
        })
        .collect()
}

/// `--format markdown`.
pub struct Renderer;

impl crate::render::Render for Renderer {
    fn render(&self, outcome: &Outcome, fail_on: Severity) -> String {
        render(outcome, &Options::new(fail_on, Limit::Bytes(SUMMARY_BYTES)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Location;

    #[test]
    fn verdict_table_and_grouped_findings() {
        let o = crate::render::sample_outcome();
        let mut opts = Options::new(Severity::Error, Limit::Chars(COMMENT_CHARS));
        opts.marker = Some(marker("plumbline"));
        let md = render(&o, &opts);
        let expected = "\
### plumbline · ✗ failed · 1 error · 1 warning · momentum · profile pre-backtest

| gate | verdict | time |
|---|---|---|
| feature-schema | ✗ 1 error | 3 ms |
| docs-drift | ! 1 warning | 1.5 s |
| output-distribution | – skipped: not configured: no `[slice]` in plumbline.toml |  |

#### feature-vector contract · 1 finding

<details><summary>✗ error <code>feature-order-mismatch</code> · <code>no/such/features.py:9</code> — the checkpoint has <code>vol_20</code> at index 1 where the code has <code>ret_5</code></summary>

the checkpoint has `vol_20` at index 1 where the code has `ret_5`

- `no/such/features.py:9` — index 1
- `checkpoints/m.pt` — checkpoint key `feature_cols`
- 2 of 14 positions differ

**help:** build rows by name

</details>

#### docs contract · 1 finding

<details><summary>! warning <code>docs-drift</code> · <code>docs/C.md:33</code> — docs/C.md is out of date (block <code>features</code>)</summary>

docs/C.md is out of date (block `features`)

```diff
--- a
+++ b
@@ -1 +1 @@
-x
+y
```

</details>

<!-- plumbline:sticky -->
";
        assert_eq!(md, expected);
    }

    fn many(n: usize, diff_lines: usize) -> Outcome {
        let mut o = crate::render::sample_outcome();
        let code = crate::render::sample_codes()[0];
        let diff: String = (0..diff_lines).map(|i| format!("+line {i}\n")).collect();
        o.findings = (0..n)
            .map(|i| {
                Finding::new(code, format!("finding {i} <b>"))
                    .at(Location::at("a.py", i as u32 + 1))
                    .diff(diff.clone())
            })
            .collect();
        o
    }

    #[test]
    fn trimmed_under_each_cap_with_a_note_on_what_was_cut() {
        let o = many(2_000, 100);
        for limit in [
            Limit::Chars(COMMENT_CHARS),
            Limit::Bytes(SUMMARY_BYTES),
            Limit::Chars(CHECK_SUMMARY_CHARS),
        ] {
            let mut opts = Options::new(Severity::Error, limit);
            opts.marker = Some(MARKER.into());
            opts.elsewhere = Some("Every finding is in the report `plumbline-report.json`.".into());
            let md = render(&o, &opts);
            assert!(limit.size(&md) <= limit.cap(), "{limit:?}: {}", md.len());
            let shown = md.matches("<details>").count();
            assert!(shown > 10 && shown < 2_000, "{limit:?}: {shown}");
            assert!(
                md.contains(&format!(
                    "> **{} of 2,000 findings not shown here**",
                    thousands(2_000 - shown)
                )),
                "{limit:?}"
            );
            assert!(md.contains("Every finding is in the report `plumbline-report.json`."));
            assert!(
                md.ends_with(&format!("{MARKER}\n")),
                "the marker survives trimming"
            );
            // The verdict and every gate row are never cut.
            assert!(md.starts_with("### plumbline · ✗ failed · 2,000 errors"));
            assert!(md.contains("| output-distribution |"));
            // HTML in messages is text, not markup.
            assert!(md.contains("finding 0 &lt;b&gt;</summary>"));
        }
        let all = render(
            &many(3, 30),
            &Options::new(Severity::Error, Limit::Bytes(SUMMARY_BYTES)),
        );
        assert!(!all.contains("not shown here"));
    }

    #[test]
    fn long_diffs_are_cut_and_say_so() {
        let md = render(
            &many(1, 1_000),
            &Options::new(Severity::Error, Limit::Bytes(SUMMARY_BYTES)),
        );
        assert!(md.contains("+line 199\n```"));
        assert!(!md.contains("+line 200\n"));
        assert!(md.contains("(diff cut at 200 of 1,000 lines)"));
    }

    #[test]
    fn contract_changes_are_a_table_even_when_everything_passes() {
        use crate::changes::{Change, Changes};
        let mut o = crate::render::sample_outcome();
        o.findings.clear();
        o.changes = Some(Changes {
            base: "`main` (1a2b3c4d5e6f)".into(),
            changes: vec![
                Change {
                    rule: "feature-added".into(),
                    change: "`vz_21` added at index 14 (model-version bumped 3 → 4)".into(),
                    accepted: true,
                    severity: Severity::Note,
                    location: None,
                },
                Change {
                    rule: "threshold-changed".into(),
                    change: "`long` 0.006 → 0.008".into(),
                    accepted: false,
                    severity: Severity::Warning,
                    location: None,
                },
            ],
        });
        let md = render(
            &o,
            &Options::new(Severity::Error, Limit::Chars(COMMENT_CHARS)),
        );
        assert!(md.contains(
            "**Contract changes against `main` (1a2b3c4d5e6f)**\n\n| rule | change | severity |\n|---|---|---|\n\
             | feature-added | `vz_21` added at index 14 (model-version bumped 3 → 4) | accepted breaking |\n\
             | threshold-changed | `long` 0.006 → 0.008 | warning |\n"
        ), "{md}");
        o.changes.as_mut().unwrap().changes.clear();
        let md = render(
            &o,
            &Options::new(Severity::Error, Limit::Chars(COMMENT_CHARS)),
        );
        assert!(md.contains("**No contract changes against `main` (1a2b3c4d5e6f).**"));
    }

    #[test]
    fn inline_code_and_escaping() {
        assert_eq!(inline_html("a `<x>` b"), "a <code>&lt;x&gt;</code> b");
        assert_eq!(inline_html("odd ` one"), "odd ` one");
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(thousands(1_048_576), "1,048,576");
        assert_eq!(marker("plumbline"), MARKER);
        assert_eq!(marker("gpu"), "<!-- plumbline:sticky:gpu -->");
        assert_eq!(marker("a--->b"), "<!-- plumbline:sticky:a%2D%2D%2D%3Eb -->");
        assert_ne!(marker("a--b"), marker("a-b"));
        assert_eq!(plural(1, "error"), "1 error");
    }
}
