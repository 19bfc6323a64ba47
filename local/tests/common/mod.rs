//! Test harness: the embedded emulators on 127.0.0.1 port 0, reached with the real SDKs.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use inventory_domain::{BatchResponse, PipeRecord};
use inventory_local::emulators::LOCAL_REGION;
use inventory_local::{kinesis, EmulatorOptions, LocalAws};
use inventory_processor::{BatchReport, Processor, Tables};
use inventory_store::tables::ensure_tables;

pub struct Stack {
    pub aws: LocalAws,
    pub db: aws_sdk_dynamodb::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub tables: Tables,
    pub stream: String,
    pub stream_arn: String,
}

pub async fn stack(shards: i32) -> Stack {
    let aws = LocalAws::start(EmulatorOptions::default()).await.unwrap();
    let config = aws.sdk_config();
    let db = aws_sdk_dynamodb::Client::new(&config);
    let kinesis_client = aws_sdk_kinesis::Client::new(&config);
    let tables = Tables::with_prefix("test-");
    ensure_tables(&db, &tables).await.unwrap();
    let stream = "inventory-events".to_owned();
    let stream_arn = kinesis::ensure_stream(&kinesis_client, &stream, shards)
        .await
        .unwrap();
    Stack {
        aws,
        db,
        kinesis: kinesis_client,
        tables,
        stream,
        stream_arn,
    }
}

impl Stack {
    pub fn processor(&self) -> Processor {
        Processor::new(self.db.clone(), self.tables.clone())
    }

    pub fn pipe_runner(
        &self,
        settings: inventory_local::pipe_settings::PipeSettings,
        target: std::sync::Arc<dyn inventory_local::pipe::Target>,
    ) -> inventory_local::pipe::PipeRunner {
        inventory_local::pipe::PipeRunner::new(
            "test-pipe",
            self.stream.clone(),
            settings,
            self.kinesis.clone(),
            self.db.clone(),
            self.tables.clone(),
            target,
        )
    }

    pub fn processor_for(&self, tables: &Tables) -> Processor {
        Processor::new(self.db.clone(), tables.clone())
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

    /// Every record of every shard, as a Pipe would deliver them, per shard in order.
    pub async fn read_all(&self) -> BTreeMap<String, Vec<PipeRecord>> {
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
                    got.iter().map(|r| {
                        kinesis::to_pipe_record(r, &shard, &self.stream_arn, LOCAL_REGION)
                    }),
                );
                if got.is_empty() || resp.millis_behind_latest() == Some(0) && got.len() < 10_000 {
                    break;
                }
                iter = resp.next_shard_iterator().map(str::to_owned);
            }
            out.insert(shard, records);
        }
        out
    }

    /// Sends each call's entries with one PutRecords (ferrokinesis stores a call in order)
    /// and checks none was refused.
    pub async fn put_calls(
        &self,
        calls: impl IntoIterator<Item = Vec<aws_sdk_kinesis::types::PutRecordsRequestEntry>>,
    ) {
        for entries in calls {
            let out = self
                .kinesis
                .put_records()
                .stream_name(&self.stream)
                .set_records(Some(entries))
                .send()
                .await
                .unwrap();
            assert_eq!(out.failed_record_count(), Some(0));
        }
    }

    /// Splits shard 0 of a one-shard stream in two halves of the hash range and waits until
    /// the stream is ACTIVE again.
    pub async fn split_first_shard(&self) {
        self.kinesis
            .split_shard()
            .stream_name(&self.stream)
            .shard_to_split("shardId-000000000000")
            .new_starting_hash_key("170141183460469231731687303715884105728")
            .send()
            .await
            .unwrap();
        kinesis::ensure_stream(&self.kinesis, &self.stream, 1)
            .await
            .unwrap();
    }

    pub async fn read_one_shard(&self) -> Vec<PipeRecord> {
        let all = self.read_all().await;
        assert_eq!(all.len(), 1, "expected a one-shard stream");
        all.into_values().next().unwrap()
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
        let mut out = BTreeMap::new();
        let mut start = None;
        loop {
            let resp = self
                .db
                .scan()
                .table_name(&tables.inventory)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in resp.items() {
                out.insert(text(item, "product_id"), item.clone());
            }
            start = resp.last_evaluated_key().cloned();
            if start.is_none() {
                return out;
            }
        }
    }

    /// Recorded rejections: record id (eventID) -> reason.
    pub async fn rejections(&self, tables: &Tables) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut start = None;
        loop {
            let resp = self
                .db
                .scan()
                .table_name(&tables.events)
                .filter_expression("begins_with(pk, :p)")
                .expression_attribute_values(":p", AttributeValue::S("REJECTIONS#".into()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in resp.items() {
                out.insert(text(item, "record_id"), text(item, "reason"));
            }
            start = resp.last_evaluated_key().cloned();
            if start.is_none() {
                return out;
            }
        }
    }
}

