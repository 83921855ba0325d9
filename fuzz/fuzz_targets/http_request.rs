//! The agent's `POST /webhook` on any bytes: a raw HTTP/1.1 request is parsed by httparse (the
//! parser inside hyper, which serves the port), then judged by the pure webhook functions the
//! server calls — `precheck` on the head, `receive` on the body. Nothing may panic, and:
//! - a declared length over the cap is never accepted;
//! - only a 202 queues a reconcile, and only for a correctly signed body;
//! - the same delivery a second time never queues a reconcile (replays do nothing).
//!
//! The first input byte chooses whether the target signs the body itself (so the fuzzer gets
//! past the HMAC and explores delivery ids, events and JSON), or leaves the request as it is.
#![no_main]

use std::collections::BTreeMap;
use std::time::Instant;

use dockhand::daemon::http::webhook::{self, precheck, receive, Replays, WebhookAuth, MAX_BODY};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzz-webhook-secret";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, raw)) = data.split_first() else {
        return;
    };
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut slots);
    let Ok(httparse::Status::Complete(head_len)) = req.parse(raw) else {
        return;
    };
    let body = &raw[head_len..];
    let mut headers: BTreeMap<String, String> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    if mode & 1 == 1 {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key");
        mac.update(body);
        let sig = hex::encode(mac.finalize().into_bytes());
        let name = ["x-hub-signature-256", "x-gitea-signature", "x-forgejo-signature"]
            [usize::from(mode >> 1) % 3];
        let value = if name == "x-hub-signature-256" {
            format!("sha256={sig}")
        } else {
            sig
        };
        headers.retain(|k, _| !k.starts_with("x-hub-signature") && !k.ends_with("-signature"));
        headers.insert(name.to_string(), value);
    }
    let auth = WebhookAuth {
        secret: SECRET.into(),
        branch: (mode & 0x80 == 0).then(|| "main".to_string()),
    };
    let declared = headers
        .get("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    if precheck(&auth, &headers, declared).is_err() {
        return;
    }
    assert!(declared.is_none_or(|n| n <= MAX_BODY), "an over-long body passed the head check");
    let body = &body[..body.len().min(MAX_BODY as usize)];
    let mut replays = Replays::default();
    let now = Instant::now();
    let first = receive(&auth, &headers, body, &mut replays, now);
    assert_eq!(first.sync, first.status == 202, "{first:?}");
    if first.sync {
        assert!(webhook::authorized(&auth, &headers, body), "an unsigned body queued a pass");
    }
    let again = receive(&auth, &headers, body, &mut replays, now);
    assert!(!again.sync, "a replay queued a pass: {again:?}");
    if first.status != 401 {
        assert_eq!(again.status, 200, "{again:?}");
    }
});
