//! Table tests: parsing, next ticks in UTC and in zones across daylight saving time, due ticks.

use super::*;

fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
}

fn iso(ms: i64) -> String {
    Timestamp::from_millisecond(ms).unwrap().to_string()
}

#[test]
fn expressions_parse_or_say_why_not() {
    let ok = [
        "rate(1 minute)",
        "rate(5 minutes)",
        "rate(1 hour)",
        "rate(12 hours)",
        "rate(1 day)",
        "rate(7 days)",
        "cron(0 12 * * ? *)",
        "cron(0/15 * * * ? *)",
        "cron(5,35 14 * * ? *)",
        "cron(15 10 ? * 6L 2026-2030)",
        "cron(0 18 ? * MON-FRI *)",
        "cron(0 8 1 * ? *)",
        "cron(0 9 L * ? *)",
        "cron(0 9 LW * ? *)",
        "cron(0 9 15W * ? *)",
        "cron(0 9 ? * 2#1 *)",
        "cron(0 9 ? JAN-MAR SUN *)",
        "at(2030-01-31T09:00:00)",
    ];
    for e in ok {
        assert!(parse(e, true).is_ok(), "{e}: {:?}", parse(e, true));
    }
    let bad = [
        ("rate(1 minutes)", "singular"),
        ("rate(5 minute)", "singular"),
        ("rate(0 minutes)", "positive"),
        ("rate(5 weeks)", "minute(s), hour(s) or day(s)"),
        ("cron(0 12 * * *)", "six fields"),
        (
            "cron(0 12 * * * *)",
            "exactly one of day-of-month and day-of-week",
        ),
        (
            "cron(0 12 ? * ? *)",
            "exactly one of day-of-month and day-of-week",
        ),
        ("cron(60 12 * * ? *)", "minutes"),
        ("cron(0 24 * * ? *)", "hours"),
        ("cron(0 12 ? * 8 *)", "day-of-week"),
        ("cron(0 12 ? * 2#6 *)", "1-5"),
        ("cron(0 12 * FOO ? *)", "month"),
        ("cron(0 12 * * ? 2300)", "year"),
        ("cron(0/0 12 * * ? *)", "step"),
        ("at(2030-01-31 09:00:00)", "yyyy-mm-ddThh:mm:ss"),
        ("every 5 minutes", "not a schedule expression"),
    ];
    for (e, why) in bad {
        let err = parse(e, true).unwrap_err();
        assert!(err.contains(why), "{e}: {err:?} should mention {why:?}");
    }
    assert!(parse("at(2030-01-31T09:00:00)", false)
        .unwrap_err()
        .contains("Scheduler"));
    assert!(zone("Mars/Olympus").unwrap_err().contains("IANA"));
}

#[test]
fn next_ticks_in_utc() {
    let utc = zone("").unwrap();
    // (expression, after, next)
    let table = [
        (
            "cron(* * * * ? *)",
            "2026-12-07T14:20:53Z",
            "2026-12-07T14:21:00Z",
        ),
        (
            "cron(* * * * ? *)",
            "2026-12-07T14:21:00Z",
            "2026-12-07T14:22:00Z",
        ),
        (
            "cron(0/15 * * * ? *)",
            "2026-12-07T14:20:00Z",
            "2026-12-07T14:30:00Z",
        ),
        (
            "cron(0 12 * * ? *)",
            "2026-12-07T12:00:00Z",
            "2026-12-08T12:00:00Z",
        ),
        (
            "cron(0 18 ? * MON-FRI *)",
            "2026-12-11T18:00:00Z",
            "2026-12-14T18:00:00Z",
        ),
        (
            "cron(0 9 L * ? *)",
            "2027-02-01T00:00:00Z",
            "2027-02-28T09:00:00Z",
        ),
        (
            "cron(0 9 L * ? *)",
            "2028-02-01T00:00:00Z",
            "2028-02-29T09:00:00Z",
        ),
        // 2027-01-31 is a Sunday: the last weekday is Friday the 29th.
        (
            "cron(0 9 LW * ? *)",
            "2027-01-01T00:00:00Z",
            "2027-01-29T09:00:00Z",
        ),
        // 2026-11-15 is a Sunday: the nearest weekday is Monday the 16th.
        (
            "cron(0 9 15W * ? *)",
            "2026-11-01T00:00:00Z",
            "2026-11-16T09:00:00Z",
        ),
        // 2026-08-01 is a Saturday: 1W does not leave the month, so Monday the 3rd.
        (
            "cron(0 9 1W * ? *)",
            "2026-07-31T00:00:00Z",
            "2026-08-03T09:00:00Z",
        ),
        // The first Monday of January 2027 is the 4th.
        (
            "cron(0 9 ? * 2#1 *)",
            "2027-01-01T00:00:00Z",
            "2027-01-04T09:00:00Z",
        ),
        // The last Friday of December 2026 is the 25th.
        (
            "cron(15 10 ? * 6L *)",
            "2026-12-01T00:00:00Z",
            "2026-12-25T10:15:00Z",
        ),
        (
            "cron(0 0 1 1 ? 2030)",
            "2026-12-07T00:00:00Z",
            "2030-01-01T00:00:00Z",
        ),
        (
            "at(2030-01-31T09:00:00)",
            "2026-12-07T00:00:00Z",
            "2030-01-31T09:00:00Z",
        ),
    ];
    for (e, after, next) in table {
        let x = parse(e, true).unwrap();
        let got = x.next_after(&utc, 0, ms(after)).map(iso);
        assert_eq!(got.as_deref(), Some(next), "{e} after {after}");
    }
    let once = parse("at(2026-01-01T00:00:00)", true).unwrap();
    assert_eq!(once.next_after(&utc, 0, ms("2026-06-01T00:00:00Z")), None);
    let over = parse("cron(0 0 1 1 ? 2020)", true).unwrap();
    assert_eq!(over.next_after(&utc, 0, ms("2026-06-01T00:00:00Z")), None);
}

