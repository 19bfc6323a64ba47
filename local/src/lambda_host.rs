//! A local Lambda host: runs a function's real binary the way Lambda does, as processes
//! that ask a Runtime API for invocations.
//!
//! Each instance is a child process with its own Runtime API listener on 127.0.0.1
//! ([`crate::runtime_api`]; so the host knows which process holds which invocation): `GET
//! /2018-06-01/runtime/invocation/next` hands it the next queued invocation with the
//! `Lambda-Runtime-*` headers, and it answers with `POST …/invocation/{id}/response` or
//! `…/error` (a function error), or `POST …/init/error` when it cannot start. Like Lambda:
//!
//! - one invocation per instance at a time; the pool grows on demand, up to
//!   [`LambdaHostOptions::max_instances`] (further invocations wait in the queue), and
//!   instances stay warm between invocations;
//! - an invocation that outlives [`LambdaHostOptions::timeout`] fails ("Task timed out")
//!   and its instance is killed;
//! - a process that exits while it holds an invocation fails that invocation (a function
//!   error, `Runtime.ExitError`), one that exits before asking for work fails the oldest
//!   queued invocation with its init error, and either is replaced by the next invocation
//!   that needs an instance;
//! - the function sees a clean environment: only [`LambdaHostOptions::env`] and the
//!   `AWS_LAMBDA_*` variables Lambda sets.
//!
//! Dropping the host (the last [`Target`] reference to it) kills every instance.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, Notify};
use tokio::task::AbortHandle;

use crate::pipe::{BoxFuture, Target, TargetError};
use crate::runtime_api::{self, Invocation, Invocations, Refusal};

/// The processor Lambda's timeout in infra/template.yaml.
pub const PROCESSOR_TIMEOUT: Duration = Duration::from_secs(60);
/// The processor Lambda's memory in infra/template.yaml (only reported to the function).
const PROCESSOR_MEMORY_MB: u32 = 256;
/// Where the processor binary is looked for first.
pub const PROCESSOR_BIN_VAR: &str = "PROCESSOR_BIN";
/// The processor's log filter in the local stack (its `RUST_LOG`); warnings by default so
/// a demo's output is not one line per batch.
pub const PROCESSOR_LOG_VAR: &str = "PROCESSOR_LOG";

#[derive(Debug, thiserror::Error)]
pub enum LambdaHostError {
    #[error("the processor binary is not at {path}: build it with `{build}`, or set {PROCESSOR_BIN_VAR} to its path")]
    MissingBinary { path: PathBuf, build: String },
    #[error("cannot tell where the running executable is ({0}) to find the processor binary next to it: set {PROCESSOR_BIN_VAR} to its path")]
    CurrentExe(std::io::Error),
}

/// The processor binary: `$PROCESSOR_BIN`, else `processor` in the running executable's
/// target profile directory (a test's executable sits one level down, in `deps/`).
pub fn processor_binary() -> Result<PathBuf, LambdaHostError> {
    if let Some(path) = std::env::var_os(PROCESSOR_BIN_VAR).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(LambdaHostError::MissingBinary {
                build: build_command(None),
                path,
            })
        };
    }
    let exe = std::env::current_exe().map_err(LambdaHostError::CurrentExe)?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let path = dir.join(format!("processor{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        let profile = dir.file_name().and_then(|n| n.to_str()).map(str::to_owned);
        Err(LambdaHostError::MissingBinary {
            build: build_command(profile.as_deref()),
            path,
        })
    }
}

/// The command that builds the processor into the profile directory `profile`.
fn build_command(profile: Option<&str>) -> String {
    let flag = match profile {
        None | Some("debug") => String::new(),
        Some("release") => " --release".to_owned(),
        Some(other) => format!(" --profile {other}"),
    };
    format!("cargo build{flag} -p inventory-processor --bin processor")
}

