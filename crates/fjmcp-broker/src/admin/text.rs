//! Output for people: aligned tables and UTC times.

/// A table printed with aligned columns and a header row.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    /// The table as text; an empty table says so instead of printing a lone header.
    pub(crate) fn render(&self, nothing: &str) -> String {
        if self.rows.is_empty() {
            return format!("{nothing}\n");
        }
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
                if i + 1 == cells.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(width - cell.chars().count() + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Unix seconds as `2026-12-04T16:11:00Z`.
pub(crate) fn utc(seconds: i64) -> String {
    crate::clock::format_utc(seconds)
}

/// An optional time, or `-`.
pub(crate) fn utc_or_dash(seconds: Option<i64>) -> String {
    seconds.map_or_else(|| "-".to_string(), utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_say_when_empty() {
        let mut table = Table::new(&["ID", "NAME"]);
        assert_eq!(table.render("no rows"), "no rows\n");
        table.row(vec!["1".into(), "alice".into()]);
        table.row(vec!["1234".into(), "bob".into()]);
        assert_eq!(table.render("-"), "ID    NAME\n1     alice\n1234  bob\n");
    }
}
