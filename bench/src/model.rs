//! The per-shard capacity model and the cost per million events, computed from what a run
//! measured. Pure arithmetic, so docs/performance.md can show the same sums and the tests
//! below can check them.

/// AWS list prices, us-east-1, as published on the pages docs/performance.md cites.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prices {
    /// Kinesis on-demand: per stream-hour.
    pub(crate) kinesis_stream_hour: f64,
    /// Kinesis on-demand: data in per GB (each record rounded up to 1 KB).
    pub(crate) kinesis_in_gb: f64,
    /// Kinesis on-demand: data retrieved per GB.
    pub(crate) kinesis_out_gb: f64,
    /// EventBridge Pipes: per million requests (64 KB chunks of a payload).
    pub(crate) pipes_million: f64,
    /// Lambda arm64: per GB-second (first tier).
    pub(crate) lambda_gb_s: f64,
    /// Lambda: per million requests.
    pub(crate) lambda_million: f64,
    /// DynamoDB on-demand: per million write request units.
    pub(crate) ddb_wru_million: f64,
    /// DynamoDB on-demand: per million read request units.
    pub(crate) ddb_rru_million: f64,
}

/// Looked up 2026-11-30 (docs/performance.md, "Cost per million events", cites the pages).
pub(crate) const PRICES: Prices = Prices {
    kinesis_stream_hour: 0.04,
    kinesis_in_gb: 0.08,
    kinesis_out_gb: 0.04,
    pipes_million: 0.40,
    lambda_gb_s: 0.000_013_333_4,
    lambda_million: 0.20,
    ddb_wru_million: 0.625,
    ddb_rru_million: 0.125,
};
pub(crate) const PRICES_AS_OF: &str = "2026-11-30, us-east-1";

/// Lambda gives a function one vCPU at 1,769 MB, in proportion below it.
pub(crate) const MB_PER_VCPU: f64 = 1_769.0;
/// Kinesis: 5 GetRecords per second per shard, shared by its consumers.
pub(crate) const MIN_POLL_S: f64 = 0.2;
/// Kinesis: at most 10,000 records per GetRecords.
pub(crate) const MAX_RECORDS_PER_POLL: f64 = 10_000.0;
/// Kinesis: 2 MB/s of reads per shard, shared by its consumers.
pub(crate) const SHARD_READ_BYTES_PER_S: f64 = 2.0 * 1024.0 * 1024.0;
/// The MemorySize values the model chooses from.
pub(crate) const MEMORY_CHOICES: [u32; 7] = [256, 512, 1_024, 1_536, 1_769, 2_048, 3_008];
/// The BatchSize values the model chooses from.
pub(crate) const BATCH_CHOICES: [u32; 6] = [100, 200, 500, 1_000, 2_000, 5_000];

/// What the capacity model takes: measured on this machine except the three latencies,
/// which are assumptions (AWS publishes DynamoDB's as "single-digit milliseconds").
#[derive(Debug, Clone, Copy)]
pub(crate) struct CapacityInputs {
    /// Processor CPU per event, whole invocation with the SDK, at one vCPU, on uniform keys
    /// with (almost) every event its own product write: the worst case for coalescing.
    pub(crate) cpu_us_per_event: f64,
    /// DynamoDB requests per batch made one after another besides the product writes
    /// (the shard log's refresh and write, warm reads), measured.
    pub(crate) serial_requests_per_batch: f64,
    /// Product writes per event (uniform: ~1).
    pub(crate) product_writes_per_event: f64,
    /// Product writes in flight at once (the processor's write concurrency).
    pub(crate) write_concurrency: f64,
    pub(crate) ddb_latency_ms: f64,
    /// Pipes → Lambda synchronous invoke, outside the function.
    pub(crate) invoke_overhead_ms: f64,
    pub(crate) get_records_ms: f64,
    /// Bytes per record read from the stream (for the shard's 2 MB/s read limit).
    pub(crate) record_bytes: f64,
}

/// One shard's processor at a MemorySize and BatchSize, on full batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ShardCapacity {
    pub(crate) memory_mb: u32,
    /// Records per batch.
    pub(crate) batch: f64,
    /// The function's CPU share.
    pub(crate) vcpu: f64,
    pub(crate) cpu_ms: f64,
    pub(crate) ddb_ms: f64,
    /// Billed duration of one invocation: CPU + DynamoDB.
    pub(crate) duration_ms: f64,
    /// One batch after the next: the duration, the invoke, and this batch's share of a
    /// GetRecords (a poll returns up to 10,000 records, invoked batch after batch).
    pub(crate) cycle_ms: f64,
    pub(crate) records_per_s: f64,
    /// Lambda GB-seconds per million events.
    pub(crate) gb_s_per_million: f64,
}

