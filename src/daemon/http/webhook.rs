//! `POST /webhook`, the pure part: who may ask (signature or token), what a delivery asks for,
//! and whether it was seen before. No sockets here: the server in [`super`] reads the request
//! and calls [`precheck`] on the head, then [`receive`] on the body; the fuzz target
//! `fuzz/fuzz_targets/http_request.rs` drives the same two functions.
//!
//! The order is the trust boundary (issue 17): the head alone decides whether a body is read
//! at all (a signature header must be present, a GitLab token must match, the declared length
//! must fit [`MAX_BODY`]); only then is the body read, its HMAC checked, the delivery
//! de-duplicated, and its event and branch looked at.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The largest webhook body read, in bytes. GitHub caps its payloads at 25 MB, but a push of
/// a desired-state repository is a few KiB; a larger one is refused (413) before it is read.
pub const MAX_BODY: u64 = 1024 * 1024;

/// How long a delivery (the hash of its signed body) is remembered: a replay within this
/// window is acknowledged and does nothing. A forge's manual "redeliver" sends the same body,
/// so it is also ignored within the window; the poll or the next push brings the commit in.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(10 * 60);

/// At most this many deliveries are remembered (the oldest are forgotten first). Only
/// authenticated deliveries are recorded, so this bounds memory, not what an attacker can do.
pub const REPLAY_CAPACITY: usize = 4096;

/// The headers that name a delivery, in the order they are looked for.
const DELIVERY_ID_HEADERS: [&str; 4] = [
    "x-github-delivery",
    "x-gitea-delivery",
    "x-forgejo-delivery",
    "x-gitlab-event-uuid",
];

/// How a push webhook proves it comes from the forge.
#[derive(Debug, Clone)]
pub struct WebhookAuth {
    /// The shared secret (HMAC key, or GitLab's token). Never empty: see [`read_secret`].
    pub secret: String,
    /// The branch the agent follows, when named (`--ref`): pushes to other branches are
    /// acknowledged and ignored. Unnamed (the remote's default branch): every push counts.
    pub branch: Option<String>,
}

/// Why the webhook secret file cannot be used; the agent refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the webhook secret {}: {source}\n  hint: --webhook-secret-file must name a file readable by dockhand holding the secret the forge signs with", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Empty, or only whitespace: an empty HMAC key is guessable, and an empty GitLab token
    /// would match a request with an empty `X-Gitlab-Token` header.
    #[error("the webhook secret {} is empty\n  hint: write a long random secret into it (e.g. `openssl rand -hex 32 > {}`) and set the same one in the forge's webhook settings, or leave out --webhook-secret-file to turn POST /webhook off", path.display(), path.display())]
    Empty { path: PathBuf },
}

/// Reads the webhook secret from `path` (surrounding whitespace and the trailing newline are
/// not part of it).
///
/// # Errors
/// [`SecretError::Read`] when the file cannot be read, [`SecretError::Empty`] when it holds no
/// secret.
pub fn read_secret(path: &Path) -> Result<crate::daemon::WebhookSecret, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    crate::daemon::WebhookSecret::new(&text).ok_or_else(|| SecretError::Empty {
        path: path.to_path_buf(),
    })
}

/// What a signed webhook delivery asks for, from its event header and JSON body.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A push to the followed branch (or one that cannot be told apart): sync now.
    Sync,
    /// Acknowledged, nothing to do (a ping, another event, another branch); says why.
    Ignore(String),
    /// Not a JSON body: refused with this reason.
    Malformed(String),
}

/// Reads a signed delivery. Pure: the caller has checked the signature already.
pub fn delivery(headers: &BTreeMap<String, String>, body: &[u8], branch: Option<&str>) -> Delivery {
    let event = [
        "x-github-event",
        "x-gitea-event",
        "x-forgejo-event",
        "x-gitlab-event",
    ]
    .iter()
    .find_map(|h| headers.get(*h))
    .map(|e| e.to_ascii_lowercase());
    match event.as_deref() {
        Some("ping") => return Delivery::Ignore("ping: ok".into()),
        None | Some("push") | Some("push hook") => {}
        Some(other) => {
            return Delivery::Ignore(format!("event `{other}` ignored (only pushes deploy)"))
        }
    }
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Delivery::Malformed(format!("the body is not JSON ({e})")),
    };
    let pushed = json.get("ref").and_then(|r| r.as_str());
    match (pushed, branch) {
        (Some(r), Some(b)) if r != format!("refs/heads/{b}") && r != b => {
            Delivery::Ignore(format!("push to {r} ignored (following refs/heads/{b})"))
        }
        _ => Delivery::Sync,
    }
}