#[test]
fn rates_count_from_their_anchor() {
    let utc = zone("UTC").unwrap();
    let r = parse("rate(5 minutes)", false).unwrap();
    let anchor = ms("2026-12-07T14:20:53Z");
    let table = [
        ("2026-12-07T14:00:00Z", "2026-12-07T14:20:53Z"),
        ("2026-12-07T14:20:53Z", "2026-12-07T14:25:53Z"),
        ("2026-12-07T14:26:00Z", "2026-12-07T14:30:53Z"),
    ];
    for (after, next) in table {
        let got = r.next_after(&utc, anchor, ms(after)).map(iso);
        assert_eq!(got.as_deref(), Some(next), "after {after}");
    }
}

#[test]
fn zones_and_daylight_saving_time() {
    let ny = zone("America/New_York").unwrap();
    let table = [
        // 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer.
        (
            "cron(0 9 * * ? *)",
            "2026-12-07T15:00:00Z",
            "2026-12-08T14:00:00Z",
        ),
        (
            "cron(0 9 * * ? *)",
            "2026-07-07T14:00:00Z",
            "2026-07-08T13:00:00Z",
        ),
        // 2027-03-14: 02:30 does not exist in New York; that day is skipped.
        (
            "cron(30 2 * * ? *)",
            "2027-03-13T08:00:00Z",
            "2027-03-15T06:30:00Z",
        ),
        // 2026-11-01: 01:30 happens twice; it runs at the first (EDT, 05:30 UTC) only.
        (
            "cron(30 1 * * ? *)",
            "2026-11-01T04:00:00Z",
            "2026-11-01T05:30:00Z",
        ),
        (
            "cron(30 1 * * ? *)",
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z",
        ),
        (
            "at(2027-03-14T12:00:00)",
            "2027-01-01T00:00:00Z",
            "2027-03-14T16:00:00Z",
        ),
    ];
    for (e, after, next) in table {
        let x = parse(e, true).unwrap();
        let got = x.next_after(&ny, 0, ms(after)).map(iso);
        assert_eq!(got.as_deref(), Some(next), "{e} after {after} in New York");
    }
    let paris = zone("Europe/Paris").unwrap();
    let x = parse("cron(0 0 * * ? *)", false).unwrap();
    assert_eq!(
        x.next_after(&paris, 0, ms("2026-12-07T12:00:00Z")).map(iso),
        Some("2026-12-07T23:00:00Z".into()),
        "midnight in Paris is 23:00 UTC in winter"
    );
    // A rate is absolute time: a day is 24 hours across the change.
    let day = parse("rate(1 day)", false).unwrap();
    let anchor = ms("2027-03-13T12:00:00Z");
    assert_eq!(
        day.next_after(&ny, anchor, anchor).map(iso),
        Some("2027-03-14T12:00:00Z".into())
    );
}

#[test]
fn the_due_tick_is_the_latest_one_not_yet_run() {
    let utc = zone("").unwrap();
    let every = parse("cron(* * * * ? *)", false).unwrap();
    let table = [
        // (last run, now, due)
        ("2026-12-07T14:20:00Z", "2026-12-07T14:20:59Z", None),
        (
            "2026-12-07T14:20:00Z",
            "2026-12-07T14:21:00Z",
            Some("2026-12-07T14:21:00Z"),
        ),
        (
            "2026-12-07T14:20:00Z",
            "2026-12-07T14:25:30Z",
            Some("2026-12-07T14:25:00Z"),
        ),
        ("2026-12-07T14:25:00Z", "2026-12-07T14:25:30Z", None),
        // Missed for days: only the latest tick is owed.
        (
            "2026-11-01T00:00:00Z",
            "2026-12-07T14:25:30Z",
            Some("2026-12-07T14:25:00Z"),
        ),
    ];
    for (last, now, due) in table {
        let got = every.due(&utc, 0, ms(last), ms(now)).map(iso);
        assert_eq!(got.as_deref(), due, "last {last}, now {now}");
    }
    let rate = parse("rate(10 minutes)", false).unwrap();
    let anchor = ms("2026-12-07T14:00:00Z");
    assert_eq!(
        rate.due(
            &utc,
            anchor,
            ms("2026-12-07T14:10:00Z"),
            ms("2026-12-07T14:35:00Z")
        )
        .map(iso),
        Some("2026-12-07T14:30:00Z".into())
    );
    assert_eq!(
        rate.due(
            &utc,
            anchor,
            ms("2026-12-07T14:30:00Z"),
            ms("2026-12-07T14:35:00Z")
        ),
        None
    );
}
