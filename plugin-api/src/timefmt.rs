//! Human-readable times for pages: host timestamps (ms since the Unix
//! epoch) as UTC calendar dates, without a date crate.

/// `2026-11-28 03:10 UTC` for a timestamp in ms since the Unix epoch
/// (proleptic Gregorian calendar; any `i64` gives a valid string).
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        of_day / 3600,
        (of_day % 3600) / 60
    )
}

/// [`utc`] for an optional timestamp; `none` when absent.
pub fn utc_or(ms: Option<i64>, none: &str) -> String {
    ms.map(utc).unwrap_or_else(|| none.to_string())
}

/// Parses a calendar date `YYYY-MM-DD` (as an HTML date input sends it)
/// into ms since the Unix epoch at 00:00 UTC of that day; `None` when it is
/// not a valid date of the years 1970–9999.
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let y: i64 = y.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    let d: u32 = d.parse().ok()?;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if d > days_in_month {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400_000)
}

/// Days since 1970-01-01 of a calendar date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Year, month (1–12) and day (1–31) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_767_225_600_000), "2026-01-01 00:00 UTC");
        assert_eq!(
            utc(951_782_400_000 + 3_600_000 * 13 + 60_000 * 7),
            "2000-02-29 13:07 UTC"
        );
        assert_eq!(utc(-1), "1969-12-31 23:59 UTC");
        assert_eq!(utc_or(None, "never"), "never");
        assert_eq!(parse_date("2026-01-01"), Some(1_767_225_600_000));
        assert_eq!(parse_date(" 2000-02-29 "), Some(951_782_400_000));
        assert_eq!(parse_date("1970-01-01"), Some(0));
        for bad in [
            "",
            "2026-1-01",
            "2026-02-30",
            "2025-02-29",
            "1969-12-31",
            "2026-13-01",
            "2026-00-10",
            "x-y-z",
            "2026-01-01T00",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        for ms in [0, 951_782_400_000, 1_767_225_600_000, 4_102_444_800_000] {
            assert_eq!(parse_date(&utc(ms)[..10]), Some(ms));
        }
        // Extremes do not panic.
        let _ = utc(i64::MAX);
        let _ = utc(i64::MIN);
    }
}
