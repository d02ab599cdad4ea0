//! What every benchmark shares: timed runs at a concurrency with their latency percentiles,
//! scratch databases made for one run and dropped after it, and `cmpd` started as a child
//! process on such a database.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::Connection;

/// Databases the benchmark can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchDatabase {
    Sqlite,
    Postgres,
}

/// One measurement: certificates per second and latency.
pub struct Run {
    pub what: String,
    pub concurrency: usize,
    pub rate: f64,
    pub latency: Latency,
}

/// Runs `op` from `concurrency` tasks for `seconds`; `op(n)` does one signature.
pub async fn measure<F, Fut>(
    what: &str,
    concurrency: usize,
    seconds: u64,
    op: F,
) -> anyhow::Result<Run>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (op, counter) = (op.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < end {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                op(n).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    let rate = samples.len() as f64 / started.elapsed().as_secs_f64();
    let run = Run { what: what.into(), concurrency, rate, latency: latency(samples) };
    println!(
        "{:<34} c={:<3} {:>8.0} certs/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        run.what, run.concurrency, run.rate, run.latency.p50_ms, run.latency.p99_ms
    );
    Ok(run)
}

/// The best rate among runs whose name starts with `what`, at `concurrency` or at any.
pub fn best_rate(runs: &[Run], what: &str, concurrency: Option<usize>) -> f64 {
    runs.iter()
        .filter(|r| r.what.starts_with(what) && concurrency.is_none_or(|c| r.concurrency == c))
        .map(|r| r.rate)
        .fold(0.0, f64::max)
}

/// Median and 99th percentile, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The percentiles of `samples`.
pub fn latency(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
    };
    Latency { p50_ms: at(0.50), p99_ms: at(0.99) }
}

/// `sqlite` or `postgres`, from a database URL.
pub fn kind_of(url: &str) -> &'static str {
    if url.starts_with("sqlite") { "sqlite" } else { "postgres" }
}

/// Resident and peak memory of this process, KiB.
pub fn rss_kib() -> (u64, u64) {
    proc_rss_kib("self")
}

/// User plus system CPU time a process has used, seconds (`/proc/<pid>/stat`).
pub fn proc_cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count the fields after its closing ')',
    // where field 3 (state) is the first, so utime (14) and stime (15) are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf only reads a configuration value.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) as f64 / per_sec
}

