//! Freeze windows: weekly (`Fri 16:00` to `Mon 08:00`) or absolute (`2026-12-20T00:00:00`
//! to `2027-01-04T00:00:00`), each in a time zone. Wall-clock times are turned into instants
//! on the actual dates, so a window keeps its local hours across daylight-saving changes.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// One window, parsed.
#[derive(Debug, Clone)]
pub struct FreezeWindow {
    bounds: Bounds,
    tz: TimeZone,
}

#[derive(Debug, Clone, PartialEq)]
enum Bounds {
    Weekly {
        from: (Weekday, Time),
        to: (Weekday, Time),
    },
    Absolute {
        from: DateTime,
        to: DateTime,
    },
}

/// Why a window does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WindowError(pub String);

impl FreezeWindow {
    /// Parse `from`/`to` (both weekly or both absolute) in the IANA time zone `tz`.
    pub fn parse(from: &str, to: &str, tz: &str) -> Result<Self, WindowError> {
        let zone = TimeZone::get(tz).map_err(|_| {
            WindowError(format!(
                "unknown time zone {tz:?}; use an IANA name such as UTC or Europe/Berlin"
            ))
        })?;
        let bounds = match (parse_weekly(from), parse_weekly(to)) {
            (Some(f), Some(t)) => {
                if f == t {
                    return Err(WindowError(format!(
                        "the window {from:?} to {to:?} is empty; give different start and end"
                    )));
                }
                Bounds::Weekly { from: f, to: t }
            }
            _ => match (parse_absolute(from), parse_absolute(to)) {
                (Some(f), Some(t)) => {
                    if t <= f {
                        return Err(WindowError(format!(
                            "the window ends ({to}) before it starts ({from})"
                        )));
                    }
                    Bounds::Absolute { from: f, to: t }
                }
                _ => {
                    let bad = if parse_weekly(from).is_some() || parse_absolute(from).is_some() {
                        to
                    } else {
                        from
                    };
                    return Err(WindowError(format!(
                        "cannot read {bad:?} as a freeze bound; write a weekly time like 'Fri 16:00' or a date and time like '2026-12-20T00:00:00' (both bounds of the same kind)"
                    )));
                }
            },
        };
        Ok(Self { bounds, tz: zone })
    }

    /// When the window that contains `now` ends, or `None` when `now` is outside it.
    pub fn frozen_until(&self, now: Timestamp) -> Option<Timestamp> {
        let instant = |dt: DateTime| dt.to_zoned(self.tz.clone()).ok().map(|z| z.timestamp());
        match &self.bounds {
            Bounds::Absolute { from, to } => {
                let (start, end) = (instant(*from)?, instant(*to)?);
                (start <= now && now < end).then_some(end)
            }
            Bounds::Weekly { from, to } => {
                let local = now.to_zoned(self.tz.clone()).datetime();
                // The latest start at or before now (looking back one more week covers a
                // start that, once placed on its date, lands after now).
                let back = days_between(from.0, local.weekday());
                for extra in [0, 7] {
                    let date = local.date().checked_sub((back + extra).days()).ok()?;
                    let start_local = date.to_datetime(from.1);
                    let start = instant(start_local)?;
                    if start > now {
                        continue;
                    }
                    let mut end_date = date.checked_add(days_between(from.0, to.0).days()).ok()?;
                    if end_date.to_datetime(to.1) <= start_local {
                        end_date = end_date.checked_add(7.days()).ok()?;
                    }
                    let end = instant(end_date.to_datetime(to.1))?;
                    return (now < end).then_some(end);
                }
                None
            }
        }
    }
}

impl FreezeWindow {
    /// The latest end of this window at or before `now` (when a freeze last lifted).
    pub fn last_ended(&self, now: Timestamp) -> Option<Timestamp> {
        let instant = |dt: DateTime| dt.to_zoned(self.tz.clone()).ok().map(|z| z.timestamp());
        match &self.bounds {
            Bounds::Absolute { to, .. } => instant(*to).filter(|end| *end <= now),
            Bounds::Weekly { to, .. } => {
                let local = now.to_zoned(self.tz.clone()).datetime();
                let back = days_between(to.0, local.weekday());
                [0, 7].into_iter().find_map(|extra| {
                    let date = local.date().checked_sub((back + extra).days()).ok()?;
                    instant(date.to_datetime(to.1)).filter(|end| *end <= now)
                })
            }
        }
    }
}

/// When a set of windows stops freezing, following windows that overlap or touch.
pub fn frozen_until(windows: &[FreezeWindow], now: Timestamp) -> Option<Timestamp> {
    let mut until: Option<Timestamp> = None;
    let mut at = now;
    // Bounded: each step moves past the end of some window.
    for _ in 0..=windows.len() {
        let next = windows.iter().filter_map(|w| w.frozen_until(at)).max();
        match next {
            Some(end) if until.is_none_or(|u| end > u) => {
                until = Some(end);
                at = end;
            }
            _ => break,
        }
    }
    until
}

