//! A dense row-major matrix of `f64`: what engines return and the slice, the scaler and the gates
//! pass around. A leaf: it imports nothing.

/// A dense row-major matrix of `f64` (engines compute in their own precision and widen).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Matrix {
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Self {
        assert_eq!(
            rows * cols,
            data.len(),
            "matrix data does not match its shape"
        );
        Matrix { rows, cols, data }
    }

    pub fn from_rows(cols: usize, rows: &[Vec<f64>]) -> Self {
        let data: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Matrix::new(rows.len(), cols, data)
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Rows `range` as a new matrix.
    pub fn slice_rows(&self, range: std::ops::Range<usize>) -> Matrix {
        Matrix::new(
            range.len(),
            self.cols,
            self.data[range.start * self.cols..range.end * self.cols].to_vec(),
        )
    }

    /// Rows holding a NaN or an infinity.
    pub fn non_finite_rows(&self) -> Vec<usize> {
        (0..self.rows)
            .filter(|&r| self.row(r).iter().any(|v| !v.is_finite()))
            .collect()
    }

    /// Column `j`.
    pub fn column(&self, j: usize) -> Vec<f64> {
        (0..self.rows)
            .map(|i| self.data[i * self.cols + j])
            .collect()
    }
}