/// Whether the request carries a valid signature (GitHub `X-Hub-Signature-256`, Gitea/Forgejo
/// `X-Gitea-Signature`/`X-Forgejo-Signature`: HMAC-SHA256 of the body) or token (GitLab
/// `X-Gitlab-Token`). Comparisons are constant-time. An empty secret authorizes nothing.
pub fn authorized(auth: &WebhookAuth, headers: &BTreeMap<String, String>, body: &[u8]) -> bool {
    if auth.secret.is_empty() {
        return false;
    }
    let hmac_ok = |hex_sig: &str| {
        let Ok(sig) = hex::decode(hex_sig.trim()) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(auth.secret.as_bytes()) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    };
    if let Some(sig) = headers.get("x-hub-signature-256") {
        return sig.strip_prefix("sha256=").is_some_and(hmac_ok);
    }
    for h in ["x-gitea-signature", "x-forgejo-signature"] {
        if let Some(sig) = headers.get(h) {
            return hmac_ok(sig);
        }
    }
    if let Some(token) = headers.get("x-gitlab-token") {
        return token_matches(token, &auth.secret);
    }
    false
}

/// Constant-time comparison of a GitLab token with the secret (the length is not secret).
fn token_matches(token: &str, secret: &str) -> bool {
    let (a, b) = (token.as_bytes(), secret.as_bytes());
    !b.is_empty()
        && a.len() == b.len()
        && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An answer to a webhook request: HTTP status and a one-line text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub text: String,
    /// Queue a reconcile (a new, authenticated push to the followed branch).
    pub sync: bool,
}

impl Answer {
    fn new(status: u16, text: impl Into<String>) -> Answer {
        Answer {
            status,
            text: text.into(),
            sync: false,
        }
    }
}

/// Decides from the head alone whether the body is worth reading. `length` is the declared
/// `Content-Length` (None: chunked or absent). Pure.
///
/// # Errors
/// The refusal to send without reading the body: 401 when no signature or token header is
/// present or the GitLab token does not match, 413 when the declared length exceeds
/// [`MAX_BODY`].
pub fn precheck(
    auth: &WebhookAuth,
    headers: &BTreeMap<String, String>,
    length: Option<u64>,
) -> Result<(), Answer> {
    let signed = [
        "x-hub-signature-256",
        "x-gitea-signature",
        "x-forgejo-signature",
    ]
    .iter()
    .any(|h| headers.contains_key(*h));
    // A GitLab token covers no body: it is checked in full here. Signature headers win over
    // it in [`authorized`], so only a request without one is judged by its token now.
    let token_ok = || {
        headers
            .get("x-gitlab-token")
            .is_some_and(|t| token_matches(t, &auth.secret))
    };
    if !signed && !token_ok() {
        return Err(Answer::new(401, "bad signature"));
    }
    if length.is_some_and(|n| n > MAX_BODY) {
        return Err(Answer::new(
            413,
            format!("body too large (at most {MAX_BODY} bytes)"),
        ));
    }
    Ok(())
}

/// Deliveries already acted on, remembered for [`REPLAY_WINDOW`] (at most
/// [`REPLAY_CAPACITY`]). Keys are SHA-256 digests of the signed body (see [`delivery_key`]),
/// so memory per entry is fixed.
#[derive(Debug, Default)]
pub struct Replays {
    order: VecDeque<(Instant, [u8; 32])>,
    seen: HashSet<[u8; 32]>,
}

