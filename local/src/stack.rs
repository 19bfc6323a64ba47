//! The whole local system: emulators, stream and tables in this process, and a Pipe
//! feeding the processor, which runs as Lambda runs it (its own binary, in processes that
//! ask a local Runtime API for invocations; see [`crate::lambda_host`]). Everything talks
//! to the emulators over HTTP with the AWS SDKs.

use std::path::PathBuf;
use std::sync::Arc;

use inventory_dead_letters::{DeadLetterConsumer, Redriver};
use inventory_store::tables::ensure_tables;
use inventory_store::{StoreError, Tables};

use crate::dead_letter_queue::DeadLetterQueue;
use crate::emulators::{
    EmulatorError, EmulatorOptions, LocalAws, LOCAL_ACCESS_KEY, LOCAL_REGION, LOCAL_SECRET_KEY,
};
use crate::kinesis::{self, KinesisError};
use crate::lambda_host::{processor_binary, LambdaHost, LambdaHostError, LambdaHostOptions};
use crate::pipe::{ensure_pipe_table, PipeError, PipeHandle, PipeRunner, Target, PIPE_TABLE};
use crate::pipe_settings::PipeSettings;

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub port: u16,
    pub data_dir: Option<PathBuf>,
    pub shards: i32,
    pub stream: String,
    /// The application's tables (what the processor and the API read and write).
    pub tables: Tables,
    /// The local Pipe's own table: its checkpoints and dead letters.
    pub pipe_table: String,
    pub pipe_name: String,
    pub pipe: PipeSettings,
    pub enforce_kinesis_limits: bool,
    /// Most processor instances at once. Pipes invokes one batch per shard at a time, so
    /// the pool reaches this only while that many shards are read together (a reshard's
    /// children); further invocations wait for an instance.
    pub max_processor_instances: usize,
    /// The processor keeps each product's history (`PRODUCT_HISTORY=on`), as `make demo`
    /// runs it; the deployed default is off (infra/template.yaml, `ProductHistory`).
    pub history: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            port: 0,
            data_dir: None,
            shards: 4,
            stream: "inventory-events".into(),
            tables: Tables {
                inventory: "inventory".into(),
                events: "inventory-events".into(),
            },
            pipe_table: PIPE_TABLE.into(),
            pipe_name: "inventory-pipe".into(),
            pipe: PipeSettings::default(),
            enforce_kinesis_limits: false,
            max_processor_instances: 16,
            history: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    #[error(transparent)]
    Kinesis(#[from] KinesisError),
    #[error(transparent)]
    Tables(#[from] StoreError),
    #[error(transparent)]
    Pipe(#[from] PipeError),
    #[error(transparent)]
    Processor(#[from] LambdaHostError),
}

pub struct LocalStack {
    pub aws: LocalAws,
    pub options: StackOptions,
    pub db: aws_sdk_dynamodb::Client,
    pub kinesis: aws_sdk_kinesis::Client,
}

impl LocalStack {
    /// Starts the emulators and creates the stream, the application's tables and the
    /// pipe table (idempotently).
    pub async fn start(options: StackOptions) -> Result<Self, StackError> {
        let aws = LocalAws::start(EmulatorOptions {
            port: options.port,
            data_dir: options.data_dir.clone(),
            enforce_kinesis_limits: options.enforce_kinesis_limits,
        })
        .await?;
        let config = aws.sdk_config();
        let db = aws_sdk_dynamodb::Client::new(&config);
        let kinesis_client = aws_sdk_kinesis::Client::new(&config);
        ensure_tables(&db, &options.tables).await?;
        ensure_pipe_table(&db, &options.pipe_table).await?;
        kinesis::ensure_stream(&kinesis_client, &options.stream, options.shards).await?;
        Ok(Self {
            aws,
            options,
            db,
            kinesis: kinesis_client,
        })
    }

    /// A Pipe from the stream to `target`, not started (its backoff can still be set).
    pub fn pipe_to(&self, target: Arc<dyn Target>) -> PipeRunner {
        PipeRunner::new(
            self.options.pipe_name.clone(),
            self.options.stream.clone(),
            self.options.pipe.clone(),
            self.kinesis.clone(),
            self.db.clone(),
            self.options.pipe_table.clone(),
            target,
        )
    }

    /// Starts the Pipe from the stream to `target`.
    pub fn start_pipe(&self, target: Arc<dyn Target>) -> PipeHandle {
        self.pipe_to(target).spawn()
    }

    /// The processor as Lambda runs it, against this stack's tables: its binary (see
    /// [`processor_binary`]) behind a local Runtime API, no instance started until the
    /// first invocation.
    pub fn processor_host(&self) -> Result<LambdaHost, StackError> {
        Ok(self.processor_host_for(processor_binary()?, &self.options.tables))
    }

    /// The processor binary at `binary` writing to `tables` (a replay's, say).
    pub fn processor_host_for(&self, binary: PathBuf, tables: &Tables) -> LambdaHost {
        let env = self
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .filter(|(k, _)| k != "INVENTORY_TABLE" && k != "EVENTS_TABLE")
            .chain([
                ("INVENTORY_TABLE".to_owned(), tables.inventory.clone()),
                ("EVENTS_TABLE".to_owned(), tables.events.clone()),
            ]);
        LambdaHost::new(LambdaHostOptions::processor(
            binary,
            env,
            self.options.max_processor_instances,
        ))
    }

    /// Starts the Pipe to the processor binary (as `make demo` runs it).
    pub fn start_processor_pipe(&self) -> Result<(PipeHandle, Arc<LambdaHost>), StackError> {
        let host = Arc::new(self.processor_host()?);
        Ok((self.start_pipe(host.clone()), host))
    }

    /// The dead-letter consumer, against this stack's stream and tables.
    pub fn dead_letter_consumer(&self) -> DeadLetterConsumer {
        DeadLetterConsumer::new(
            self.kinesis.clone(),
            self.db.clone(),
            self.options.tables.clone(),
            inventory_domain::dedup::DEFAULT_WINDOW_MS,
        )
    }

    /// Redrive, as the API runs it, onto this stack's stream.
    pub fn redriver(&self) -> Redriver {
        Redriver::new(
            self.kinesis.clone(),
            self.db.clone(),
            self.options.tables.clone(),
            self.options.stream.clone(),
            inventory_domain::dedup::DEFAULT_WINDOW_MS,
        )
    }

    /// Hands the local Pipe's dead letters to the dead-letter consumer, as the SQS queue
    /// triggers it in AWS (see [`crate::dead_letter_queue`]).
    pub fn start_dead_letter_queue(&self) -> DeadLetterQueue {
        DeadLetterQueue::start(
            self.db.clone(),
            self.options.pipe_table.clone(),
            self.options.pipe_name.clone(),
            self.dead_letter_consumer(),
        )
    }

    /// The environment a separate process needs to reach this stack with the AWS SDKs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.aws.endpoint().to_owned()),
            ("AWS_REGION", LOCAL_REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_KEY.to_owned()),
            ("STREAM_NAME", self.options.stream.clone()),
            ("INVENTORY_TABLE", self.options.tables.inventory.clone()),
            ("EVENTS_TABLE", self.options.tables.events.clone()),
            ("PIPE_TABLE", self.options.pipe_table.clone()),
            (
                "PRODUCT_HISTORY",
                if self.options.history { "on" } else { "off" }.to_owned(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_sdk_kinesis::primitives::Blob;

    use super::*;
    use crate::pipe::EveryItem as _;

    const EVENT: &str = r#"{"event_type":"product_added","product":{"product_id":"P1","product_name":"Laptop","quantity":10,"timestamp":"2023-09-11T12:00:00Z"}}"#;

    async fn partition_keys(db: &aws_sdk_dynamodb::Client, table: &str) -> Vec<String> {
        let items = db
            .scan()
            .table_name(table)
            .every_item()
            .await
            .expect("Scan");
        items
            .iter()
            .filter_map(|i| i.get("pk")?.as_s().ok().cloned())
            .collect()
    }

    /// The whole local path: Kinesis → local Pipe → processor binary → DynamoDB, with the
    /// pipe's checkpoint in the pipe table and none in the application's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pipe_feeds_the_processor_binary_and_checkpoints_in_its_own_table() {
        let stack = LocalStack::start(StackOptions {
            shards: 1,
            ..StackOptions::default()
        })
        .await
        .expect("the local stack starts");
        let (pipe, host) = stack
            .start_processor_pipe()
            .unwrap_or_else(|e| panic!("{e}"));
        stack
            .kinesis
            .put_record()
            .stream_name(&stack.options.stream)
            .partition_key("P1")
            .data(Blob::new(EVENT))
            .send()
            .await
            .expect("PutRecord");

        let deadline = Instant::now() + Duration::from_secs(30);
        let checkpointed = || pipe.stats.snapshot().checkpoints > 0;
        while !checkpointed() {
            assert!(
                Instant::now() < deadline,
                "no checkpoint within 30 s: pipe {:?}, processor {:?}",
                pipe.stats.snapshot(),
                host.stats()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pipe.stop().await.expect("the pipe stops");
        let item = stack
            .db
            .get_item()
            .table_name(&stack.options.tables.inventory)
            .key("product_id", AttributeValue::S("P1".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem")
            .item
            .expect("the processor binary wrote the product");
        assert_eq!(item.get("quantity"), Some(&AttributeValue::N("10".into())));
        assert_eq!(
            partition_keys(&stack.db, &stack.options.pipe_table).await,
            vec![format!("PIPE#{}", stack.options.pipe_name)]
        );
        let application = partition_keys(&stack.db, &stack.options.tables.events).await;
        assert!(
            !application
                .iter()
                .any(|pk| pk.starts_with("PIPE#") || pk.starts_with("DLQ#")),
            "the events table holds only application data: {application:?}"
        );
    }
}
