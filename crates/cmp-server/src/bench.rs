//! `cmpd bench`: benchmarks that print their figures beside a reference measured in the same run.

/// Benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Inventory: import rate and listing latency at scale, on SQLite and PostgreSQL.
    Inventory(InventoryBench),
}

/// Options of the inventory benchmark.
#[derive(Debug, clap::Args)]
pub struct InventoryBench {
    /// Certificates in the inventory at the end.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u32,
}

/// Runs a benchmark.
pub async fn run(command: &BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Inventory(opts) => {
            println!("inventory bench: {} certificates", opts.count);
            Ok(())
        }
    }
}
