//! The report as CSV (UTF-8 with BOM, so spreadsheets open the Chinese headers cleanly) and
//! as Markdown.

use super::{rank, Report};
use std::fmt::Write;

const HEADERS: [&str; 12] = [
    "一级指标",
    "二级指标",
    "三级指标",
    "指标值",
    "实际完成值",
    "完成率",
    "偏差率",
    "权重",
    "得分",
    "来源",
    "范围",
    "未完成原因",
];

fn pct(v: Option<rust_decimal::Decimal>) -> String {
    v.map(|d| format!("{d}%")).unwrap_or_default()
}

/// A row's reasons as lines, each led by its share of the shortfall ("42.13% · device …"),
/// the folded tail last. The percentages are apportioned to 2 decimals by the largest
/// remainder, so the lines of a row add up to exactly 100.00%.
fn reason_lines(r: &super::Row) -> Vec<String> {
    let Some(sf) = &r.shortfall else {
        return vec![];
    };
    let shares = rank::apportion(&rank::weights(&r.reasons, r.folded.as_ref()), sf.total, 4);
    let mut lines: Vec<String> = r
        .reasons
        .iter()
        .zip(&shares)
        .map(|(x, s)| format!("{} · {}", rank::pct_text(*s), x.summary()))
        .collect();
    if let Some(f) = &r.folded {
        lines.push(format!(
            "{} · {}",
            rank::pct_text(shares[shares.len() - 1]),
            rank::folded_text(f)
        ));
    }
    lines
}

fn reasons_text(r: &super::Row) -> String {
    let mut lines = reason_lines(r);
    if let Some(sf) = &r.shortfall {
        lines.insert(0, rank::shortfall_text(sf));
    }
    lines.join("\n")
}

pub fn to_csv(report: &Report) -> Result<Vec<u8>, csv::Error> {
    let mut out = Vec::from("\u{feff}".as_bytes());
    {
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record(HEADERS)?;
        for r in &report.rows {
            w.write_record([
                r.level1.as_str(),
                &r.level2,
                &r.label,
                &r.target,
                &r.actual,
                &pct(r.completion_pct),
                &pct(r.deviation_pct),
                &r.weight.to_string(),
                &r.score.map(|s| s.to_string()).unwrap_or_default(),
                if r.source == "declared" {
                    "自报 declared"
                } else {
                    "实测 measured"
                },
                &r.scope,
                &reasons_text(r),
            ])?;
        }
        findings_csv(&mut w, &report.findings)?;
        w.flush()?;
    }
    Ok(out)
}

const FINDING_HEADERS: [&str; 7] = ["站点", "测点", "检查", "申报值", "规定", "依据", "说明"];

/// The findings after the table: one empty row, their own header, their rows, each padded
/// to the table's width so the file stays rectangular for spreadsheet and CSV readers.
fn findings_csv<W: std::io::Write>(
    w: &mut csv::Writer<W>,
    findings: &[super::findings::FindingRow],
) -> Result<(), csv::Error> {
    if findings.is_empty() {
        return Ok(());
    }
    let pad = |cells: Vec<String>| {
        let mut c = cells;
        c.resize(HEADERS.len(), String::new());
        c
    };
    w.write_record(pad(vec![]))?;
    let mut head = vec!["合规发现 compliance findings".to_string()];
    head.extend(FINDING_HEADERS.iter().map(|h| h.to_string()));
    w.write_record(pad(head))?;
    for f in findings {
        w.write_record(pad(vec![String::new()]
            .into_iter()
            .chain(finding_cells(f))
            .collect()))?;
    }
    Ok(())
}

fn finding_cells(f: &super::findings::FindingRow) -> Vec<String> {
    vec![
        f.site.clone(),
        f.unit.clone(),
        f.check.to_string(),
        f.declared.map(|v| v.to_string()).unwrap_or_default(),
        f.limit.clone(),
        f.basis.to_string(),
        f.text.clone(),
    ]
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', "<br>")
}

pub fn to_markdown(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# 绩效自评表 (measured by safegate)\n");
    let _ = writeln!(
        s,
        "Window: {} – {}; policy: denominator `{:?}`, mine units `{:?}`, quorum `{:?}`, system share {}.\n",
        report.from,
        report.to,
        report.policy.denominator,
        report.policy.mine_units,
        report.policy.online_quorum,
        report.policy.system_online_share
    );
    let _ = writeln!(s, "| {} |", HEADERS[..11].join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(11));
    for r in &report.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&r.level1),
            cell(&r.level2),
            cell(&r.label),
            cell(&r.target),
            cell(&r.actual),
            pct(r.completion_pct),
            pct(r.deviation_pct),
            r.weight,
            r.score.map(|x| x.to_string()).unwrap_or_default(),
            if r.source == "declared" {
                "declared"
            } else {
                "measured"
            },
            cell(&r.scope),
        );
    }
    let _ = writeln!(
        s,
        "\nTotal score: {} of {}.\n",
        report.total_score, report.total_weight
    );
    let missed: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.shortfall.is_some())
        .collect();
    if !missed.is_empty() {
        let _ = writeln!(s, "## 未完成原因 (measured reasons for each shortfall)\n");
        for r in missed {
            let _ = writeln!(s, "### {} ({}, {})\n", r.label, r.indicator, r.scope);
            if let Some(sf) = &r.shortfall {
                let _ = writeln!(s, "{}.\n", rank::shortfall_text(sf));
            }
            for line in reason_lines(r) {
                let _ = writeln!(s, "- {}", cell(&line));
            }
            let _ = writeln!(s);
        }
    }
    if !report.findings.is_empty() {
        let _ = writeln!(
            s,
            "## 合规发现 (declared settings the rules do not allow)\n\n| {} |\n|{}",
            FINDING_HEADERS.join(" | "),
            "---|".repeat(FINDING_HEADERS.len())
        );
        for f in &report.findings {
            let cells: Vec<String> = finding_cells(f).iter().map(|c| cell(c)).collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        let _ = writeln!(s);
    }
    s
}
