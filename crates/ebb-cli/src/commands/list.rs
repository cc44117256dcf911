//! `ebb list [--all] [--all-users] [--json]`: the jobs a page at a time, each page printed as
//! it comes, so that a queue of 100,000 jobs starts scrolling at once and neither `ebb` nor the
//! daemon holds all of it.

use ebb::{Backend, JobFilter, JobInfo};

use crate::args::EngineArgs;
use crate::conn::Conn;
use crate::output;

/// How many jobs each request asks for.
const PAGE: usize = 500;

pub async fn run(args: &EngineArgs, json: bool, all: bool, all_users: bool) -> anyhow::Result<()> {
    let filter = JobFilter {
        final_jobs: all,
        all_users,
    };
    let conn = Conn::reader(args).await?;
    let mut printer = Printer::new(json);
    each_page(conn.backend(), filter, |jobs| printer.page(jobs)).await?;
    printer.finish()
}

/// Hand every page of the jobs `filter` asks for to `f`, in order.
pub async fn each_page(
    backend: &dyn Backend,
    filter: JobFilter,
    mut f: impl FnMut(&[JobInfo]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut after = None;
    loop {
        let page = backend.list_page(filter, after, PAGE).await?;
        f(&page.jobs)?;
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

/// Prints a listing as its pages come: the text table's header before the first job, or one
/// JSON array written exactly as `serde_json`'s pretty printer writes the whole list.
struct Printer {
    json: bool,
    printed: usize,
}

impl Printer {
    fn new(json: bool) -> Self {
        Self { json, printed: 0 }
    }

    fn page(&mut self, jobs: &[JobInfo]) -> anyhow::Result<()> {
        let mut text = String::new();
        for j in jobs {
            if self.json {
                text.push_str(if self.printed == 0 { "[\n" } else { ",\n" });
                text.push_str(&array_item(&output::json(j)?));
            } else {
                if self.printed == 0 {
                    text.push_str(&output::list_header());
                    text.push('\n');
                }
                text.push_str(&output::list_line(j));
                text.push('\n');
            }
            self.printed += 1;
        }
        if !text.is_empty() {
            say!("{text}")?;
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match (self.json, self.printed) {
            (true, 0) => say!("[]\n"),
            (true, _) => say!("\n]\n"),
            (false, _) => Ok(()),
        }
    }
}

/// A pretty-printed value as an item of a pretty-printed array: every line indented once more.
fn array_item(pretty: &str) -> String {
    pretty
        .lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_items_print_as_the_whole_array_would() {
        let items = vec![
            serde_json::json!({"a": 1, "b": [1, 2], "c": {"d": "x\ny"}}),
            serde_json::json!({"e": []}),
        ];
        let whole = serde_json::to_string_pretty(&items).unwrap();
        let streamed = format!(
            "[\n{}\n]",
            items
                .iter()
                .map(|i| array_item(&serde_json::to_string_pretty(i).unwrap()))
                .collect::<Vec<_>>()
                .join(",\n")
        );
        assert_eq!(streamed, whole);
    }
}
