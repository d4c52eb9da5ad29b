//! The migrations of both engines, embedded in the binary. `sqlx::migrate!` would do this with a
//! proc macro, and sqlx's proc macros compile a second copy of both drivers and of SQLite; this is
//! the same list, read the same way (version and description from the file name, a leading
//! `-- no-transaction` line opting out of the transaction, the checksum of the text), so that a
//! database migrated by either recognises the other's migrations.

use std::borrow::Cow;
use std::sync::LazyLock;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// `migrations/<engine>/<file>` for every file given, in the binary.
macro_rules! embedded {
    ($engine:literal: $($file:literal),+ $(,)?) => {
        vec![$(($file, include_str!(concat!("../../../migrations/", $engine, "/", $file)))),+]
    };
}

pub static SQLITE: LazyLock<Migrator> = LazyLock::new(|| {
    migrator(embedded!("sqlite":
        "0001_tenants_projects_apps.sql",
        "0002_platform_policy_and_plugins.sql",
        "0003_usage_and_rates.sql",
        "0004_clusters_and_kube_outbox.sql",
        "0005_cronjobs.sql",
        "0006_admission.sql",
    ))
});

pub static POSTGRES: LazyLock<Migrator> = LazyLock::new(|| {
    migrator(embedded!("postgres":
        "0001_tenants_projects_apps.sql",
        "0002_platform_policy_and_plugins.sql",
        "0003_usage_and_rates.sql",
        "0004_clusters_and_kube_outbox.sql",
        "0005_cronjobs.sql",
        "0006_admission.sql",
    ))
});

fn migrator(files: Vec<(&'static str, &'static str)>) -> Migrator {
    Migrator::with_migrations(files.into_iter().map(|(file, sql)| migration(file, sql)).collect())
}

/// `0003_usage_and_rates.sql` is version 3, "usage and rates".
fn migration(file: &'static str, sql: &'static str) -> Migration {
    let (version, rest) = file.split_once('_').expect("a migration is named <version>_<description>.sql");
    let version = version.parse().expect("a migration's name starts with its version");
    let description = rest.trim_end_matches(".sql").replace('_', " ");
    let no_tx = sql.starts_with("-- no-transaction");
    Migration::new(version, Cow::Owned(description), MigrationType::Simple, sql.into_sql_str(), no_tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file in `migrations/<engine>/` is embedded, and each reads exactly as sqlx reads the
    /// directory (what `sqlx::migrate!` embeds): version, description, text, checksum.
    #[test]
    fn the_embedded_migrations_are_the_directorys() {
        for (engine, migrator) in [("sqlite", &*SQLITE), ("postgres", &*POSTGRES)] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations").join(engine);
            let read = |m: &Migration| {
                (
                    m.version,
                    m.description.to_string(),
                    m.sql.as_str().to_owned(),
                    m.checksum.to_vec(),
                    m.no_tx,
                )
            };
            let from_files: Vec<_> =
                sqlx::migrate::resolve_blocking(&dir).unwrap().iter().map(|(m, _)| read(m)).collect();
            let embedded: Vec<_> = migrator.iter().map(read).collect();
            assert_eq!(embedded, from_files, "list every file of migrations/{engine}/ in migrations.rs");
        }
    }
}
