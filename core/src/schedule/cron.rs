//! AWS's six-field cron (`minutes hours day-of-month month day-of-week year`), as EventBridge
//! rules and Scheduler read it: `, - * /` everywhere, `?` in one of the two day fields, `L` and
//! `W` in day-of-month, `L` and `#` in day-of-week (1 = SUN … 7 = SAT).

use jiff::civil::Date;

/// A set of values of one field (0-255), as a bitmask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Set([u128; 2]);

impl Set {
    fn has(self, v: i32) -> bool {
        (0..256).contains(&v) && self.0[(v / 128) as usize] >> (v % 128) & 1 == 1
    }

    fn add(&mut self, v: i32) {
        self.0[(v / 128) as usize] |= 1u128 << (v % 128);
    }
}

/// Day of month: a set, the last day (`L`), the last weekday (`LW`), or the weekday nearest a
/// day (`15W`); `Any` for `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MonthDay {
    Any,
    Days(Set),
    Last,
    LastWeekday,
    NearestWeekday(i8),
}

/// Day of week (1 = SUN): a set, the last given weekday of the month (`6L`), or the nth (`2#3`);
/// `Any` for `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WeekDay {
    Any,
    Days(Set),
    LastOf(i8),
    Nth(i8, i8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Set,
    hours: Set,
    month_day: MonthDay,
    months: Set,
    week_day: WeekDay,
    /// Years 1970-2199, offset by 1970 (so they fit the mask).
    years: Set,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
pub const LAST_YEAR: i16 = 2199;

fn number(s: &str, names: &[&str], first: i32, what: &str) -> Result<i32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(first + i as i32);
    }
    s.parse::<i32>()
        .map_err(|_| format!("{what}: {s:?} is not a number"))
}

/// A field of `, - * /` over `lo..=hi`; `offset` shifts the stored values (years).
fn set(
    field: &str,
    lo: i32,
    hi: i32,
    names: &[&str],
    first: i32,
    offset: i32,
    what: &str,
) -> Result<Set, String> {
    let mut bits = Set([0; 2]);
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step = s
                    .parse::<i32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{what}: step {s:?} must be a positive number"))?;
                (r, step)
            }
            None => (part, 1),
        };
        let (from, to) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                number(a, names, first, what)?,
                number(b, names, first, what)?,
            )
        } else {
            let v = number(range, names, first, what)?;
            // `5/15` runs from 5 to the end of the range, as in AWS's examples (`0/15`).
            (v, if part.contains('/') { hi } else { v })
        };
        if from < lo || to > hi || from > to {
            return Err(format!(
                "{what}: {range:?} is outside {lo}-{hi} (or runs backwards)"
            ));
        }
        let mut v = from;
        while v <= to {
            bits.add(v - offset);
            v += step;
        }
    }
    Ok(bits)
}

fn month_day(field: &str) -> Result<MonthDay, String> {
    const WHAT: &str = "day-of-month";
    Ok(match field {
        "?" => MonthDay::Any,
        "L" => MonthDay::Last,
        "LW" => MonthDay::LastWeekday,
        f if f.ends_with('W') => {
            let d = number(&f[..f.len() - 1], &[], 0, WHAT)?;
            if !(1..=31).contains(&d) {
                return Err(format!("{WHAT}: {f:?}: the day must be 1-31"));
            }
            MonthDay::NearestWeekday(d as i8)
        }
        f => MonthDay::Days(set(f, 1, 31, &[], 0, 0, WHAT)?),
    })
}

