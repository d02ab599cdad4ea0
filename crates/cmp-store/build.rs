//! `sqlx::migrate!` embeds the migrations when the crate compiles, and cargo does not know that
//! it reads them: without this, a migration added to `migrations/` is missing from the build
//! until some source file of the crate changes (sqlx's own advice).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
