//! The plugin host keeps its uploads in the manager's database.

use kubeop_plugins::{BoxFuture, SlotKind, Upload, UploadStore, UploadStoreError};
use kubeop_store::Store;

pub struct StoreUploads(pub Store);

impl UploadStore for StoreUploads {
    fn uploads(&self) -> BoxFuture<'_, Result<Vec<Upload>, UploadStoreError>> {
        Box::pin(async {
            let rows = self.0.plugin_uploads().await?;
            // A slot this version does not know (written by a newer one) is not ours to load.
            Ok(rows
                .into_iter()
                .filter_map(|row| {
                    Some(Upload {
                        kind: SlotKind::parse(&row.slot)?,
                        sha256: row.sha256,
                        uploaded_at: row.uploaded_at,
                        uploaded_by: row.uploaded_by,
                    })
                })
                .collect())
        })
    }

    fn component(&self, kind: SlotKind) -> BoxFuture<'_, Result<Option<Vec<u8>>, UploadStoreError>> {
        Box::pin(async move { Ok(self.0.plugin_bytes(kind.as_str()).await?) })
    }

    fn put<'a>(
        &'a self,
        upload: &'a Upload,
        component: &'a [u8],
    ) -> BoxFuture<'a, Result<(), UploadStoreError>> {
        Box::pin(async move {
            let slot = upload.kind.as_str();
            Ok(self
                .0
                .put_plugin(slot, &upload.sha256, component, upload.uploaded_at, &upload.uploaded_by)
                .await?)
        })
    }

    fn delete(&self, kind: SlotKind) -> BoxFuture<'_, Result<bool, UploadStoreError>> {
        Box::pin(async move { Ok(self.0.delete_plugin(kind.as_str()).await?) })
    }
}
