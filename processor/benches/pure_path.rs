//! The processor's pure path on a 1,000-record Pipes batch, starting from the JSON bytes the
//! Lambda runtime hands over: parse the batch, decode base64, parse and validate each event,
//! group by product (one write per product), and fold each product's events. Timed in CPU
//! time of the benchmark thread: events per second on one core.
//!
//! `cargo bench -p inventory-processor --bench pure_path`; figures in docs/performance.md.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use inventory_domain::pipes::PipeBatch;
use inventory_domain::{PipeRecord, ProductRecord, ProductStatus, RecentIds, SequenceNumber};
use inventory_processor::body::read_body;
use inventory_processor::handler::{decode_batch, decode_pipe_batch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

const RECORDS: usize = 1_000;
const PRODUCTS: usize = 1_000;
const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/inventory-events";

/// A batch as one shard delivers it: increasing 56-digit sequence numbers, payloads shaped
/// like the generator's (ULID event ids, millisecond UTC timestamps), mostly quantity changes
/// of products that already exist, as in a steady state.
fn batch(zipf: Option<f64>, seed: u64) -> (Vec<u8>, HashMap<String, ProductRecord>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let dist = zipf.map(|s| Zipf::new(PRODUCTS as f64, s).expect("valid Zipf parameters"));
    let id = |p: usize| format!("r1f3c9a2e-P{:05}", p + 1);
    let mut stored = HashMap::new();
    let mut records = Vec::with_capacity(RECORDS);
    let stream = inventory_domain::arn::StreamArn::parse(ARN).expect("the bench's stream ARN");
    for i in 0..RECORDS {
        let p = match &dist {
            Some(z) => (z.sample(&mut rng) as usize).clamp(1, PRODUCTS) - 1,
            None => rng.random_range(0..PRODUCTS),
        };
        let product_id = id(p);
        let roll: f64 = rng.random();
        let (kind, quantity, name) = if roll < 0.02 {
            (
                "product_added",
                Some(100),
                Some(format!("Product {}", p + 1)),
            )
        } else if roll < 0.27 {
            ("quantity_increased", Some(rng.random_range(5..=50)), None)
        } else {
            ("quantity_decreased", Some(rng.random_range(1..=5)), None)
        };
        let mut product = serde_json::json!({
            "product_id": product_id,
            "timestamp": format!("2026-11-25T12:{:02}:{:02}.{:03}Z", i / 3600 % 60, i / 60 % 60, i % 1000),
        });
        if let Some(n) = name {
            product["product_name"] = n.into();
        }
        if let Some(q) = quantity {
            product["quantity"] = q.into();
        }
        let event = serde_json::json!({
            "event_id": format!("01JDQ{:021}", rng.random::<u64>()),
            "event_type": kind,
            "product": product,
        });
        let seq = format!("4959033827149025660855969253836157109592157598913{:07}", i);
        records.push(PipeRecord {
            invoke_identity_arn: "arn:aws:iam::123456789012:role/inventory-pipe-role".into(),
            ..PipeRecord::new(
                &stream,
                "shardId-000000000000",
                &seq,
                &product_id,
                base64::engine::general_purpose::STANDARD.encode(event.to_string()),
                1_764_072_000.0 + i as f64 / 1000.0,
            )
        });
        stored.entry(product_id.clone()).or_insert(ProductRecord {
            product_id,
            name: format!("Product {}", p + 1),
            quantity: 1_000_000,
            status: ProductStatus::Active,
            version: 10,
            last_sequence: SequenceNumber::parse("1").expect("a sequence number"),
            last_shard: None,
            last_stream: None,
            last_event_at: "2026-11-25T11:00:00.000Z".parse().expect("a timestamp"),
            recent_ids: RecentIds::default(),
            history: None,
        });
    }
    let json = serde_json::to_vec(&records).expect("records serialise");
    (json, stored)
}

/// The CPU time of the benchmark's thread (`CLOCK_THREAD_CPUTIME_ID`), so the figure is per
/// core-second and other processes on a shared machine do not stretch it; on an idle machine
/// it equals wall time.
struct ThreadCpu;

static WALL: WallTime = WallTime;

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

/// As lambda_runtime reads an invocation's body into the handler's event type.
fn lambda_deserialize<T: for<'de> serde::Deserialize<'de>>(body: &[u8]) -> T {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).expect("a Pipes batch")
}

/// One workload's batch in every form the benchmarks read it, checked to agree.
struct Input {
    /// The invocation's body.
    json: Vec<u8>,
    /// The products' stored items before the batch.
    stored: HashMap<String, ProductRecord>,
    pipe_batch: PipeBatch,
    decoded: inventory_processor::handler::DecodedBatch,
}

/// The batch of the workload (`skew`: Zipf's exponent, or uniform), with every way of
/// reading it checked to give the same records and the same decoded events.
fn input(skew: Option<f64>) -> Input {
    let (json, stored) = batch(skew, 7);
    let records: Vec<PipeRecord> = serde_json::from_slice(&json).expect("a Pipes batch");
    let pipe_batch: PipeBatch = serde_json::from_slice(&json).expect("a Pipes batch");
    let decoded = decode_pipe_batch(&pipe_batch);
    assert!(decoded.malformed.is_empty(), "{:?}", decoded.malformed);
    assert_eq!(decoded, decode_batch(&records), "both readings agree");
    let raw: Box<serde_json::value::RawValue> = lambda_deserialize(&json);
    let via_raw: PipeBatch = serde_json::from_str(raw.get()).expect("a Pipes batch");
    assert_eq!(
        via_raw, pipe_batch,
        "a RawValue through path tracking is the whole body"
    );
    let in_place = read_body(json.clone()).expect("a Pipes batch");
    assert_eq!(
        in_place.to_records(),
        records,
        "read in place, the same records"
    );
    assert_eq!(decode_pipe_batch(&in_place), decoded);
    Input {
        json,
        stored,
        pipe_batch,
        decoded,
    }
}

