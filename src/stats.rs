//! Numeric comparisons shared by gates (tolerances with NaN equal to NaN). A leaf; the distribution
//! statistics live in `distribution`.

/// |a − b| ≤ atol + rtol·|b|, with NaN equal to NaN and an infinity equal to itself.
pub fn close(a: f64, b: f64, atol: f64, rtol: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= atol + rtol * b.abs()
}
