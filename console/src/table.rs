//! Column-aligned text tables, in the style of `kafka-consumer-groups.sh --describe`.
//!
//! Cells are padded to the widest cell of their column and separated by a space; the last column is not
//! padded, so lines carry no trailing whitespace and scripts can split them on whitespace. Empty cells
//! print as `-` (Kafka's placeholder for "no value") so a split never loses a column.

use std::fmt::{self, Display};

/// A header row plus data rows, rendered by `Display`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self { header: header.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    /// Adds a row; missing trailing cells and empty cells become `-`.
    pub(crate) fn push<I, S>(&mut self, row: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut row: Vec<String> = row.into_iter().map(Into::into).collect();
        row.resize(self.header.len().max(row.len()), String::new());
        for cell in &mut row {
            if cell.is_empty() {
                *cell = "-".to_owned();
            }
        }
        self.rows.push(row);
    }
}

impl Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = self.rows.iter().map(Vec::len).chain([self.header.len()]).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let last = row.len().saturating_sub(1);
            for (i, cell) in row.iter().enumerate() {
                if i == last {
                    writeln!(f, "{cell}")?;
                } else {
                    write!(f, "{cell:<width$} ", width = widths[i])?;
                }
            }
        }
        Ok(())
    }
}

/// Formats an optional number, `-` when absent.
pub(crate) fn or_dash<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_and_fills_blanks() {
        let mut table = Table::new(["TOPIC", "PARTITION", "LAG"]);
        table.push(["nginx", "0", "12"]);
        table.push(["a-much-longer-topic", "10", ""]);
        assert_eq!(
            table.to_string(),
            "TOPIC               PARTITION LAG\n\
             nginx               0         12\n\
             a-much-longer-topic 10        -\n"
        );
    }

    #[test]
    fn rows_split_back_into_the_same_number_of_columns() {
        let mut table = Table::new(["A", "B", "C"]);
        table.push(["x", "", ""]);
        for line in table.to_string().lines() {
            assert_eq!(line.split_whitespace().count(), 3, "{line:?}");
            assert_eq!(line, line.trim_end());
        }
    }

    #[test]
    fn or_dash_marks_missing_values() {
        assert_eq!(or_dash(Some(5)), "5");
        assert_eq!(or_dash(None::<i64>), "-");
    }
}
