//! Windows of bars (docs/config.md#model, `[model] window`): a model that reads the last `n` bars of a
//! symbol sees, for each slice row, that row and the `n − 1` rows of the same symbol before it in time.
//!
//! - Rows are grouped by the symbol column and ordered by the timestamp, read as an epoch number or an
//!   ISO-8601 date or time (`2024-03-11`, `2024-03-11T15:00:00Z`, `2024-03-11 15:00:00+01:00`). A column
//!   mixing numbers and dates, or zoned and naive times, is refused: the order would be a guess.
//! - **A gap** is a bar of the slice's calendar (every timestamp any symbol has) that a symbol lacks
//!   between its first and last bar. A weekend or a holiday that no symbol trades is no gap. A window
//!   never crosses a gap or a symbol boundary: a row whose `n` bars are not unbroken ends no window and
//!   is left out of the model gates (the count is said). A slice with one symbol has its own calendar,
//!   so a missing bar there cannot be told from a holiday (docs/decisions.md).
//! - Two rows of one symbol at the same time are an error naming both lines.

use std::collections::BTreeMap;

use super::Slice;
use crate::error::{Error, Result};
use crate::matrix::Matrix;

/// The bars behind a windowed slice: the slice's rows are the rows that end a window.
#[derive(Debug, Clone)]
pub struct Windows {
    /// Bars per window.
    pub n: usize,
    /// Every row of the file (the bars windows are made of), without windows.
    pub bars: Box<Slice>,
    /// For each row of the slice, the rows of `bars` its window holds, oldest first (`n` per row).
    pub rows: Vec<usize>,
    /// Rows of the file that end no window (less than `n` unbroken bars of their symbol up to them).
    pub left_out: usize,
    /// Breaks in a symbol's bars (a bar of the calendar it lacks).
    pub gaps: usize,
}

impl Windows {
    /// The rows of `bars` in window `i`, oldest first.
    pub fn of(&self, i: usize) -> &[usize] {
        &self.rows[i * self.n..(i + 1) * self.n]
    }

    /// `raw` (one row per bar of `bars`, any width) gathered into one row per window: the window's
    /// bars, oldest first, each bar's values in order — `[batch, window, width]` flattened.
    pub fn gather(&self, raw: &Matrix) -> Matrix {
        let windows = self.rows.len() / self.n;
        let mut data = Vec::with_capacity(self.rows.len() * raw.cols);
        for &r in &self.rows {
            data.extend_from_slice(raw.row(r));
        }
        Matrix::new(windows, self.n * raw.cols, data)
    }
}

impl Windows {
    /// The windows of the NaN probes named `symbols` (`Slice::nan_probes`): probe `k` is the first
    /// window's bars under its own symbol with feature `k` NaN in every bar; the last probe has every
    /// feature NaN.
    pub(super) fn nan_probes(&self, symbols: &[Option<String>]) -> Windows {
        let cols = self.bars.features.cols;
        let first = self.of(0);
        let mut bars = Slice {
            path: self.bars.path.clone(),
            timestamps: Vec::new(),
            symbols: Vec::new(),
            features: Matrix::new(0, cols, Vec::new()),
            lines: Vec::new(),
            windows: None,
        };
        for (p, symbol) in symbols.iter().enumerate() {
            for &b in first {
                bars.timestamps.push(self.bars.timestamps[b].clone());
                bars.symbols.push(symbol.clone());
                bars.lines.push(self.bars.lines[b]);
                let row = self.bars.features.row(b).iter().enumerate();
                bars.features
                    .data
                    .extend(row.map(|(j, &v)| if j == p || p == cols { f64::NAN } else { v }));
                bars.features.rows += 1;
            }
        }
        Windows {
            n: self.n,
            rows: (0..bars.len()).collect(),
            left_out: 0,
            gaps: 0,
            bars: Box::new(bars),
        }
    }

    /// These windows, then `more`'s (its bars after these bars).
    pub(super) fn concat(&self, more: &Windows) -> Windows {
        let offset = self.bars.len();
        Windows {
            n: self.n,
            bars: Box::new(self.bars.concat(&more.bars)),
            rows: self
                .rows
                .iter()
                .copied()
                .chain(more.rows.iter().map(|r| r + offset))
                .collect(),
            left_out: self.left_out + more.left_out,
            gaps: self.gaps + more.gaps,
        }
    }
}

/// Feature `name` `lag` bars before the window's last bar: `ret_1[t-3]`, `ret_1[t]`.
pub fn lagged(name: &str, lag: usize) -> String {
    if lag == 0 {
        format!("{name}[t]")
    } else {
        format!("{name}[t-{lag}]")
    }
}

/// A point in time, comparable: seconds and nanoseconds since the epoch (for an epoch column, its own
/// unit).
type Time = (i64, u32);

