//! How user ids are stored: UUIDs as 36-character text, integers as auto-increment keys.

use axum_users::UserId;
use uuid::Uuid;

/// An id as a database value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdValue {
    /// Text (UUIDs).
    Text(String),
    /// A 64-bit integer.
    Int(i64),
}

/// A [`UserId`] the sqlx stores know how to keep.
pub trait SqlId: UserId {
    /// The column type of a primary key of this kind, per dialect.
    fn primary_key_ddl(dialect: Dialect) -> &'static str;
    /// The column type of a foreign key to such a primary key.
    fn foreign_key_ddl(dialect: Dialect) -> &'static str;
    /// As a database value.
    fn to_value(&self) -> IdValue;
    /// Back from a database value; `None` for a value that is not an id of this kind.
    fn from_value(value: IdValue) -> Option<Self>;
}

/// The SQL dialects the stores speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.35 or later.
    Sqlite,
}

impl SqlId for Uuid {
    fn primary_key_ddl(_: Dialect) -> &'static str {
        "CHAR(36) PRIMARY KEY NOT NULL"
    }

    fn foreign_key_ddl(_: Dialect) -> &'static str {
        "CHAR(36) NOT NULL"
    }

    fn to_value(&self) -> IdValue {
        IdValue::Text(self.to_string())
    }

    fn from_value(value: IdValue) -> Option<Self> {
        match value {
            IdValue::Text(s) => Uuid::try_parse(&s).ok(),
            IdValue::Int(_) => None,
        }
    }
}

impl SqlId for i64 {
    fn primary_key_ddl(dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        }
    }

    fn foreign_key_ddl(_: Dialect) -> &'static str {
        "BIGINT NOT NULL"
    }

    fn to_value(&self) -> IdValue {
        IdValue::Int(*self)
    }

    fn from_value(value: IdValue) -> Option<Self> {
        match value {
            IdValue::Int(i) => Some(i),
            IdValue::Text(s) => s.parse().ok(),
        }
    }
}
