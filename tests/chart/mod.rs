//! Helpers and tests of the Helm chart (`charts/certboot/`), used by `tests/e2e_chart.rs`.

pub mod drift;
pub mod dry_run;
pub mod helm;
pub mod objects;
pub mod schema;
pub mod service_monitor;
