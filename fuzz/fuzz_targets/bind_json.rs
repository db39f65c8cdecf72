//! Any bytes as a JSON create request: an answer (ticket or problem), never a panic.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = bytes::Bytes::copy_from_slice(data);
    let _ = common::runtime().block_on(ticketd_http::fuzzing::bind(
        "application/json",
        body,
        &common::limits(),
    ));
});
