//! BatchGetItem and BatchWriteItem in pages of DynamoDB's limits, retrying what DynamoDB
//! leaves unprocessed (it does so under throttling, without an error) with backon's
//! exponential backoff and jitter, a bounded number of times. What still failed is returned
//! key by key, so a caller can retry exactly those (the processor reports their records to
//! the Pipe).
//!
//! A request that fails outright was already retried by the SDK (throttling, 5xx, network);
//! its keys or items are returned as failed at once.

use std::time::Duration;

use aws_sdk_dynamodb::types::{KeysAndAttributes, WriteRequest};
use aws_sdk_dynamodb::Client;
use backon::{ExponentialBuilder, RetryableWithContext};

use crate::error::StoreError;
use crate::items::Item;

/// BatchGetItem's limit of keys per request.
pub const GET_PAGE: usize = 100;
/// BatchWriteItem's limit of requests per call.
pub const WRITE_PAGE: usize = 25;

/// How unprocessed keys and items are retried: 8 attempts in all, 25 ms doubling to at most
/// 1 s, with jitter so instances throttled together do not retry together.
pub const UNPROCESSED_RETRY: ExponentialBuilder = ExponentialBuilder::new()
    .with_jitter()
    .with_min_delay(Duration::from_millis(25))
    .with_max_delay(Duration::from_secs(1))
    .with_max_times(7);

/// What a [`batch_get`] found.
#[derive(Debug, Default)]
pub struct BatchGet {
    /// The items that exist, in no particular order.
    pub items: Vec<Item>,
    /// Keys that could not be read, with why.
    pub failed: Vec<(Item, StoreError)>,
    /// BatchGetItem calls made (retries included), for cost accounting.
    pub requests: u64,
}

/// What a [`batch_write`] could not write.
#[derive(Debug)]
pub struct BatchWrite<T> {
    /// The callers' tags of the requests that were not written, with why.
    pub failed: Vec<(T, StoreError)>,
    /// BatchWriteItem calls made (retries included), for cost accounting.
    pub requests: u64,
}

impl<T> Default for BatchWrite<T> {
    fn default() -> Self {
        Self {
            failed: Vec::new(),
            requests: 0,
        }
    }
}

/// Why one attempt did not finish its page.
#[derive(Debug)]
enum Attempt {
    /// DynamoDB answered but left some keys or items for later: retried.
    Unprocessed,
    /// The request failed after the SDK's own retries: not retried here.
    Failed(StoreError),
}

/// Reads `keys` of `table` (any number; pages of [`GET_PAGE`]). A key with no item is
/// simply absent from [`BatchGet::items`].
pub async fn batch_get(
    db: &Client,
    table: &str,
    keys: Vec<Item>,
    consistent_read: bool,
    retry: ExponentialBuilder,
) -> BatchGet {
    let mut out = BatchGet::default();
    let mut keys = keys.into_iter().peekable();
    while keys.peek().is_some() {
        let page = GetPage {
            pending: keys.by_ref().take(GET_PAGE).collect(),
            ..GetPage::default()
        };
        let (page, result) = {
            move |mut page: GetPage| async move {
                let result = page.attempt(db, table, consistent_read).await;
                (page, result)
            }
        }
        .retry(retry)
        .when(|e| matches!(e, Attempt::Unprocessed))
        .context(page)
        .await;
        out.requests += page.requests;
        out.items.extend(page.found);
        let error = match result {
            Ok(()) => continue,
            Err(Attempt::Failed(e)) => e,
            Err(Attempt::Unprocessed) => StoreError::Unprocessed {
                operation: "BatchGetItem",
                count: page.pending.len(),
                attempts: page.requests as usize,
            },
        };
        out.failed
            .extend(page.pending.into_iter().map(|k| (k, error.clone())));
    }
    out
}

#[derive(Default)]
struct GetPage {
    pending: Vec<Item>,
    found: Vec<Item>,
    requests: u64,
}

impl GetPage {
    async fn attempt(
        &mut self,
        db: &Client,
        table: &str,
        consistent_read: bool,
    ) -> Result<(), Attempt> {
        self.requests += 1;
        let request = KeysAndAttributes::builder()
            .set_keys(Some(self.pending.clone()))
            .consistent_read(consistent_read)
            .build()
            .map_err(|e| Attempt::Failed(StoreError::dynamo("BatchGetItem", e)))?;
        let out = db
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|e| Attempt::Failed(StoreError::dynamo("BatchGetItem", e)))?;
        self.found.extend(
            out.responses()
                .and_then(|r| r.get(table))
                .into_iter()
                .flatten()
                .cloned(),
        );
        self.pending = out
            .unprocessed_keys()
            .and_then(|u| u.get(table))
            .map(|ka| ka.keys().to_vec())
            .unwrap_or_default();
        if self.pending.is_empty() {
            Ok(())
        } else {
            Err(Attempt::Unprocessed)
        }
    }
}

/// Sends `requests` to `table` (any number; pages of [`WRITE_PAGE`]). Each request carries a
/// tag of the caller's (a record's index, say) that comes back with it if it failed. A
/// BatchWriteItem call may not name one key twice: callers pass requests for distinct keys.
pub async fn batch_write<T>(
    db: &Client,
    table: &str,
    requests: Vec<(T, WriteRequest)>,
    retry: ExponentialBuilder,
) -> BatchWrite<T> {
    let mut out = BatchWrite::default();
    let mut requests = requests.into_iter().peekable();
    while requests.peek().is_some() {
        let page = WritePage {
            pending: requests.by_ref().take(WRITE_PAGE).collect(),
            requests: 0,
        };
        let (page, result) = {
            move |mut page: WritePage<T>| async move {
                let result = page.attempt(db, table).await;
                (page, result)
            }
        }
        .retry(retry)
        .when(|e| matches!(e, Attempt::Unprocessed))
        .context(page)
        .await;
        out.requests += page.requests;
        let error = match result {
            Ok(()) => continue,
            Err(Attempt::Failed(e)) => e,
            Err(Attempt::Unprocessed) => StoreError::Unprocessed {
                operation: "BatchWriteItem",
                count: page.pending.len(),
                attempts: page.requests as usize,
            },
        };
        out.failed
            .extend(page.pending.into_iter().map(|(t, _)| (t, error.clone())));
    }
    out
}

struct WritePage<T> {
    pending: Vec<(T, WriteRequest)>,
    requests: u64,
}

impl<T> WritePage<T> {
    async fn attempt(&mut self, db: &Client, table: &str) -> Result<(), Attempt> {
        self.requests += 1;
        let sent: Vec<WriteRequest> = self.pending.iter().map(|(_, r)| r.clone()).collect();
        let out = db
            .batch_write_item()
            .request_items(table, sent)
            .send()
            .await
            .map_err(|e| Attempt::Failed(StoreError::dynamo("BatchWriteItem", e)))?;
        let left = out.unprocessed_items().and_then(|u| u.get(table));
        match left {
            Some(left) => self.pending.retain(|(_, r)| left.contains(r)),
            None => self.pending.clear(),
        }
        if self.pending.is_empty() {
            Ok(())
        } else {
            Err(Attempt::Unprocessed)
        }
    }
}
