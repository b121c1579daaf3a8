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
        // Extremes do not panic.
        let _ = utc(i64::MAX);
        let _ = utc(i64::MIN);
    }
}
