//! Wire formats of SQL types that have no plain Rust counterpart here, decoded to exact
//! text (PostgreSQL's binary protocol, MySQL's binary protocol): NUMERIC/DECIMAL as decimal
//! text, dates and times as RFC 3339 text, UUIDs hyphenated, PostgreSQL arrays as JSON
//! arrays. Pure functions over bytes; `None` means the bytes are not what the type says.
//! Each driver uses its part; the helpers are shared.
#![cfg_attr(not(all(feature = "postgres", feature = "mysql")), allow(dead_code))]

use std::fmt::Write as _;

/// Year, month, day of a day count from 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn date_text(year: i64, month: u32, day: u32) -> String {
    format!("{year:04}-{month:02}-{day:02}")
}

/// `HH:MM:SS`, with `.ffffff` when there are microseconds.
fn time_text(hours: u64, minutes: u64, seconds: u64, micros: u64) -> String {
    let mut s = format!("{hours:02}:{minutes:02}:{seconds:02}");
    if micros != 0 {
        let _ = write!(s, ".{micros:06}");
    }
    s
}

fn be_i16(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_i64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// PostgreSQL NUMERIC: `ndigits`, `weight`, `sign`, `dscale`, then base-10000 digits.
pub(crate) fn pg_numeric(b: &[u8]) -> Option<String> {
    let ndigits = usize::try_from(be_i16(b, 0)?).ok()?;
    let weight = i32::from(be_i16(b, 2)?);
    let sign = be_i16(b, 4)? as u16;
    let dscale = i32::from(be_i16(b, 6)?);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => return None,
    }
    let digits: Vec<i16> = (0..ndigits)
        .map(|k| be_i16(b, 8 + 2 * k))
        .collect::<Option<_>>()?;
    let group = |g: i32| -> i16 {
        usize::try_from(g)
            .ok()
            .and_then(|g| digits.get(g).copied())
            .unwrap_or(0)
    };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for g in 0..=weight {
            let _ = if g == 0 {
                write!(s, "{}", group(g))
            } else {
                write!(s, "{:04}", group(g))
            };
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut g = weight + 1;
        while (frac.len() as i32) < dscale {
            let _ = write!(frac, "{:04}", group(g));
            g += 1;
        }
        frac.truncate(dscale as usize);
        s.push('.');
        s.push_str(&frac);
    }
    Some(s)
}

/// PostgreSQL DATE: days since 2000-01-01.
pub(crate) fn pg_date(b: &[u8]) -> Option<String> {
    Some(match be_i32(b, 0)? {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        days => {
            let (y, m, d) = civil_from_days(i64::from(days) + PG_EPOCH_DAYS);
            date_text(y, m, d)
        }
    })
}

/// PostgreSQL TIMESTAMP (`utc = false`) or TIMESTAMPTZ (`utc = true`, sent in UTC):
/// microseconds since 2000-01-01 00:00:00, as RFC 3339 text.
pub(crate) fn pg_timestamp(b: &[u8], utc: bool) -> Option<String> {
    let micros = be_i64(b, 0)?;
    if micros == i64::MAX {
        return Some("infinity".into());
    }
    if micros == i64::MIN {
        return Some("-infinity".into());
    }
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rest = micros.rem_euclid(MICROS_PER_DAY) as u64;
    let (y, m, d) = civil_from_days(days + PG_EPOCH_DAYS);
    let secs = rest / 1_000_000;
    let mut s = format!(
        "{}T{}",
        date_text(y, m, d),
        time_text(secs / 3600, secs / 60 % 60, secs % 60, rest % 1_000_000)
    );
    if utc {
        s.push('Z');
    }
    Some(s)
}

/// PostgreSQL TIME: microseconds since midnight.
pub(crate) fn pg_time(b: &[u8]) -> Option<String> {
    let micros = u64::try_from(be_i64(b, 0)?).ok()?;
    let secs = micros / 1_000_000;
    Some(time_text(
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        micros % 1_000_000,
    ))
}

/// A UUID's 16 bytes, hyphenated.
pub(crate) fn uuid(b: &[u8]) -> Option<String> {
    if b.len() != 16 {
        return None;
    }
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{byte:02x}");
    }
    Some(s)
}

