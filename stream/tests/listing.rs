//! The listing against ferrokinesis (embedded on 127.0.0.1:0) through the real SDK client:
//! lineage as ListShards gives it, and a stream deleted and created again told apart.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_kinesis::Client;
use inventory_domain::lineage::Listed as Holds;
use inventory_domain::SequenceNumber;
use inventory_stream::{list_stream, KinesisShards, Listings};

async fn kinesis() -> Client {
    let (app, _store) = ferrokinesis::create_app(ferrokinesis::store::StoreOptions {
        create_stream_ms: 0,
        delete_stream_ms: 0,
        update_stream_ms: 0,
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .region(aws_sdk_kinesis::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .endpoint_url(format!("http://{addr}"))
        .build();
    Client::from_conf(config)
}

/// Waits (bounded: about 5 s) until the stream is ACTIVE.
async fn active(client: &Client, stream: &str) {
    for _ in 0..500 {
        let status = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .ok()
            .and_then(|s| {
                s.stream_description_summary()
                    .map(|d| d.stream_status().clone())
            });
        if status == Some(StreamStatus::Active) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{stream} did not become ACTIVE");
}

async fn create(client: &Client, stream: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await
        .unwrap();
    active(client, stream).await;
}

#[tokio::test]
async fn a_split_is_listed_with_its_parent_and_a_recreated_stream_is_another() {
    let client = kinesis().await;
    create(&client, "s", 1).await;
    let before = list_stream(&client, "s").await.unwrap();
    client
        .split_shard()
        .stream_name("s")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    active(&client, "s").await;
    let after = list_stream(&client, "s").await.unwrap();
    assert_eq!(after.stream, before.stream, "one stream");
    assert_eq!(after.ancestors(1), vec![0]);
    assert_eq!(after.ancestors(2), vec![0]);
    let (low, high) = (after.shard(1).unwrap(), after.shard(2).unwrap());
    assert_eq!(low.hash_keys, (0, (1 << 127) - 1));
    assert_eq!(high.hash_keys, (1 << 127, u128::MAX));
    let parent = after.shard(0).unwrap();
    assert!(parent.ending_sequence.is_some(), "the parent is closed");

    // A record of the child is held by the listing taken after the split, not by the one
    // taken before it.
    let put = client
        .put_record()
        .stream_name("s")
        .partition_key("k")
        .explicit_hash_key("1")
        .data(aws_sdk_kinesis::primitives::Blob::new("x"))
        .send()
        .await
        .unwrap();
    let seq = SequenceNumber::parse(put.sequence_number()).unwrap();
    assert_eq!(after.lists(1, &seq), Holds::Holds);
    assert_eq!(before.lists(1, &seq), Holds::UnknownShard);

    // Deleted and created again: same ARN, new creation time, shards numbered from 0. The
    // emulator stamps creation times in whole seconds, so the new stream is created in the
    // next second, as any real re-creation (of a stream that held records) is.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    client
        .delete_stream()
        .stream_name("s")
        .send()
        .await
        .unwrap();
    let mut recreated = None;
    for _ in 0..500 {
        if client
            .create_stream()
            .stream_name("s")
            .shard_count(1)
            .send()
            .await
            .is_ok()
        {
            recreated = Some(());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    recreated.expect("the stream was created again");
    active(&client, "s").await;
    let again = list_stream(&client, "s").await.unwrap();
    assert_eq!(again.stream.arn, before.stream.arn);
    assert!(again.stream.created_ms >= before.stream.created_ms);
    assert_ne!(
        again.stream, before.stream,
        "a re-created stream is another"
    );
    assert!(again.ancestors(0).is_empty());
}

#[tokio::test]
async fn listings_are_kept_and_taken_again_only_when_older_than_asked() {
    let client = kinesis().await;
    create(&client, "kept", 2).await;
    let listings = Listings::new(Arc::new(KinesisShards(client.clone())));
    let first = listings.get("kept").await.unwrap();
    let held = listings.get("kept").await.unwrap();
    assert_eq!(held.at, first.at, "held, not listed again");
    let since = std::time::Instant::now();
    let fresh = listings.newer_than("kept", since).await.unwrap();
    assert!(fresh.at > since);
    let same = listings.newer_than("kept", since).await.unwrap();
    assert_eq!(same.at, fresh.at, "one listing per batch");
    assert!(listings.get("missing").await.is_err());
}
