//! The deployment engine: installs a certificate, its chain and its key on one target, proves
//! it is served, and puts the previous files back when any step fails.
//!
//! # Steps
//!
//! 1. `pair` (on the material): the key belongs to the certificate, or nothing is written.
//! 2. `write`: every path is checked first (its directory exists and is no symlink, the file
//!    is a regular file or absent), then each file is written to `<path>.cmp-new` beside it
//!    (fsync, owner, group, mode), the current file is hard-linked to `<path>.cmp-previous`,
//!    and the new files are renamed over the old ones, key first, one `rename` after another;
//!    the directories are fsynced.
//! 3. `pair` again, on the files as read back from disk.
//! 4. `test`: the target's configuration test (argv, 30 s).
//! 5. `reload` (argv, 30 s).
//! 6. `verify`, when configured: TLS handshakes to the target until it serves the new leaf
//!    (SHA-256 of the DER), every 150 ms for up to 10 s (`verify.timeout_secs`).
//!
//! # Rollback
//!
//! When a step after the renames fails, each `.cmp-previous` is renamed back over its file
//! (a file that did not exist before is removed, so a failed first deployment leaves nothing).
//! If the reload had been started, the target is reloaded again and, with `verify`, the old
//! leaf must be served again; a failure before the reload (the pair check, the configuration
//! test) needs no reload, as the running server never read the new files.
//! [`DeployFailure::rolled_back`] says whether all of that worked.
//!
//! After a success the `.cmp-previous` files stay: they are the version just replaced, for one
//! manual rollback (`mv web.pem.cmp-previous web.pem`, then reload), and the next deployment
//! replaces them.
//!
//! # Crash safety
//!
//! The agent may be killed at any point. Before it writes anything it records the files and
//! the phase in a journal (`<state_dir>/journal/<target>.json`, written atomically), and moves
//! the phase forward as it goes: `writing` (only `.cmp-new` files exist), `renaming` (the
//! `.cmp-previous` links are made; renames may be under way), `installed` (all renamed),
//! `reloading` (the reload was started). The journal is removed once the deployment is
//! verified, or rolled back. [`recover`], which the agent calls for every target when it
//! starts, finds a journal left by a crash and undoes the deployment exactly as a rollback
//! does: a file whose `.cmp-new` is still there was not renamed (the temp file is removed), one
//! whose `.cmp-new` is gone was renamed (its `.cmp-previous` comes back); from `reloading` on it
//! reloads again. Undoing, rather than finishing, keeps one rule: the target ends up serving
//! what it served before the interrupted job, a pair known to match, and the server, which
//! never got a success report, sends the job again. A deployment refuses to start while a
//! journal for its target exists.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Target;
use crate::command::{self, CommandFailed};
use crate::config::VerifyConfig;
use crate::material::{Material, OnDisk};
use crate::targets::{Content, TargetFile};
use crate::verify::served_fingerprint;

/// How long a test or reload command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `verify` waits for the new certificate when the target sets no timeout.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in a row that must see the new certificate.
const VERIFY_IN_A_ROW: u32 = 3;
/// The pause between two handshakes while waiting.
const VERIFY_INTERVAL: Duration = Duration::from_millis(150);
/// The bound on one handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// The suffix of a new file before it is renamed into place.
pub const NEW_SUFFIX: &str = ".cmp-new";
/// The suffix of the version a deployment replaced.
pub const PREVIOUS_SUFFIX: &str = ".cmp-previous";

/// A step of a deployment, as reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Checking the paths and writing the files.
    Write,
    /// Checking that certificate and key belong together.
    Pair,
    /// The target's configuration test.
    Test,
    /// The target's reload.
    Reload,
    /// Checking what the target serves.
    Verify,
    /// Putting the previous files back (and reloading, and checking they are served).
    Rollback,
}