/// `bars` as windows of `n` bars: the rows that end one, in file order.
pub fn build(bars: Slice, n: usize) -> Result<Slice> {
    let times = parse_times(&bars)?;
    let calendar: BTreeMap<Time, usize> = {
        let mut all: Vec<Time> = times.clone();
        all.sort_unstable();
        all.dedup();
        all.into_iter().enumerate().map(|(k, t)| (t, k)).collect()
    };
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in bars.symbols.iter().enumerate() {
        groups
            .entry(s.as_deref().unwrap_or(""))
            .or_default()
            .push(i);
    }
    let mut ends: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut gaps = 0;
    for rows in groups.values_mut() {
        rows.sort_by_key(|&i| (times[i], i));
        let mut run = 0usize;
        for (k, &i) in rows.iter().enumerate() {
            if k > 0 {
                let before = rows[k - 1];
                if times[before] == times[i] {
                    return Err(Error::at(
                        bars.location(i),
                        format!(
                            "two rows for {} (lines {} and {}): a window needs one bar per symbol and time",
                            bars.key(i),
                            bars.lines[before],
                            bars.lines[i]
                        ),
                    ));
                }
                if calendar[&times[i]] != calendar[&times[before]] + 1 {
                    gaps += 1;
                    run = 0;
                }
            }
            run += 1;
            if run >= n {
                ends.push((i, rows[k + 1 - n..=k].to_vec()));
            }
        }
    }
    if ends.is_empty() {
        return Err(Error::at(
            bars.location(0),
            format!(
                "no row of the slice has {n} unbroken bars of its symbol up to it, so no window of {n} bars can be built (the model takes windows: `[model] window`); the slice needs more history per symbol"
            ),
        ));
    }
    ends.sort_unstable_by_key(|(i, _)| *i);
    let keep: Vec<usize> = ends.iter().map(|(i, _)| *i).collect();
    let cols = bars.features.cols;
    let mut data = Vec::with_capacity(keep.len() * cols);
    for &i in &keep {
        data.extend_from_slice(bars.features.row(i));
    }
    Ok(Slice {
        path: bars.path.clone(),
        timestamps: keep.iter().map(|&i| bars.timestamps[i].clone()).collect(),
        symbols: keep.iter().map(|&i| bars.symbols[i].clone()).collect(),
        features: Matrix::new(keep.len(), cols, data),
        lines: keep.iter().map(|&i| bars.lines[i]).collect(),
        windows: Some(Windows {
            n,
            left_out: bars.len() - keep.len(),
            gaps,
            rows: ends.into_iter().flat_map(|(_, w)| w).collect(),
            bars: Box::new(bars),
        }),
    })
}

/// Every row's timestamp as a [`Time`]; an unreadable or mixed column is an error at the row.
fn parse_times(bars: &Slice) -> Result<Vec<Time>> {
    let mut kind: Option<Kind> = None;
    bars.timestamps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (t, k) = parse_time(s.trim()).ok_or_else(|| {
                Error::at(
                    bars.location(i),
                    format!(
                        "timestamp `{s}` is neither an epoch number nor an ISO-8601 date or time, so the rows of a symbol cannot be put in order for its windows"
                    ),
                )
            })?;
            match kind {
                None => kind = Some(k),
                Some(first) if first != k => {
                    return Err(Error::at(
                        bars.location(i),
                        format!(
                            "timestamp `{s}` is {}, but the column's first is {}: plumbline will not guess how they order",
                            k.what(),
                            first.what()
                        ),
                    ));
                }
                Some(_) => {}
            }
            Ok(t)
        })
        .collect()
}

/// How a timestamp is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Epoch,
    Naive,
    Zoned,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Epoch => "an epoch number",
            Kind::Naive => "a date or time without a time zone",
            Kind::Zoned => "a time with a time zone",
        }
    }
}

/// An epoch number (any unit; a fraction kept to the nanosecond) or ISO-8601.
fn parse_time(s: &str) -> Option<(Time, Kind)> {
    if let Ok(v) = s.parse::<i64>() {
        return Some(((v, 0), Kind::Epoch));
    }
    // Beyond ±2^53 a float epoch cannot tell neighbouring values apart: refused, not collided.
    if let Ok(v) = s.parse::<f64>()
        && v.is_finite()
        && v.abs() < 9_007_199_254_740_992.0
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        let whole = v.floor();
        let nanos = ((v - whole) * 1e9).round().min(999_999_999.0) as u32;
        return Some(((whole as i64, nanos), Kind::Epoch));
    }
    parse_iso(s)
}

/// `YYYY-MM-DD`, then optionally `T` or a space, `HH:MM`, `:SS`, `.fraction`, and `Z` or `±HH:MM` /
/// `±HHMM`.
fn parse_iso(s: &str) -> Option<(Time, Kind)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let mut secs = days_from_civil(y, mo, d) * 86_400;
    let mut nanos = 0u32;
    let mut rest = &s[10..];
    if let Some(t) = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' ')) {
        let (time, after) = split_time(t)?;
        secs += time.0;
        nanos = time.1;
        rest = after;
    }
    let kind = match rest {
        "" => Kind::Naive,
        "Z" | "z" => Kind::Zoned,
        zone => {
            secs -= parse_offset(zone)?;
            Kind::Zoned
        }
    };
    Some(((secs, nanos), kind))
}

