//! Builds the demo image (static busybox serving a page and /readyz) deterministically and
//! pushes it to the local registry; prints the pinned reference. Used by `scripts/demo.sh`.
//!
//! Usage: cargo run --example push_demo_image [REGISTRY]   (default 127.0.0.1:5000)

#[path = "../tests/support/image.rs"]
mod image;

fn main() {
    let registry = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5000".into());
    if !image::registry_up(&registry) {
        eprintln!("error: no registry answers at http://{registry}/v2/\n  hint: run scripts/test-env.sh to start the local registry");
        std::process::exit(1);
    }
    let layer = image::layer(&[
        ("index.html", "<h1>hello from dockhand's demo</h1>\n"),
        ("readyz", "{\"ready\": true}\n"),
    ]);
    match image::push(
        &registry,
        "dockhand/demo",
        "1.0",
        &layer,
        &["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
    ) {
        Ok(digest) => println!("{registry}/dockhand/demo:1.0@{digest}"),
        Err(e) => {
            eprintln!("error: pushing the demo image to {registry}: {e}");
            std::process::exit(1);
        }
    }
}