#[derive(Debug, Clone)]
pub struct LambdaHostOptions {
    /// The function's executable (a `provided.al2023` bootstrap).
    pub binary: PathBuf,
    pub function_name: String,
    /// The function's environment; it inherits nothing else from this process.
    pub env: Vec<(String, String)>,
    /// Most instances at once: with Pipes, one batch per shard is in flight at a time.
    pub max_instances: usize,
    /// How long an invocation may run before it fails and its instance is killed.
    pub timeout: Duration,
}

impl LambdaHostOptions {
    /// The processor binary with `env` (endpoint, credentials, table names), its log
    /// level from `$PROCESSOR_LOG` (default `warn`).
    pub fn processor(
        binary: PathBuf,
        env: impl IntoIterator<Item = (String, String)>,
        max_instances: usize,
    ) -> Self {
        let log = std::env::var(PROCESSOR_LOG_VAR).unwrap_or_else(|_| "warn".to_owned());
        let mut env: Vec<(String, String)> = env.into_iter().collect();
        env.push(("RUST_LOG".to_owned(), log));
        Self {
            binary,
            function_name: "inventory-processor".to_owned(),
            env,
            max_instances,
            timeout: PROCESSOR_TIMEOUT,
        }
    }
}

/// Figures a test or a user can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Instances running now.
    pub instances: usize,
    /// Processes started so far (cold starts, replacements included).
    pub started: u64,
    /// Instances that exited or were killed.
    pub exited: u64,
    /// The most instances running at once.
    pub peak_instances: usize,
}

/// The function as a Pipe target: JSON in, the function's JSON response out, a function
/// error (or crash, or timeout) as `Err`.
pub struct LambdaHost {
    host: Arc<Host>,
}

struct Host {
    options: LambdaHostOptions,
    state: Mutex<Pool>,
    /// Signalled when an invocation is queued. Shared with the Runtime APIs, which wait on
    /// it without holding the host (so dropping the host's last handle drops it).
    work: Arc<Notify>,
    next_instance: AtomicU64,
    started: AtomicU64,
    exited: AtomicU64,
}

#[derive(Default)]
struct Pool {
    queue: VecDeque<Job>,
    instances: HashMap<u64, Instance>,
    /// Invocations handed to an instance and not answered yet, by request id.
    running: HashMap<String, Running>,
    peak_instances: usize,
}

struct Instance {
    pid: Option<u32>,
    /// Has asked for an invocation at least once (its init is done).
    polled: bool,
    /// What it posted to `/init/error`.
    init_error: Option<String>,
    kill: Option<oneshot::Sender<()>>,
    /// Its Runtime API server.
    server: AbortHandle,
    /// Owns the process: aborting it kills the process (kill_on_drop).
    watcher: AbortHandle,
}

type Answer = Result<Vec<u8>, TargetError>;

struct Job {
    request_id: String,
    payload: Vec<u8>,
    deadline_ms: u64,
    answer: oneshot::Sender<Answer>,
}

struct Running {
    instance: u64,
    answer: oneshot::Sender<Answer>,
}

impl LambdaHost {
    /// A host with no instance yet: the first invocation starts one.
    pub fn new(options: LambdaHostOptions) -> Self {
        Self {
            host: Arc::new(Host {
                options,
                state: Mutex::new(Pool::default()),
                work: Arc::new(Notify::new()),
                next_instance: AtomicU64::new(0),
                started: AtomicU64::new(0),
                exited: AtomicU64::new(0),
            }),
        }
    }

    pub fn stats(&self) -> HostStats {
        let state = self.host.lock();
        HostStats {
            instances: state.instances.len(),
            started: self.host.started.load(Ordering::Relaxed),
            exited: self.host.exited.load(Ordering::Relaxed),
            peak_instances: state.peak_instances,
        }
    }

    /// Process ids of the running instances (for memory figures).
    pub fn pids(&self) -> Vec<u32> {
        self.host
            .lock()
            .instances
            .values()
            .filter_map(|i| i.pid)
            .collect()
    }

    /// Invokes the function with `payload` and waits for its answer (bounded by the
    /// timeout).
    pub async fn invoke_payload(&self, payload: Vec<u8>) -> Answer {
        Host::invoke(self.host.clone(), payload).await
    }
}

