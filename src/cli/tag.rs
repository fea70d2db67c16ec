//! `arca tag`: add, remove or set the tags of snapshots, or move a label to one snapshot.

use super::output::escape_str;
use super::select::{self, SelectArgs};
use super::{code, Global};
use anyhow::Result;
use arca::lifecycle::tag::{self, TagAction, TagReport};

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
    /// Give LABEL to the one SNAPSHOT named and remove it from every other snapshot of the
    /// repository (for labels such as `last-good`).
    #[arg(long = "move", value_name = "LABEL", conflicts_with_all = ["add", "remove", "set"])]
    move_label: Option<String>,
    #[command(flatten)]
    select: SelectArgs,
}

/// Tags from repeated, comma-separated values; empty items are dropped.
fn split(values: &[String]) -> Vec<String> {
    values.iter().flat_map(|v| v.split(',')).filter(|t| !t.is_empty()).map(String::from).collect()
}

/// The action the arguments ask for; none is a usage error.
fn action(a: &TagArgs) -> Result<TagAction> {
    if !a.set.is_empty() {
        return Ok(TagAction::Set(split(&a.set)));
    }
    if a.add.is_empty() && a.remove.is_empty() {
        return Err(usage("nothing to do: give --add, --remove, --set or --move"));
    }
    Ok(TagAction::Change { add: split(&a.add), remove: split(&a.remove) })
}

fn usage(msg: &str) -> anyhow::Error {
    arca::Error::InvalidArgument(msg.to_string()).into()
}

/// Run `arca tag`.
pub fn run(g: &Global, a: TagArgs) -> Result<u8> {
    // Bad arguments are refused before the password is asked for.
    let act = match &a.move_label {
        Some(label) => {
            if a.snapshots.len() != 1 {
                return Err(usage("--move needs exactly one snapshot"));
            }
            tag::validate_tag(label)?;
            None
        }
        None => {
            let act = action(&a)?;
            act.validate()?;
            Some(act)
        }
    };
    let repo = g.open()?;
    let _lock = g.lock(&repo, true)?;
    let Some(act) = act else {
        let label = a.move_label.as_deref().expect("no action only with --move");
        // Every snapshot may hold the label, an unreadable one too: say which were skipped.
        let (all, damaged) = repo.list_snapshots_and_damage()?;
        let (target, _) = select::resolve(&repo, &a.snapshots[0], &a.select)?;
        warn_damaged(&damaged);
        let r = tag::move_label(&repo, &all, &target, label)?;
        return print(g, &r, if damaged.is_empty() { code::OK } else { code::INTEGRITY });
    };
    let t = select::targets(&repo, &a.snapshots, &a.select)?;
    let ids: Vec<arca::Id> = t.chosen.iter().map(|(id, _)| *id).collect();
    let report = tag::tag(&repo, &t.all, &ids, &act)?;
    warn_damaged(&t.damaged);
    print(g, &report, if t.damaged.is_empty() { code::OK } else { code::INTEGRITY })
}

fn warn_damaged(damaged: &[(String, arca::Error)]) {
    for (_, e) in damaged {
        eprintln!("error: {}; its tags were not changed", escape_str(&e.to_string()));
    }
}

fn print(g: &Global, r: &TagReport, status: u8) -> Result<u8> {
    if g.json {
        g.print_json(r)?;
        return Ok(status);
    }
    if g.quiet {
        return Ok(status);
    }
    for c in &r.changed {
        let tags: Vec<String> = c.tags.iter().map(|t| escape_str(t)).collect();
        println!("snapshot {} -> {}  tags: {}", c.old.short(), c.new.short(), tags.join(","));
    }
    match r.changed.len() {
        0 => println!("no snapshot changed ({} already had these tags)", r.unchanged),
        n => println!("{n} snapshot{} rewritten, {} unchanged", if n == 1 { "" } else { "s" }, r.unchanged),
    }
    Ok(status)
}
