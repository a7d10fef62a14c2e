//! The verify table as text (the JSON form is `Report` serialised).

use super::row::Status;
use super::Report;

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// One line per row (status, kind, id, attempt, expected, got, control), the note
/// indented below when there is one, then the grants and the summary.
pub fn text(r: &Report) -> String {
    let mut out = format!(
        "clawjail verify: policy {} (sha256 {}), target uid {}{}\n",
        r.policy,
        &r.policy_sha256[..r.policy_sha256.len().min(12)],
        r.uid,
        if r.privileged {
            ""
        } else {
            " (unprivileged start: ids kept)"
        }
    );
    out.push('\n');
    out.push_str(&format!(
        "{:<15} {:<8} {:<20} {:<50} {:<14} {:<24} {}\n",
        "STATUS", "KIND", "ID", "ATTEMPT", "EXPECT", "GOT", "CONTROL"
    ));
    for row in &r.rows {
        out.push_str(&format!(
            "{:<15} {:<8} {:<20} {:<50} {:<14} {:<24} {}\n",
            row.status.name(),
            row.kind.name(),
            row.id,
            clip(&row.attempt, 50),
            clip(&row.expect, 14),
            clip(&row.got, 24),
            row.control
                .as_deref()
                .map_or("-".to_string(), |c| clip(c, 24)),
        ));
        if !row.note.is_empty() && row.status != Status::Pass {
            out.push_str(&format!("{:<15} [{}] {}\n", "", row.layer, row.note));
        }
    }
    out.push_str("\nverify added (not granted to a `run` target):\n");
    for g in &r.grants {
        out.push_str(&format!("  - {g}\n"));
    }
    let c = &r.counts;
    out.push_str(&format!(
        "\n{} PASS, {} FAIL, {} INCONCLUSIVE, {} NOT ENFORCEABLE, {} ACCEPTED: {}\n",
        c.pass,
        c.fail,
        c.inconclusive,
        c.not_enforceable,
        c.accepted,
        if r.passed {
            "verify passed"
        } else {
            "verify FAILED"
        }
    ));
    out
}