impl Target for LambdaHost {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<'static, Answer> {
        Box::pin(Host::invoke(self.host.clone(), payload))
    }
}

impl Host {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn invoke(host: Arc<Host>, payload: Vec<u8>) -> Answer {
        let timeout = host.options.timeout;
        let request_id = ulid::Ulid::new().to_string().to_lowercase();
        let deadline_ms = runtime_api::deadline_ms(timeout);
        let (answer, answered) = oneshot::channel();
        {
            let mut state = host.lock();
            state.queue.push_back(Job {
                request_id: request_id.clone(),
                payload,
                deadline_ms,
                answer,
            });
        }
        host.work.notify_one();
        host.scale();
        match tokio::time::timeout(timeout, answered).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(TargetError::Vanished),
            Err(_) => {
                host.time_out(&request_id);
                Err(TargetError::TimedOut(timeout))
            }
        }
    }

    /// Starts instances until every invocation queued or running has one (up to the
    /// maximum).
    fn scale(self: &Arc<Self>) {
        let mut state = self.lock();
        let wanted =
            (state.queue.len() + state.running.len()).min(self.options.max_instances.max(1));
        while state.instances.len() < wanted {
            let id = self.next_instance.fetch_add(1, Ordering::Relaxed);
            match self.spawn_instance(id) {
                Ok(instance) => {
                    state.instances.insert(id, instance);
                    state.peak_instances = state.peak_instances.max(state.instances.len());
                }
                Err(error) => {
                    // Nothing will take the oldest invocation: it fails as Lambda's would.
                    tracing::error!(function = %self.options.function_name, %error, "could not start an instance");
                    if let Some(job) = state.queue.pop_front() {
                        let _ = job.answer.send(Err(error));
                    }
                    return;
                }
            }
        }
    }

    /// Starts instance `id`: its own Runtime API, then its process.
    fn spawn_instance(self: &Arc<Self>, id: u64) -> Result<Instance, TargetError> {
        let api = InstanceApi {
            host: Arc::downgrade(self),
            work: self.work.clone(),
            instance: id,
        };
        let (addr, server) =
            runtime_api::spawn(api).map_err(|e| TargetError::NotStarted(e.to_string()))?;
        let mut child = match self.command(id, addr).spawn() {
            Ok(child) => child,
            Err(e) => {
                server.abort();
                return Err(TargetError::NotStarted(format!(
                    "cannot start {}: {e}",
                    self.options.binary.display()
                )));
            }
        };
        self.started.fetch_add(1, Ordering::Relaxed);
        let pid = child.id();
        // The log readers end by themselves when the process's pipes close, so a crash's
        // last words (a panic on stderr) are not cut off.
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward_logs(out, id, true));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_logs(err, id, false));
        }
        let (kill, killed) = oneshot::channel();
        let watcher = tokio::spawn(watch_instance(Arc::downgrade(self), id, child, killed));
        tracing::debug!(function = %self.options.function_name, instance = id, ?pid, runtime_api = %addr, "instance started");
        Ok(Instance {
            pid,
            polled: false,
            init_error: None,
            kill: Some(kill),
            server: server.abort_handle(),
            watcher: watcher.abort_handle(),
        })
    }

    /// The command that runs instance `id` against the Runtime API at `runtime_api`, in the
    /// clean environment Lambda gives a function.
    fn command(&self, id: u64, runtime_api: SocketAddr) -> Command {
        let name = &self.options.function_name;
        let mut command = Command::new(&self.options.binary);
        command
            .env_clear()
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                PROCESSOR_MEMORY_MB.to_string(),
            )
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("local/instance-{id}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// The caller gave up on `request_id`: Lambda stops the instance running it.
    fn time_out(&self, request_id: &str) {
        let mut state = self.lock();
        state.queue.retain(|j| j.request_id != request_id);
        if let Some(running) = state.running.remove(request_id) {
            if let Some(kill) = state
                .instances
                .get_mut(&running.instance)
                .and_then(|i| i.kill.take())
            {
                let _ = kill.send(());
            }
        }
    }

    /// The instance's process ended: its invocation (or, if it never got as far as asking
    /// for one, the oldest queued invocation) fails, and another instance takes its place
    /// when one is needed.
    fn exited(self: &Arc<Self>, id: u64, status: String) {
        let mut state = self.lock();
        let Some(instance) = state.instances.remove(&id) else {
            return;
        };
        self.exited.fetch_add(1, Ordering::Relaxed);
        // Its Runtime API goes with it, so a request still in flight there takes nothing.
        instance.server.abort();
        let held: Vec<String> = state
            .running
            .iter()
            .filter(|(_, r)| r.instance == id)
            .map(|(request, _)| request.clone())
            .collect();
        for request in &held {
            if let Some(running) = state.running.remove(request) {
                let _ = running
                    .answer
                    .send(Err(TargetError::Exited(status.clone())));
            }
        }
        if !instance.polled {
            let message = instance.init_error.unwrap_or_else(|| {
                format!("the function's process exited before asking for an invocation ({status})")
            });
            tracing::error!(function = %self.options.function_name, instance = id, %message, "instance failed to start");
            if let Some(job) = state.queue.pop_front() {
                let _ = job.answer.send(Err(TargetError::Init(message)));
            }
        } else if held.is_empty() {
            tracing::warn!(function = %self.options.function_name, instance = id, %status, "an idle instance exited");
        } else {
            tracing::warn!(function = %self.options.function_name, instance = id, %status, "an instance exited during an invocation");
        }
        drop(state);
        self.scale();
    }

    /// The next invocation for `instance`, or `None` once the instance is gone.
    fn take_job(&self, instance: u64) -> Option<Option<Invocation>> {
        let mut state = self.lock();
        let state = &mut *state;
        let entry = state.instances.get_mut(&instance)?;
        entry.polled = true;
        // Invocations whose caller stopped waiting are dropped, as Lambda drops them.
        while let Some(job) = state.queue.pop_front() {
            if job.answer.is_closed() {
                continue;
            }
            state.running.insert(
                job.request_id.clone(),
                Running {
                    instance,
                    answer: job.answer,
                },
            );
            return Some(Some(Invocation {
                request_id: job.request_id,
                payload: job.payload,
                deadline_ms: job.deadline_ms,
                function_arn: runtime_api::function_arn(&self.options.function_name),
            }));
        }
        Some(None)
    }

    fn answer(&self, instance: u64, request_id: &str, answer: Answer) -> Result<(), Refusal> {
        let mut state = self.lock();
        match state.running.get(request_id) {
            Some(running) if running.instance == instance => {}
            _ => return Err(Refusal::UnknownRequest),
        }
        if let Some(running) = state.running.remove(request_id) {
            let _ = running.answer.send(answer);
        }
        Ok(())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Aborting the watchers drops each `Child`, which kills it (kill_on_drop).
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        for instance in state.instances.values() {
            instance.server.abort();
            instance.watcher.abort();
        }
    }
}