fn pure_path(c: &mut Criterion<ThreadCpu>) {
    for (name, skew) in [("uniform", None), ("zipf1.1", Some(1.1))] {
        let input = input(skew);
        let mut g = c.benchmark_group(format!("pure_path/{name}"));
        g.throughput(Throughput::Elements(RECORDS as u64));
        whole_paths(&mut g, &input);
        stages(&mut g, &input);
        g.finish();
    }
}

/// The whole pure path, body to decoded (and folded) products, each way the Lambda has read
/// or could read the body.
fn whole_paths(g: &mut BenchmarkGroup<'_, ThreadCpu>, input: &Input) {
    let Input { json, stored, .. } = input;
    // The figure, as the processor's Lambda runs it: the invocation's bytes in
    // (taken before lambda_runtime's deserialiser, processor/src/body.rs), read in place,
    // events decoded, validated and grouped per product, everything freed again. The
    // setup's copy of the body stands for the runtime's, which it hands over.
    g.bench_function("Lambda/read_body+decode+group", |b| {
        b.iter_batched(
            || json.clone(),
            |body| {
                let batch = read_body(body).expect("a Pipes batch");
                let decoded = decode_pipe_batch(&batch);
                black_box(&decoded);
            },
            BatchSize::LargeInput,
        )
    });
    // The previous Lambda path: the body deserialised by lambda_runtime as a RawValue
    // (a full scan and copy), then read as a PipeBatch by serde_json.
    g.bench_function("RawValue+PipeBatch/parse+decode+group", |b| {
        b.iter(|| {
            let raw: Box<serde_json::value::RawValue> = lambda_deserialize(black_box(json));
            let batch: PipeBatch = serde_json::from_str(raw.get()).expect("a Pipes batch");
            black_box(decode_pipe_batch(&batch))
        })
    });
    // The body deserialised by lambda_runtime straight into the batch types.
    g.bench_function("PipeBatch/parse+decode+group", |b| {
        b.iter(|| {
            let batch: PipeBatch = lambda_deserialize(black_box(json));
            black_box(decode_pipe_batch(&batch))
        })
    });
    g.bench_function("Vec<PipeRecord>/parse+decode+group", |b| {
        b.iter(|| {
            let records: Vec<PipeRecord> = lambda_deserialize(black_box(json));
            black_box(decode_batch(&records))
        })
    });
    // Everything the handler does without I/O: also fold each product's events over its
    // stored item into the one write it makes.
    g.bench_function("PipeBatch/parse+decode+group+fold", |b| {
        b.iter(|| {
            let batch: PipeBatch = lambda_deserialize(black_box(json));
            let decoded = decode_pipe_batch(&batch);
            let folds: Vec<_> = decoded
                .products
                .iter()
                .map(|w| fold_listed(stored.get(&w.product_id).cloned(), &w.events))
                .collect();
            black_box(folds)
        })
    });
}

/// The stages alone, to show where the time goes.
fn stages(g: &mut BenchmarkGroup<'_, ThreadCpu>, input: &Input) {
    let Input {
        json,
        stored,
        pipe_batch,
        decoded,
    } = input;
    g.bench_function(
        "stage/RawValue through lambda_runtime's deserialiser",
        |b| {
            b.iter(|| {
                let raw: Box<serde_json::value::RawValue> = lambda_deserialize(black_box(json));
                black_box(raw)
            })
        },
    );
    g.bench_function("stage/read_body (sonic-rs, in place)", |b| {
        b.iter_batched(
            || json.clone(),
            |body| black_box(read_body(body).expect("a Pipes batch")),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("stage/PipeBatch::from_json (serde_json, in place)", |b| {
        b.iter_batched(
            || String::from_utf8(json.clone()).expect("JSON is UTF-8"),
            |body| black_box(PipeBatch::from_json(body).expect("a Pipes batch")),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("stage/parse PipeBatch (serde_json, copied)", |b| {
        b.iter(|| {
            let batch: PipeBatch = serde_json::from_slice(black_box(json)).expect("a Pipes batch");
            black_box(batch)
        })
    });
    g.bench_function("stage/decode+group", |b| {
        b.iter(|| black_box(decode_pipe_batch(black_box(pipe_batch))))
    });
    g.bench_function("stage/fold", |b| {
        b.iter_batched(
            || decoded.products.clone(),
            |products| {
                let folds: Vec<_> = products
                    .iter()
                    .map(|w| fold_listed(stored.get(&w.product_id).cloned(), &w.events))
                    .collect();
                black_box(folds)
            },
            BatchSize::LargeInput,
        )
    });
}

/// The fold as the processor runs it: each record placed in the stream's listing (one
/// shard), without a shard log.
fn fold_listed(
    stored: Option<ProductRecord>,
    events: &[inventory_domain::SequencedEvent],
) -> inventory_domain::ProductFold {
    static LISTING: std::sync::OnceLock<inventory_domain::lineage::StreamLineage> =
        std::sync::OnceLock::new();
    let listing = LISTING.get_or_init(|| {
        inventory_domain::lineage::StreamLineage::single(
            inventory_domain::lineage::StreamId::new(ARN, 1_700_000_000_000),
            0,
        )
    });
    inventory_domain::fold_product_in(
        stored,
        events,
        &inventory_domain::dedup::NoLog,
        0,
        inventory_domain::Source::Listed(listing),
    )
}

// What the processor binary runs with (processor/src/bin/processor.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = pure_path
}
criterion_main!(benches);
