//! Request binding: a JSON ticket, and a multipart ticket with a 4 KiB file (sniffed, hashed and
//! spooled to disk on the way).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ticketd_http::Limits;
use ticketd_http::fuzzing::bind;

const BOUNDARY: &str = "bench-boundary-7d3a";

fn multipart(json: &str, file: &[u8]) -> Bytes {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"request\"\r\nContent-Type: application/json\r\n\r\n{json}\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"attachments[]\"; filename=\"note.txt\"\r\nContent-Type: text/plain\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    Bytes::from(body)
}

fn binding(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let limits = Limits::default();
    let json = r#"{"title":"VPN drops every hour","description":"Since Monday the VPN disconnects on the hour.","category_id":3,"priority_id":2,"type_id":1}"#;
    let json_body = Bytes::from_static(json.as_bytes());

    let mut group = c.benchmark_group("bind a create request");
    group.throughput(Throughput::Bytes(json_body.len() as u64));
    group.bench_function("JSON ticket", |b| {
        b.to_async(&runtime).iter(|| async {
            bind("application/json", black_box(json_body.clone()), &limits)
                .await
                .expect("valid")
        });
    });
    let file: Vec<u8> = b"a line of a plain text attachment\n"
        .iter()
        .copied()
        .cycle()
        .take(4096)
        .collect();
    let form = multipart(json, &file);
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    group.throughput(Throughput::Bytes(form.len() as u64));
    group.bench_function("multipart ticket with a 4 KiB file", |b| {
        b.to_async(&runtime).iter(|| async {
            bind(&content_type, black_box(form.clone()), &limits)
                .await
                .expect("valid")
        });
    });
    group.finish();
}

criterion_group!(benches, binding);
criterion_main!(benches);
