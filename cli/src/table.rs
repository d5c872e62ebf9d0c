//! kubectl-style tables: columns left-aligned, three spaces apart, no trailing spaces.

/// Renders `rows` (the first is the header) as aligned columns, one line each.
pub fn render<R: AsRef<[String]>>(rows: &[R]) -> String {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.as_ref().get(i))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .as_ref()
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_align_on_the_widest_cell() {
        let rows = [
            vec!["NAME".to_owned(), "AGE".to_owned()],
            vec!["a-long-name".to_owned(), "3s".to_owned()],
            vec!["b".to_owned(), String::new()],
        ];
        assert_eq!(
            super::render(&rows),
            "NAME          AGE\na-long-name   3s\nb\n"
        );
    }
}
