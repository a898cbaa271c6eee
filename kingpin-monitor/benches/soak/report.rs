//! What a soak found on one cluster, and the table that shows every
//! cluster's side by side.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use kingpin_api::ErrorKind;
use kingpin_conformance_tests::cluster::{ClusterKind, Episode, Fault};
use kingpin_conformance_tests::config_history::{ClientRun, HistoryCounts, OperationKind};
use kingpin_conformance_tests::latency::Latencies;
use kingpin_conformance_tests::linearizability::CheckError;
use kingpin_conformance_tests::torn_files::FileReads;

use crate::list_writers::Adds;

/// The error classes of the table: unavailable, other retryable, other.
fn error_class(kind: ErrorKind, retryable: bool) -> &'static str {
    match (kind, retryable) {
        (ErrorKind::Unavailable, _) => "unavailable",
        (_, true) => "retryable (other)",
        (_, false) => "other",
    }
}

/// One cluster's soak.
#[derive(Debug)]
pub struct Report {
    kind: ClusterKind,
    /// How long the fault loop ran.
    pub elapsed: Duration,
    history: HistoryCounts,
    calls: usize,
    faults: BTreeMap<Fault, usize>,
    elections: Vec<Duration>,
    recoveries: Vec<Duration>,
    /// (class, operation) → count.
    errors: BTreeMap<(&'static str, &'static str), usize>,
    segments: BTreeMap<&'static str, usize>,
    acknowledged_adds: usize,
    failed_adds: usize,
    lost_adds: usize,
    doubled_items: usize,
    failed_adds_landed: usize,
    monitors: usize,
    monitors_converged: usize,
    file_reads: FileReads,
}

impl Report {
    /// An empty report for `kind`.
    pub fn new(kind: ClusterKind) -> Self {
        Report {
            kind,
            elapsed: Duration::ZERO,
            history: HistoryCounts::default(),
            calls: 0,
            faults: BTreeMap::new(),
            elections: Vec::new(),
            recoveries: Vec::new(),
            errors: BTreeMap::new(),
            segments: BTreeMap::new(),
            acknowledged_adds: 0,
            failed_adds: 0,
            lost_adds: 0,
            doubled_items: 0,
            failed_adds_landed: 0,
            monitors: 0,
            monitors_converged: 0,
            file_reads: FileReads::default(),
        }
    }

    /// One fault's segment: the episode, its history and its check.
    pub fn add_segment(
        &mut self,
        episode: &Episode,
        counts: HistoryCounts,
        clients: &[ClientRun],
        result: &Result<(), CheckError>,
    ) {
        *self.faults.entry(episode.fault).or_default() += 1;
        self.elections.extend(episode.election);
        self.recoveries.push(episode.recovery);
        self.history.operations += counts.operations;
        self.history.reads += counts.reads;
        self.history.compare_and_sets_written += counts.compare_and_sets_written;
        self.history.refused += counts.refused;
        self.history.updates += counts.updates;
        self.history.unknown += counts.unknown;
        for client in clients {
            self.calls += client.calls;
            for failure in &client.failures {
                let operation = match failure.operation {
                    OperationKind::Read => "read",
                    OperationKind::CompareAndSet => "compare-and-set",
                    OperationKind::Update => "update",
                };
                let class = error_class(failure.kind, failure.retryable);
                *self.errors.entry((class, operation)).or_default() += 1;
            }
        }
        let verdict = match result {
            Ok(()) => "linearizable",
            Err(CheckError::NotLinearizable(_)) => "violation",
            Err(CheckError::Inconclusive { .. }) => "inconclusive",
        };
        *self.segments.entry(verdict).or_default() += 1;
    }

    /// The list writers' adds against the final list.
    pub fn add_list(&mut self, adds: &Adds, items: &[String]) {
        let mut present: HashMap<&str, usize> = HashMap::new();
        for item in items {
            *present.entry(item.as_str()).or_default() += 1;
        }
        self.acknowledged_adds = adds.acknowledged.len();
        self.failed_adds = adds.failed.len();
        self.lost_adds = adds
            .acknowledged
            .iter()
            .filter(|item| !present.contains_key(item.as_str()))
            .count();
        self.doubled_items = present.values().filter(|&&n| n > 1).count();
        self.failed_adds_landed = adds
            .failed
            .iter()
            .filter(|(item, ..)| present.contains_key(item.as_str()))
            .count();
        for (_, kind, retryable) in &adds.failed {
            let class = error_class(*kind, *retryable);
            *self.errors.entry((class, "list add")).or_default() += 1;
        }
    }

    /// Whether a monitor's files converged to the final versions.
    pub fn add_monitor(&mut self, converged: bool) {
        self.monitors += 1;
        self.monitors_converged += usize::from(converged);
    }

    /// What a torn-file reader saw.
    pub fn add_file_reads(&mut self, reads: FileReads) {
        self.file_reads.reads += reads.reads;
        self.file_reads.torn += reads.torn;
    }

