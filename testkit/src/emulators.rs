//! The embedded emulators on 127.0.0.1 port 0, a stream and the application's tables,
//! reached with the real SDKs: for tests that drive the processor or a Pipe themselves.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use inventory_domain::arn::StreamArn;
use inventory_domain::PipeRecord;
use inventory_local::pipe::{ensure_pipe_table, pipe_table_name, PipeRunner, Target};
use inventory_local::pipe_settings::PipeSettings;
use inventory_local::{kinesis, EmulatorOptions, LocalAws};
use inventory_processor::{KinesisShards, ListShards, Processor};
use inventory_store::tables::ensure_tables;
use inventory_store::Tables;

use super::processor::text;
use super::streams::{reshard, Reshard};

/// The name [`Stack::pipe_runner`] gives its Pipes (their dead letters are under it).
pub const TEST_PIPE: &str = "test-pipe";

pub struct Stack {
    pub aws: LocalAws,
    pub db: aws_sdk_dynamodb::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub tables: Tables,
    /// The Pipes' checkpoints and dead letters.
    pub pipe_table: String,
    pub stream: String,
    pub stream_arn: String,
}

pub async fn stack(shards: i32) -> Stack {
    super::init_tracing();
    let aws = LocalAws::start(EmulatorOptions::default()).await.unwrap();
    let config = aws.sdk_config();
    let db = aws_sdk_dynamodb::Client::new(&config);
    let kinesis_client = aws_sdk_kinesis::Client::new(&config);
    let tables = Tables::with_prefix("test-");
    ensure_tables(&db, &tables).await.unwrap();
    let pipe_table = pipe_table_name("test-");
    ensure_pipe_table(&db, &pipe_table).await.unwrap();
    let stream = "inventory-events".to_owned();
    let stream_arn = kinesis::ensure_stream(&kinesis_client, &stream, shards)
        .await
        .unwrap();
    Stack {
        aws,
        db,
        kinesis: kinesis_client,
        tables,
        pipe_table,
        stream,
        stream_arn,
    }
}

impl Stack {
    pub fn processor(&self) -> Processor {
        Processor::new(self.db.clone(), self.tables.clone(), self.shards())
    }

    pub fn processor_for(&self, tables: &Tables) -> Processor {
        Processor::new(self.db.clone(), tables.clone(), self.shards())
    }

    /// The stream's shards as Kinesis lists them, for a processor.
    pub fn shards(&self) -> Arc<dyn ListShards> {
        Arc::new(KinesisShards(self.kinesis.clone()))
    }

    /// A Pipe named [`TEST_PIPE`] from the stream to `target`.
    pub fn pipe_runner(&self, settings: PipeSettings, target: Arc<dyn Target>) -> PipeRunner {
        self.pipe_runner_reading_with(self.kinesis.clone(), settings, target)
    }

    /// [`Stack::pipe_runner`] reading the stream through `kinesis` (a proxy, say).
    pub fn pipe_runner_reading_with(
        &self,
        kinesis: aws_sdk_kinesis::Client,
        settings: PipeSettings,
        target: Arc<dyn Target>,
    ) -> PipeRunner {
        PipeRunner::new(
            TEST_PIPE,
            self.stream.clone(),
            settings,
            kinesis,
            self.db.clone(),
            self.pipe_table.clone(),
            target,
        )
    }

    /// The dead letters of [`TEST_PIPE`] (their batch descriptions).
    pub async fn dead_letters(&self) -> Vec<serde_json::Value> {
        inventory_local::pipe::dead_letters(&self.db, &self.pipe_table, TEST_PIPE)
            .await
            .unwrap()
    }

    pub async fn put(&self, partition_key: &str, data: impl Into<Vec<u8>>) -> String {
        self.kinesis
            .put_record()
            .stream_name(&self.stream)
            .partition_key(partition_key)
            .data(Blob::new(data.into()))
            .send()
            .await
            .unwrap()
            .sequence_number()
            .to_owned()
    }

