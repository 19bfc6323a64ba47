//! Pipe targets: the processor in this process on the Lambda's path (the body as Pipes
//! sends it, `Processor::handle_body`, the response as JSON), and one that crashes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inventory_domain::PipeRecord;
use inventory_local::pipe::{BoxFuture, Target, TargetError};
use inventory_local::stack::LocalStack;
use inventory_processor::{KinesisShards, ListShards, Processor, ProcessorSettings};
use inventory_store::Tables;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// The processor Lambda's handler in this process, behind the same JSON in and out as the
/// Lambda runtime (processor/src/bin/processor.rs reads its body with `handle_body` too).
#[derive(Clone)]
pub struct InProcessTarget(pub Processor);

impl InProcessTarget {
    /// A fresh processor (a cold start) on the stack's tables.
    pub fn on(stack: &LocalStack) -> Self {
        Self(processor_of(stack))
    }

    /// A fresh processor writing to `tables` (a replay's, say).
    pub fn on_tables(stack: &LocalStack, tables: &Tables) -> Self {
        Self(Processor::with_settings(
            stack.db.clone(),
            tables.clone(),
            shards_of(stack),
            settings_of(stack),
        ))
    }
}

impl Target for InProcessTarget {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, TargetError>> {
        let processor = self.0.clone();
        Box::pin(async move {
            let response = processor
                .handle_body(payload)
                .await
                .map_err(TargetError::function)?;
            serde_json::to_vec(&response).map_err(TargetError::function)
        })
    }
}

/// A new processor instance on the stack's tables, with its own clients' settings.
pub fn processor_of(stack: &LocalStack) -> Processor {
    Processor::with_settings(
        stack.db.clone(),
        stack.options.tables.clone(),
        shards_of(stack),
        settings_of(stack),
    )
}

/// The processor's settings as the stack runs its binary (history as the stack says).
pub fn settings_of(stack: &LocalStack) -> ProcessorSettings {
    ProcessorSettings {
        history: stack.options.history,
        ..ProcessorSettings::default()
    }
}

/// The stack's stream as Kinesis lists it, for a processor.
pub fn shards_of(stack: &LocalStack) -> Arc<dyn ListShards> {
    Arc::new(KinesisShards(stack.kinesis.clone()))
}

/// The processor, but some invocations die part-way: either after applying a random prefix
/// of the batch, or cancelled after a random delay, in the middle of whatever DynamoDB calls
/// are in flight (some land, some do not). The Pipe then sees a function error.
pub struct CrashingTarget {
    pub inner: InProcessTarget,
    pub rng: Mutex<StdRng>,
    pub crash_ratio: f64,
    pub crashes: AtomicU64,
}

impl CrashingTarget {
    pub fn new(inner: InProcessTarget, crash_ratio: f64, seed: u64) -> Self {
        Self {
            inner,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            crash_ratio,
            crashes: AtomicU64::new(0),
        }
    }

    pub fn crashes(&self) -> u64 {
        self.crashes.load(Ordering::SeqCst)
    }
}

enum Crash {
    AfterPrefix(usize),
    AfterDelay(Duration),
}

impl Target for CrashingTarget {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, TargetError>> {
        let records: Vec<PipeRecord> = match serde_json::from_slice(&payload) {
            Ok(r) => r,
            Err(e) => return Box::pin(async move { Err(TargetError::function(e)) }),
        };
        let crash = {
            let mut rng = self.rng.lock().unwrap();
            rng.random_bool(self.crash_ratio).then(|| {
                if rng.random_bool(0.5) {
                    Crash::AfterPrefix(rng.random_range(0..=records.len()))
                } else {
                    Crash::AfterDelay(Duration::from_micros(rng.random_range(0..30_000)))
                }
            })
        };
        let Some(crash) = crash else {
            return self.inner.invoke(payload);
        };
        self.crashes.fetch_add(1, Ordering::SeqCst);
        match crash {
            Crash::AfterPrefix(cut) => {
                let partial = self
                    .inner
                    .invoke(serde_json::to_vec(&records[..cut]).unwrap());
                Box::pin(async move {
                    let _ = partial.await;
                    Err(TargetError::function(format!(
                        "injected crash after {cut} records"
                    )))
                })
            }
            Crash::AfterDelay(after) => {
                let whole = self.inner.invoke(payload);
                Box::pin(async move {
                    // Dropping the future mid-flight is what a killed process does to it.
                    match tokio::time::timeout(after, whole).await {
                        Ok(_) | Err(_) => Err(TargetError::function(format!(
                            "injected crash after {after:?}"
                        ))),
                    }
                })
            }
        }
    }
}

pub fn shared<T>(t: T) -> Arc<T> {
    Arc::new(t)
}
