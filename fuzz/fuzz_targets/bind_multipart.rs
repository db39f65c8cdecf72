//! Any bytes as a multipart create request (files sniffed, names sanitized, parts counted): an
//! answer, never a panic. The first file's bytes also go through the sniffer directly.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = bytes::Bytes::copy_from_slice(data);
    let _ = common::runtime().block_on(ticketd_http::fuzzing::bind(
        "multipart/form-data; boundary=fuzz",
        body,
        &common::limits(),
    ));
    let _ = ticketd_http::vet(
        data,
        "fuzzed.bin",
        Some("application/octet-stream"),
        &ticketd_http::AttachmentPolicy::default(),
    );
});