impl Step {
    /// The step's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Write => "write",
            Step::Pair => "pair",
            Step::Test => "test",
            Step::Reload => "reload",
            Step::Verify => "verify",
            Step::Rollback => "rollback",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step as it went.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// Which step.
    pub step: Step,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it did or what its command printed (stdout then stderr, at most 4 KiB: the end).
    pub output: String,
    /// How long it took.
    pub millis: u64,
}

/// A deployment that succeeded: the files are in place and (with `verify`) served.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    /// The target's name.
    pub target: String,
    /// SHA-256 of the leaf installed, lowercase hex.
    pub fingerprint: String,
    /// The steps, in order.
    pub steps: Vec<StepRecord>,
}

/// A deployment that failed.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("deploying to `{target}` failed at {step}: {message}")]
pub struct DeployFailure {
    /// The target's name.
    pub target: String,
    /// The step that failed.
    pub step: Step,
    /// What went wrong.
    pub message: String,
    /// The failing command's output (truncated), if a command failed.
    pub output: String,
    /// Whether the target's files had been replaced before the failure (false: refused
    /// before any file changed).
    pub changed_files: bool,
    /// Whether the previous state is back: files restored and, when a reload had been
    /// started, reloaded and (with `verify`) the old certificate served. False when nothing
    /// needed rolling back, or when the rollback itself failed (see the `rollback` step).
    pub rolled_back: bool,
    /// Every step, the failed one and the rollback included.
    pub steps: Vec<StepRecord>,
}

impl DeployFailure {
    /// Where the target is left, in words: `rolled back`, `nothing changed` (refused before
    /// writing) or `NOT rolled back` (look at the host).
    pub fn outcome(&self) -> &'static str {
        if self.rolled_back {
            "rolled back"
        } else if self.changed_files {
            "NOT rolled back"
        } else {
            "nothing changed"
        }
    }
}

/// What [`recover`] found.
#[derive(Debug, Clone, Serialize)]
pub enum Recovered {
    /// No interrupted deployment.
    Nothing,
    /// An interrupted deployment was undone.
    Undone {
        /// How far it had gone.
        phase: Phase,
        /// The rollback step.
        steps: Vec<StepRecord>,
    },
}

/// How far a deployment has gone, as its journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Writing `.cmp-new` files; the target's files are untouched.
    Writing,
    /// `.cmp-previous` links made; renaming the new files into place.
    Renaming,
    /// All new files in place; checking, testing.
    Installed,
    /// The reload was started.
    Reloading,
}

/// Where a deployment can be stopped as if the agent were killed there (only
/// `deploy_interrupted`, a test's function, names one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// All `.cmp-new` files written, nothing renamed.
    AfterTempFiles,
    /// The first file (the key) renamed, the others not.
    AfterFirstRename,
    /// The reload ran, nothing verified.
    AfterReload,
}

/// The journal: what a crash leaves for [`recover`].
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    target: String,
    phase: Phase,
    files: Vec<JournalFile>,
}

/// One file of a deployment, and whether it existed before.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct JournalFile {
    path: PathBuf,
    existed: bool,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn journal_path(target: &Target<'_>) -> PathBuf {
    target.state_dir.join("journal").join(format!("{}.json", target.name))
}

fn io(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

fn read_journal(target: &Target<'_>) -> Result<Option<Journal>, String> {
    let path = journal_path(target);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("the journal {} is unreadable: {e}", path.display())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("cannot read", &path, e)),
    }
}

/// Writes the journal atomically (temp file, fsync, rename, fsync of the directory).
fn write_journal(target: &Target<'_>, journal: &Journal) -> Result<(), String> {
    let path = journal_path(target);
    let dir = path.parent().unwrap_or(target.state_dir);
    fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
    let temp = sibling(&path, ".tmp");
    let bytes = serde_json::to_vec_pretty(journal).map_err(|e| e.to_string())?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| io("cannot write", &temp, e))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io("cannot write", &temp, e))?;
    fs::rename(&temp, &path).map_err(|e| io("cannot rename", &temp, e))?;
    sync_dir(dir)
}

