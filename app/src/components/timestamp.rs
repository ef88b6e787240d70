//! When a message was sent, as the reader reads it: "14:05" on the reader's
//! clock, and day headings ("Today", "Yesterday", "Mon 30 Nov").
//!
//! Not a component: pure helpers of the message list
//! ([`super::message_list`]), kept beside their one user.
//!
//! The server sends RFC 3339 UTC. The browser turns it into local time with
//! its own `Date`; the server, which never knows the reader's time zone,
//! reads it as UTC, and so does the browser until its page is hydrated (so
//! both draw the same page first). Strings are built by hand: no `format!` machinery for a
//! list that may hold a thousand messages.

/// A moment as a clock on the wall shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Local {
    /// Milliseconds since 1970 (UTC), to measure gaps between messages.
    pub epoch_ms: i64,
    pub year: i32,
    /// 1 to 12.
    pub month: u8,
    /// 1 to 31.
    pub day: u8,
    /// 0 for Sunday to 6 for Saturday.
    pub weekday: u8,
    pub hour: u8,
    pub minute: u8,
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Local {
    /// Days since 1970-01-01 of its calendar date, whatever the time zone:
    /// the next day is one more.
    pub fn day_number(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }

    /// Whether `self` and `other` fall on the same calendar day.
    pub fn same_day(&self, other: &Local) -> bool {
        (self.year, self.month, self.day) == (other.year, other.month, other.day)
    }

    /// "14:05".
    pub fn clock(&self) -> String {
        let mut text = String::with_capacity(5);
        push_two_digits(&mut text, self.hour);
        text.push(':');
        push_two_digits(&mut text, self.minute);
        text
    }

    /// How long before `now` this was, in a glance: "now" under a minute
    /// (or when a clock runs ahead), "5 min" under an hour, else the clock
    /// ("14:05"; the day is in the heading above).
    pub fn ago(&self, now: &Local) -> String {
        let minutes = (now.epoch_ms - self.epoch_ms) / 60_000;
        match minutes {
            ..1 => "now".to_string(),
            1..60 => {
                let mut text = String::with_capacity(6);
                push_number(&mut text, minutes);
                text.push_str(" min");
                text
            }
            _ => self.clock(),
        }
    }

    /// The whole moment: "Thu 3 Dec 2026, 14:05".
    pub fn exact(&self) -> String {
        let mut text = self.day_heading(None);
        text.push_str(", ");
        text.push_str(&self.clock());
        text
    }

    /// The heading of this day's messages, seen on `today`: "Today",
    /// "Yesterday", else "Mon 30 Nov" (with the year when it is not this
    /// year's, or when today is not known).
    pub fn day_heading(&self, today: Option<&Local>) -> String {
        match today.map(|today| today.day_number() - self.day_number()) {
            Some(0) => return "Today".to_string(),
            Some(1) => return "Yesterday".to_string(),
            _ => {}
        }
        let mut text = String::with_capacity(16);
        text.push_str(WEEKDAYS[usize::from(self.weekday % 7)]);
        text.push(' ');
        push_number(&mut text, i64::from(self.day));
        text.push(' ');
        text.push_str(MONTHS[usize::from((self.month + 11) % 12)]);
        if today.is_none_or(|today| today.year != self.year) {
            text.push(' ');
            push_number(&mut text, i64::from(self.year));
        }
        text
    }
}

/// `sent_at` (RFC 3339) on the reader's clock.
#[cfg(feature = "hydrate")]
pub fn local(sent_at: &str) -> Option<Local> {
    let ms = js_sys::Date::parse(sent_at);
    if ms.is_nan() {
        return None;
    }
    Some(from_js(&js_sys::Date::new(
        &wasm_bindgen::JsValue::from_f64(ms),
    )))
}

/// Now, on the reader's clock.
#[cfg(feature = "hydrate")]
pub fn now() -> Option<Local> {
    Some(from_js(&js_sys::Date::new_0()))
}

#[cfg(feature = "hydrate")]
fn from_js(date: &js_sys::Date) -> Local {
    Local {
        epoch_ms: date.get_time() as i64,
        year: date.get_full_year() as i32,
        month: date.get_month() as u8 + 1,
        day: date.get_date() as u8,
        weekday: date.get_day() as u8,
        hour: date.get_hours() as u8,
        minute: date.get_minutes() as u8,
    }
}

/// `sent_at` as UTC: the server does not know the reader's time zone.
#[cfg(not(feature = "hydrate"))]
pub fn local(sent_at: &str) -> Option<Local> {
    utc(sent_at)
}

/// The server knows no "now" for the reader: it draws neither "Today" nor
/// "5 min".
#[cfg(not(feature = "hydrate"))]
pub fn now() -> Option<Local> {
    None
}