/// Resident and peak memory of a process, KiB.
fn proc_rss_kib(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `cmpd` serving a benchmark database, in its own process.
pub struct ServerProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`, or `https://` with `CMPD_HTTP__TLS__MODE=auto`.
    pub base: String,
    pub token: String,
    data: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts the `cmpd` binary at `cmpd` on the database at `url`.
    pub fn start(cmpd: &Path, url: &str) -> anyhow::Result<ServerProcess> {
        Self::start_with(cmpd, url, &[])
    }

    /// The same with more environment (`CMPD_...` settings).
    pub fn start_with(
        cmpd: &Path,
        url: &str,
        env: &[(&str, String)],
    ) -> anyhow::Result<ServerProcess> {
        Self::spawn(cmpd, url, env, None)
    }

    /// Starts `cmpd` on a database that has tokens already (no bootstrap token is made), to
    /// be called with `token`.
    pub fn start_with_token(
        cmpd: &Path,
        url: &str,
        token: String,
    ) -> anyhow::Result<ServerProcess> {
        Self::spawn(cmpd, url, &[], Some(token))
    }

    fn spawn(
        cmpd: &Path,
        url: &str,
        env: &[(&str, String)],
        token: Option<String>,
    ) -> anyhow::Result<ServerProcess> {
        use std::io::BufRead;
        let data = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = std::process::Command::new(cmpd)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data.path())
            .env("CMPD_DATABASE__URL", url)
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("while starting {}", cmpd.display()))?;
        let stdout = child.stdout.take().context("cmpd's stdout")?;
        // The banner says the server listens; the fresh database's bootstrap token is then in
        // the data directory (stdout is not a terminal, so it is not printed).
        let mut lines = std::io::BufReader::new(stdout).lines();
        let banner = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("is listening on"))
            .context("cmpd stopped before it listened")?;
        let scheme = if banner.contains("https://") { "https" } else { "http" };
        let token = match token {
            Some(token) => token,
            None => std::fs::read_to_string(data.path().join(cmp_server::ADMIN_TOKEN_FILE))
                .context("while reading the bootstrap admin token")?
                .trim()
                .to_string(),
        };
        // Keep reading, so that the server never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let base = format!("{scheme}://127.0.0.1:{port}");
        Ok(ServerProcess { child, base, token, data })
    }

    /// The platform CA that signs the server's certificate in `http.tls.mode = "auto"`, PEM.
    pub fn ca_pem(&self) -> anyhow::Result<Vec<u8>> {
        let path = self.data.path().join(cmp_server::platform_ca::CA_FILE);
        std::fs::read(&path).with_context(|| format!("while reading {}", path.display()))
    }

    /// CPU time the server process has used, seconds.
    pub fn cpu_secs(&self) -> f64 {
        proc_cpu_secs(&self.child.id().to_string())
    }

    /// Resident and peak memory of the server process, KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        proc_rss_kib(&self.child.id().to_string())
    }

    /// Proportional memory (`Pss` of `/proc/<pid>/smaps_rollup`), KiB: a file mapped by several
    /// connections counts once, where the resident figure counts it per mapping.
    pub fn pss_kib(&self) -> u64 {
        let path = format!("/proc/{}/smaps_rollup", self.child.id());
        let rollup = std::fs::read_to_string(path).unwrap_or_default();
        rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Stops the server as a service manager would (SIGTERM) and waits for it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}

/// A server left running by a benchmark that failed is stopped with it.
impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A database made for one benchmark run and dropped after it.
pub struct ScratchDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl ScratchDb {
    /// A fresh SQLite file, or a fresh database on the PostgreSQL server at `postgres_url`.
    pub async fn create(db: BenchDatabase, postgres_url: &str) -> anyhow::Result<ScratchDb> {
        match db {
            BenchDatabase::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
                Ok(ScratchDb { url, pg_name: None, _dir: Some(dir) })
            }
            BenchDatabase::Postgres => {
                sqlx::any::install_default_drivers();
                let name = format!("cmp_bench_{}", uuid::Uuid::now_v7().simple());
                let mut conn = sqlx::AnyConnection::connect(postgres_url)
                    .await
                    .context("while connecting to PostgreSQL")?;
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
                let base = postgres_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(postgres_url);
                Ok(ScratchDb { url: format!("{base}/{name}"), pg_name: Some(name), _dir: None })
            }
        }
    }

    /// Leaves the database (the SQLite file and its directory, or the PostgreSQL database) for
    /// a later run to use; its URL.
    pub fn keep(mut self) -> String {
        if let Some(dir) = self._dir.take() {
            let _ = dir.keep();
        }
        std::mem::take(&mut self.url)
    }

    /// Drops the PostgreSQL database (a SQLite file goes with its directory).
    pub async fn drop_db(&self, postgres_url: &str) -> anyhow::Result<()> {
        if let Some(name) = &self.pg_name {
            let mut conn = sqlx::AnyConnection::connect(postgres_url).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }
}

/// Raises this process's soft limit on open files to its hard limit when it is below
/// `needed` (`cmpd`, started after, inherits it); the limit now.
pub fn raise_open_files(needed: u64) -> anyhow::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes only into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        anyhow::bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    if limit.rlim_cur < needed && limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            anyhow::bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
    }
    anyhow::ensure!(
        limit.rlim_cur >= needed,
        "{needed} open files are needed and the limit is {} (hard {}): raise it (ulimit -n)",
        limit.rlim_cur,
        limit.rlim_max
    );
    Ok(limit.rlim_cur)
}