fn remove_journal(target: &Target<'_>) -> Result<(), String> {
    let path = journal_path(target);
    remove_if_exists(&path)?;
    sync_dir(path.parent().unwrap_or(target.state_dir))
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("cannot fsync", dir, e))
}

fn sync_dirs(files: &[JournalFile]) -> Result<(), String> {
    let mut dirs: Vec<&Path> = files.iter().filter_map(|f| f.path.parent()).collect();
    dirs.dedup();
    dirs.into_iter().try_for_each(sync_dir)
}

fn remove_if_exists(path: &Path) -> Result<(), String> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("cannot remove", path, e)),
    }
}

fn exists(path: &Path) -> Result<bool, String> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("cannot inspect", path, e)),
    }
}

/// Refuses a path whose directory is missing or a symlink, or that exists and is not a
/// regular file (a symlink included); says whether the file exists. Before anything is written.
fn check_path(path: &Path) -> Result<bool, String> {
    let dir = path.parent().ok_or_else(|| format!("{} has no directory", path.display()))?;
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(format!(
                "the directory {} is a symlink; refusing to write through it",
                dir.display()
            ));
        }
        Ok(meta) if !meta.is_dir() => return Err(format!("{} is not a directory", dir.display())),
        Ok(_) => {}
        Err(e) => return Err(io("cannot use the directory", dir, e)),
    }
    for helper in [sibling(path, NEW_SUFFIX), sibling(path, PREVIOUS_SUFFIX)] {
        if fs::symlink_metadata(&helper).is_ok_and(|meta| meta.is_dir()) {
            return Err(format!("{} is a directory", helper.display()));
        }
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            Err(format!("{} is a symlink; refusing to replace it", path.display()))
        }
        Ok(meta) if !meta.is_file() => Err(format!("{} is not a regular file", path.display())),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("cannot inspect", path, e)),
    }
}

/// Writes `<path>.cmp-new` (a new file: never through an existing one or a symlink), with
/// its owner, group and mode, and fsyncs it.
fn write_temp(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: (Option<u32>, Option<u32>),
) -> Result<(), String> {
    let temp = sibling(path, NEW_SUFFIX);
    remove_if_exists(&temp)?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .map_err(|e| io("cannot create", &temp, e))?;
    if owner.0.is_some() || owner.1.is_some() {
        std::os::unix::fs::fchown(&file, owner.0, owner.1)
            .map_err(|e| io("cannot set owner and group of", &temp, e))?;
    }
    // The umask may have narrowed the mode given to open.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| io("cannot set the mode of", &temp, e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| io("cannot write", &temp, e))
}

/// Reads a target's files back: their leaf and key.
fn read_back(files: &[TargetFile]) -> Result<OnDisk, String> {
    let mut contents: Vec<(Content, Zeroizing<Vec<u8>>)> = Vec::new();
    for file in files {
        let bytes = fs::read(&file.path).map_err(|e| io("cannot read", &file.path, e))?;
        contents.push((file.content, Zeroizing::new(bytes)));
    }
    OnDisk::parse(&contents).map_err(|e| e.to_string())
}

/// The steps so far, and the failure they end in.
struct Run<'t> {
    target: &'t Target<'t>,
    steps: Vec<StepRecord>,
}

impl<'t> Run<'t> {
    fn record(&mut self, step: Step, ok: bool, output: impl Into<String>, started: Instant) {
        let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.steps.push(StepRecord { step, ok, output: command::truncate(&output.into()), millis });
    }

    /// A failure before any target file changed (nothing to roll back).
    fn refuse(mut self, step: Step, message: String, started: Instant) -> DeployFailure {
        self.record(step, false, message.clone(), started);
        tracing::warn!(target = self.target.name, %step, %message, "deployment refused");
        DeployFailure {
            target: self.target.name.to_owned(),
            step,
            message,
            output: String::new(),
            changed_files: false,
            rolled_back: false,
            steps: self.steps,
        }
    }

