//! Discovery on the host: the files under the configuration's `discovery.paths` are read for
//! certificates (PEM, DER, PKCS#7 and PKCS#12 without a password; no password is guessed), and
//! only the certificates are reported: a key in the same file never leaves the host. Symbolic
//! links are not followed, and the walk is bounded in depth, file size and file count.

use std::fs;
use std::path::{Path, PathBuf};

use cmp_api::{DiscoveredFile, DiscoveryReport, JobStep};

/// Deepest directory level read below a configured path.
const MAX_DEPTH: usize = 16;
/// Files larger than this are not certificates anyone keeps.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Most files read in one discovery.
const MAX_FILES: usize = 10_000;
/// Names of files that should hold certificates: reported as unreadable when they do not.
const CERTIFICATE_EXTENSIONS: &[&str] = &["pem", "crt", "cer", "der", "p7b", "p12", "pfx"];

/// Reads the certificates under `paths` (files or directories).
pub fn discover(paths: &[PathBuf]) -> DiscoveryReport {
    let mut report = DiscoveryReport::default();
    let mut pending: Vec<(PathBuf, usize)> = paths.iter().map(|p| (p.clone(), 0)).collect();
    let mut read = 0;
    while let Some((path, depth)) = pending.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) => {
                unreadable(&mut report, &path, e.to_string());
                continue;
            }
        };
        if meta.is_dir() && depth < MAX_DEPTH {
            match fs::read_dir(&path) {
                Ok(entries) => {
                    pending.extend(entries.filter_map(Result::ok).map(|e| (e.path(), depth + 1)))
                }
                Err(e) => unreadable(&mut report, &path, e.to_string()),
            }
        } else if meta.is_file() && meta.len() <= MAX_FILE_BYTES {
            if read == MAX_FILES {
                unreadable(&mut report, &path, format!("not read: over {MAX_FILES} files"));
                break;
            }
            read += 1;
            read_file(&mut report, &path);
        }
    }
    report.files.sort_by(|a, b| a.path.cmp(&b.path));
    report
}

fn read_file(report: &mut DiscoveryReport, path: &Path) {
    let bytes = match fs::read(path) {
        Ok(bytes) => zeroize::Zeroizing::new(bytes),
        Err(e) => return unreadable(report, path, e.to_string()),
    };
    let decoded = cmp_pki::decode_import(&bytes, None);
    if decoded.certificates.is_empty() {
        let expected = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| CERTIFICATE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if expected {
            let why = decoded.rejected.first().map_or_else(
                || "no certificate in it".to_owned(),
                |r| format!("{}: {}", r.reason, r.detail),
            );
            unreadable(report, path, why);
        }
        return;
    }
    let certificates_pem = decoded
        .certificates
        .iter()
        .map(|c| pem::encode(&pem::Pem::new("CERTIFICATE", c.der.clone())))
        .collect();
    report.files.push(DiscoveredFile { path: path.display().to_string(), certificates_pem });
}

fn unreadable(report: &mut DiscoveryReport, path: &Path, why: String) {
    let output = crate::command::truncate(&why);
    report.unreadable.push(JobStep { name: path.display().to_string(), ok: false, output });
}