    /// Sends each call's entries with one PutRecords (ferrokinesis stores a call in order)
    /// and checks none was refused.
    pub async fn put_calls(
        &self,
        calls: impl IntoIterator<Item = Vec<aws_sdk_kinesis::types::PutRecordsRequestEntry>>,
    ) {
        super::streams::put_calls(&self.kinesis, &self.stream, calls).await;
    }

    /// Every record of every shard, as a Pipe would deliver them, per shard in order.
    pub async fn read_all(&self) -> BTreeMap<String, Vec<PipeRecord>> {
        let stream_arn = StreamArn::parse(&self.stream_arn).expect("the stream's ARN");
        let mut out = BTreeMap::new();
        for shard in kinesis::shard_ids(&self.kinesis, &self.stream)
            .await
            .unwrap()
        {
            let mut iter = self
                .kinesis
                .get_shard_iterator()
                .stream_name(&self.stream)
                .shard_id(&shard)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .unwrap()
                .shard_iterator()
                .map(str::to_owned);
            let mut records = Vec::new();
            while let Some(it) = iter {
                let resp = self
                    .kinesis
                    .get_records()
                    .shard_iterator(it)
                    .limit(10_000)
                    .send()
                    .await
                    .unwrap();
                let got = resp.records();
                records.extend(
                    got.iter()
                        .map(|r| inventory_stream::pipe_record(r, &shard, &stream_arn)),
                );
                // Bounded: an open shard read to its end answers with nothing (or fewer
                // than asked for and 0 ms behind).
                if got.is_empty() || resp.millis_behind_latest() == Some(0) && got.len() < 10_000 {
                    break;
                }
                iter = resp.next_shard_iterator().map(str::to_owned);
            }
            out.insert(shard, records);
        }
        out
    }

    pub async fn read_one_shard(&self) -> Vec<PipeRecord> {
        let all = self.read_all().await;
        assert_eq!(all.len(), 1, "expected a one-shard stream");
        all.into_values().next().unwrap()
    }

    /// Splits the first shard in two halves of its hash range and waits until the stream
    /// is ACTIVE again with the two children open.
    pub async fn split_first_shard(&self) {
        reshard(&self.kinesis, &self.stream, Reshard::SplitFirst).await;
    }

    pub async fn product(&self, id: &str) -> Option<HashMap<String, AttributeValue>> {
        self.product_in(&self.tables, id).await
    }

    pub async fn product_in(
        &self,
        tables: &Tables,
        id: &str,
    ) -> Option<HashMap<String, AttributeValue>> {
        self.db
            .get_item()
            .table_name(&tables.inventory)
            .key("product_id", AttributeValue::S(id.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item()
            .cloned()
    }

    /// Every product item, keyed by id.
    pub async fn all_products(
        &self,
        tables: &Tables,
    ) -> BTreeMap<String, HashMap<String, AttributeValue>> {
        let pages: Vec<_> = self
            .db
            .scan()
            .table_name(&tables.inventory)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect()
            .await;
        pages
            .into_iter()
            .map(|item| {
                let item = item.unwrap();
                (text(&item, "product_id"), item)
            })
            .collect()
    }

    /// Recorded rejections: record id (eventID) -> reason.
    pub async fn rejections(&self, tables: &Tables) -> BTreeMap<String, String> {
        rejection_items(&self.db, tables)
            .await
            .iter()
            .map(|item| (text(item, "record_id"), text(item, "reason")))
            .collect()
    }
}

/// Every rejection item of the events table.
pub async fn rejection_items(
    db: &aws_sdk_dynamodb::Client,
    tables: &Tables,
) -> Vec<HashMap<String, AttributeValue>> {
    let items: Vec<_> = db
        .scan()
        .table_name(&tables.events)
        .filter_expression("begins_with(pk, :p)")
        .expression_attribute_values(":p", AttributeValue::S("REJECTIONS#".into()))
        .into_paginator()
        .items()
        .send()
        .collect()
        .await;
    items.into_iter().map(Result::unwrap).collect()
}