impl CapacityInputs {
    /// One batch of `batch` records at `memory_mb`.
    pub(crate) fn at(&self, memory_mb: u32, batch: f64) -> ShardCapacity {
        let b = batch;
        let vcpu = (f64::from(memory_mb) / MB_PER_VCPU).min(1.0);
        let cpu_ms = b * self.cpu_us_per_event / 1_000.0 / vcpu;
        let writes = b * self.product_writes_per_event;
        let waves = (writes / self.write_concurrency).ceil();
        let ddb_ms = (waves + self.serial_requests_per_batch) * self.ddb_latency_ms;
        let duration_ms = cpu_ms + ddb_ms;
        let batches_per_poll = (MAX_RECORDS_PER_POLL / b).floor().max(1.0);
        let cycle_ms =
            duration_ms + self.invoke_overhead_ms + self.get_records_ms / batches_per_poll;
        // Polls are at least 200 ms apart, and a shard's reads at most 2 MB/s.
        let poll_limit = batches_per_poll * b / MIN_POLL_S;
        let read_limit = SHARD_READ_BYTES_PER_S / self.record_bytes.max(1.0);
        let records_per_s = (b / (cycle_ms / 1_000.0)).min(poll_limit).min(read_limit);
        let gb_s_per_million = f64::from(memory_mb) / 1_024.0 * (duration_ms / 1_000.0) * (1e6 / b);
        ShardCapacity {
            memory_mb,
            batch,
            vcpu,
            cpu_ms,
            ddb_ms,
            duration_ms,
            cycle_ms,
            records_per_s,
            gb_s_per_million,
        }
    }

    /// The settings for `records_per_s` per shard on full batches, with `margin` to spare
    /// (0.05: 5 %); `None` when none keeps up.
    ///
    /// - MemorySize: the smallest with one whole vCPU. The processor is one thread of work,
    ///   so more buys nothing; below it Lambda lends the CPU in time slices, which stretches
    ///   each batch's CPU time and so the lag, and the CPU per event was measured on a
    ///   whole core. A model that keeps up at 1 vCPU only with a bigger batch says so.
    /// - BatchSize: the smallest that keeps up with the margin. A bigger batch costs
    ///   little less (the table shows it) but makes a burst's lag and a failing batch's
    ///   bisection longer. The margin keeps the pick off the knife edge: the CPU per event
    ///   moves by ±15 % between runs on a shared machine.
    pub(crate) fn pick(&self, records_per_s: f64, margin: f64) -> Option<ShardCapacity> {
        let memory = MEMORY_CHOICES
            .iter()
            .copied()
            .find(|&m| f64::from(m) >= MB_PER_VCPU)?;
        BATCH_CHOICES
            .iter()
            .map(|&b| self.at(memory, f64::from(b)))
            .find(|c| c.records_per_s >= records_per_s * (1.0 + margin))
    }
}

/// What a run measured, per event, for the cost table.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    pub(crate) events: f64,
    pub(crate) invocations: f64,
    pub(crate) pipes_requests: f64,
    /// Kinesis data in, KB (each record rounded up to 1 KB).
    pub(crate) kinesis_in_kb: f64,
    /// Record bytes the Pipe read back.
    pub(crate) kinesis_out_bytes: f64,
    pub(crate) wru: f64,
    pub(crate) rru: f64,
    /// Lambda GB-seconds, from the capacity model's duration of these batches.
    pub(crate) lambda_gb_s: f64,
    /// Events per second the stream carries, for its hourly charge.
    pub(crate) events_per_s: f64,
}

/// Dollars per million events, by service.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Cost {
    pub(crate) kinesis: f64,
    pub(crate) pipes: f64,
    pub(crate) lambda: f64,
    pub(crate) dynamodb: f64,
}

impl Cost {
    pub(crate) fn total(&self) -> f64 {
        self.kinesis + self.pipes + self.lambda + self.dynamodb
    }
}

impl Usage {
    pub(crate) fn cost_per_million(&self, p: &Prices) -> Cost {
        let per_million = 1e6 / self.events.max(1.0);
        let gb = 1024.0 * 1024.0 * 1024.0;
        let hours = self.events / self.events_per_s.max(1e-9) / 3_600.0;
        Cost {
            kinesis: per_million
                * (hours * p.kinesis_stream_hour
                    + self.kinesis_in_kb * 1024.0 / gb * p.kinesis_in_gb
                    + self.kinesis_out_bytes / gb * p.kinesis_out_gb),
            pipes: per_million * self.pipes_requests / 1e6 * p.pipes_million,
            lambda: per_million
                * (self.invocations / 1e6 * p.lambda_million + self.lambda_gb_s * p.lambda_gb_s),
            dynamodb: per_million
                * (self.wru / 1e6 * p.ddb_wru_million + self.rru / 1e6 * p.ddb_rru_million),
        }
    }
}

