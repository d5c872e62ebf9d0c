//! kubectl-style tables: columns left-aligned, three spaces apart, no trailing spaces.
//!
//! Cells carry what agents report (status feedback, resource names), so control characters are
//! shown escaped: an agent must not be able to send escape sequences to an administrator's
//! terminal (retitle it, rewrite what it shows).

/// `text` with every control character written as its Rust escape (`\u{1b}`, `\n`).
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Renders `rows` (the first is the header) as aligned columns, one line each.
pub fn render<R: AsRef<[String]>>(rows: &[R]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.as_ref().iter().map(|cell| printable(cell)).collect())
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
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

    #[test]
    fn escape_sequences_from_agents_are_shown_not_sent() {
        let rows = [
            vec!["FEEDBACK".to_owned()],
            vec!["\u{1b}]0;pwn\u{7}ok\nnext".to_owned()],
        ];
        let out = super::render(&rows);
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
        assert!(out.contains("\\u{1b}]0;pwn\\u{7}ok\\nnext"), "{out:?}");
    }
}
