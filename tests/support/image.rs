//! Builds small, deterministic images from the host's static busybox and pushes them straight
//! to a registry over its HTTP API, so tests and the demo get real `repo@sha256:` digests with
//! no registry other than the local one. Same inputs, same digest, on every machine with the
//! same busybox build.

#![allow(dead_code)]

use sha2::{Digest, Sha256};

pub const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "httpd", "wget", "sleep", "echo", "cat", "true", "false", "ls", "env", "id", "touch",
    "mkdir",
];

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn header(path: &str, size: u64, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).expect("tar path");
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(kind);
    h
}

/// An uncompressed layer: busybox with applet links, `/www` with `files`, `/tmp`.
pub fn layer(files: &[(&str, &str)]) -> Vec<u8> {
    let busybox = std::fs::read(BUSYBOX).unwrap_or_else(|e| {
        panic!("{BUSYBOX} is needed to build test images ({e}); install it with: apt-get install -y busybox-static")
    });
    let mut b = tar::Builder::new(Vec::new());
    for dir in ["bin/", "tmp/", "www/"] {
        let mut h = header(
            dir,
            0,
            if dir == "tmp/" { 0o1777 } else { 0o755 },
            tar::EntryType::Directory,
        );
        h.set_cksum();
        b.append(&h, std::io::empty()).expect("tar dir");
    }
    let mut h = header(
        "bin/busybox",
        busybox.len() as u64,
        0o755,
        tar::EntryType::Regular,
    );
    h.set_cksum();
    b.append(&h, busybox.as_slice()).expect("tar busybox");
    for applet in APPLETS {
        let mut h = header(&format!("bin/{applet}"), 0, 0o777, tar::EntryType::Symlink);
        h.set_link_name("busybox").expect("link");
        h.set_cksum();
        b.append(&h, std::io::empty()).expect("tar link");
    }
    let mut sorted: Vec<&(&str, &str)> = files.iter().collect();
    sorted.sort();
    for (name, content) in sorted {
        let mut h = header(
            &format!("www/{name}"),
            content.len() as u64,
            0o644,
            tar::EntryType::Regular,
        );
        h.set_cksum();
        b.append(&h, content.as_bytes()).expect("tar file");
    }
    b.into_inner().expect("tar finish")
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "x86_64" => "amd64",
        other => other,
    }
}

/// `authorization`: an `Authorization` header value for a registry that needs a login.
fn upload_blob(
    registry: &str,
    authorization: Option<&str>,
    repo: &str,
    blob: &[u8],
) -> Result<String, String> {
    let digest = sha(blob);
    let base = format!("http://{registry}");
    let with = |r: ureq::Request| match authorization {
        Some(a) => r.set("Authorization", a),
        None => r,
    };
    if with(ureq::head(&format!("{base}/v2/{repo}/blobs/{digest}")))
        .call()
        .is_ok()
    {
        return Ok(digest);
    }
    let resp = with(ureq::post(&format!("{base}/v2/{repo}/blobs/uploads/")))
        .call()
        .map_err(|e| format!("starting upload: {e}"))?;
    let location = resp
        .header("Location")
        .ok_or("registry gave no upload location")?
        .to_string();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    with(ureq::put(&format!("{url}{sep}digest={digest}")))
        .set("Content-Type", "application/octet-stream")
        .send_bytes(blob)
        .map_err(|e| format!("uploading blob: {e}"))?;
    Ok(digest)
}

/// Pushes an image made of `layer` running `cmd` as `registry/repo:tag`; returns the manifest
/// digest (what `repo@sha256:…` pins).
pub fn push(
    registry: &str,
    repo: &str,
    tag: &str,
    layer: &[u8],
    cmd: &[&str],
) -> Result<String, String> {
    push_as(registry, None, repo, tag, layer, cmd)
}

/// [`push`] to a registry that needs a login: `authorization` is the `Authorization` header
/// value (`Basic …`).
pub fn push_as(
    registry: &str,
    authorization: Option<&str>,
    repo: &str,
    tag: &str,
    layer: &[u8],
    cmd: &[&str],
) -> Result<String, String> {
    push_config(
        registry,
        authorization,
        repo,
        tag,
        layer,
        serde_json::json!({"Cmd": cmd, "Env": ["PATH=/bin"]}),
    )
}

/// [`push_as`] with the image's whole run config (`Cmd`, `Env`, `Healthcheck`, …).
pub fn push_config(
    registry: &str,
    authorization: Option<&str>,
    repo: &str,
    tag: &str,
    layer: &[u8],
    run_config: serde_json::Value,
) -> Result<String, String> {
    let layer_digest = upload_blob(registry, authorization, repo, layer)?;
    let config = serde_json::json!({
        "architecture": arch(),
        "os": "linux",
        "config": run_config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let config = serde_json::to_vec(&config).expect("config json");
    let config_digest = upload_blob(registry, authorization, repo, &config)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": layer.len(), "digest": layer_digest}],
    });
    let manifest = serde_json::to_vec(&manifest).expect("manifest json");
    let put = ureq::put(&format!("http://{registry}/v2/{repo}/manifests/{tag}"));
    let put = match authorization {
        Some(a) => put.set("Authorization", a),
        None => put,
    };
    put.set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .send_bytes(&manifest)
        .map_err(|e| format!("pushing manifest: {e}"))?;
    Ok(sha(&manifest))
}

/// Whether a registry answers at `registry` (host:port).
pub fn registry_up(registry: &str) -> bool {
    ureq::get(&format!("http://{registry}/v2/"))
        .timeout(std::time::Duration::from_secs(2))
        .call()
        .is_ok()
}
