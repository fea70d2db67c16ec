//! The alert path: `status --alert` hands the status to the profile's `alert` command when
//! something is wrong (or a systemd unit of the profile failed: `--failed-unit`, from the
//! generated `OnFailure=` template), and `status --test-alert` fires it once, marked as a test,
//! so the path from arca to a person's phone can be proven end to end before it is needed.
//!
//! The command runs without a shell, its output on our standard error, with the status as JSON
//! on its standard input (`{"test": …, "profile": …, "failed_unit": …, "summary": …,
//! "status": …}`) and in its environment `ARCA_PROFILE`, `ARCA_STATUS` (the outcome: `ok`,
//! `missed`, `damage`, `anomaly`), `ARCA_EXIT_CODE`, `ARCA_SUMMARY` (one line),
//! `ARCA_FAILED_UNIT` and `ARCA_ALERT_TEST` (`1` for a test).

use super::metrics::{group_name, status_json, verdict};
use super::outcome::Outcome;
use super::scope::Scope;
use super::status::Status;
use crate::error::{Error, Result};
use serde_json::json;

/// Why the alert fires.
#[derive(Clone, Debug, Default)]
pub struct AlertRequest {
    /// A unit of the profile that failed (its name).
    pub failed_unit: Option<String>,
    /// Fire as a test, whatever the status.
    pub test: bool,
}

/// One line saying what is wrong (or `all objectives met`).
pub fn summary(st: &Status, failed_unit: Option<&str>) -> String {
    let mut parts: Vec<String> =
        st.groups.iter().filter(|g| !g.ok()).map(|g| format!("{}: {}", group_name(g), verdict(g))).collect();
    if let Some(d) = &st.repository_damage {
        parts.push(format!(
            "repository: damage found by {} ({})",
            d.op,
            d.error.as_deref().unwrap_or("see the journal")
        ));
    }
    if st.storage.free_ok == Some(false) {
        parts.push("storage: free space below min-free".into());
    }
    if !st.damaged_snapshots.is_empty() || !st.damaged_journal.is_empty() {
        parts.push("unreadable snapshot or journal files".into());
    }
    if let Some(u) = failed_unit {
        parts.insert(0, format!("{u} failed"));
    }
    match parts.is_empty() {
        true => "all objectives met".into(),
        false => crate::text::escape_str(&parts.join("; ")),
    }
}

/// Run the alert command if the status is not ok, a unit failed, or this is a test. Returns
/// whether it ran; a command that fails is an error naming it.
pub fn alert(scope: &Scope, st: &Status, req: &AlertRequest) -> Result<bool> {
    let p = scope
        .profile
        .as_ref()
        .ok_or_else(|| Error::InvalidArgument("--alert and --test-alert need --profile".into()))?;
    let argv = p.alert.as_ref().ok_or_else(|| {
        Error::InvalidArgument(format!("profile {} has no alert command: alert = [\"program\", \"arg\", ...]", p.name))
    })?;
    let outcome = st.outcome();
    if outcome == Outcome::Ok && req.failed_unit.is_none() && !req.test {
        return Ok(false);
    }
    let summary = summary(st, req.failed_unit.as_deref());
    let payload = json!({
        "test": req.test,
        "profile": p.name,
        "failed_unit": req.failed_unit,
        "summary": summary,
        "status": status_json(st),
    });
    let env = [
        ("ARCA_PROFILE", p.name.clone()),
        ("ARCA_STATUS", outcome.name().to_string()),
        ("ARCA_EXIT_CODE", outcome.exit_code().to_string()),
        ("ARCA_SUMMARY", if req.test { format!("TEST: {summary}") } else { summary }),
        ("ARCA_FAILED_UNIT", req.failed_unit.clone().unwrap_or_default()),
        ("ARCA_ALERT_TEST", if req.test { "1" } else { "0" }.to_string()),
    ];
    let body = serde_json::to_vec_pretty(&payload).unwrap_or_default();
    super::profile::run_with_input(argv, &env, &mut body.as_slice()).map_err(|e| e.within("alert"))?;
    Ok(true)
}
