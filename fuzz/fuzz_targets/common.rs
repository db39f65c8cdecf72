//! What the binding targets share: one runtime, small limits.

use std::sync::OnceLock;
use std::time::Duration;

use ticketd_http::Limits;

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

pub fn limits() -> Limits {
    Limits {
        max_attachments: 4,
        max_attachment_bytes: 256 * 1024,
        max_json_bytes: 64 * 1024,
        body_idle_timeout: Duration::from_secs(5),
        ..Limits::default()
    }
}
