//! The processor's CPU per event, whole invocation with the SDK, against the embedded
//! dynoxide: what `perf record` profiles (issue 17). The processor runs on this process's
//! main thread (a current-thread runtime, as in Lambda); dynoxide on its own thread named
//! `dynoxide`, so `perf report --comm profile_batches` shows the processor's side alone.
//!
//! ```sh
//! cargo run --release -p inventory-processor --example profile_batches -- uniform 100 200
//! cargo run --release -p inventory-processor --example profile_batches -- zipf 1000 40
//! ```
//! Arguments: workload (`uniform` over 10,000 products or `zipf` with exponent 1.1), batch
//! size, batches measured (after as many warm-up batches).

use std::time::{Duration, Instant};

use inventory_domain::pipes::PipeBatch;
use inventory_processor::{BatchReport, Phases, Processor};
use inventory_testkit::{client_at, event, shards, Shard};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

// As the Lambda binary (src/bin/processor.rs), so the allocator profiled is the one deployed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A boxed error is enough for an example's `main` (no anyhow in this crate).
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const PRODUCTS: usize = 10_000;

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The command line: workload (`uniform` or `zipf`), batch size, batches measured.
struct Args {
    workload: String,
    batch: usize,
    batches: usize,
}

impl Args {
    fn parse() -> Result<Self> {
        let args: Vec<String> = std::env::args().collect();
        Ok(Self {
            workload: args.get(1).map_or("uniform", String::as_str).to_owned(),
            batch: args.get(2).map_or(Ok(100), |s| s.parse())?,
            batches: args.get(3).map_or(Ok(100), |s| s.parse())?,
        })
    }
}

fn main() -> Result<()> {
    let args = Args::parse()?;
    let addr = start_dynoxide()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let db = client_at(addr);
        let tables = inventory_store::Tables::with_prefix("profile");
        inventory_store::tables::ensure_tables(&db, &tables).await?;
        let processor = Processor::new(db, tables, shards(0));
        let mut events = Events::new(&args)?;
        events.add_products(&processor).await;
        // Warm up: connections, the cache, the allocator.
        for _ in 0..args.batches {
            let b = events.next_batch();
            processor.process_batch(&b).await;
        }
        let prepared: Vec<_> = (0..args.batches).map(|_| events.next_batch()).collect();
        measure(&processor, &prepared, &args).await
    })
}

/// dynoxide on its own thread and runtime, so its CPU is not the processor's; its address.
fn start_dynoxide() -> Result<std::net::SocketAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("dynoxide".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("dynoxide")
                .enable_all()
                .build()
                .expect("dynoxide's runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("address"))
                    .expect("send the address");
                let db = dynoxide::Database::memory().expect("dynoxide");
                let _ = dynoxide::server::serve_on(listener, db).await;
            });
        })?;
    Ok(rx.recv()?)
}

/// The workload's events, batch by batch, on one shard.
struct Events {
    ids: Vec<String>,
    shard: Shard,
    rng: StdRng,
    zipf: Option<Zipf<f64>>,
    batch: usize,
    n: u64,
}

impl Events {
    fn new(args: &Args) -> Result<Self> {
        let zipf = Zipf::new(PRODUCTS as f64, 1.1)?;
        Ok(Self {
            ids: (0..PRODUCTS).map(|i| format!("P{i:05}")).collect(),
            shard: Shard::new(0),
            rng: StdRng::seed_from_u64(17),
            zipf: (args.workload == "zipf").then_some(zipf),
            batch: args.batch,
            n: 0,
        })
    }

    /// Every product added, a thousand a batch.
    async fn add_products(&mut self, processor: &Processor) {
        for chunk in self.ids.chunks(1000) {
            let added: Vec<(&str, String)> = chunk
                .iter()
                .map(|p| {
                    (
                        p.as_str(),
                        event(&format!("add-{p}"), "product_added", p, Some(1_000_000)),
                    )
                })
                .collect();
            processor.process_batch(&self.shard.batch(&added)).await;
        }
    }

    /// A batch of quantity changes, half up and half down.
    fn next_batch(&mut self) -> PipeBatch {
        let events: Vec<(String, String)> = (0..self.batch)
            .map(|_| {
                let rng = &mut self.rng;
                let k = match &self.zipf {
                    Some(zipf) => (zipf.sample(rng) as usize).clamp(1, PRODUCTS) - 1,
                    None => rng.random_range(0..PRODUCTS),
                };
                self.n += 1;
                let kind = if rng.random_bool(0.5) {
                    "quantity_increased"
                } else {
                    "quantity_decreased"
                };
                let p = &self.ids[k];
                let quantity = Some(rng.random_range(1..5));
                (p.clone(), event(&format!("e{}", self.n), kind, p, quantity))
            })
            .collect();
        let refs: Vec<(&str, String)> = events
            .iter()
            .map(|(p, e)| (p.as_str(), e.clone()))
            .collect();
        self.shard.batch(&refs)
    }
}

/// Processes the prepared batches, timed, and prints the processor's CPU per event, what
/// the batches cost in requests, and their phases.
async fn measure(processor: &Processor, prepared: &[PipeBatch], args: &Args) -> Result<()> {
    let cpu0 = thread_cpu();
    let wall0 = Instant::now();
    let mut total = BatchReport::default();
    let mut phases = Phases::default();
    let mut written = 0;
    for b in prepared {
        let r = processor.process_batch(b).await;
        if !r.response.batch_item_failures.is_empty() {
            return Err(format!("a batch failed: {:?}", r.errors).into());
        }
        total.read_requests += r.read_requests;
        total.product_write_requests += r.product_write_requests;
        total.cache_hits += r.cache_hits;
        total.cache_misses += r.cache_misses;
        written += r.products_written;
        phases.log_refresh_us += r.phases.log_refresh_us;
        phases.read_us += r.phases.read_us;
        phases.fold_us += r.phases.fold_us;
        phases.rejection_write_us += r.phases.rejection_write_us;
        phases.product_write_us += r.phases.product_write_us;
        phases.log_write_us += r.phases.log_write_us;
        phases.total_us += r.phases.total_us;
    }
    let cpu = thread_cpu() - cpu0;
    let wall = wall0.elapsed();
    let Args {
        workload,
        batch,
        batches,
    } = args;
    let events = (batch * batches) as f64;
    println!(
        "{workload} batch {batch} x {batches}: processor CPU {:.1} us/event, wall {:.1} us/event, {:.0} events/s",
        cpu.as_secs_f64() * 1e6 / events,
        wall.as_secs_f64() * 1e6 / events,
        events / wall.as_secs_f64()
    );
    println!(
        "per batch: {:.1} products written, {:.2} product write requests, {:.2} read requests, cache hits {} misses {}",
        written as f64 / *batches as f64,
        total.product_write_requests as f64 / *batches as f64,
        total.read_requests as f64 / *batches as f64,
        total.cache_hits,
        total.cache_misses
    );
    println!("phases (us per batch): {:?}", {
        let b = *batches as u64;
        Phases {
            log_refresh_us: phases.log_refresh_us / b,
            read_us: phases.read_us / b,
            fold_us: phases.fold_us / b,
            rejection_write_us: phases.rejection_write_us / b,
            product_write_us: phases.product_write_us / b,
            log_write_us: phases.log_write_us / b,
            total_us: phases.total_us / b,
        }
    });
    Ok(())
}
