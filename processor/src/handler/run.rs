//! The batch run: the steps in the order exactly-once needs, and the one batch item failure
//! the Pipe retries from. Each step is a function with a typed input and output, in its own
//! file: [`lineage`](super::lineage) (the stream's listing), [`load`](super::load) (the shard
//! logs and the products' items), [`fold`](super::fold) (pure), [`write`](super::write)
//! (rejections, then products), [`log`](super::log) (the shard log and its counters).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use inventory_domain::pipes::PipeBatch;
use inventory_domain::{BatchItemFailure, BatchResponse};

use super::{BatchReport, DecodedBatch, Processor};

/// One batch on its way through the steps: what they report, and the records whose work did
/// not complete (the smallest index is reported to the Pipe).
pub(super) struct Run<'b> {
    pub batch: &'b PipeBatch,
    pub now: DateTime<Utc>,
    pub report: BatchReport,
    pub failed: Vec<usize>,
    /// The batch's oldest and newest `approximateArrivalTimestamp`, in ms.
    pub oldest: i64,
    pub newest: i64,
    pub started: Instant,
    phase: Instant,
}

impl<'b> Run<'b> {
    fn new(batch: &'b PipeBatch) -> Self {
        let arrivals = || batch.iter().map(|r| r.arrival_millis());
        let now = Instant::now();
        Self {
            batch,
            now: Utc::now(),
            report: BatchReport {
                records: batch.len(),
                ..BatchReport::default()
            },
            failed: Vec::new(),
            oldest: arrivals().min().unwrap_or(0),
            newest: arrivals().max().unwrap_or(0),
            started: now,
            phase: now,
        }
    }

    /// Records that the work of record `index` did not complete, and why.
    pub fn fail(&mut self, index: usize, error: String) {
        self.failed.push(index);
        self.report.errors.push(error);
    }

    /// Microseconds since the previous phase ended: consecutive phases, no gaps.
    pub fn phase_us(&mut self) -> u64 {
        let now = Instant::now();
        let us = micros(now.duration_since(self.phase));
        self.phase = now;
        us
    }
}

impl Processor {
    pub(super) async fn run(&self, batch: &PipeBatch) -> BatchReport {
        let mut run = Run::new(batch);
        // 1-2. Decode, validate, group (pure).
        let DecodedBatch {
            malformed,
            products: mut work,
        } = inventory_domain::batch::decode_pipe_batch(batch);
        if self.settings.collide_dedup_keys {
            collide_keys(&mut work);
        }
        // 3. The shards as their stream lists them, their logs and their ancestors', and the
        // products' items; the listing again if a product's position is newer than it.
        let mut placed = self.place_shards(&mut run, &work).await;
        let loaded = self.load(&mut run, work, &placed).await;
        self.place_positions(&mut run, &mut placed, loaded.positions())
            .await;
        // 4. Fold each product's events over its item (pure).
        let folds = self.fold(&mut run, loaded, &placed).await;
        // 5. Rejections, then one conditional write per changed product.
        let written = self.write(&mut run, &malformed, folds).await;
        // 5c-6. The shard log and the counters, after the writes they vouch for.
        self.log_and_count(&mut run, written).await;
        finish(run)
    }
}

/// The test hook [`ProcessorSettings::collide_dedup_keys`](super::ProcessorSettings).
fn collide_keys(work: &mut [super::ProductWork]) {
    for ev in work.iter_mut().flat_map(|w| w.events.iter_mut()) {
        ev.keys.key = ev.keys.key.collided();
        ev.keys.legacy = 0;
    }
}

/// The Pipe's answer and the batch's summary.
fn finish(mut run: Run<'_>) -> BatchReport {
    let first_failed = run.failed.iter().min().copied();
    if let Some(first) = first_failed {
        run.report.response = BatchResponse {
            batch_item_failures: vec![BatchItemFailure {
                item_identifier: run.batch.at(first).event_id.to_owned(),
            }],
        };
    }
    if run.report.records > 0 {
        let lag = Utc::now().timestamp_millis().saturating_sub(run.oldest);
        run.report.lag_ms = Some(u64::try_from(lag).unwrap_or(0));
    }
    run.report.phases.total_us = micros(run.started.elapsed());
    let report = &run.report;
    tracing::info!(
        records = report.records,
        applied = report.applied,
        redeliveries = report.redeliveries,
        producer_duplicates = report.producer_duplicates,
        rejected = report.rejected_total(),
        products_written = report.products_written,
        failed_from = ?first_failed.map(|i| run.batch.at(i).event_id),
        "batch processed"
    );
    run.report
}

pub(super) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