/// Reads the server's `2026-11-24T17:04:00.123Z` (fraction optional; the
/// zone must be UTC) as UTC.
pub fn utc(text: &str) -> Option<Local> {
    let bytes = text.as_bytes();
    let number = |from: usize, to: usize| -> Option<i64> {
        let digits = bytes.get(from..to)?;
        digits.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, b)| bytes.get(at) != Some(&b))
        || !matches!(bytes.get(10), Some(b'T' | b't'))
    {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, b) in fraction.bytes().take(3).enumerate() {
            if i < digits {
                millis += i64::from(b - b'0') * [100, 10, 1][i];
            }
        }
        rest = &fraction[digits..];
    }
    if !matches!(rest, "Z" | "z" | "+00:00")
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let year = i32::try_from(year).ok()?;
    let days = days_from_civil(year, month as u8, day as u8);
    Some(Local {
        epoch_ms: ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1_000 + millis,
        year,
        month: month as u8,
        day: day as u8,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as u8,
        hour: hour as u8,
        minute: minute as u8,
    })
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn push_two_digits(text: &mut String, n: u8) {
    text.push(char::from(b'0' + n / 10 % 10));
    text.push(char::from(b'0' + n % 10));
}

fn push_number(text: &mut String, n: i64) {
    if n < 0 {
        text.push('-');
    }
    let mut digits = [0u8; 20];
    let mut len = 0;
    let mut rest = n.unsigned_abs();
    loop {
        digits[len] = b'0' + (rest % 10) as u8;
        len += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &digit in digits[..len].iter().rev() {
        text.push(char::from(digit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Local {
        utc(text).unwrap()
    }

    #[test]
    fn the_servers_timestamps_are_read() {
        let moment = at("2026-11-24T17:04:09.123Z");
        assert_eq!(
            moment,
            Local {
                epoch_ms: 1_795_539_849_123,
                year: 2026,
                month: 11,
                day: 24,
                weekday: 2,
                hour: 17,
                minute: 4,
            }
        );
        assert_eq!(at("1970-01-01T00:00:00Z").epoch_ms, 0);
        assert_eq!(at("1970-01-01T00:00:00Z").weekday, 4);
        assert_eq!(at("2000-02-29T23:59:59.5+00:00").epoch_ms, 951_868_799_500);
        for bad in [
            "",
            "2026-11-24",
            "2026-11-24 17:04:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-24T17:04:00.Z",
            "2026-11-24T17:04:00+01:00",
            "2026-11-24T17:04:00",
            "२०२६-11-24T17:04:00Z",
        ] {
            assert_eq!(utc(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn times_read_like_a_clock() {
        assert_eq!(at("2026-11-24T07:04:00.000Z").clock(), "07:04");
        assert_eq!(at("2026-11-24T23:59:00.000Z").clock(), "23:59");
        assert_eq!(
            at("2026-12-03T14:05:00.000Z").exact(),
            "Thu 3 Dec 2026, 14:05"
        );
    }

    #[test]
    fn recent_times_read_as_how_long_ago() {
        let sent = at("2026-12-03T14:05:30.000Z");
        let seen = |now: &str| sent.ago(&at(now));
        assert_eq!(seen("2026-12-03T14:05:00.000Z"), "now");
        assert_eq!(seen("2026-12-03T14:06:29.999Z"), "now");
        assert_eq!(seen("2026-12-03T14:06:30.000Z"), "1 min");
        assert_eq!(seen("2026-12-03T15:05:29.000Z"), "59 min");
        assert_eq!(seen("2026-12-03T15:05:30.000Z"), "14:05");
        assert_eq!(seen("2026-12-05T09:00:00.000Z"), "14:05");
    }

    #[test]
    fn days_are_named_from_today() {
        let today = at("2026-11-30T08:00:00.000Z");
        assert_eq!(
            at("2026-11-30T00:01:00.000Z").day_heading(Some(&today)),
            "Today"
        );
        assert_eq!(
            at("2026-11-29T23:59:00.000Z").day_heading(Some(&today)),
            "Yesterday"
        );
        assert_eq!(
            at("2026-11-28T12:00:00.000Z").day_heading(Some(&today)),
            "Sat 28 Nov"
        );
        assert_eq!(
            at("2025-12-31T12:00:00.000Z").day_heading(Some(&today)),
            "Wed 31 Dec 2025"
        );
        let new_year = at("2027-01-01T09:00:00.000Z");
        assert_eq!(
            at("2026-12-31T12:00:00.000Z").day_heading(Some(&new_year)),
            "Yesterday"
        );
        assert_eq!(
            at("2026-11-30T12:00:00.000Z").day_heading(None),
            "Mon 30 Nov 2026"
        );
        assert!(today.same_day(&at("2026-11-30T23:59:59.999Z")));
        assert!(!today.same_day(&at("2026-12-01T00:00:00.000Z")));
    }
}
