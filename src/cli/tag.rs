//! `arca tag`: add, remove or set the tags of snapshots, or move a label to one snapshot.

use super::output::escape_str;
use super::select::SelectArgs;
use super::Global;
use anyhow::Result;
use arca::lifecycle::tag::TagAction;
use arca::ops::tag::{self, Change, TagRequest};
use arca::ops::HasOutcome;

/// Options of `arca tag`.
#[derive(clap::Args, Debug)]
pub struct TagArgs {
    /// Snapshots to change: ID prefixes or `latest` (default: every snapshot the --host, --tag
    /// and --path filters select). With --move, exactly one.
    snapshots: Vec<String>,
    /// Add tags (repeatable, or comma-separated).
    #[arg(long, value_name = "TAG[,TAG...]")]
    add: Vec<String>,
    /// Remove tags (repeatable, or comma-separated).
    #[arg(long, value_name = "TAG[,TAG...]")]
    remove: Vec<String>,
    /// Replace all tags (repeatable, or comma-separated; `--set ''` removes every tag).
    #[arg(long, value_name = "TAG[,TAG...]", conflicts_with_all = ["add", "remove"])]
    set: Vec<String>,
    /// Give LABEL to the one SNAPSHOT named and remove it from every other snapshot the filters
    /// (or --profile/--component) select: the whole repository without filters.
    #[arg(long = "move", value_name = "LABEL", conflicts_with_all = ["add", "remove", "set"])]
    move_label: Option<String>,
    #[command(flatten)]
    select: SelectArgs,
}

/// Tags from repeated, comma-separated values; empty items are dropped.
fn split(values: &[String]) -> Vec<String> {
    values.iter().flat_map(|v| v.split(',')).filter(|t| !t.is_empty()).map(String::from).collect()
}

/// Run `arca tag`.
pub fn run(g: &Global, a: TagArgs) -> Result<u8> {
    let change = match (&a.move_label, a.set.is_empty(), a.add.is_empty() && a.remove.is_empty()) {
        (Some(label), _, _) => Change::Move(label.clone()),
        (None, false, _) => Change::Tags(TagAction::Set(split(&a.set))),
        (None, true, true) => {
            let msg = "nothing to do: give --add, --remove, --set or --move";
            return Err(arca::Error::InvalidArgument(msg.into()).into());
        }
        (None, true, false) => Change::Tags(TagAction::Change { add: split(&a.add), remove: split(&a.remove) }),
    };
    let req = TagRequest { snapshots: a.snapshots, filter: a.select.filter(), change };
    let t = tag::tag(&g.scope, &req)?;
    for (_, e) in &t.damaged {
        eprintln!("error: {}; its tags were not changed", escape_str(&e.to_string()));
    }
    let r = &t.report;
    if g.json {
        g.print_json(r)?;
    } else if !g.quiet {
        for c in &r.changed {
            let tags: Vec<String> = c.tags.iter().map(|t| escape_str(t)).collect();
            println!("snapshot {} -> {}  tags: {}", c.old.short(), c.new.short(), tags.join(","));
        }
        match r.changed.len() {
            0 => println!("no snapshot changed ({} already had these tags)", r.unchanged),
            n => println!("{n} snapshot{} rewritten, {} unchanged", if n == 1 { "" } else { "s" }, r.unchanged),
        }
    }
    Ok(t.outcome().exit_code())
}
