//! Schedule expressions and when they fire, purely: `rate(5 minutes)`, AWS's six-field
//! `cron(…)` and Scheduler's one-off `at(yyyy-mm-ddThh:mm:ss)`, read in an IANA time zone.
//! No clock is read here: the caller passes `after` and `now` (milliseconds since the epoch).
//!
//! Daylight saving time is handled as EventBridge Scheduler documents it: a cron time that
//! does not exist (the hour skipped in spring) is skipped, and a time that happens twice (the
//! hour repeated in autumn) runs once, at its first occurrence. A rate counts absolute time
//! (`rate(1 day)` is 24 hours, whatever the clocks do).

mod cron;
#[cfg(test)]
mod tests;

pub use cron::Cron;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

const MINUTE_MS: i64 = 60_000;
/// How far back a late tick is looked for: no flexible window is longer than a day.
const LOOK_BACK_MS: i64 = 24 * 60 * MINUTE_MS;

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Rate { period_ms: i64 },
    Cron(Box<Cron>),
    At(DateTime),
}

/// Parses `rate(…)`, `cron(…)` or (`one_off_allowed`: Scheduler) `at(…)`; the error says what
/// is wrong and what the expression should look like.
pub fn parse(expression: &str, one_off_allowed: bool) -> Result<Expr, String> {
    let e = expression.trim();
    let inner = |prefix: &str| {
        e.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(')'))
            .map(str::trim)
    };
    if let Some(r) = inner("rate(") {
        return rate(r);
    }
    if let Some(c) = inner("cron(") {
        return Ok(Expr::Cron(Box::new(Cron::parse(c)?)));
    }
    if let Some(a) = inner("at(") {
        if !one_off_allowed {
            return Err("at(...) one-off schedules are EventBridge Scheduler's; a rule takes rate(...) or cron(...)".into());
        }
        return at(a);
    }
    Err(format!(
        "{e:?} is not a schedule expression: use rate(5 minutes), cron(0 12 * * ? *){}",
        if one_off_allowed {
            " or at(2030-01-31T09:00:00)"
        } else {
            ""
        }
    ))
}

fn rate(r: &str) -> Result<Expr, String> {
    let (value, unit) = r
        .split_once(' ')
        .ok_or_else(|| format!("rate({r}) must be rate(VALUE UNIT), e.g. rate(5 minutes)"))?;
    let value: i64 = value
        .trim()
        .parse()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("rate({r}): {value:?} must be a positive whole number"))?;
    let (unit_ms, singular) = match unit.trim() {
        "minute" => (MINUTE_MS, true),
        "minutes" => (MINUTE_MS, false),
        "hour" => (60 * MINUTE_MS, true),
        "hours" => (60 * MINUTE_MS, false),
        "day" => (24 * 60 * MINUTE_MS, true),
        "days" => (24 * 60 * MINUTE_MS, false),
        u => {
            return Err(format!(
                "rate({r}): the unit {u:?} must be minute(s), hour(s) or day(s)"
            ))
        }
    };
    // AWS's rule: the unit is singular for 1 and plural otherwise.
    if singular != (value == 1) {
        return Err(format!(
            "rate({r}): use the singular unit for 1 and the plural for more (rate(1 minute), rate(5 minutes))"
        ));
    }
    value
        .checked_mul(unit_ms)
        .filter(|p| *p <= 3650 * 24 * 60 * MINUTE_MS)
        .map(|period_ms| Expr::Rate { period_ms })
        .ok_or_else(|| format!("rate({r}) is longer than ten years"))
}

fn at(a: &str) -> Result<Expr, String> {
    let bad = || format!("at({a}) must be at(yyyy-mm-ddThh:mm:ss), e.g. at(2030-01-31T09:00:00)");
    if a.len() != 19 || a.as_bytes().get(10) != Some(&b'T') {
        return Err(bad());
    }
    a.parse::<DateTime>().map(Expr::At).map_err(|_| bad())
}

/// The IANA time zone a schedule is read in; empty is UTC.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    if name.trim().is_empty() {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name.trim()).map_err(|_| {
        format!("{name:?} is not an IANA time zone name (e.g. America/New_York, Europe/Paris, UTC)")
    })
}