    /// A failure once the journal exists: records it, rolls back, and describes it all.
    async fn fail(
        mut self,
        step: Step,
        failed: CommandFailed,
        files: &[JournalFile],
        phase: Phase,
        started: Instant,
    ) -> DeployFailure {
        let shown = if failed.output.is_empty() {
            failed.message.clone()
        } else {
            format!("{}\n{}", failed.message, failed.output)
        };
        self.record(step, false, shown, started);
        let started = Instant::now();
        let rollback = roll_back(self.target, files, phase).await;
        let rolled_back = rollback.is_ok();
        let output = match rollback {
            Ok(done) | Err(done) => done,
        };
        self.record(Step::Rollback, rolled_back, output, started);
        tracing::warn!(
            target = self.target.name, %step, message = %failed.message, rolled_back,
            "deployment failed"
        );
        DeployFailure {
            target: self.target.name.to_owned(),
            step,
            message: failed.message,
            output: failed.output,
            changed_files: phase >= Phase::Renaming,
            rolled_back,
            steps: self.steps,
        }
    }
}

fn failed(message: impl Into<String>) -> CommandFailed {
    CommandFailed { message: message.into(), output: String::new() }
}

/// Deploys `material` to `target`; see the module documentation for the steps, the
/// rollback and the journal. Needs an installed rustls crypto provider.
pub async fn deploy(
    target: &Target<'_>,
    material: &Material,
) -> Result<DeployReport, DeployFailure> {
    match deploy_until(target, material, None).await {
        Ok(Some(report)) => Ok(report),
        // Only a crash point stops a deployment without a report.
        Ok(None) => Err(Run { target, steps: Vec::new() }.refuse(
            Step::Write,
            "stopped".into(),
            Instant::now(),
        )),
        Err(failure) => Err(failure),
    }
}

/// Runs a deployment up to `point` and stops there as a killed agent would, leaving the
/// files and the journal as they are: a test's way to crash the agent.
#[cfg(feature = "testing")]
pub async fn deploy_interrupted(
    target: &Target<'_>,
    material: &Material,
    point: CrashPoint,
) -> Result<(), DeployFailure> {
    deploy_until(target, material, Some(point)).await.map(|_| ())
}