pub fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

pub fn number(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

/// (quantity, status, version) of a stored product.
pub fn stock(item: &HashMap<String, AttributeValue>) -> (u64, String, u64) {
    (
        number(item, "quantity"),
        text(item, "status"),
        number(item, "version"),
    )
}

/// The product item without the wall-clock `updated_at`, for comparing two runs.
pub fn state_of(item: &HashMap<String, AttributeValue>) -> HashMap<String, AttributeValue> {
    item.iter()
        .filter(|(k, _)| k.as_str() != "updated_at")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Delivers a batch as a Pipe does: serialised to the JSON array Pipes sends and parsed
/// back, so the wire shape is what the handler sees.
pub async fn deliver(processor: &Processor, batch: &[PipeRecord]) -> BatchReport {
    let wire = serde_json::to_vec(batch).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&wire).unwrap();
    assert!(value.is_array(), "Pipes sends a top-level JSON array");
    let records: Vec<PipeRecord> = serde_json::from_slice(&wire).unwrap();
    let report = processor.process(&records).await;
    let response: BatchResponse =
        serde_json::from_str(&serde_json::to_string(&report.response).unwrap()).unwrap();
    assert_eq!(response, report.response);
    report
}

pub fn event(id: &str, kind: &str, product: &str, quantity: Option<u64>) -> String {
    let mut p = serde_json::json!({"product_id": product, "timestamp": "2023-09-11T12:00:00Z"});
    if let Some(q) = quantity {
        p["quantity"] = q.into();
    }
    if kind == "product_added" {
        p["product_name"] = format!("Product {product}").into();
    }
    serde_json::json!({"event_id": id, "event_type": kind, "product": p}).to_string()
}

/// An HTTP proxy in front of the local endpoint that holds every request whose
/// `X-Amz-Target` ends with `hold_suffix` until [`Gate::open`], so a test can make one
/// client's write arrive after another client's, deterministically.
pub struct Gate {
    pub endpoint: String,
    open: std::sync::Arc<tokio::sync::Semaphore>,
    pub held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Gate {
    pub async fn start(upstream: &str, hold_suffix: &'static str) -> Gate {
        use axum::body::Body;
        use axum::extract::Request;
        use hyper_util::client::legacy::{connect::HttpConnector, Client};
        use std::sync::atomic::Ordering;
        use std::sync::Arc;

        let open = Arc::new(tokio::sync::Semaphore::new(0));
        let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let client: Client<HttpConnector, Body> =
            Client::builder(hyper_util::rt::TokioExecutor::new()).build(HttpConnector::new());
        let upstream = upstream.to_owned();
        let (gate_open, gate_held) = (open.clone(), held.clone());
        let app = axum::Router::new().fallback(move |req: Request| {
            let (client, upstream, open, held) = (
                client.clone(),
                upstream.clone(),
                gate_open.clone(),
                gate_held.clone(),
            );
            async move {
                let target = req
                    .headers()
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                if target.ends_with(hold_suffix) {
                    held.fetch_add(1, Ordering::SeqCst);
                    // Closed until opened; once opened it lets everything through.
                    let _ = open.acquire().await;
                }
                let (mut parts, body) = req.into_parts();
                let pq = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                parts.uri = format!("{upstream}{pq}").parse().unwrap();
                client
                    .request(Request::from_parts(parts, body))
                    .await
                    .map(|r| r.map(Body::new))
                    .unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Gate {
            endpoint,
            open,
            held,
        }
    }

    pub fn open(&self) {
        self.open.add_permits(1 << 20);
    }
}