/// `HH:MM[:SS[.fff]]` at the start of `t`: (seconds into the day, nanoseconds) and what follows.
fn split_time(t: &str) -> Option<((i64, u32), &str)> {
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(t.len());
    let (clock, rest) = t.split_at(end);
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let parts: Vec<&str> = hms.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let v: Vec<i64> = parts
        .iter()
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (h, m, sec) = (v[0], v[1], v.get(2).copied().unwrap_or(0));
    if h > 23 || m > 59 || sec > 59 || (!frac.is_empty() && parts.len() != 3) {
        return None;
    }
    let nanos = if frac.is_empty() {
        0
    } else {
        if frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        format!("{frac:0<9}").parse().ok()?
    };
    Some(((h * 3600 + m * 60 + sec, nanos), rest))
}

/// `+HH:MM`, `-HHMM` or `+HH`: the offset east of UTC in seconds.
fn parse_offset(zone: &str) -> Option<i64> {
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if !(digits.len() == 2 || digits.len() == 4) || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let h: i64 = digits[..2].parse().ok()?;
    let m: i64 = digits
        .get(2..)
        .filter(|m| !m.is_empty())
        .map_or(Some(0), |m| m.parse().ok())?;
    (h <= 23 && m <= 59).then_some(sign * (h * 3600 + m * 60))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(rows: &[(&str, &str, f64)]) -> Slice {
        Slice {
            path: "slice.csv".into(),
            timestamps: rows.iter().map(|r| r.0.to_owned()).collect(),
            symbols: rows.iter().map(|r| Some(r.1.to_owned())).collect(),
            features: Matrix::new(rows.len(), 1, rows.iter().map(|r| r.2).collect()),
            lines: (2..2 + rows.len() as u32).collect(),
            windows: None,
        }
    }

    #[test]
    fn iso_times_order_across_zones_and_agree_with_the_epoch() {
        let t = |s| parse_time(s).unwrap().0;
        assert_eq!(t("1970-01-01"), (0, 0));
        assert_eq!(t("2024-01-01T00:00:00Z"), (1_704_067_200, 0));
        assert_eq!(t("2024-01-01 01:00:00+01:00"), (1_704_067_200, 0));
        assert_eq!(t("2023-12-31T19:00-0500"), (1_704_067_200, 0));
        assert_eq!(t("2024-02-29T12:30:15.25Z"), (1_709_209_815, 250_000_000));
        assert_eq!(t("1704067200.5"), (1_704_067_200, 500_000_000));
        for bad in [
            "2024-01-01T23:59:60",
            "1e20",
            "2023-02-29",
            "2024-13-01",
            "2024-01-01T25:00",
            "2024-01-01T10",
            "Mon",
        ] {
            assert!(parse_time(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn windows_never_cross_a_symbol_or_a_gap() {
        // Calendar 1..=5. AAA has every bar; BBB lacks bar 3 (a gap); CCC starts at bar 3 (no gap).
        let rows = [
            ("1", "AAA", 1.0),
            ("1", "BBB", 10.0),
            ("2", "AAA", 2.0),
            ("2", "BBB", 20.0),
            ("3", "AAA", 3.0),
            ("3", "CCC", 300.0),
            ("4", "AAA", 4.0),
            ("4", "BBB", 40.0),
            ("4", "CCC", 400.0),
            ("5", "BBB", 50.0),
            ("5", "AAA", 5.0),
        ];
        let w = build(slice(&rows), 2).unwrap();
        let keys: Vec<String> = (0..w.len()).map(|i| w.key(i)).collect();
        assert_eq!(
            keys,
            [
                "2 AAA", "2 BBB", "3 AAA", "4 AAA", "4 CCC", "5 BBB", "5 AAA"
            ]
        );
        let windows = w.windows.as_ref().unwrap();
        assert_eq!((windows.left_out, windows.gaps), (4, 1));
        let x = windows.gather(&windows.bars.features);
        assert_eq!(x.cols, 2);
        assert_eq!(x.row(4), [300.0, 400.0]);
        assert_eq!(x.row(5), [40.0, 50.0]);
        // BBB's bar 4 follows a gap: it ends no window.
        assert!(!keys.contains(&"4 BBB".to_owned()));
    }

    #[test]
    fn a_duplicate_bar_or_mixed_timestamps_are_refused_at_their_line() {
        let e = build(slice(&[("1", "A", 0.0), ("1", "A", 1.0)]), 1).unwrap_err();
        assert!(e.to_string().contains("lines 2 and 3"), "{e}");
        let e = build(slice(&[("1", "A", 0.0), ("2024-01-01", "A", 1.0)]), 1).unwrap_err();
        assert!(e.to_string().contains("slice.csv:3"), "{e}");
        let e = build(slice(&[("1", "A", 0.0), ("2", "A", 1.0)]), 3).unwrap_err();
        assert!(e.to_string().contains("no window of 3 bars"), "{e}");
    }
}