/// The deployment; `Ok(None)` when it stopped at `crash`.
async fn deploy_until(
    target: &Target<'_>,
    material: &Material,
    crash: Option<CrashPoint>,
) -> Result<Option<DeployReport>, DeployFailure> {
    let config = target.config;
    let mut run = Run { target, steps: Vec::new() };
    let fingerprint = material.fingerprint();
    tracing::info!(target = target.name, kind = %config.kind, %fingerprint, "deploying");

    let started = Instant::now();
    match read_journal(target) {
        Ok(None) => {}
        Ok(Some(_)) => {
            let message = "an interrupted deployment of this target awaits recovery".to_owned();
            return Err(run.refuse(Step::Write, message, started));
        }
        Err(message) => return Err(run.refuse(Step::Write, message, started)),
    }
    if let Err(e) = material.check_pair() {
        return Err(run.refuse(Step::Pair, format!("{e}; nothing was written"), started));
    }
    run.record(Step::Pair, true, "the certificate and the key match (before writing)", started);

    // write
    let started = Instant::now();
    let files = config.files();
    let mut plan = Vec::new();
    for file in &files {
        match check_path(&file.path) {
            Ok(existed) => plan.push(JournalFile { path: file.path.clone(), existed }),
            Err(message) => return Err(run.refuse(Step::Write, message, started)),
        }
    }
    if let Err(message) = write_journal(
        target,
        &Journal { target: target.name.into(), phase: Phase::Writing, files: plan.clone() },
    ) {
        return Err(run.refuse(Step::Write, message, started));
    }
    let mut phase = Phase::Writing;
    let stop = install(target, &files, &plan, material, &mut phase, crash);
    match stop {
        Ok(true) => return Ok(None),
        Ok(false) => {}
        Err(message) => {
            return Err(run.fail(Step::Write, failed(message), &plan, phase, started).await);
        }
    }
    let written: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
    run.record(Step::Write, true, format!("installed {}", written.join(", ")), started);

    // pair, on disk
    let started = Instant::now();
    let on_disk = read_back(&files).and_then(|on_disk| {
        if on_disk.fingerprint().as_deref() != Some(fingerprint.as_str()) {
            return Err("the certificate file does not hold the new certificate".into());
        }
        on_disk.check_pair().map_err(|e| e.to_string())
    });
    if let Err(message) = on_disk {
        return Err(run.fail(Step::Pair, failed(message), &plan, phase, started).await);
    }
    run.record(Step::Pair, true, "the files hold the new certificate and its key", started);

    // test
    if let Some(argv) = &config.test {
        let started = Instant::now();
        match command::run(argv, COMMAND_TIMEOUT).await {
            Ok(output) => run.record(Step::Test, true, output, started),
            Err(failure) => return Err(run.fail(Step::Test, failure, &plan, phase, started).await),
        }
    }

    // reload
    if let Some(argv) = &config.reload {
        let started = Instant::now();
        let journal =
            Journal { target: target.name.into(), phase: Phase::Reloading, files: plan.clone() };
        if let Err(message) = write_journal(target, &journal) {
            return Err(run.fail(Step::Reload, failed(message), &plan, phase, started).await);
        }
        phase = Phase::Reloading;
        match command::run(argv, COMMAND_TIMEOUT).await {
            Ok(output) => run.record(Step::Reload, true, output, started),
            Err(failure) => {
                return Err(run.fail(Step::Reload, failure, &plan, phase, started).await);
            }
        }
        if crash == Some(CrashPoint::AfterReload) {
            return Ok(None);
        }
    }

    // verify
    if let Some(verify) = &config.verify {
        let started = Instant::now();
        match wait_served(verify, &fingerprint).await {
            Ok(output) => run.record(Step::Verify, true, output, started),
            Err(message) => {
                return Err(run.fail(Step::Verify, failed(message), &plan, phase, started).await);
            }
        }
    }

    if let Err(message) = remove_journal(target) {
        // Deployed and verified; a journal left behind would make the next start undo it.
        tracing::error!(target = target.name, %message, "cannot remove the deploy journal");
        let started = Instant::now();
        return Err(run.fail(Step::Write, failed(message), &plan, phase, started).await);
    }
    tracing::info!(target = target.name, %fingerprint, "deployed");
    Ok(Some(DeployReport { target: target.name.to_owned(), fingerprint, steps: run.steps }))
}

/// Writes the `.cmp-new` files, links the `.cmp-previous` ones and renames the new files into
/// place, moving the journal's phase along. `Ok(true)`: stopped at a crash point.
fn install(
    target: &Target<'_>,
    files: &[TargetFile],
    plan: &[JournalFile],
    material: &Material,
    phase: &mut Phase,
    crash: Option<CrashPoint>,
) -> Result<bool, String> {
    let config = target.config;
    for file in files {
        let bytes = material.render(file.content);
        write_temp(
            &file.path,
            &bytes,
            config.mode_for(file.content.is_secret()),
            config.ownership(),
        )?;
    }
    for file in plan {
        let previous = sibling(&file.path, PREVIOUS_SUFFIX);
        remove_if_exists(&previous)?;
        if file.existed {
            fs::hard_link(&file.path, &previous).map_err(|e| io("cannot keep", &file.path, e))?;
        }
    }
    sync_dirs(plan)?;
    if crash == Some(CrashPoint::AfterTempFiles) {
        return Ok(true);
    }
    write_journal(
        target,
        &Journal { target: target.name.into(), phase: Phase::Renaming, files: plan.to_vec() },
    )?;
    *phase = Phase::Renaming;
    for (index, file) in plan.iter().enumerate() {
        let temp = sibling(&file.path, NEW_SUFFIX);
        fs::rename(&temp, &file.path).map_err(|e| io("cannot rename", &temp, e))?;
        if index == 0 && crash == Some(CrashPoint::AfterFirstRename) {
            return Ok(true);
        }
    }
    sync_dirs(plan)?;
    write_journal(
        target,
        &Journal { target: target.name.into(), phase: Phase::Installed, files: plan.to_vec() },
    )?;
    *phase = Phase::Installed;
    Ok(false)
}

