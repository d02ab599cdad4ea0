//! Network scans and their runs.

use cmp_api::{Scan, ScanCreate, ScanPatch, ScanRun};
use reqwest::Method;

use crate::{Client, ClientResult, segment};

impl Client {
    pub async fn scans(&self) -> ClientResult<Vec<Scan>> {
        self.get("/api/v1/scans", &()).await
    }

    /// A scan by id or name.
    pub async fn scan(&self, id: &str) -> ClientResult<Scan> {
        self.get(&format!("/api/v1/scans/{}", segment(id)), &()).await
    }

    pub async fn create_scan(&self, scan: &ScanCreate) -> ClientResult<Scan> {
        self.send_json(Method::POST, "/api/v1/scans", scan).await
    }

    pub async fn update_scan(&self, id: &str, patch: &ScanPatch) -> ClientResult<Scan> {
        self.send_json(Method::PATCH, &format!("/api/v1/scans/{}", segment(id)), patch).await
    }

    pub async fn delete_scan(&self, id: &str) -> ClientResult<()> {
        let path = format!("/api/v1/scans/{}", segment(id));
        Self::empty(self.request(Method::DELETE, &path).send().await?).await
    }

    /// Starts a run now (it goes on in the background).
    pub async fn run_scan(&self, id: &str) -> ClientResult<ScanRun> {
        let path = format!("/api/v1/scans/{}/runs", segment(id));
        Self::read(self.request(Method::POST, &path).send().await?).await
    }

    /// A scan's latest runs, newest first.
    pub async fn scan_runs(&self, id: &str, limit: u32) -> ClientResult<Vec<ScanRun>> {
        self.get(&format!("/api/v1/scans/{}/runs", segment(id)), &[("limit", limit)]).await
    }

    pub async fn scan_run(&self, id: &str, run_id: &str) -> ClientResult<ScanRun> {
        let path = format!("/api/v1/scans/{}/runs/{}", segment(id), segment(run_id));
        self.get(&path, &()).await
    }

    /// Stops a scan's running run.
    pub async fn cancel_scan(&self, id: &str) -> ClientResult<ScanRun> {
        let path = format!("/api/v1/scans/{}/cancel", segment(id));
        Self::read(self.request(Method::POST, &path).send().await?).await
    }
}