/// A PostgreSQL array (any number of dimensions) as nested JSON arrays; each element is
/// decoded by `element(oid, bytes)`, NULL elements are `null`.
pub(crate) fn pg_array(
    b: &[u8],
    element: &dyn Fn(u32, &[u8]) -> Option<serde_json::Value>,
) -> Option<serde_json::Value> {
    let ndim = usize::try_from(be_i32(b, 0)?).ok()?;
    let oid = be_i32(b, 8)? as u32;
    if ndim == 0 {
        return Some(serde_json::Value::Array(Vec::new()));
    }
    // PostgreSQL allows at most 6 dimensions (MAXDIM); anything else is not an array.
    if ndim > 6 {
        return None;
    }
    let mut dims = Vec::with_capacity(ndim);
    for d in 0..ndim {
        dims.push(usize::try_from(be_i32(b, 12 + 8 * d)?).ok()?);
    }
    let mut at = 12 + 8 * ndim;
    // Every element takes at least its 4-byte length: more elements than that cannot be
    // in the buffer (and the product never overflows unchecked).
    let total = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    if total > b.len().saturating_sub(at) / 4 {
        return None;
    }
    let mut flat = Vec::with_capacity(total.min(b.len()));
    for _ in 0..total {
        let len = be_i32(b, at)?;
        at += 4;
        if len < 0 {
            flat.push(serde_json::Value::Null);
            continue;
        }
        let len = len as usize;
        flat.push(element(oid, b.get(at..at + len)?)?);
        at += len;
    }
    Some(nest(&mut flat.into_iter(), &dims))
}

fn nest(items: &mut impl Iterator<Item = serde_json::Value>, dims: &[usize]) -> serde_json::Value {
    match dims {
        [] => items.next().unwrap_or(serde_json::Value::Null),
        [n, rest @ ..] => serde_json::Value::Array((0..*n).map(|_| nest(items, rest)).collect()),
    }
}

/// One element of a PostgreSQL array, by its type's OID, as JSON: numbers, booleans and
/// JSON documents as themselves; text, dates, times and UUIDs as strings; NUMERIC as a
/// number when it is one JSON can hold, else its exact text.
pub(crate) fn pg_element(oid: u32, b: &[u8]) -> Option<serde_json::Value> {
    use serde_json::Value;
    let text = |s: String| Some(Value::String(s));
    match oid {
        16 => Some(Value::Bool(*b.first()? != 0)),
        21 => Some(be_i16(b, 0)?.into()),
        23 => Some(be_i32(b, 0)?.into()),
        20 => Some(be_i64(b, 0)?.into()),
        700 => serde_json::Number::from_f64(f64::from(f32::from_bits(be_i32(b, 0)? as u32)))
            .map(Value::Number),
        701 => {
            serde_json::Number::from_f64(f64::from_bits(be_i64(b, 0)? as u64)).map(Value::Number)
        }
        19 | 25 | 1042 | 1043 => text(String::from_utf8(b.to_vec()).ok()?),
        1700 => {
            let exact = pg_numeric(b)?;
            match serde_json::from_str::<Value>(&exact) {
                Ok(Value::Number(n)) if n.to_string() == exact => Some(Value::Number(n)),
                _ => text(exact),
            }
        }
        2950 => text(uuid(b)?),
        1082 => text(pg_date(b)?),
        1083 => text(pg_time(b)?),
        1114 => text(pg_timestamp(b, false)?),
        1184 => text(pg_timestamp(b, true)?),
        114 => serde_json::from_slice(b).ok(),
        3802 => serde_json::from_slice(b.get(1..)?).ok(),
        _ => None,
    }
}

/// MySQL DATE, DATETIME, TIMESTAMP (binary protocol): a length byte, then year (LE u16),
/// month, day, and for date-times hour, minute, second and microseconds (LE u32).
pub(crate) fn mysql_datetime(b: &[u8], with_time: bool) -> Option<String> {
    let len = usize::from(*b.first()?);
    let b = b.get(1..1 + len)?;
    if len == 0 {
        return Some(if with_time {
            "0000-00-00T00:00:00".into()
        } else {
            "0000-00-00".into()
        });
    }
    let year = i64::from(u16::from_le_bytes([*b.first()?, *b.get(1)?]));
    let date = date_text(year, u32::from(*b.get(2)?), u32::from(*b.get(3)?));
    if !with_time {
        return Some(date);
    }
    let (h, mi, s) = if len >= 7 {
        (b[4], b[5], b[6])
    } else {
        (0, 0, 0)
    };
    let micros = if len >= 11 {
        u32::from_le_bytes(b.get(7..11)?.try_into().ok()?)
    } else {
        0
    };
    Some(format!(
        "{date}T{}",
        time_text(h.into(), mi.into(), s.into(), micros.into())
    ))
}