/// Polls the target until it serves `expected`, within the target's verify timeout.
///
/// It must be served [`VERIFY_IN_A_ROW`] handshakes in a row: after a graceful reload, old
/// workers (Apache's children, HAProxy's old process) may still answer for a moment, so one
/// new answer does not yet mean that every client gets it.
async fn wait_served(verify: &VerifyConfig, expected: &str) -> Result<String, String> {
    let timeout = verify.timeout_secs.map(Duration::from_secs).unwrap_or(VERIFY_TIMEOUT);
    let deadline = Instant::now() + timeout;
    let mut in_a_row = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let last = match served_fingerprint(
            &verify.address,
            &verify.sni,
            left.min(HANDSHAKE_TIMEOUT).max(VERIFY_INTERVAL),
        )
        .await
        {
            Ok(served) if served == expected => {
                in_a_row += 1;
                if in_a_row == VERIFY_IN_A_ROW {
                    let (address, sni) = (&verify.address, &verify.sni);
                    return Ok(format!("{address} (SNI {sni}) serves {served}"));
                }
                format!("{} (SNI {}) serves {served}", verify.address, verify.sni)
            }
            Ok(served) => {
                in_a_row = 0;
                format!("{} (SNI {}) serves {served}, not {expected}", verify.address, verify.sni)
            }
            Err(e) => {
                in_a_row = 0;
                e.to_string()
            }
        };
        if Instant::now() + VERIFY_INTERVAL >= deadline {
            return Err(format!("after {} s: {last}", timeout.as_secs()));
        }
        tokio::time::sleep(VERIFY_INTERVAL).await;
    }
}

/// Undoes a deployment that reached `phase`: see the module documentation. `Ok` says what was
/// done; `Err` what failed (the rest was still attempted where it could be).
async fn roll_back(
    target: &Target<'_>,
    files: &[JournalFile],
    phase: Phase,
) -> Result<String, String> {
    let mut done = Vec::new();
    restore_files(files, phase, &mut done)?;
    if let Err(message) = remove_journal(target) {
        done.push(message.clone());
        return Err(done.join("\n"));
    }
    if phase < Phase::Reloading {
        done.push("no reload needed: the server had not read the new files".into());
        return Ok(done.join("\n"));
    }
    let config = target.config;
    if let Some(argv) = &config.reload {
        match command::run(argv, COMMAND_TIMEOUT).await {
            Ok(output) => done.push(format!("reloaded: {output}")),
            Err(failure) => {
                done.push(format!("{}\n{}", failure.message, failure.output));
                return Err(done.join("\n"));
            }
        }
    }
    let Some(verify) = &config.verify else {
        return Ok(done.join("\n"));
    };
    let old = read_back(&config.files()).ok().and_then(|on_disk| on_disk.fingerprint());
    let Some(old) = old else {
        done.push("no previous certificate to check for".into());
        return Ok(done.join("\n"));
    };
    match wait_served(verify, &old).await {
        Ok(output) => {
            done.push(format!("the previous certificate is served again: {output}"));
            Ok(done.join("\n"))
        }
        Err(message) => {
            done.push(format!("the previous certificate is not served: {message}"));
            Err(done.join("\n"))
        }
    }
}