async fn watch_instance(
    host: Weak<Host>,
    id: u64,
    mut child: Child,
    killed: oneshot::Receiver<()>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        Ok(()) = killed => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    let status = match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("its status is unknown: {e}"),
    };
    if let Some(host) = host.upgrade() {
        host.exited(id, status);
    }
}

/// Passes an instance's log lines on; the processor logs JSON with a `level` field, and
/// prints its EMF metrics (kept at debug level here).
async fn forward_logs(stream: impl AsyncRead + Unpin, instance: u64, stdout: bool) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let json = serde_json::from_str::<serde_json::Value>(&line).ok();
        // Lambda turns EMF documents (an `_aws` member) into CloudWatch metrics, not logs.
        if json.as_ref().is_some_and(|v| v.get("_aws").is_some()) {
            tracing::debug!(target: "processor::metrics", instance, "{line}");
            continue;
        }
        let level = json.and_then(|v| v.get("level")?.as_str().map(str::to_ascii_uppercase));
        match level.as_deref() {
            Some("ERROR") => tracing::error!(target: "processor", instance, "{line}"),
            Some("WARN") => tracing::warn!(target: "processor", instance, "{line}"),
            Some("INFO") => tracing::info!(target: "processor", instance, "{line}"),
            Some("DEBUG" | "TRACE") => tracing::debug!(target: "processor", instance, "{line}"),
            _ if stdout => tracing::info!(target: "processor", instance, "{line}"),
            _ => tracing::warn!(target: "processor", instance, "{line}"),
        }
    }
}

