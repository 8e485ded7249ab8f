//! Turning a database row into a [`RawValue`]: one column gives that column's value, several
//! columns give a JSON object keyed by column name (so a struct field can deserialize a row).
//! Column types are read by name per driver; types this crate does not read get an error
//! that says how to cast them in SQL.

use serde_json::{Map, Number, Value};
use sqlx::{Column, Row, TypeInfo, ValueRef};

use crate::error::{ErrorKind, SourceError};
use crate::source::RawValue;

fn unsupported(column: &str, ty: &str, cast: &str) -> SourceError {
    SourceError::new(ErrorKind::Decode).with_message(format!(
        "column `{column}` has SQL type {ty}, which component_model does not read; cast it to text in the query ({cast})"
    ))
}

fn decode_err(column: &str, e: sqlx::Error) -> SourceError {
    SourceError::new(ErrorKind::Decode)
        .with_message(format!("column `{column}` could not be read"))
        .with_cause(e)
}

fn float(v: f64) -> Value {
    Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// A column value as JSON (text as a JSON string).
fn to_json(raw: RawValue) -> Value {
    match raw {
        RawValue::Text(s) => Value::String(s),
        RawValue::Json(v) => v,
        RawValue::Bytes(b) => Value::Array(b.into_iter().map(Value::from).collect()),
    }
}

/// The column's name and the SQL type name of its value, or `None` when it is NULL.
fn column_type<R: Row>(row: &R, i: usize) -> Result<Option<(String, String)>, SourceError>
where
    usize: sqlx::ColumnIndex<R>,
{
    let name = row.columns()[i].name().to_owned();
    let raw = row.try_get_raw(i).map_err(|e| decode_err(&name, e))?;
    if raw.is_null() {
        return Ok(None);
    }
    let ty = raw.type_info().name().to_owned();
    Ok(Some((name, ty)))
}

/// A row's value: its only column, or an object of all columns.
pub(crate) fn row_value<R: Row>(
    row: &R,
    column: impl Fn(&R, usize) -> Result<RawValue, SourceError>,
) -> Result<RawValue, SourceError> {
    match row.len() {
        0 => Err(SourceError::new(ErrorKind::Decode)
            .with_message("the query returned a row without columns")),
        1 => column(row, 0),
        n => {
            let mut map = Map::with_capacity(n);
            for i in 0..n {
                map.insert(row.columns()[i].name().to_owned(), to_json(column(row, i)?));
            }
            Ok(RawValue::Json(Value::Object(map)))
        }
    }
}

/// A value of a type read from its wire bytes ([`super::binary`]), or an error naming the
/// column and the type when the bytes are not that type.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn from_wire<T>(column: &str, ty: &str, decoded: Option<T>) -> Result<T, SourceError> {
    decoded.ok_or_else(|| {
        SourceError::new(ErrorKind::Decode).with_message(format!(
            "column `{column}`: the server sent an invalid {ty} value"
        ))
    })
}

/// PostgreSQL types read from their binary form: NUMERIC, dates and times, UUID, arrays.
#[cfg(feature = "postgres")]
fn pg_wire(
    row: &sqlx::postgres::PgRow,
    i: usize,
    name: &str,
    ty: &str,
) -> Result<Option<RawValue>, SourceError> {
    use super::binary;
    let raw = row.try_get_raw(i).map_err(|e| decode_err(name, e))?;
    if raw.format() == sqlx::postgres::PgValueFormat::Text {
        return Ok(match ty {
            "NUMERIC" | "DATE" | "TIMESTAMP" | "TIMESTAMPTZ" | "TIME" | "UUID" => {
                Some(RawValue::Text(
                    raw.as_str()
                        .map_err(|e| {
                            SourceError::new(ErrorKind::Decode)
                                .with_message(format!("column `{name}` is not text: {e}"))
                        })?
                        .to_owned(),
                ))
            }
            _ => None,
        });
    }
    let b = raw.as_bytes().map_err(|e| {
        SourceError::new(ErrorKind::Decode).with_message(format!("column `{name}`: {e}"))
    })?;
    let text = |v: Option<String>| from_wire(name, ty, v).map(|s| Some(RawValue::Text(s)));
    match ty {
        "NUMERIC" => text(binary::pg_numeric(b)),
        "DATE" => text(binary::pg_date(b)),
        "TIMESTAMP" => text(binary::pg_timestamp(b, false)),
        "TIMESTAMPTZ" => text(binary::pg_timestamp(b, true)),
        "TIME" => text(binary::pg_time(b)),
        "UUID" => text(binary::uuid(b)),
        t if t.ends_with("[]") => from_wire(name, ty, binary::pg_array(b, &binary::pg_element))
            .map(|v| Some(RawValue::Json(v))),
        _ => Ok(None),
    }
}