/// Puts the files back as they were before a deployment that reached `phase`. Idempotent, so a
/// crash during a rollback is undone by [`recover`] again.
fn restore_files(
    files: &[JournalFile],
    phase: Phase,
    done: &mut Vec<String>,
) -> Result<(), String> {
    let fail = |done: &mut Vec<String>, message: String| {
        done.push(message);
        Err(done.join("\n"))
    };
    // The certificate first, so that key and certificate are apart as briefly as on the way in.
    for file in files.iter().rev() {
        let temp = sibling(&file.path, NEW_SUFFIX);
        let previous = sibling(&file.path, PREVIOUS_SUFFIX);
        let renamed = match exists(&temp) {
            Ok(temp_left) => phase >= Phase::Renaming && !temp_left,
            Err(message) => return fail(done, message),
        };
        if !renamed {
            if let Err(message) = remove_if_exists(&temp) {
                return fail(done, message);
            }
            continue;
        }
        let result = if file.existed {
            match exists(&previous) {
                Ok(true) => fs::rename(&previous, &file.path)
                    .map(|()| done.push(format!("restored {}", file.path.display())))
                    .map_err(|e| io("cannot restore", &file.path, e)),
                // Restored already (a rollback interrupted after this file).
                Ok(false) => Ok(()),
                Err(message) => Err(message),
            }
        } else {
            remove_if_exists(&file.path)
                .map(|()| done.push(format!("removed {}", file.path.display())))
        };
        if let Err(message) = result {
            return fail(done, message);
        }
    }
    if let Err(message) = sync_dirs(files) {
        return fail(done, message);
    }
    Ok(())
}

/// Finishes what a killed agent left: undoes an interrupted deployment of `target` (see the
/// module documentation). Call it for every target when the agent starts.
pub async fn recover(target: &Target<'_>) -> Result<Recovered, DeployFailure> {
    let started = Instant::now();
    let run = Run { target, steps: Vec::new() };
    let journal = match read_journal(target) {
        Ok(None) => return Ok(Recovered::Nothing),
        Ok(Some(journal)) => journal,
        Err(message) => return Err(run.refuse(Step::Rollback, message, started)),
    };
    // The journal may only make the agent touch the target's own files.
    let configured: Vec<PathBuf> = target.config.files().into_iter().map(|f| f.path).collect();
    if journal.target != target.name || journal.files.iter().any(|f| !configured.contains(&f.path))
    {
        let message = format!(
            "the journal {} names files this target does not have (was the configuration \
             changed?); left for the operator",
            journal_path(target).display()
        );
        return Err(run.refuse(Step::Rollback, message, started));
    }
    tracing::warn!(target = target.name, phase = ?journal.phase, "undoing an interrupted deployment");
    let mut run = run;
    match roll_back(target, &journal.files, journal.phase).await {
        Ok(output) => {
            run.record(Step::Rollback, true, output, started);
            Ok(Recovered::Undone { phase: journal.phase, steps: run.steps })
        }
        Err(output) => {
            run.record(Step::Rollback, false, output.clone(), started);
            Err(DeployFailure {
                target: target.name.to_owned(),
                step: Step::Rollback,
                message: "the interrupted deployment could not be fully undone".into(),
                output,
                changed_files: journal.phase >= Phase::Renaming,
                rolled_back: false,
                steps: run.steps,
            })
        }
    }
}

/// What a `remove` job did to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A `file` target: these files (and their `.cmp-previous` copies) are gone.
    Files(Vec<PathBuf>),
    /// A served target (nginx, Apache, HAProxy): its files stay, since its server's
    /// configuration names them and its next reload would fail without them.
    LeftInPlace,
}

/// Takes a dropped deployment away from `target`: a `file` target's files are deleted (a
/// symlink among them is refused, as in a deployment); a served target's stay. Call
/// [`recover`] first.
pub fn remove(target: &Target<'_>) -> Result<Removed, String> {
    if target.config.kind != crate::TargetKind::File {
        return Ok(Removed::LeftInPlace);
    }
    let mut removed = Vec::new();
    for file in target.config.files() {
        check_path(&file.path)?;
        for path in [file.path.clone(), sibling(&file.path, PREVIOUS_SUFFIX)] {
            if exists(&path)? {
                remove_if_exists(&path)?;
                removed.push(path);
            }
        }
        if let Some(dir) = file.path.parent() {
            sync_dir(dir)?;
        }
    }
    Ok(Removed::Files(removed))
}
