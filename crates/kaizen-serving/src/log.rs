//! The inference log: one JSON line per request (request id, time, model, version, variant,
//! inputs, outputs, latency, status), appended by a writer thread behind a bounded queue, so
//! logging never blocks the request path. When the queue is full the record is dropped and
//! counted (`dropped`, exposed on `/metrics` and `/health`), never silently lost.
//!
//! Each server process writes its own segment, `<dir>/<start time>-<pid>.jsonl`, so a restart
//! appends a new file and never rewrites an old one. `kaizen sql "... FROM inference_log"` reads
//! the directory as one table.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

/// One logged request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InferenceRecord {
    pub request_id: String,
    /// Milliseconds since the epoch, when the request arrived.
    pub timestamp: i64,
    pub model: String,
    pub version: String,
    /// The traffic variant that answered (`default` without a split).
    pub variant: String,
    /// The input rows as a JSON object of columns (`{"x1": [..], ...}`), or the raw body when
    /// it did not parse.
    pub inputs: String,
    /// The response body's predictions as JSON, or the error message.
    pub outputs: String,
    pub rows: u64,
    pub latency_ms: f64,
    pub status: u16,
}

/// Counters of the log, shared with `/metrics`.
#[derive(Debug, Default)]
pub struct LogStats {
    pub queued: AtomicU64,
    pub written: AtomicU64,
    pub dropped: AtomicU64,
}

impl LogStats {
    /// Records waiting for the writer.
    pub fn depth(&self) -> u64 {
        let queued = self.queued.load(Ordering::Relaxed);
        let done = self.written.load(Ordering::Relaxed);
        queued.saturating_sub(done)
    }
}

/// Ground truth for a logged request (`POST /feedback`), in the `feedback` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedbackRecord {
    pub request_id: String,
    pub timestamp: i64,
    /// The actual values as JSON (one per row of the request).
    pub actual: String,
    /// Whether the request was still in the server's memory (its live metrics count it).
    pub matched: bool,
}

/// The sending side of a JSON-lines log; cheap to clone into handlers.
pub struct JsonLog<T> {
    sender: SyncSender<T>,
    pub stats: Arc<LogStats>,
    pub path: PathBuf,
}

impl<T> Clone for JsonLog<T> {
    fn clone(&self) -> Self {
        JsonLog {
            sender: self.sender.clone(),
            stats: Arc::clone(&self.stats),
            path: self.path.clone(),
        }
    }
}

/// The log of every scoring request.
pub type InferenceLog = JsonLog<InferenceRecord>;
/// The log of ground truth.
pub type FeedbackLog = JsonLog<FeedbackRecord>;

/// Joins the writer when the log is closed.
pub struct LogWriter {
    handle: JoinHandle<()>,
}

impl LogWriter {
    /// Waits until every queued record is written (all senders must be dropped first).
    pub fn join(self) {
        let _ = self.handle.join();
    }
}

impl<T: Serialize + Send + 'static> JsonLog<T> {
    /// Starts a log segment in `dir` with a queue of `capacity` records.
    pub fn open(dir: &Path, capacity: usize) -> std::io::Result<(JsonLog<T>, LogWriter)> {
        std::fs::create_dir_all(dir)?;
        let now = chrono_like_stamp();
        let path = dir.join(format!("{now}-{}.jsonl", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let (sender, receiver) = sync_channel(capacity.max(1));
        let stats = Arc::new(LogStats::default());
        let writer_stats = Arc::clone(&stats);
        let handle = std::thread::Builder::new()
            .name("inference-log".into())
            .spawn(move || write_loop(receiver, file, &writer_stats))?;
        Ok((
            JsonLog {
                sender,
                stats,
                path,
            },
            LogWriter { handle },
        ))
    }

    /// Queues a record; when the queue is full the record is dropped and counted.
    pub fn record(&self, record: T) {
        match self.sender.try_send(record) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `YYYYMMDDTHHMMSS` in UTC, without a date library: segment names sort by start time.
fn chrono_like_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rest = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// How long the writer waits between batches that did not fill.
const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// The writer's nice value: on a small machine it shares cores with the request path, and a
/// full scheduler slice taken by the writer is a request's tail latency. The queue absorbs the
/// lag; drops are counted if it ever fills.
#[cfg(target_os = "linux")]
const WRITER_NICE: libc::c_int = 10;

/// Lowers the calling thread's scheduling priority (Linux keeps a nice value per thread).
fn yield_to_requests() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority only read their integer arguments.
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, WRITER_NICE)
        };
        if rc != 0 {
            tracing::debug!("cannot lower the log writer's priority");
        }
    }
}

fn write_loop<T: Serialize>(receiver: Receiver<T>, file: std::fs::File, stats: &LogStats) {
    yield_to_requests();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
    let mut last_sync = Instant::now();
    // Blocks for the first record of a batch, then takes what is already queued.
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match receiver.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        for record in &batch {
            let written = serde_json::to_writer(&mut out, record)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"));
            if let Err(e) = written {
                tracing::error!(error = %e, "cannot write the inference log");
            }
        }
        if let Err(e) = out.flush() {
            tracing::error!(error = %e, "cannot write the inference log");
        }
        if last_sync.elapsed() > Duration::from_secs(1) {
            let _ = out.get_ref().sync_data();
            last_sync = Instant::now();
        }
        stats
            .written
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        // Let records gather: a wake-up per record costs the request path context switches
        // (and its tail latency) on small machines; a record waits a few milliseconds more.
        if batch.len() < 4096 {
            std::thread::sleep(BATCH_PAUSE);
        }
    }
    let _ = out.flush();
    let _ = out.get_ref().sync_data();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize) -> InferenceRecord {
        InferenceRecord {
            request_id: format!("r{i}"),
            timestamp: 1,
            model: "m".into(),
            version: "1".into(),
            variant: "default".into(),
            inputs: "{}".into(),
            outputs: "[]".into(),
            rows: 1,
            latency_ms: 0.5,
            status: 200,
        }
    }

    #[test]
    fn every_record_is_written_once_and_a_restart_appends_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (log, writer) = InferenceLog::open(dir.path(), 100_000).unwrap();
        for i in 0..5000 {
            log.record(record(i));
        }
        let stats = Arc::clone(&log.stats);
        drop(log);
        writer.join();
        assert_eq!(stats.written.load(Ordering::Relaxed), 5000);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        let ids: std::collections::BTreeSet<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(ids.len(), 5000);

        std::thread::sleep(Duration::from_millis(1100));
        let (log, writer) = InferenceLog::open(dir.path(), 10).unwrap();
        log.record(record(1));
        drop(log);
        writer.join();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (log, writer) = InferenceLog::open(dir.path(), 1).unwrap();
        for i in 0..10_000 {
            log.record(record(i));
        }
        let stats = Arc::clone(&log.stats);
        drop(log);
        writer.join();
        let written = stats.written.load(Ordering::Relaxed);
        let dropped = stats.dropped.load(Ordering::Relaxed);
        assert_eq!(written + dropped, 10_000);
        assert!(dropped > 0, "a queue of 1 under 10,000 records drops some");
    }

    #[test]
    fn stamps_are_civil_dates() {
        let s = chrono_like_stamp();
        assert_eq!(s.len(), 15);
        assert!(s.starts_with("20"), "{s}");
    }
}
