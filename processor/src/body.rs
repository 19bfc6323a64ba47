//! The invocation body, from the bytes the Lambda Runtime API hands over to a [`PipeBatch`].
//!
//! lambda_runtime deserialises every body into the handler's event type through
//! serde_path_to_error before the handler runs. Even the cheapest type that keeps the text (a
//! `RawValue`) costs a full scan and copy of it, more than reading the whole batch. So
//! [`RawBodies::layer`] takes the body out of the invocation before that step (the handler
//! then receives `null`), and [`read_body`] reads the bytes once, in place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use inventory_domain::pipes::PipeBatch;
use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::LambdaInvocation;

use crate::error::ProcessorError;

/// Reads a Pipes batch from an invocation body. Its strings stay spans of the body; the
/// envelope is AWS's own JSON, read with sonic-rs (SIMD). The event payloads inside it are
/// producers' bytes and go through serde_json, which decides how bad input is classified.
pub fn read_body(body: Vec<u8>) -> Result<PipeBatch, ProcessorError> {
    let text = String::from_utf8(body).map_err(|e| {
        ProcessorError::NotABatch(format!("the body is not UTF-8 text: {}", e.utf8_error()))
    })?;
    PipeBatch::from_json_sonic(text).map_err(|e| ProcessorError::NotABatch(e.to_string()))
}

/// Invocation bodies taken by [`RawBodies::layer`], by request id, until the handler
/// [takes](RawBodies::take) its own.
#[derive(Clone, Default)]
pub struct RawBodies(Arc<Mutex<HashMap<String, Bytes>>>);

impl RawBodies {
    /// The layer to put around the runtime (`Runtime::new(handler).layer(bodies.layer())`).
    pub fn layer(&self) -> TakeBodyLayer {
        TakeBodyLayer(self.clone())
    }

    /// The body of the invocation `request_id`, once.
    pub fn take(&self, request_id: &str) -> Option<Vec<u8>> {
        let body = self.lock().remove(request_id)?;
        // Without a copy when the runtime holds the only reference, as it does.
        Some(Vec::from(body))
    }

    fn put(&self, request_id: String, body: Bytes) {
        self.lock().insert(request_id, body);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bytes>> {
        // The map is consistent after any panic (one insert or remove), so go on with it.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct TakeBodyLayer(RawBodies);

impl<S> Layer<S> for TakeBodyLayer {
    type Service = TakeBody<S>;

    fn layer(&self, inner: S) -> TakeBody<S> {
        TakeBody {
            inner,
            bodies: self.0.clone(),
        }
    }
}

/// Stores each invocation's body in [`RawBodies`] and passes the invocation on with the
/// body `null`, which the handler's event type (`serde::de::IgnoredAny`) reads for free.
#[derive(Clone)]
pub struct TakeBody<S> {
    inner: S,
    bodies: RawBodies,
}

impl<S: Service<LambdaInvocation>> Service<LambdaInvocation> for TakeBody<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> S::Future {
        let body = std::mem::replace(&mut invocation.body, Bytes::from_static(b"null"));
        self.bodies.put(invocation.context.request_id.clone(), body);
        self.inner.call(invocation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../tests/fixtures/pipes-kinesis-batch.json");

    #[test]
    fn the_body_reads_as_the_batch_serde_json_reads() {
        let batch = read_body(FIXTURE.as_bytes().to_vec()).unwrap();
        let expected: PipeBatch = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(batch.to_records(), expected.to_records());
    }

    #[test]
    fn a_body_that_is_not_a_batch_is_refused_with_what_to_check() {
        for bad in [
            &b"{\"Records\":[]}"[..],
            b"[{\"partitionKey\":\"P\"}]",
            b"[] trailing",
            b"[\"\xff\"]",
        ] {
            let err = read_body(bad.to_vec()).unwrap_err();
            assert!(matches!(err, ProcessorError::NotABatch(_)), "{err}");
            assert!(err.to_string().contains("Check the Pipe's source"), "{err}");
        }
    }

    #[test]
    fn a_body_is_taken_once() {
        let bodies = RawBodies::default();
        bodies.put("r1".into(), Bytes::from_static(b"[]"));
        assert_eq!(bodies.take("r1").as_deref(), Some(&b"[]"[..]));
        assert_eq!(bodies.take("r1"), None);
    }
}
