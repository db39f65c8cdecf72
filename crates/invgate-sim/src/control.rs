//! The control API under `/_sim/`: inject faults, read what was received. No authentication: the
//! simulator is a test tool, and binds to loopback unless told otherwise.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::{Fault, Simulator};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/_sim")
            .route("/faults", web::post().to(add_fault))
            .route("/faults", web::delete().to(clear_faults))
            .route("/requests", web::get().to(requests))
            .route("/requests", web::delete().to(clear_requests))
            .route("/recording", web::put().to(set_recording))
            .route("/incidents", web::get().to(incidents)),
    );
}

async fn add_fault(sim: web::Data<Simulator>, fault: web::Json<Fault>) -> HttpResponse {
    sim.inject(fault.into_inner());
    HttpResponse::NoContent().finish()
}

async fn clear_faults(sim: web::Data<Simulator>) -> HttpResponse {
    sim.clear_faults();
    HttpResponse::NoContent().finish()
}

async fn requests(sim: web::Data<Simulator>) -> HttpResponse {
    HttpResponse::Ok().json(sim.requests())
}

async fn clear_requests(sim: web::Data<Simulator>) -> HttpResponse {
    sim.clear_requests();
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct Recording {
    enabled: bool,
}

async fn set_recording(sim: web::Data<Simulator>, body: web::Json<Recording>) -> HttpResponse {
    sim.set_recording(body.enabled);
    HttpResponse::NoContent().finish()
}

async fn incidents(sim: web::Data<Simulator>) -> HttpResponse {
    HttpResponse::Ok().json(json!(sim.incidents()))
}

/// Standard base64 (with or without padding), enough for HTTP Basic credentials.
pub(crate) fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let trimmed = input.trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    for chunk in trimmed.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode() {
        assert_eq!(
            base64_decode("dGlja2V0ZDpwdw==").as_deref(),
            Some(&b"ticketd:pw"[..])
        );
        assert_eq!(base64_decode("YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("!!!"), None);
    }
}
