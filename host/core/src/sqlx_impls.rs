//! How the store binds and reads kubeop's types, written out instead of derived: sqlx's derive
//! macros would pull in its proc-macro crate, which compiles a second copy of both database
//! drivers and of SQLite into every build.

/// A `String` newtype stored as text: what `#[derive(sqlx::Type)] #[sqlx(transparent)]` does.
macro_rules! text_column {
    ($($name:ident),+ $(,)?) => {$(
        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            String: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <String as sqlx::Encode<'q, DB>>::encode_by_ref(&self.0, buf)
            }

            fn size_hint(&self) -> usize {
                <String as sqlx::Encode<'q, DB>>::size_hint(&self.0)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            String: sqlx::Decode<'r, DB>,
        {
            fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                <String as sqlx::Decode<'r, DB>>::decode(value).map(Self)
            }
        }
    )+};
}

pub(crate) use text_column;

/// `sqlx::FromRow` on both engines for a struct whose fields are columns of the same names:
/// what `#[derive(sqlx::FromRow)]` does. `from_row!(HourlyUsage { hour, cpu_milli, mem_mib });`
#[macro_export]
macro_rules! from_row {
    ($name:ident { $($field:ident),+ $(,)? }) => {
        $crate::from_row!(@engine sqlx::sqlite::SqliteRow, $name { $($field),+ });
        $crate::from_row!(@engine sqlx::postgres::PgRow, $name { $($field),+ });
    };
    (@engine $row:ty, $name:ident { $($field:ident),+ }) => {
        impl<'r> sqlx::FromRow<'r, $row> for $name {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                Ok(Self { $($field: row.try_get(stringify!($field))?),+ })
            }
        }
    };
}
