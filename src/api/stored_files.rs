//! File pointers in an input turned back into files a model can take. A pointer is a file block
//! with a `storage_path` and no bytes: TensorZero's client form (`"file_type":
//! "object_storage_pointer"`, which its datapoints and stored inferences hand back for reuse)
//! and the stored form a continued response carries. Its bytes come from `[object_storage]`;
//! a pointer whose bytes were not kept falls back to its `source_url`, else it is refused.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::observability::files::Files;

/// Whether `block` is a file pointer.
fn is_pointer(block: &Value) -> bool {
    block.get("type").and_then(Value::as_str) == Some("file")
        && block.get("storage_path").is_some()
        && block.get("data").is_none()
}

/// Replaces every file pointer in the messages' `contents` with the file:
/// inline base64 from the storage, or its URL. `Err` says which pointer could not be resolved
/// and why.
pub async fn resolve(files: &Files, contents: Vec<&mut Value>) -> Result<(), String> {
    for (i, content) in contents.into_iter().enumerate() {
        let Value::Array(blocks) = content else {
            continue;
        };
        for (j, block) in blocks.iter_mut().enumerate() {
            if !is_pointer(block) {
                continue;
            }
            let mime_type = block
                .get("mime_type")
                .cloned()
                .unwrap_or_else(|| json!("application/octet-stream"));
            *block = match files.read(&block["storage_path"]).await {
                Ok(bytes) => json!({
                    "type": "file",
                    "file_type": "base64",
                    "mime_type": mime_type,
                    "data": base64::engine::general_purpose::STANDARD.encode(bytes),
                }),
                Err(why) => match block.get("source_url").and_then(Value::as_str) {
                    Some(url) => {
                        json!({"type": "file", "file_type": "url", "url": url, "mime_type": mime_type})
                    }
                    None => {
                        return Err(format!(
                            "input.messages[{i}].content[{j}] points at a stored file that cannot be read ({why})"
                        ));
                    }
                },
            };
        }
    }
    Ok(())
}
