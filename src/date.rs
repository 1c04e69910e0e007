//! HTTP dates (RFC 9110 §5.6.7). The server's `Date` field is an
//! IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`; an origin server
//! with a clock MUST send it (RFC 9110 §6.6.1). Formatting once per second
//! per thread and reusing the bytes keeps it off the per-request cost.
//!
//! [`http_date`] and [`parse_http_date`] serve handlers that send or read
//! dates themselves (`Last-Modified`, `Expires`, `If-Modified-Since`).

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate.
pub(crate) const LEN: usize = 29;

/// The server's whole `Date` field line: `Date: ` + IMF-fixdate + CRLF.
const FIELD_LEN: usize = 6 + LEN + 2;

thread_local! {
    static CACHE: Cell<(u64, [u8; FIELD_LEN])> = const { Cell::new((u64::MAX, [0; FIELD_LEN])) };
}

/// The `Date` field line for the current second, ready to append to a
/// response head (made once per second per thread, copied in one piece).
pub(crate) fn field_line() -> [u8; FIELD_LEN] {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let (cached_secs, line) = c.get();
        if cached_secs == secs {
            return line;
        }
        let mut line = *b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
        line[6..6 + LEN].copy_from_slice(&imf_fixdate(secs));
        c.set((secs, line));
        line
    })
}

/// Formats seconds since the Unix epoch as an IMF-fixdate.
pub(crate) fn imf_fixdate(secs: u64) -> [u8; LEN] {
    let days = secs / 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    // 1970-01-01 was a Thursday.
    out[..3].copy_from_slice(WEEKDAYS[((days + 4) % 7) as usize].as_bytes());
    put2(&mut out[5..7], day as u64);
    out[8..11].copy_from_slice(MONTHS[month as usize - 1].as_bytes());
    put2(&mut out[12..14], year as u64 / 100);
    put2(&mut out[14..16], year as u64 % 100);
    put2(&mut out[17..19], h);
    put2(&mut out[20..22], m);
    put2(&mut out[23..25], s);
    out
}

fn put2(out: &mut [u8], v: u64) {
    out[0] = b'0' + (v / 10 % 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_WEEKDAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Formats `time` as an IMF-fixdate (RFC 9110 §5.6.7), the form a sender
/// must use, to the second. Times before 1970 are formatted as 1970.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
/// assert_eq!(h1serve::http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
/// ```
pub fn http_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    String::from_utf8_lossy(&imf_fixdate(secs)).into_owned()
}

/// Parses an HTTP-date. Senders must use IMF-fixdate, but recipients must
/// accept the two obsolete forms too (RFC 9110 §5.6.7):
///
/// ```text
/// Sun, 06 Nov 1994 08:49:37 GMT    IMF-fixdate
/// Sunday, 06-Nov-94 08:49:37 GMT   rfc850-date (two-digit year)
/// Sun Nov  6 08:49:37 1994         asctime-date
/// ```
///
/// A two-digit year that would be more than 50 years in the future is
/// the most recent past year with those digits. Anything else, including
/// impossible dates and extra spaces, is `None`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = Some(UNIX_EPOCH + Duration::from_secs(784_111_777));
/// assert_eq!(h1serve::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), t);
/// assert_eq!(h1serve::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), t);
/// assert_eq!(h1serve::parse_http_date("Sun Nov  6 08:49:37 1994"), t);
/// assert_eq!(h1serve::parse_http_date("Sun, 31 Nov 1994 08:49:37 GMT"), None);
/// ```
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    parse_at(s, SystemTime::now())
}

