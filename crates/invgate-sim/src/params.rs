//! InvGate takes parameters as a query string, form-urlencoded, multipart or JSON; this reads any of
//! them into one list of (name, value) pairs plus file metadata. Files are hashed and measured as
//! they stream in; their bytes are not kept.

use actix_multipart::Multipart;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Bytes of non-file content a request may carry (query, form, JSON, text parts).
const MAX_TEXT_BYTES: usize = 4 * 1024 * 1024;

/// A file as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadedFile {
    /// The form field it came in (`attachments[]`).
    pub field: String,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
}

/// Every parameter of a request, in arrival order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Params {
    pub fields: Vec<(String, String)>,
    pub files: Vec<UploadedFile>,
}

impl Params {
    /// The last value of a scalar parameter, when non-empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    /// The values of a PHP-style array parameter `key[]`. A plain `key` (for instance a comma
    /// list) is refused, as InvGate refuses it.
    pub fn array(&self, key: &str) -> Result<Vec<&str>, String> {
        if self.fields.iter().any(|(k, _)| k == key) {
            return Err(format!("{key} must be sent as an array ({key}[]=…)"));
        }
        let wanted = format!("{key}[]");
        Ok(self
            .fields
            .iter()
            .filter(|(k, _)| *k == wanted)
            .map(|(_, v)| v.as_str())
            .collect())
    }

    pub fn files_named(&self, field: &str) -> impl Iterator<Item = &UploadedFile> {
        let wanted = format!("{field}[]");
        self.files
            .iter()
            .filter(move |f| f.field == wanted || f.field == field)
    }
}

/// Reads the query string and the body.
///
/// # Errors
/// A message for a 400 when the body cannot be read in its declared encoding.
pub async fn read(req: &HttpRequest, payload: web::Payload) -> Result<Params, String> {
    let mut params = Params {
        fields: serde_urlencoded::from_str(req.query_string())
            .map_err(|e| format!("bad query string: {e}"))?,
        files: Vec::new(),
    };
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        read_multipart(req, payload, &mut params).await?;
    } else if content_type.starts_with("application/json") {
        let body = read_text(payload).await?;
        if !body.iter().all(u8::is_ascii_whitespace) {
            let value: Value =
                serde_json::from_slice(&body).map_err(|e| format!("bad JSON: {e}"))?;
            let Value::Object(object) = value else {
                return Err("the JSON body must be an object".into());
            };
            for (key, value) in object {
                push_json(&mut params.fields, key, value);
            }
        }
    } else {
        // form-urlencoded, or no body at all.
        let body = read_text(payload).await?;
        let fields: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&body).map_err(|e| format!("bad form body: {e}"))?;
        params.fields.extend(fields);
    }
    Ok(params)
}

fn push_json(fields: &mut Vec<(String, String)>, key: String, value: Value) {
    match value {
        Value::Null => {}
        Value::String(s) => fields.push((key, s)),
        Value::Bool(b) => fields.push((key, if b { "1" } else { "0" }.to_owned())),
        Value::Number(n) => fields.push((key, n.to_string())),
        Value::Array(items) => {
            let key = if key.ends_with("[]") {
                key
            } else {
                format!("{key}[]")
            };
            for item in items {
                let text = match item {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                fields.push((key.clone(), text));
            }
        }
        object @ Value::Object(_) => fields.push((key, object.to_string())),
    }
}

async fn read_text(mut payload: web::Payload) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| format!("the body could not be read: {e}"))?;
        if body.len() + chunk.len() > MAX_TEXT_BYTES {
            return Err(format!("the body is larger than {MAX_TEXT_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn read_multipart(
    req: &HttpRequest,
    payload: web::Payload,
    params: &mut Params,
) -> Result<(), String> {
    let mut multipart = Multipart::new(req.headers(), payload);
    let mut text_bytes = 0usize;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|e| format!("bad multipart body: {e}"))?;
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.content_disposition().and_then(|cd| {
            cd.get_filename_ext()
                .map(|ext| String::from_utf8_lossy(&ext.value).into_owned())
                .or_else(|| cd.get_filename().map(ToOwned::to_owned))
        });
        if let Some(file_name) = file_name {
            let content_type = field.content_type().map_or_else(
                || "application/octet-stream".to_owned(),
                ToString::to_string,
            );
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = field.next().await {
                let chunk = chunk.map_err(|e| format!("bad multipart body: {e}"))?;
                size += chunk.len() as u64;
                hasher.update(&chunk);
            }
            params.files.push(UploadedFile {
                field: name,
                name: file_name,
                content_type,
                size,
                sha256: hex::encode(hasher.finalize()),
            });
        } else {
            let mut value = Vec::new();
            while let Some(chunk) = field.next().await {
                let chunk = chunk.map_err(|e| format!("bad multipart body: {e}"))?;
                text_bytes += chunk.len();
                if text_bytes > MAX_TEXT_BYTES {
                    return Err(format!(
                        "the text fields are larger than {MAX_TEXT_BYTES} bytes"
                    ));
                }
                value.extend_from_slice(&chunk);
            }
            let value =
                String::from_utf8(value).map_err(|_| format!("field {name} is not UTF-8"))?;
            params.fields.push((name, value));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with(fields: &[(&str, &str)]) -> Params {
        Params {
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            files: vec![],
        }
    }

    #[test]
    fn arrays_must_use_php_brackets() {
        assert_eq!(
            with(&[("ids[]", "1"), ("ids[]", "2")]).array("ids"),
            Ok(vec!["1", "2"])
        );
        assert!(with(&[("ids", "1,2")]).array("ids").is_err());
        assert_eq!(with(&[]).array("ids"), Ok(vec![]));
    }

    #[test]
    fn json_values_become_parameters_like_a_form_would_send_them() {
        let mut fields = Vec::new();
        for (k, v) in [
            ("a", json!(1)),
            ("b", json!(true)),
            ("c", json!([1, "2"])),
            ("d", json!(null)),
            ("e", json!("x")),
        ] {
            push_json(&mut fields, k.to_owned(), v);
        }
        let expected: Vec<(String, String)> = [
            ("a", "1"),
            ("b", "1"),
            ("c[]", "1"),
            ("c[]", "2"),
            ("e", "x"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(fields, expected);
    }

    #[test]
    fn the_last_non_empty_scalar_wins() {
        let params = with(&[("a", "1"), ("a", "2"), ("b", " ")]);
        assert_eq!(params.get("a"), Some("2"));
        assert_eq!(params.get("b"), None);
    }
}
