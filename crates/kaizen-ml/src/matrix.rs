//! The dense feature matrix.

use serde::{Deserialize, Serialize};

/// A dense matrix of `f64`, stored column by column (the layout histogram boosting reads), with
/// a name per column. Missing values are `NaN`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    pub rows: usize,
    pub names: Vec<String>,
    /// `cols * rows` values: column 0's rows, then column 1's, ...
    pub data: Vec<f64>,
}

impl Matrix {
    /// A matrix from its columns, all of the same length.
    pub fn from_columns(names: Vec<String>, columns: Vec<Vec<f64>>) -> Matrix {
        assert_eq!(names.len(), columns.len(), "one name per column");
        let rows = columns.first().map_or(0, Vec::len);
        assert!(
            columns.iter().all(|c| c.len() == rows),
            "columns differ in length"
        );
        Matrix {
            rows,
            names,
            data: columns.concat(),
        }
    }

    pub fn cols(&self) -> usize {
        self.names.len()
    }

    pub fn column(&self, j: usize) -> &[f64] {
        &self.data[j * self.rows..(j + 1) * self.rows]
    }

    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[j * self.rows + i]
    }

    /// Row `i` as a vector.
    pub fn row(&self, i: usize) -> Vec<f64> {
        (0..self.cols()).map(|j| self.get(i, j)).collect()
    }

    /// The rows at `index`, in that order.
    pub fn take_rows(&self, index: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(index.len() * self.cols());
        for j in 0..self.cols() {
            let col = self.column(j);
            data.extend(index.iter().map(|&i| col[i]));
        }
        Matrix {
            rows: index.len(),
            names: self.names.clone(),
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_rows_and_take() {
        let m = Matrix::from_columns(
            vec!["a".into(), "b".into()],
            vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]],
        );
        assert_eq!(m.cols(), 2);
        assert_eq!(m.row(1), vec![2.0, 5.0]);
        let t = m.take_rows(&[2, 0]);
        assert_eq!(t.column(1), &[6.0, 4.0]);
    }
}
