//! Where uploaded components are kept so that every replica runs the same ones. The manager
//! keeps them in its database; the plugin host reaches them only through [`UploadStore`], so it
//! needs no database of its own.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};

use crate::SlotKind;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failure of the store behind [`UploadStore`]; its owner can downcast it back.
pub type UploadStoreError = Box<dyn std::error::Error + Send + Sync>;

/// One slot's upload, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub kind: SlotKind,
    pub sha256: String,
    pub uploaded_at: DateTime<Utc>,
    pub uploaded_by: String,
}

pub trait UploadStore: Send + Sync + 'static {
    /// Every slot's upload (not the bytes: they are read when a replica switches).
    fn uploads(&self) -> BoxFuture<'_, Result<Vec<Upload>, UploadStoreError>>;
    /// A slot's uploaded component; `None` when it has none.
    fn component(&self, kind: SlotKind) -> BoxFuture<'_, Result<Option<Vec<u8>>, UploadStoreError>>;
    fn put<'a>(
        &'a self,
        upload: &'a Upload,
        component: &'a [u8],
    ) -> BoxFuture<'a, Result<(), UploadStoreError>>;
    /// Removes a slot's upload; `false` when it had none.
    fn delete(&self, kind: SlotKind) -> BoxFuture<'_, Result<bool, UploadStoreError>>;
}

/// No uploads: for a process without the manager's database (`kubeop admission` with
/// `admission.database = false`), whose slots follow `plugins.dir` and the built-ins.
pub struct NoUploads;

impl UploadStore for NoUploads {
    fn uploads(&self) -> BoxFuture<'_, Result<Vec<Upload>, UploadStoreError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn component(&self, _kind: SlotKind) -> BoxFuture<'_, Result<Option<Vec<u8>>, UploadStoreError>> {
        Box::pin(async { Ok(None) })
    }

    fn put<'a>(
        &'a self,
        _upload: &'a Upload,
        _component: &'a [u8],
    ) -> BoxFuture<'a, Result<(), UploadStoreError>> {
        Box::pin(async { Err("this process keeps no uploads (no database)".into()) })
    }

    fn delete(&self, _kind: SlotKind) -> BoxFuture<'_, Result<bool, UploadStoreError>> {
        Box::pin(async { Ok(false) })
    }
}
