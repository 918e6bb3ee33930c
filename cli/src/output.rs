//! Output for people (aligned tables) and for programs (`--output json`, ECS's field names).

use serde::Serialize;
use serde_json::Value;
use std::io::Write;

/// `println!` that treats a closed stdout (`berth … | head`) as the end, not a panic.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write_out(format_args!("\n")) };
    ($($t:tt)*) => { $crate::output::write_out(format_args!("{}\n", format_args!($($t)*))) };
}

pub fn write_out(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Prints `value` as pretty JSON, leaving out absent fields (null, "", [], {}) as ECS does.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut v = serde_json::to_value(value)?;
    berth_core::taskdef::unmodeled::merge_into(&mut v);
    prune(&mut v);
    crate::outln!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

fn prune(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for child in m.values_mut() {
                prune(child);
            }
            m.retain(|_, c| !is_empty(c));
        }
        Value::Array(items) => items.iter_mut().for_each(prune),
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// A table: a header row and data rows, columns padded to their widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        write_out(format_args!("{}", self.render()));
    }

    pub fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// "-" for an empty cell, so columns never collapse.
pub fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns_to_the_widest_cell() {
        let mut t = Table::new(&["NAME", "STATUS"]);
        t.row(vec!["default".into(), "ACTIVE".into()]);
        t.row(vec!["a".into(), "INACTIVE".into()]);
        assert_eq!(
            t.render(),
            "NAME      STATUS\ndefault   ACTIVE\na         INACTIVE\n"
        );
    }

    #[test]
    fn json_output_leaves_out_absent_fields_but_keeps_zero() {
        let mut v = serde_json::json!({"a": "", "b": null, "c": [], "d": 0, "e": {"f": ""}, "g": [{"h": ""}]});
        prune(&mut v);
        assert_eq!(v, serde_json::json!({"d": 0, "g": [{}]}));
    }
}