/// Days from weekday `a` forward to weekday `b` (0 to 6).
fn days_between(a: Weekday, b: Weekday) -> i64 {
    i64::from((b.to_monday_zero_offset() - a.to_monday_zero_offset()).rem_euclid(7))
}

fn parse_weekly(s: &str) -> Option<(Weekday, Time)> {
    let (day, time) = s.trim().split_once(char::is_whitespace)?;
    let day = match day.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tues" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thurs" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        _ => return None,
    };
    let (h, m) = time.trim().split_once(':')?;
    if h.len() > 2 || m.len() != 2 {
        return None;
    }
    let time = Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()?;
    Some((day, time))
}

fn parse_absolute(s: &str) -> Option<DateTime> {
    let s = s.trim();
    if let Ok(dt) = s.parse::<DateTime>() {
        return Some(dt);
    }
    s.parse::<Date>()
        .ok()
        .map(|d| d.to_datetime(Time::midnight()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn berlin_weekend() -> FreezeWindow {
        FreezeWindow::parse("Fri 16:00", "Mon 08:00", "Europe/Berlin").unwrap()
    }

    #[test]
    fn weekly_window_wraps_the_weekend() {
        let w = berlin_weekend();
        // 2026-11-20 is a Friday; Berlin is UTC+1 in November.
        assert_eq!(w.frozen_until(ts("2026-11-20T14:59:00Z")), None);
        let monday = ts("2026-11-23T07:00:00Z");
        assert_eq!(w.frozen_until(ts("2026-11-20T15:00:00Z")), Some(monday));
        assert_eq!(w.frozen_until(ts("2026-11-22T12:00:00Z")), Some(monday));
        assert_eq!(w.frozen_until(ts("2026-11-23T06:59:59Z")), Some(monday));
        assert_eq!(w.frozen_until(ts("2026-11-23T07:00:00Z")), None);
        assert_eq!(w.frozen_until(ts("2026-11-25T12:00:00Z")), None);
    }

    #[test]
    fn weekly_window_keeps_local_hours_across_dst() {
        let w = berlin_weekend();
        // DST ends on Sunday 2026-10-25: the freeze starts at 16:00 CEST (14:00Z) and ends
        // at 08:00 CET (07:00Z) on Monday.
        assert_eq!(w.frozen_until(ts("2026-10-23T13:59:00Z")), None);
        assert_eq!(
            w.frozen_until(ts("2026-10-23T14:00:00Z")),
            Some(ts("2026-10-26T07:00:00Z"))
        );
        // DST starts on Sunday 2026-03-29: starts 16:00 CET (15:00Z), ends 08:00 CEST (06:00Z).
        assert_eq!(w.frozen_until(ts("2026-03-27T14:30:00Z")), None);
        assert_eq!(
            w.frozen_until(ts("2026-03-27T15:00:00Z")),
            Some(ts("2026-03-30T06:00:00Z"))
        );
        assert_eq!(w.frozen_until(ts("2026-03-30T06:00:00Z")), None);
    }

    #[test]
    fn absolute_window_in_its_zone() {
        let w = FreezeWindow::parse(
            "2026-12-20T00:00:00",
            "2027-01-04T00:00:00",
            "America/New_York",
        )
        .unwrap();
        assert_eq!(w.frozen_until(ts("2026-12-20T04:59:00Z")), None);
        assert_eq!(
            w.frozen_until(ts("2026-12-20T05:00:00Z")),
            Some(ts("2027-01-04T05:00:00Z"))
        );
        assert_eq!(w.frozen_until(ts("2027-01-04T05:00:00Z")), None);
    }

    #[test]
    fn touching_windows_chain() {
        let a = FreezeWindow::parse("Mon 00:00", "Tue 00:00", "UTC").unwrap();
        let b = FreezeWindow::parse("Tue 00:00", "Wed 00:00", "UTC").unwrap();
        // 2026-11-23 is a Monday.
        assert_eq!(
            frozen_until(&[a, b], ts("2026-11-23T12:00:00Z")),
            Some(ts("2026-11-25T00:00:00Z"))
        );
    }

    #[test]
    fn bad_windows_say_what_to_write() {
        for (f, t, z) in [
            ("Fri 16:00", "Mon 08:00", "Mars/Olympus"),
            ("Friday at four", "Mon 08:00", "UTC"),
            ("Fri 16:00", "2027-01-04T00:00:00", "UTC"),
            ("2027-01-04", "2026-12-20", "UTC"),
            ("Fri 25:00", "Mon 08:00", "UTC"),
            ("Fri 16:00", "Fri 16:00", "UTC"),
        ] {
            assert!(FreezeWindow::parse(f, t, z).is_err(), "{f} {t} {z}");
        }
    }
}