fn week_day(field: &str) -> Result<WeekDay, String> {
    const WHAT: &str = "day-of-week";
    let day = |s: &str| -> Result<i8, String> {
        let d = number(s, &DAYS, 1, WHAT)?;
        if !(1..=7).contains(&d) {
            return Err(format!("{WHAT}: {s:?} must be 1-7 or SUN-SAT"));
        }
        Ok(d as i8)
    };
    Ok(match field {
        "?" => WeekDay::Any,
        "L" => WeekDay::LastOf(7),
        f if f.len() > 1 && f.ends_with('L') => WeekDay::LastOf(day(&f[..f.len() - 1])?),
        f if f.contains('#') => {
            let (d, n) = f.split_once('#').unwrap_or((f, ""));
            let n = n
                .parse::<i8>()
                .ok()
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(|| format!("{WHAT}: {f:?}: the week after # must be 1-5"))?;
            WeekDay::Nth(day(d)?, n)
        }
        f => WeekDay::Days(set(f, 1, 7, &DAYS, 1, 0, WHAT)?),
    })
}

impl Cron {
    /// The six fields between `cron(` and `)`.
    pub fn parse(fields: &str) -> Result<Self, String> {
        let f: Vec<&str> = fields.split_whitespace().collect();
        if f.len() != 6 {
            return Err(format!(
                "cron needs six fields (minutes hours day-of-month month day-of-week year), got {}",
                f.len()
            ));
        }
        let (md, wd) = (f[2], f[4]);
        if (md == "?") == (wd == "?") {
            return Err(
                "exactly one of day-of-month and day-of-week must be ? (e.g. cron(0 10 * * ? *))"
                    .into(),
            );
        }
        Ok(Self {
            minutes: set(f[0], 0, 59, &[], 0, 0, "minutes")?,
            hours: set(f[1], 0, 23, &[], 0, 0, "hours")?,
            month_day: month_day(md)?,
            months: set(f[3], 1, 12, &MONTHS, 1, 0, "month")?,
            week_day: week_day(wd)?,
            years: set(f[5], 1970, LAST_YEAR.into(), &[], 0, 1970, "year")?,
        })
    }

    /// Whether the cron runs on `d` at all.
    pub fn runs_on(&self, d: Date) -> bool {
        if !self.years.has(i32::from(d.year()) - 1970) || !self.months.has(d.month().into()) {
            return false;
        }
        let last = d.days_in_month();
        let day = d.day();
        let weekday = d.weekday().to_sunday_one_offset();
        let is_weekday = (2..=6).contains(&weekday);
        let month_ok = match self.month_day {
            MonthDay::Any => true,
            MonthDay::Days(s) => s.has(day.into()),
            MonthDay::Last => day == last,
            MonthDay::LastWeekday => is_weekday && (day == last || last_weekday(d) == day),
            MonthDay::NearestWeekday(n) => is_weekday && nearest_weekday(d, n) == Some(day),
        };
        let week_ok = match self.week_day {
            WeekDay::Any => true,
            WeekDay::Days(s) => s.has(weekday.into()),
            WeekDay::LastOf(w) => weekday == w && day + 7 > last,
            WeekDay::Nth(w, n) => weekday == w && (day - 1) / 7 + 1 == n,
        };
        month_ok && week_ok
    }

    pub fn hours(&self) -> impl Iterator<Item = i8> + '_ {
        (0..24).filter(|h| self.hours.has((*h).into()))
    }

    pub fn minutes(&self) -> impl Iterator<Item = i8> + '_ {
        (0..60).filter(|m| self.minutes.has((*m).into()))
    }
}

/// The last Monday-to-Friday of `d`'s month.
fn last_weekday(d: Date) -> i8 {
    let last = d.last_of_month();
    match last.weekday().to_sunday_one_offset() {
        1 => last.day() - 2,
        7 => last.day() - 1,
        _ => last.day(),
    }
}

/// The weekday nearest day `n` of `d`'s month, not leaving the month (Quartz's `W`).
fn nearest_weekday(d: Date, n: i8) -> Option<i8> {
    let last = d.days_in_month();
    if n > last {
        return None;
    }
    let target = Date::new(d.year(), d.month(), n).ok()?;
    Some(match target.weekday().to_sunday_one_offset() {
        7 if n == 1 => 3,
        7 => n - 1,
        1 if n == last => n - 2,
        1 => n + 1,
        _ => n,
    })
}
