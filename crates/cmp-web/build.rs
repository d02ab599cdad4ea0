//! Builds the dashboard (`web/`, React and Vite) into `$OUT_DIR/dist`, which `src/lib.rs`
//! embeds: `cargo build` alone gives a `cmpd` that serves its UI, with no separate front-end
//! step. Needs Node.js 20.19+ and npm; packages come from the npm registry, pinned by
//! `web/package-lock.json` (`npm ci`, run again only when the lock file changes).
//!
//! Without npm, a one-page notice is embedded instead and cargo prints a warning: the API and
//! `cmpctl` work as ever. `CMP_WEB_DIST=<dir>` embeds a dashboard built elsewhere.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

type BuildResult = Result<(), Box<dyn Error>>;

/// What the build reads from `web/`: a change to any of them builds the dashboard again.
const INPUTS: [&str; 8] = [
    "src",
    "scripts/compress.mjs",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
];

fn main() -> BuildResult {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let web = manifest.join("../../web");
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("dist");
    println!("cargo:rerun-if-env-changed=CMP_WEB_DIST");
    for input in INPUTS {
        println!("cargo:rerun-if-changed={}", web.join(input).display());
    }
    if out.exists() {
        fs::remove_dir_all(&out)?;
    }
    if let Some(prebuilt) = std::env::var_os("CMP_WEB_DIST") {
        return copy_dir(Path::new(&prebuilt), &out);
    }
    if !web.join("package.json").exists() {
        println!("cargo:warning=no web/package.json: cmpd is built without its dashboard");
        return notice(&out);
    }
    if Command::new("npm").arg("--version").output().is_err() {
        println!(
            "cargo:warning=npm not found: cmpd is built without its dashboard (install Node.js \
             20.19 or later and npm, then build again)"
        );
        return notice(&out);
    }
    let stamp = web.join("node_modules/.package-lock.json");
    if modified(&stamp).ok() < modified(&web.join("package-lock.json")).ok() {
        npm(&web, &["ci", "--no-audit", "--no-fund"])?;
    }
    let out_dir = out.to_str().ok_or("OUT_DIR is not UTF-8")?;
    npm(&web, &["exec", "--", "vite", "build", "--outDir", out_dir, "--emptyOutDir"])?;
    run(Command::new("node").arg("scripts/compress.mjs").arg(out_dir).current_dir(&web))
}

fn run(command: &mut Command) -> BuildResult {
    let status = command.status()?;
    if !status.success() {
        return Err(format!("`{command:?}` failed: {status}").into());
    }
    Ok(())
}

fn npm(dir: &Path, args: &[&str]) -> BuildResult {
    // Playwright's browsers are never downloaded: the tests use Debian's Chromium.
    run(Command::new("npm")
        .args(args)
        .current_dir(dir)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"))
}

fn modified(path: &Path) -> std::io::Result<std::time::SystemTime> {
    fs::metadata(path)?.modified()
}

/// The page served when the dashboard could not be built.
fn notice(out: &Path) -> BuildResult {
    fs::create_dir_all(out)?;
    fs::write(
        out.join("index.html"),
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>CMP</title></head>\
         <body><h1>CMP</h1><p>This cmpd was built without its dashboard: npm was not found. \
         Install Node.js 20.19 or later and npm, and build again. The API is at \
         <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>.</p></body></html>\n",
    )?;
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> BuildResult {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