    /// Violations, inconclusive checks, lost or doubled adds, monitors
    /// that did not converge, torn files.
    pub fn anomalies(&self) -> usize {
        self.segments.get("violation").copied().unwrap_or(0)
            + self.segments.get("inconclusive").copied().unwrap_or(0)
            + self.lost_adds
            + self.doubled_items
            + (self.monitors - self.monitors_converged)
            + self.file_reads.torn
    }

    fn errors_of(&self, class: &str) -> String {
        let by_operation: Vec<String> = self
            .errors
            .iter()
            .filter(|((c, _), _)| *c == class)
            .map(|((_, operation), n)| format!("{operation} {n}"))
            .collect();
        let total: usize = self
            .errors
            .iter()
            .filter(|((c, _), _)| *c == class)
            .map(|(_, n)| n)
            .sum();
        if by_operation.is_empty() {
            "0".into()
        } else {
            format!("{total} ({})", by_operation.join(", "))
        }
    }

    /// The table's rows: label and cell.
    fn rows(&self) -> Vec<(String, String)> {
        let segments = |verdict: &str| self.segments.get(verdict).copied().unwrap_or(0);
        let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
        let latencies = |samples: &[Duration]| {
            let l = Latencies::new(samples.to_vec());
            format!(
                "p50 {} max {}",
                ms(Duration::from_micros(l.percentile_us(50.0) as u64)),
                ms(Duration::from_micros(l.max_us() as u64))
            )
        };
        let h = &self.history;
        let mut rows = vec![
            ("fault loop ran".into(), format!("{:.0?}", self.elapsed)),
            ("operations: config calls".into(), self.calls.to_string()),
            ("  reads answered".into(), h.reads.to_string()),
            (
                "  compare-and-sets written / refused".into(),
                format!("{} / {}", h.compare_and_sets_written, h.refused),
            ),
            ("  updates (appends)".into(), h.updates.to_string()),
            ("  writes of unknown outcome".into(), h.unknown.to_string()),
            (
                "  list adds acknowledged / failed".into(),
                format!("{} / {}", self.acknowledged_adds, self.failed_adds),
            ),
        ];
        for fault in Fault::ROTATION {
            rows.push((
                format!("faults: {}", fault.label()),
                self.faults.get(&fault).copied().unwrap_or(0).to_string(),
            ));
        }
        rows.extend([
            (
                "  new leader after fault".into(),
                latencies(&self.elections),
            ),
            (
                "  all members serving after undo".into(),
                latencies(&self.recoveries),
            ),
            ("errors: unavailable".into(), self.errors_of("unavailable")),
            (
                "errors: retryable (other)".into(),
                self.errors_of("retryable (other)"),
            ),
            ("errors: other".into(), self.errors_of("other")),
            (
                "anomalies: segments not linearizable".into(),
                format!(
                    "{} of {} ({} inconclusive)",
                    segments("violation"),
                    self.segments.values().sum::<usize>(),
                    segments("inconclusive")
                ),
            ),
            (
                "anomalies: monitors not converged".into(),
                format!(
                    "{} of {}",
                    self.monitors - self.monitors_converged,
                    self.monitors
                ),
            ),
            (
                "anomalies: torn files".into(),
                format!(
                    "{} in {} reads",
                    self.file_reads.torn, self.file_reads.reads
                ),
            ),
            (
                "lost updates (acked adds missing)".into(),
                self.lost_adds.to_string(),
            ),
            ("items present twice".into(), self.doubled_items.to_string()),
            (
                "failed adds that landed (allowed)".into(),
                self.failed_adds_landed.to_string(),
            ),
            ("anomalies in all".into(), self.anomalies().to_string()),
        ]);
        rows
    }
}

/// Every cluster's report, a column each.
#[derive(Debug, Default)]
pub struct ReportTable {
    reports: Vec<Report>,
}

impl ReportTable {
    /// Adds a cluster's column.
    pub fn push(&mut self, report: Report) {
        self.reports.push(report);
    }

    /// Anomalies on every cluster.
    pub fn anomalies(&self) -> usize {
        self.reports.iter().map(Report::anomalies).sum()
    }
}

impl fmt::Display for ReportTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns: Vec<Vec<(String, String)>> = self.reports.iter().map(Report::rows).collect();
        let Some(first) = columns.first() else {
            return writeln!(f, "no cluster ran");
        };
        let label_width = first.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        let widths: Vec<usize> = columns
            .iter()
            .zip(&self.reports)
            .map(|(rows, report)| {
                rows.iter()
                    .map(|(_, cell)| cell.len())
                    .chain([format!("{:?}", report.kind).len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        write!(f, "| {:<label_width$} |", "")?;
        for (report, width) in self.reports.iter().zip(&widths) {
            write!(f, " {:<width$} |", format!("{:?}", report.kind))?;
        }
        writeln!(f)?;
        write!(f, "|{}|", "-".repeat(label_width + 2))?;
        for width in &widths {
            write!(f, "{}|", "-".repeat(width + 2))?;
        }
        writeln!(f)?;
        for (row, (label, _)) in first.iter().enumerate() {
            write!(f, "| {label:<label_width$} |")?;
            for (rows, width) in columns.iter().zip(&widths) {
                write!(f, " {:<width$} |", rows[row].1)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