/// `parse_http_date`, with the present given (for two-digit years).
fn parse_at(s: &str, now: SystemTime) -> Option<SystemTime> {
    let fields: Vec<&str> = s.split(' ').collect();
    let (day, month, year, time) = match fields[..] {
        [weekday, day, month, year, time, "GMT"] => {
            check(WEEKDAYS.contains(&weekday.strip_suffix(',').unwrap_or("")) && day.len() == 2 && year.len() == 4)?;
            (day, month, digits(year)?, time)
        }
        [weekday, date, time, "GMT"] => {
            check(LONG_WEEKDAYS.contains(&weekday.strip_suffix(',').unwrap_or("")))?;
            let mut parts = date.split('-');
            let (Some(day), Some(month), Some(yy), None) = (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return None;
            };
            check(day.len() == 2 && yy.len() == 2)?;
            (day, month, two_digit_year(digits(yy)?, now), time)
        }
        // asctime pads a one-digit day with a space: two spaces in a row.
        [weekday, month, "", day, time, year] | [weekday, month, day, time, year] => {
            let day_len = if fields.len() == 6 { 1 } else { 2 };
            check(WEEKDAYS.contains(&weekday) && day.len() == day_len && year.len() == 4)?;
            (day, month, digits(year)?, time)
        }
        _ => return None,
    };
    let month = MONTHS.iter().position(|&m| m == month)? as u32 + 1;
    let day = digits(day)? as u32;
    check(day >= 1 && day <= days_in_month(year, month))?;
    let mut hms = time.split(':');
    let (Some(h), Some(m), Some(sec), None) = (hms.next(), hms.next(), hms.next(), hms.next()) else { return None };
    check(h.len() == 2 && m.len() == 2 && sec.len() == 2)?;
    let (h, m, sec) = (digits(h)?, digits(m)?, digits(sec)?);
    // 60 allows a leap second.
    check(h < 24 && m < 60 && sec <= 60)?;
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

fn check(ok: bool) -> Option<()> {
    ok.then_some(())
}

/// A run of ASCII digits (no sign, no spaces) as a number.
fn digits(s: &str) -> Option<i64> {
    check(!s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()))?;
    s.parse().ok()
}

/// RFC 9110 §5.6.7: a two-digit year that would be more than 50 years in
/// the future is the most recent past year with those last two digits.
fn two_digit_year(yy: i64, now: SystemTime) -> i64 {
    let days = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) / 86_400;
    let this_year = civil_from_days(days as i64).0;
    let year = this_year - this_year % 100 + yy;
    if year > this_year + 50 { year - 100 } else { year }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar:
/// the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((month + 9) % 12); // March = 0 ... February = 11
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month 1–12, day 1–31): the proleptic
/// Gregorian calendar in eras of 400 years (Howard Hinnant's
/// `civil_from_days`).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        // The example of RFC 9110 §5.6.7.
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        // A leap day of a century leap year, and a century year that is not one.
        assert_eq!(&imf_fixdate(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&imf_fixdate(4_133_980_799), b"Fri, 31 Dec 2100 23:59:59 GMT");
    }

    #[test]
    fn civil_dates_round_trip_day_by_day() {
        // Walk 1970..2400 and check each date follows the previous one.
        let (mut py, mut pm, mut pd) = civil_from_days(0);
        for z in 1..157_000 {
            let (y, m, d) = civil_from_days(z);
            let next_day = y == py && m == pm && d == pd + 1;
            let next_month = y == py && m == pm + 1 && d == 1;
            let next_year = y == py + 1 && m == 1 && d == 1 && pm == 12;
            assert!(next_day || next_month || next_year, "{z}: {py}-{pm}-{pd} -> {y}-{m}-{d}");
            (py, pm, pd) = (y, m, d);
        }
    }

    #[test]
    fn parses_every_day_back_to_what_was_formatted() {
        for days in (0..60_000u64).step_by(7) {
            let secs = days * 86_400 + days % 86_400;
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_http_date(&http_date(t)), Some(t), "{secs}");
        }
    }

    #[test]
    fn two_digit_years_are_at_most_50_years_ahead() {
        let now = UNIX_EPOCH + Duration::from_secs(1_764_000_000); // in 2025
        let year_of = |s: &str| {
            parse_at(s, now)
                .map(|t| civil_from_days((t.duration_since(UNIX_EPOCH).unwrap().as_secs() / 86_400) as i64).0)
        };
        assert_eq!(year_of("Sunday, 06-Nov-94 08:49:37 GMT"), Some(1994));
        assert_eq!(year_of("Thursday, 06-Nov-75 08:49:37 GMT"), Some(2075));
        assert_eq!(year_of("Friday, 06-Nov-76 08:49:37 GMT"), Some(1976));
    }

    #[test]
    fn rejects_malformed_dates() {
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun,  06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 29 Feb 1900 00:00:00 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov -994 08:49:37 GMT",
            "Sun Nov 6 08:49:37 1994",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_field_line_is_the_current_date() {
        let before = SystemTime::now();
        let line = field_line();
        let after = SystemTime::now();
        let (name, rest) = line.split_at(6);
        let (date, end) = rest.split_at(LEN);
        assert_eq!((name, end), (&b"Date: "[..], &b"\r\n"[..]));
        let date = parse_http_date(std::str::from_utf8(date).unwrap()).unwrap();
        // To the second: the formatted time is `before` or `after` rounded down.
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!((secs(before)..=secs(after)).contains(&secs(date)), "{:?}", String::from_utf8_lossy(&line));
    }
}
