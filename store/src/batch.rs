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

/// One page of a batch call: what is still to send.
trait Page {
    /// The DynamoDB operation, for errors.
    const OPERATION: &'static str;
    /// One call with what is still pending; what DynamoDB processed leaves the page.
    async fn send(&mut self, db: &Client, table: &str) -> Result<(), StoreError>;
    /// How many keys or requests are still pending.
    fn left(&self) -> usize;
}

/// What [`send_page`] did with a page.
struct Sent<P> {
    /// The page, holding what is left of it.
    page: P,
    /// Calls made.
    requests: u64,
    /// What every key or request left failed with, when some are left.
    error: Option<StoreError>,
}

/// Sends `page` again while DynamoDB leaves part of it unprocessed, as `retry` allows.
async fn send_page<P: Page>(
    db: &Client,
    table: &str,
    page: P,
    retry: ExponentialBuilder,
) -> Sent<P> {
    let ((page, requests), result) = {
        move |(mut page, requests): (P, u64)| async move {
            let result = match page.send(db, table).await {
                Err(e) => Err(Attempt::Failed(e)),
                Ok(()) if page.left() > 0 => Err(Attempt::Unprocessed),
                Ok(()) => Ok(()),
            };
            ((page, requests + 1), result)
        }
    }
    .retry(retry)
    .when(|e| matches!(e, Attempt::Unprocessed))
    .context((page, 0))
    .await;
    let error = match result {
        Ok(()) => None,
        Err(Attempt::Failed(e)) => Some(e),
        Err(Attempt::Unprocessed) => Some(StoreError::Unprocessed {
            operation: P::OPERATION,
            count: page.left(),
            attempts: requests as usize,
        }),
    };
    Sent {
        page,
        requests,
        error,
    }
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
            consistent_read,
            found: Vec::new(),
        };
        let sent = send_page(db, table, page, retry).await;
        out.requests += sent.requests;
        out.items.extend(sent.page.found);
        if let Some(error) = sent.error {
            out.failed
                .extend(sent.page.pending.into_iter().map(|k| (k, error.clone())));
        }
    }
    out
}

struct GetPage {
    pending: Vec<Item>,
    consistent_read: bool,
    found: Vec<Item>,
}

impl Page for GetPage {
    const OPERATION: &'static str = "BatchGetItem";

    async fn send(&mut self, db: &Client, table: &str) -> Result<(), StoreError> {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(self.pending.clone()))
            .consistent_read(self.consistent_read)
            .build()
            .map_err(|e| StoreError::dynamo("BatchGetItem", e))?;
        let out = db
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("BatchGetItem", e))?;
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
        Ok(())
    }

    fn left(&self) -> usize {
        self.pending.len()
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
        };
        let sent = send_page(db, table, page, retry).await;
        out.requests += sent.requests;
        if let Some(error) = sent.error {
            out.failed.extend(
                sent.page
                    .pending
                    .into_iter()
                    .map(|(t, _)| (t, error.clone())),
            );
        }
    }
    out
}

struct WritePage<T> {
    pending: Vec<(T, WriteRequest)>,
}

impl<T> Page for WritePage<T> {
    const OPERATION: &'static str = "BatchWriteItem";

    async fn send(&mut self, db: &Client, table: &str) -> Result<(), StoreError> {
        let sent: Vec<WriteRequest> = self.pending.iter().map(|(_, r)| r.clone()).collect();
        let out = db
            .batch_write_item()
            .request_items(table, sent)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("BatchWriteItem", e))?;
        let left = out.unprocessed_items().and_then(|u| u.get(table));
        match left {
            Some(left) => self.pending.retain(|(_, r)| left.contains(r)),
            None => self.pending.clear(),
        }
        Ok(())
    }

    fn left(&self) -> usize {
        self.pending.len()
    }
}
