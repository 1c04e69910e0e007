//! The `Date` header field value: IMF-fixdate (RFC 9110 §5.6.7), such as
//! `Sun, 06 Nov 1994 08:49:37 GMT`. An origin server with a clock MUST send
//! `Date` (RFC 9110 §6.6.1). Formatting once per second per thread and
//! reusing the bytes keeps it off the per-request cost.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate.
pub(crate) const LEN: usize = 29;

thread_local! {
    static CACHE: Cell<(u64, [u8; LEN])> = const { Cell::new((u64::MAX, [0; LEN])) };
}

/// The current time as an IMF-fixdate.
pub(crate) fn now() -> [u8; LEN] {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let (cached_secs, bytes) = c.get();
        if cached_secs == secs {
            return bytes;
        }
        let bytes = imf_fixdate(secs);
        c.set((secs, bytes));
        bytes
    })
}

/// Formats seconds since the Unix epoch as an IMF-fixdate.
pub(crate) fn imf_fixdate(secs: u64) -> [u8; LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    let days = secs / 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    put2(&mut out[5..7], day as u64);
    out[8..11].copy_from_slice(MONTHS[month as usize - 1]);
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
    fn now_is_cached_and_well_formed() {
        let a = now();
        assert_eq!(&a[25..], b" GMT");
        assert_eq!(a[3], b',');
    }
}