#[cfg(feature = "postgres")]
pub(crate) fn pg_column(row: &sqlx::postgres::PgRow, i: usize) -> Result<RawValue, SourceError> {
    let Some((name, ty)) = column_type(row, i)? else {
        return Ok(RawValue::Json(Value::Null));
    };
    let e = |e| decode_err(&name, e);
    Ok(match ty.as_str() {
        "TEXT" | "VARCHAR" | "BPCHAR" | "CHAR" | "NAME" | "CITEXT" | "UNKNOWN" => {
            RawValue::Text(row.try_get::<String, _>(i).map_err(e)?)
        }
        "INT2" => RawValue::Json(row.try_get::<i16, _>(i).map_err(e)?.into()),
        "INT4" => RawValue::Json(row.try_get::<i32, _>(i).map_err(e)?.into()),
        "INT8" => RawValue::Json(row.try_get::<i64, _>(i).map_err(e)?.into()),
        "FLOAT4" => RawValue::Json(float(row.try_get::<f32, _>(i).map_err(e)?.into())),
        "FLOAT8" => RawValue::Json(float(row.try_get::<f64, _>(i).map_err(e)?)),
        "BOOL" => RawValue::Json(row.try_get::<bool, _>(i).map_err(e)?.into()),
        "JSON" | "JSONB" => RawValue::Json(row.try_get::<Value, _>(i).map_err(e)?),
        "BYTEA" => RawValue::Bytes(row.try_get::<Vec<u8>, _>(i).map_err(e)?),
        other => match pg_wire(row, i, &name, other)? {
            Some(v) => v,
            None => return Err(unsupported(&name, other, "`column::text`")),
        },
    })
}

#[cfg(feature = "mysql")]
pub(crate) fn mysql_column(row: &sqlx::mysql::MySqlRow, i: usize) -> Result<RawValue, SourceError> {
    let Some((name, ty)) = column_type(row, i)? else {
        return Ok(RawValue::Json(Value::Null));
    };
    let e = |e| decode_err(&name, e);
    Ok(match ty.as_str() {
        "CHAR" | "VARCHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" => {
            RawValue::Text(row.try_get::<String, _>(i).map_err(e)?)
        }
        "BOOLEAN" => RawValue::Json(row.try_get::<bool, _>(i).map_err(e)?.into()),
        "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" => {
            RawValue::Json(row.try_get::<i64, _>(i).map_err(e)?.into())
        }
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "INT UNSIGNED" | "MEDIUMINT UNSIGNED"
        | "BIGINT UNSIGNED" => RawValue::Json(row.try_get::<u64, _>(i).map_err(e)?.into()),
        "FLOAT" => RawValue::Json(float(row.try_get::<f32, _>(i).map_err(e)?.into())),
        "DOUBLE" => RawValue::Json(float(row.try_get::<f64, _>(i).map_err(e)?)),
        "JSON" => RawValue::Json(row.try_get::<Value, _>(i).map_err(e)?),
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
            RawValue::Bytes(row.try_get::<Vec<u8>, _>(i).map_err(e)?)
        }
        // Read from the binary protocol's bytes (`binary.rs`): DECIMAL is sent as its text.
        "DECIMAL" | "DATE" | "DATETIME" | "TIMESTAMP" | "TIME" => {
            let b = row.try_get_unchecked::<&[u8], _>(i).map_err(e)?;
            let decoded = match ty.as_str() {
                "DECIMAL" => std::str::from_utf8(b).ok().map(str::to_owned),
                "DATE" => super::binary::mysql_datetime(b, false),
                "TIME" => super::binary::mysql_time(b),
                _ => super::binary::mysql_datetime(b, true),
            };
            RawValue::Text(from_wire(&name, &ty, decoded)?)
        }
        other => return Err(unsupported(&name, other, "`CAST(column AS CHAR)`")),
    })
}

#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_column(
    row: &sqlx::sqlite::SqliteRow,
    i: usize,
) -> Result<RawValue, SourceError> {
    // SQLite is dynamically typed: the value's storage class decides.
    let Some((name, ty)) = column_type(row, i)? else {
        return Ok(RawValue::Json(Value::Null));
    };
    let e = |e| decode_err(&name, e);
    Ok(match ty.as_str() {
        "TEXT" | "DATE" | "TIME" | "DATETIME" => {
            RawValue::Text(row.try_get::<String, _>(i).map_err(e)?)
        }
        "INTEGER" | "BOOLEAN" => RawValue::Json(row.try_get::<i64, _>(i).map_err(e)?.into()),
        "REAL" | "NUMERIC" => RawValue::Json(float(row.try_get::<f64, _>(i).map_err(e)?)),
        "BLOB" => RawValue::Bytes(row.try_get::<Vec<u8>, _>(i).map_err(e)?),
        other => return Err(unsupported(&name, other, "`CAST(column AS TEXT)`")),
    })
}
