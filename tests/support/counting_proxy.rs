//! A Unix-socket proxy in front of the machine's Engine that records every HTTP request line
//! going through it: how the benchmarks and tests count the Engine calls a pass makes.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};

/// A Unix-socket proxy in front of the Engine that counts HTTP requests (request lines in the
/// client → Engine stream).
pub struct CountingProxy {
    path: std::path::PathBuf,
    requests: Arc<Mutex<Vec<String>>>,
}

impl CountingProxy {
    pub fn start(dir: &std::path::Path) -> CountingProxy {
        let path = dir.join("engine.sock");
        let listener = UnixListener::bind(&path).expect("bind proxy socket");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let re = regex::bytes::Regex::new(r"(?:GET|POST|PUT|DELETE|HEAD) /[^ ]* HTTP/1\.[01]\r\n")
            .expect("regex");
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(engine) = UnixStream::connect("/var/run/docker.sock") else {
                    continue;
                };
                let (seen, re) = (seen.clone(), re.clone());
                let (mut c_read, mut e_write) = (
                    client.try_clone().expect("clone"),
                    engine.try_clone().expect("clone"),
                );
                let (mut e_read, mut c_write) = (engine, client);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    // Unmatched bytes carried to the next read, so that a request line split
                    // across two reads is still counted once.
                    let mut pending: Vec<u8> = Vec::new();
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        pending.extend_from_slice(&buf[..n]);
                        let mut end = 0;
                        for m in re.find_iter(&pending) {
                            seen.lock()
                                .expect("lock")
                                .push(String::from_utf8_lossy(m.as_bytes()).trim().to_string());
                            end = m.end();
                        }
                        pending.drain(..end.max(pending.len().saturating_sub(8 * 1024)));
                        if e_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = e_write.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut e_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        CountingProxy { path, requests }
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().expect("lock"))
    }
}
