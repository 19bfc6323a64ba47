//! The whole local system in one process: emulators, stream and tables, and the Pipe
//! feeding the processor. Everything talks to the emulators over HTTP with the AWS SDKs.

use std::path::PathBuf;
use std::sync::Arc;

use inventory_processor::Processor;
use inventory_store::tables::ensure_tables;
use inventory_store::{StoreError, Tables};

use crate::emulators::{
    EmulatorError, EmulatorOptions, LocalAws, LOCAL_ACCESS_KEY, LOCAL_REGION, LOCAL_SECRET_KEY,
};
use crate::kinesis::{self, KinesisError};
use crate::pipe::{PipeHandle, PipeRunner, ProcessorTarget, Target};
use crate::pipe_settings::PipeSettings;

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub port: u16,
    pub data_dir: Option<PathBuf>,
    pub shards: i32,
    pub stream: String,
    pub tables: Tables,
    pub pipe_name: String,
    pub pipe: PipeSettings,
    pub enforce_kinesis_limits: bool,
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
            pipe_name: "inventory-pipe".into(),
            pipe: PipeSettings::default(),
            enforce_kinesis_limits: false,
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
}

pub struct LocalStack {
    pub aws: LocalAws,
    pub options: StackOptions,
    pub db: aws_sdk_dynamodb::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub processor: Processor,
}

impl LocalStack {
    /// Starts the emulators and creates the stream and tables (idempotently).
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
        kinesis::ensure_stream(&kinesis_client, &options.stream, options.shards).await?;
        let processor = Processor::new(db.clone(), options.tables.clone());
        Ok(Self {
            aws,
            options,
            db,
            kinesis: kinesis_client,
            processor,
        })
    }

    /// A Pipe from the stream to `target`.
    pub fn pipe_to(&self, target: Arc<dyn Target>) -> PipeRunner {
        PipeRunner::new(
            self.options.pipe_name.clone(),
            self.options.stream.clone(),
            self.options.pipe.clone(),
            self.kinesis.clone(),
            self.db.clone(),
            self.options.tables.clone(),
            target,
        )
    }

    /// Starts the Pipe to the processor.
    pub fn start_pipe(&self) -> PipeHandle {
        self.pipe_to(Arc::new(ProcessorTarget(self.processor.clone())))
            .spawn()
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
        ]
    }
}
