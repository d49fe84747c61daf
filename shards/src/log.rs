//! INTERIM in-memory log with the API of the real partition log (branch `log` replaces this
//! file). It lets the broker's protocol path be built and tested before the O_DIRECT log
//! lands. It is not durable and not used in any release.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use crate::error::{Error, Result};
use crate::types::{LeaderEpoch, Offset, TopicId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    Always,
    Interval { flush_ms: i64, flush_messages: i64 },
    None,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub flush_policy: FlushPolicy,
    pub max_message_bytes: usize,
    pub log_append_time: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            flush_policy: FlushPolicy::Always,
            max_message_bytes: 1_048_588,
            log_append_time: false,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub log_append_time_ms: i64,
    pub log_start_offset: Offset,
}

#[derive(Clone, Debug, Default)]
pub struct ReadResult {
    pub batches: Vec<Bytes>,
}

pub struct Log {
    batches: RefCell<Vec<(i64, i64, Bytes)>>,
    end: Cell<i64>,
    start: Cell<i64>,
    config: LogConfig,
    notify: RefCell<Vec<futures::channel::oneshot::Sender<()>>>,
    #[allow(dead_code)]
    dir: PathBuf,
}

impl Log {
    pub async fn open(dir: PathBuf, _topic_id: TopicId, config: LogConfig) -> Result<Rc<Log>> {
        Ok(Rc::new(Log {
            batches: RefCell::new(Vec::new()),
            end: Cell::new(0),
            start: Cell::new(0),
            config,
            notify: RefCell::new(Vec::new()),
            dir,
        }))
    }

    pub fn append(&self, mut batch: BytesMut, epoch: LeaderEpoch) -> Result<AppendInfo> {
        let h = crate::batch::validate_produced(&batch, self.config.max_message_bytes)?;
        let base = self.end.get();
        crate::batch::patch_offset_and_epoch(&mut batch, base, epoch.0);
        let last = base + h.last_offset_delta as i64;
        self.batches.borrow_mut().push((base, last, batch.freeze()));
        self.end.set(last + 1);
        for n in self.notify.borrow_mut().drain(..) {
            let _ = n.send(());
        }
        Ok(AppendInfo {
            base_offset: Offset(base),
            last_offset: Offset(last),
            log_append_time_ms: -1,
            log_start_offset: Offset(self.start.get()),
        })
    }

    pub async fn wait_durable(&self, _last: Offset) -> Result<()> {
        Ok(())
    }

    pub fn log_end_offset(&self) -> Offset {
        Offset(self.end.get())
    }
    pub fn durable_offset(&self) -> Offset {
        Offset(self.end.get())
    }
    pub fn log_start_offset(&self) -> Offset {
        Offset(self.start.get())
    }

    pub async fn read(
        &self,
        offset: Offset,
        max_offset: Offset,
        max_bytes: usize,
    ) -> Result<ReadResult> {
        if offset.0 < self.start.get() || offset.0 > self.end.get() {
            return Err(Error::OffsetOutOfRange {
                offset: offset.0,
                start: self.start.get(),
                end: self.end.get(),
            });
        }
        let mut out = ReadResult::default();
        let mut size = 0;
        for (base, last, b) in self.batches.borrow().iter() {
            if *last < offset.0 || *base >= max_offset.0 {
                continue;
            }
            if !out.batches.is_empty() && size + b.len() > max_bytes {
                break;
            }
            size += b.len();
            out.batches.push(b.clone());
        }
        Ok(out)
    }

    /// Resolves at the next append.
    pub fn subscribe(&self) -> impl std::future::Future<Output = ()> {
        let (tx, rx) = futures::channel::oneshot::channel();
        self.notify.borrow_mut().push(tx);
        async move {
            let _ = rx.await;
        }
    }

    pub async fn close(&self) -> Result<()> {
        Ok(())
    }
}