/// The typical solution's DynamoDB cost per million events: one UpdateItem (1 WRU, the item
/// under 1 KB) per event, no reads.
pub(crate) fn typical_dynamodb_per_million(p: &Prices) -> f64 {
    p.ddb_wru_million
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(cpu_us: f64) -> CapacityInputs {
        CapacityInputs {
            cpu_us_per_event: cpu_us,
            serial_requests_per_batch: 2.0,
            product_writes_per_event: 1.0,
            write_concurrency: 32.0,
            ddb_latency_ms: 10.0,
            invoke_overhead_ms: 20.0,
            get_records_ms: 10.0,
            record_bytes: 300.0,
        }
    }

    #[test]
    fn the_arithmetic_of_one_batch() {
        // 1,000 records, 100 µs each at half a vCPU: 200 ms of CPU; 1,000 writes in waves
        // of 32 = 32 waves, plus 2 serial requests, at 10 ms: 340 ms. A poll brings 10
        // batches, so each pays a tenth of the 10 ms GetRecords.
        let c = inputs(100.0).at(885, 1_000.0);
        assert!((c.vcpu - 885.0 / 1_769.0).abs() < 1e-12);
        assert!((c.cpu_ms - 100.0 / c.vcpu).abs() < 1e-9);
        assert!((c.ddb_ms - 340.0).abs() < 1e-9);
        assert!((c.cycle_ms - (c.cpu_ms + 340.0 + 20.0 + 1.0)).abs() < 1e-9);
        assert!((c.records_per_s - 1_000.0 / (c.cycle_ms / 1_000.0)).abs() < 1e-9);
    }

    #[test]
    fn the_shards_read_limits_cap_a_fast_processor() {
        // 2 MB/s of 1 KB records: 2,048 records/s however fast the function is.
        let fast = CapacityInputs {
            record_bytes: 1_024.0,
            invoke_overhead_ms: 0.0,
            get_records_ms: 0.0,
            ddb_latency_ms: 0.0,
            ..inputs(1.0)
        };
        assert!((fast.at(3_008, 1_000.0).records_per_s - 2_048.0).abs() < 1e-9);
        // A poll brings up to 10,000 records, invoked batch after batch, so even batches
        // of one record are not held to the 5 polls a second.
        assert!(fast.at(3_008, 1.0).records_per_s > 5.0);
    }

    #[test]
    fn the_pick_is_one_vcpu_and_the_smallest_batch_that_keeps_up_with_the_margin() {
        let i = inputs(100.0);
        let pick = i.pick(2_000.0, 0.05).expect("a setting keeps up");
        assert_eq!(pick.memory_mb, 1_769);
        assert!(pick.records_per_s >= 2_100.0);
        for &b in BATCH_CHOICES.iter().filter(|&&b| f64::from(b) < pick.batch) {
            assert!(i.at(1_769, f64::from(b)).records_per_s < 2_100.0, "{b}");
        }
        // Without the margin a smaller batch can scrape through.
        let bare = i.pick(2_000.0, 0.0).expect("a setting keeps up");
        assert!(bare.batch <= pick.batch);
    }

    #[test]
    fn more_cpu_per_event_needs_a_bigger_batch_or_finds_none() {
        let cheap = inputs(20.0)
            .pick(2_000.0, 0.05)
            .expect("a setting keeps up");
        let dear = inputs(120.0)
            .pick(2_000.0, 0.05)
            .expect("a setting keeps up");
        assert!(dear.batch > cheap.batch, "{cheap:?} {dear:?}");
        assert!(inputs(2_000.0).pick(2_000.0, 0.05).is_none());
    }

    #[test]
    fn the_cost_of_the_typical_solution_is_one_write_unit_per_event() {
        let typical = Usage {
            events: 2e6,
            wru: 2e6,
            events_per_s: 1_000.0,
            ..Usage::default()
        };
        let cost = typical.cost_per_million(&PRICES);
        assert!((cost.dynamodb - typical_dynamodb_per_million(&PRICES)).abs() < 1e-12);
        // 2 M events at 1,000/s is 2,000 s of the stream's hourly charge.
        let hours = 2_000.0 / 3_600.0;
        assert!((cost.kinesis - hours * PRICES.kinesis_stream_hour / 2.0).abs() < 1e-12);
    }
}