impl Replays {
    /// Records `key` at `now`; false when it was already recorded within the window.
    fn first_time(&mut self, key: [u8; 32], now: Instant) -> bool {
        while let Some((at, old)) = self.order.front() {
            if now.saturating_duration_since(*at) < REPLAY_WINDOW
                && self.order.len() < REPLAY_CAPACITY
            {
                break;
            }
            self.seen.remove(old);
            self.order.pop_front();
        }
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back((now, key));
        true
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// The key a delivery is de-duplicated by, and how to name it in messages. The key is the
/// SHA-256 of the body — the part the signature covers — and never the delivery id: an id
/// header is not signed, so keying on it let one signed body be replayed without limit under
/// fresh ids (found by review, issue 17). A push's body names its commits (`before`, `after`),
/// so two different pushes never share a key; a forge's "redeliver" of the same push within
/// [`REPLAY_WINDOW`] is one delivery (the poll brings its commit in anyway). The id, when
/// sent, only names the delivery in messages.
pub fn delivery_key(headers: &BTreeMap<String, String>, body: &[u8]) -> ([u8; 32], String) {
    let key: [u8; 32] = Sha256::digest(body).into();
    let name = match DELIVERY_ID_HEADERS
        .iter()
        .find_map(|h| headers.get(*h).map(|v| v.trim()))
        .filter(|v| !v.is_empty())
    {
        Some(id) => format!("delivery {}", id.chars().take(64).collect::<String>()),
        None => format!("body sha256 {}", &hex::encode(key)[..12]),
    };
    (key, name)
}

/// Judges a request whose head passed [`precheck`] and whose body (at most [`MAX_BODY`]
/// bytes) was read: signature, replay, then event and branch. Records the delivery in
/// `replays` once it is authenticated. Pure apart from `replays`.
pub fn receive(
    auth: &WebhookAuth,
    headers: &BTreeMap<String, String>,
    body: &[u8],
    replays: &mut Replays,
    now: Instant,
) -> Answer {
    if !authorized(auth, headers, body) {
        return Answer::new(401, "bad signature");
    }
    let (key, name) = delivery_key(headers, body);
    if !replays.first_time(key, now) {
        return Answer::new(
            200,
            format!("{name} already received: ignored (a replay triggers nothing)"),
        );
    }
    match delivery(headers, body, auth.branch.as_deref()) {
        Delivery::Sync => Answer {
            status: 202,
            text: "queued".into(),
            sync: true,
        },
        Delivery::Ignore(why) => Answer::new(200, why),
        Delivery::Malformed(why) => Answer::new(400, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn auth() -> WebhookAuth {
        WebhookAuth {
            secret: "It's a Secret to Everybody".into(),
            branch: Some("main".into()),
        }
    }

    fn sign(body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(auth().secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn deliveries_are_read_from_their_event_and_ref() {
        let main = br#"{"ref":"refs/heads/main"}"#;
        let other = br#"{"ref":"refs/heads/feature"}"#;
        let gh = headers(&[("x-github-event", "push")]);
        assert_eq!(delivery(&gh, main, Some("main")), Delivery::Sync);
        assert!(matches!(
            delivery(&gh, other, Some("main")),
            Delivery::Ignore(_)
        ));
        // The remote's default branch is not known here: every push counts.
        assert_eq!(delivery(&gh, other, None), Delivery::Sync);
        let gl = headers(&[("x-gitlab-event", "Push Hook")]);
        assert_eq!(delivery(&gl, main, Some("main")), Delivery::Sync);
        assert!(matches!(
            delivery(&headers(&[("x-github-event", "ping")]), b"{}", Some("main")),
            Delivery::Ignore(_)
        ));
        assert!(matches!(
            delivery(&headers(&[("x-gitea-event", "issues")]), main, Some("main")),
            Delivery::Ignore(_)
        ));
        assert!(matches!(
            delivery(&gh, b"{{{{", Some("main")),
            Delivery::Malformed(_)
        ));
        // No event header (a generic sender): a push when the body says nothing else.
        assert_eq!(delivery(&headers(&[]), b"{}", Some("main")), Delivery::Sync);
    }

    #[test]
    fn signatures_of_each_forge_are_checked() {
        let auth = WebhookAuth {
            secret: "It's a Secret to Everybody".into(),
            branch: None,
        };
        // GitHub's documented example (docs: "Validating webhook deliveries").
        let body = b"Hello, World!";
        let good = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(authorized(
            &auth,
            &headers(&[("x-hub-signature-256", &format!("sha256={good}"))]),
            body
        ));
        assert!(!authorized(
            &auth,
            &headers(&[("x-hub-signature-256", &format!("sha256={good}"))]),
            b"Hello, World?"
        ));
        assert!(authorized(
            &auth,
            &headers(&[("x-gitea-signature", good)]),
            body
        ));
        assert!(!authorized(
            &auth,
            &headers(&[("x-gitea-signature", "zz")]),
            body
        ));
        assert!(authorized(
            &auth,
            &headers(&[("x-gitlab-token", "It's a Secret to Everybody")]),
            body
        ));
        assert!(!authorized(
            &auth,
            &headers(&[("x-gitlab-token", "guess")]),
            body
        ));
        assert!(!authorized(&auth, &headers(&[]), body));
    }

    /// Regression (issue 17): an empty secret file was accepted, and an empty GitLab token then
    /// matched a request with an empty `X-Gitlab-Token` header.
    #[test]
    fn an_empty_secret_authorizes_nothing_and_is_refused_at_start() {
        let empty = WebhookAuth {
            secret: String::new(),
            branch: None,
        };
        let h = headers(&[("x-gitlab-token", "")]);
        assert!(!authorized(&empty, &h, b"{}"));
        assert!(precheck(&empty, &h, Some(2)).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, " \n").unwrap();
        let err = read_secret(&path).unwrap_err();
        assert!(matches!(err, SecretError::Empty { .. }), "{err}");
        assert!(err.to_string().contains("hint:"), "{err}");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(read_secret(&path).unwrap().expose(), "s3cret");
        let missing = read_secret(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(missing, SecretError::Read { .. }), "{missing}");
    }

    /// Regression (issue 17): bodies were read (1 MiB each) before anything was checked.
    #[test]
    fn the_head_alone_refuses_unsigned_wrong_token_and_oversized_requests() {
        let a = auth();
        let unsigned = headers(&[("x-github-event", "push")]);
        assert_eq!(precheck(&a, &unsigned, Some(10)).unwrap_err().status, 401);
        let wrong = headers(&[("x-gitlab-token", "guess")]);
        assert_eq!(precheck(&a, &wrong, Some(10)).unwrap_err().status, 401);
        let signed = headers(&[("x-hub-signature-256", "sha256=00")]);
        assert_eq!(
            precheck(&a, &signed, Some(MAX_BODY + 1))
                .unwrap_err()
                .status,
            413
        );
        assert!(precheck(&a, &signed, Some(MAX_BODY)).is_ok());
        assert!(precheck(&a, &signed, None).is_ok());
        let token = headers(&[("x-gitlab-token", "It's a Secret to Everybody")]);
        assert!(precheck(&a, &token, Some(10)).is_ok());
    }

    /// Regression (issue 17): a signed delivery could be replayed to trigger passes.
    #[test]
    fn a_replayed_delivery_is_acknowledged_and_triggers_nothing() {
        let a = auth();
        let body = br#"{"ref":"refs/heads/main","after":"abc"}"#;
        let sig = sign(body);
        let with_id =
            |id: &str| headers(&[("x-hub-signature-256", &sig), ("x-github-delivery", id)]);
        let mut r = Replays::default();
        let t = Instant::now();
        let first = receive(&a, &with_id("d-1"), body, &mut r, t);
        assert_eq!((first.status, first.sync), (202, true));
        let again = receive(
            &a,
            &with_id("d-1"),
            body,
            &mut r,
            t + Duration::from_secs(5),
        );
        assert_eq!((again.status, again.sync), (200, false), "{}", again.text);
        assert!(again.text.contains("already received"), "{}", again.text);
        // Found by review: the id is not signed, so the same signed body under a fresh id
        // is a replay too.
        for id in ["d-2", "d-3"] {
            let other = receive(&a, &with_id(id), body, &mut r, t);
            assert_eq!((other.status, other.sync), (200, false), "{}", other.text);
        }
        // After the window the id is forgotten.
        let late = receive(&a, &with_id("d-1"), body, &mut r, t + REPLAY_WINDOW);
        assert_eq!((late.status, late.sync), (202, true));
        // Without an id, the body is the key.
        let no_id = headers(&[("x-hub-signature-256", &sig)]);
        let mut r = Replays::default();
        assert!(receive(&a, &no_id, body, &mut r, t).sync);
        assert!(!receive(&a, &no_id, body, &mut r, t).sync);
        // A forged request is not recorded: the genuine one after it still counts.
        let mut r = Replays::default();
        let forged = headers(&[
            ("x-hub-signature-256", "sha256=00"),
            ("x-github-delivery", "d-9"),
        ]);
        assert_eq!(receive(&a, &forged, body, &mut r, t).status, 401);
        assert!(receive(&a, &with_id("d-9"), body, &mut r, t).sync);
    }

    #[test]
    fn replays_remember_a_bounded_number_of_deliveries() {
        let mut r = Replays::default();
        let t = Instant::now();
        for i in 0..(REPLAY_CAPACITY as u32 + 10) {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_le_bytes());
            assert!(r.first_time(key, t));
        }
        assert_eq!(r.len(), REPLAY_CAPACITY);
    }
}