/// One instance's Runtime API: it hands out the pool's queued invocations.
#[derive(Clone)]
struct InstanceApi {
    host: Weak<Host>,
    work: Arc<Notify>,
    instance: u64,
}

impl Invocations for InstanceApi {
    async fn next(&self) -> Option<Invocation> {
        loop {
            // Registered before looking, so a job queued in between still wakes this request.
            let queued = self.work.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            let host = self.host.upgrade()?;
            let taken = host.take_job(self.instance);
            drop(host);
            match taken {
                Some(Some(invocation)) => return Some(invocation),
                Some(None) => queued.await,
                // The instance is gone: it gets nothing more.
                None => return std::future::pending().await,
            }
        }
    }

    fn respond(&self, request_id: &str, body: Vec<u8>) -> Result<(), Refusal> {
        let host = self.host.upgrade().ok_or(Refusal::Gone)?;
        host.answer(self.instance, request_id, Ok(body))
    }

    fn fail(&self, request_id: &str, message: String) -> Result<(), Refusal> {
        let host = self.host.upgrade().ok_or(Refusal::Gone)?;
        let error = Err(TargetError::Function(message));
        host.answer(self.instance, request_id, error)
    }

    fn init_failed(&self, message: String) -> Result<(), Refusal> {
        let host = self.host.upgrade().ok_or(Refusal::Gone)?;
        if let Some(instance) = host.lock().instances.get_mut(&self.instance) {
            instance.init_error = Some(message);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use aws_sdk_dynamodb::types::AttributeValue;
    use base64::Engine as _;

    use super::*;
    use crate::stack::{LocalStack, StackOptions};

    /// A Pipes batch of one `product_added` for P98765, quantity 10.
    const FIXTURE: &[u8] =
        include_bytes!("../../processor/tests/fixtures/pipes-kinesis-batch.json");

    fn host_of(binary: &str) -> LambdaHost {
        LambdaHost::new(LambdaHostOptions {
            binary: binary.into(),
            function_name: "test".into(),
            env: vec![],
            max_instances: 2,
            timeout: Duration::from_secs(10),
        })
    }

    #[test]
    fn the_missing_binary_error_names_the_command_for_its_profile() {
        assert_eq!(
            build_command(Some("local")),
            "cargo build --profile local -p inventory-processor --bin processor"
        );
        assert_eq!(
            build_command(Some("release")),
            "cargo build --release -p inventory-processor --bin processor"
        );
        assert_eq!(
            build_command(Some("debug")),
            "cargo build -p inventory-processor --bin processor"
        );
    }

    #[tokio::test]
    async fn a_process_that_exits_before_asking_for_work_fails_the_invocation_and_is_replaced() {
        let host = host_of("/bin/false");
        for round in 1..=2u64 {
            let err = host
                .invoke_payload(b"[]".to_vec())
                .await
                .expect_err("nothing answered");
            assert!(matches!(err, TargetError::Init(_)), "{err}");
            assert_eq!(host.stats().started, round, "a new process each time");
        }
        assert_eq!(host.stats().instances, 0);
    }

    #[tokio::test]
    async fn a_binary_that_cannot_start_fails_the_invocation_with_its_path() {
        let err = host_of("/nonexistent/processor")
            .invoke_payload(b"[]".to_vec())
            .await
            .expect_err("there is no such binary");
        assert!(err.to_string().contains("/nonexistent/processor"), "{err}");
    }

    /// The fixture's record put into the local stream and read back as a Pipe delivers it:
    /// the processor places records in the stream it lists, which is this one.
    async fn fixture_in_stream(stack: &LocalStack) -> Vec<u8> {
        use aws_sdk_kinesis::primitives::Blob;
        let fixture: Vec<inventory_domain::PipeRecord> =
            serde_json::from_slice(FIXTURE).expect("the fixture is a Pipes batch");
        let data = base64::engine::general_purpose::STANDARD
            .decode(&fixture[0].data)
            .expect("base64");
        let stream = &stack.options.stream;
        let put = stack
            .kinesis
            .put_record()
            .stream_name(stream)
            .partition_key(&fixture[0].partition_key)
            .data(Blob::new(data))
            .send()
            .await
            .expect("PutRecord");
        let iterator = stack
            .kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(put.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator");
        let records = stack
            .kinesis
            .get_records()
            .shard_iterator(iterator.shard_iterator().expect("an iterator"))
            .send()
            .await
            .expect("GetRecords");
        let arn = stack
            .kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .expect("DescribeStreamSummary")
            .stream_description_summary()
            .expect("a summary")
            .stream_arn()
            .parse::<inventory_domain::arn::StreamArn>()
            .expect("a stream ARN");
        let batch: Vec<inventory_domain::PipeRecord> = records
            .records()
            .iter()
            .map(|r| inventory_stream::pipe_record(r, put.shard_id(), &arn))
            .collect();
        serde_json::to_vec(&batch).expect("JSON")
    }

    /// The real processor binary (built by `cargo build -p inventory-processor --bin
    /// processor`, or `cargo test --workspace`) against the emulated DynamoDB and Kinesis.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_processor_binary_answers_invocations_through_the_runtime_api() {
        let stack = LocalStack::start(StackOptions {
            port: 0,
            ..StackOptions::default()
        })
        .await
        .expect("the local stack starts");
        let host = stack.processor_host().unwrap_or_else(|e| panic!("{e}"));

        let response = host
            .invoke_payload(fixture_in_stream(&stack).await)
            .await
            .expect("the batch is processed");
        assert_eq!(
            String::from_utf8_lossy(&response),
            r#"{"batchItemFailures":[]}"#
        );
        let item = stack
            .db
            .get_item()
            .table_name(&stack.options.tables.inventory)
            .key("product_id", AttributeValue::S("P98765".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem")
            .item
            .expect("the processor wrote the product");
        assert_eq!(item.get("quantity"), Some(&AttributeValue::N("10".into())));

        // A function error comes back as one, with the function's message.
        let err = host
            .invoke_payload(br#"{"Records":[]}"#.to_vec())
            .await
            .expect_err("not a Pipes batch");
        assert!(
            err.to_string().contains("not an EventBridge Pipes batch"),
            "{err}"
        );

        // Concurrent invocations get their own instances, up to the maximum.
        let started = Instant::now();
        let answers =
            futures::future::join_all((0..6).map(|_| host.invoke_payload(b"[]".to_vec()))).await;
        for answer in answers {
            assert_eq!(answer.as_deref(), Ok(&br#"{"batchItemFailures":[]}"#[..]));
        }
        let stats = host.stats();
        assert!(
            (2..=stack.options.max_processor_instances).contains(&stats.peak_instances),
            "{stats:?}"
        );
        assert_eq!(stats.exited, 0, "{stats:?}");
        assert!(started.elapsed() < PROCESSOR_TIMEOUT);

        // Dropping the host kills its instances.
        let pids = host.pids();
        assert!(!pids.is_empty());
        drop(host);
        let deadline = Instant::now() + Duration::from_secs(10);
        while pids
            .iter()
            .any(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists() && !zombie(*pid))
        {
            assert!(
                Instant::now() < deadline,
                "instances {pids:?} still run 10 s after the host was dropped"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A killed child not yet reaped by tokio's background reaper.
    fn zombie(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    }
}