impl Expr {
    /// The first tick strictly after `after_ms`, or None when there is none (an `at` already
    /// past, or a cron whose years are over). A rate ticks at `anchor_ms` and every period on.
    pub fn next_after(&self, tz: &TimeZone, anchor_ms: i64, after_ms: i64) -> Option<i64> {
        match self {
            Expr::Rate { period_ms } => {
                if after_ms < anchor_ms {
                    return Some(anchor_ms);
                }
                let k = (after_ms - anchor_ms) / period_ms + 1;
                anchor_ms.checked_add(k.checked_mul(*period_ms)?)
            }
            Expr::At(dt) => {
                let t = tz.to_ambiguous_timestamp(*dt).compatible().ok()?;
                let ms = t.as_millisecond();
                (ms > after_ms).then_some(ms)
            }
            Expr::Cron(c) => next_cron(c, tz, after_ms),
        }
    }

    /// The latest tick in `(last_ms, now_ms]`, looking back at most a day: the tick a
    /// scheduler that woke at `now_ms` owes, if any.
    pub fn due(&self, tz: &TimeZone, anchor_ms: i64, last_ms: i64, now_ms: i64) -> Option<i64> {
        let from = last_ms.max(now_ms - LOOK_BACK_MS);
        if let Expr::Rate { period_ms } = self {
            if now_ms < anchor_ms {
                return None;
            }
            let t = anchor_ms + (now_ms - anchor_ms) / period_ms * period_ms;
            return (t > from).then_some(t);
        }
        let mut due = None;
        let mut after = from;
        while let Some(t) = self.next_after(tz, anchor_ms, after) {
            if t > now_ms {
                break;
            }
            due = Some(t);
            after = t;
        }
        due
    }
}

/// A stored schedule's timing, parsed: its expression read in its zone, from its anchor, within
/// its StartDate and EndDate (0: none).
#[derive(Debug, Clone)]
pub struct Timing {
    pub expr: Expr,
    pub tz: TimeZone,
    pub anchor_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Timing {
    pub fn new(
        expression: &str,
        one_off_allowed: bool,
        timezone: &str,
        anchor_ms: i64,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Self, String> {
        Ok(Self {
            expr: parse(expression, one_off_allowed)?,
            tz: zone(timezone)?,
            anchor_ms,
            start_ms,
            end_ms,
        })
    }

    fn within(&self, t: i64) -> bool {
        t >= self.start_ms && (self.end_ms == 0 || t <= self.end_ms)
    }

    /// The first tick after `after_ms` inside the start and end dates.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let from = after_ms.max(self.start_ms - 1);
        let t = self.expr.next_after(&self.tz, self.anchor_ms, from)?;
        self.within(t).then_some(t)
    }

    /// The latest tick in `(last_ms, now_ms]` inside the start and end dates.
    pub fn due(&self, last_ms: i64, now_ms: i64) -> Option<i64> {
        let now = if self.end_ms == 0 {
            now_ms
        } else {
            now_ms.min(self.end_ms)
        };
        let t = self.expr.due(&self.tz, self.anchor_ms, last_ms, now)?;
        self.within(t).then_some(t)
    }

    /// The next `n` ticks after `after_ms`.
    pub fn upcoming(&self, after_ms: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut at = after_ms;
        while out.len() < n {
            match self.next_after(at) {
                Some(t) => {
                    out.push(t);
                    at = t;
                }
                None => break,
            }
        }
        out
    }
}

fn next_cron(c: &Cron, tz: &TimeZone, after_ms: i64) -> Option<i64> {
    let after = Timestamp::from_millisecond(after_ms).ok()?;
    let local = after.to_zoned(tz.clone()).datetime();
    let mut day: Date = local.date();
    let end = Date::new(cron::LAST_YEAR, 12, 31).ok()?;
    while day <= end {
        if c.runs_on(day) {
            for h in c.hours() {
                for m in c.minutes() {
                    let dt = day.at(h, m, 0, 0);
                    let amb = tz.to_ambiguous_timestamp(dt);
                    // A time skipped by the clocks does not run; a repeated one runs first time.
                    let t = match amb.offset() {
                        AmbiguousOffset::Gap { .. } => continue,
                        _ => amb.earlier().ok()?,
                    };
                    if t > after {
                        return Some(t.as_millisecond());
                    }
                }
            }
        }
        day = day.tomorrow().ok()?;
    }
    None
}