/// MySQL TIME (binary protocol): a length byte, sign, days (LE u32), hour, minute, second,
/// microseconds (LE u32); hours may pass 24.
pub(crate) fn mysql_time(b: &[u8]) -> Option<String> {
    let len = usize::from(*b.first()?);
    let b = b.get(1..1 + len)?;
    if len == 0 {
        return Some("00:00:00".into());
    }
    let negative = *b.first()? == 1;
    let days = u64::from(u32::from_le_bytes(b.get(1..5)?.try_into().ok()?));
    let [h, m, s]: [u8; 3] = b.get(5..8)?.try_into().ok()?;
    let (h, m, s) = (u64::from(h), u64::from(m), u64::from(s));
    let micros = if len >= 12 {
        u64::from(u32::from_le_bytes(b.get(8..12)?.try_into().ok()?))
    } else {
        0
    };
    let sign = if negative { "-" } else { "" };
    Some(format!("{sign}{}", time_text(days * 24 + h, m, s, micros)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [ndigits, weight, sign as i16, dscale] {
            b.extend(v.to_be_bytes());
        }
        for d in digits {
            b.extend(d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numerics_are_exact_decimal_text() {
        assert_eq!(
            pg_numeric(&numeric(2, 0, 0, 1, &[12, 5000])).unwrap(),
            "12.5"
        );
        assert_eq!(pg_numeric(&numeric(1, -1, 0, 2, &[500])).unwrap(), "0.05");
        assert_eq!(
            pg_numeric(&numeric(1, -2, 0x4000, 5, &[1000])).unwrap(),
            "-0.00001"
        );
        assert_eq!(pg_numeric(&numeric(1, 1, 0, 0, &[1])).unwrap(), "10000");
        assert_eq!(pg_numeric(&numeric(0, 0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(pg_numeric(&numeric(0, 0, 0xC000, 0, &[])).unwrap(), "NaN");
        assert!(pg_numeric(&[0, 1]).is_none());
    }

    #[test]
    fn dates_and_times_are_rfc3339_text() {
        assert_eq!(pg_date(&0i32.to_be_bytes()).unwrap(), "2000-01-01");
        assert_eq!(pg_date(&(-1i32).to_be_bytes()).unwrap(), "1999-12-31");
        assert_eq!(pg_date(&8_826i32.to_be_bytes()).unwrap(), "2024-03-01");
        let us: i64 = 8_826 * MICROS_PER_DAY + (3 * 3600 + 4 * 60 + 5) * 1_000_000 + 120;
        assert_eq!(
            pg_timestamp(&us.to_be_bytes(), true).unwrap(),
            "2024-03-01T03:04:05.000120Z"
        );
        assert_eq!(
            pg_time(&(3_661_000_000i64).to_be_bytes()).unwrap(),
            "01:01:01"
        );
        assert_eq!(
            mysql_datetime(&[4, 0xE8, 0x07, 3, 1], false).unwrap(),
            "2024-03-01"
        );
        assert_eq!(
            mysql_datetime(&[7, 0xE8, 0x07, 3, 1, 13, 14, 15], true).unwrap(),
            "2024-03-01T13:14:15"
        );
        assert_eq!(
            mysql_time(&[8, 1, 1, 0, 0, 0, 2, 3, 4]).unwrap(),
            "-26:03:04"
        );
    }

    #[test]
    fn uuids_and_arrays() {
        let id: Vec<u8> = (0u8..16).collect();
        assert_eq!(uuid(&id).unwrap(), "00010203-0405-0607-0809-0a0b0c0d0e0f");
        // int4[] {1, NULL, 3}
        let mut b = Vec::new();
        for v in [1i32, 1, 23, 3, 1] {
            b.extend(v.to_be_bytes());
        }
        for (len, v) in [(4i32, Some(1i32)), (-1, None), (4, Some(3))] {
            b.extend(len.to_be_bytes());
            if let Some(v) = v {
                b.extend(v.to_be_bytes());
            }
        }
        let int4 = |_: u32, b: &[u8]| be_i32(b, 0).map(serde_json::Value::from);
        assert_eq!(
            pg_array(&b, &int4).unwrap(),
            serde_json::json!([1, null, 3])
        );
        // Hostile headers: too many dimensions, more elements than bytes, overflow.
        let header = |ndim: i32, dims: &[i32]| {
            let mut h: Vec<u8> = [ndim, 0, 23].iter().flat_map(|v| v.to_be_bytes()).collect();
            for d in dims {
                h.extend(d.to_be_bytes());
                h.extend(1i32.to_be_bytes());
            }
            h
        };
        assert!(pg_array(&header(7, &[1; 7]), &int4).is_none());
        assert!(pg_array(&header(1, &[1_000_000]), &int4).is_none());
        assert!(pg_array(&header(4, &[65536; 4]), &int4).is_none());
        // A MySQL TIME whose length byte lies does not panic.
        for len in 0u8..=13 {
            let _ = mysql_time(&[len, 0, 1, 0, 0, 0]);
        }
    }
}
