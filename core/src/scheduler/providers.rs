//! Capacity provider strategies, decided purely: how many of a service's (or a RunTask's) tasks
//! each capacity provider (node pool) gets, with ECS's arithmetic. The one provider with a
//! `base` gets its first `base` tasks; every task beyond goes by `weight` (1:3 sends one task in
//! four to the first). New tasks go where the split of the new total lacks them most, so a
//! service that grows one task at a time ends where one placed all at once would.

use crate::error::FieldError;
use berth_proto::v1::CapacityProviderStrategyItem as Item;

/// ECS's bounds on a strategy item.
pub const MAX_BASE: i32 = 100_000;
pub const MAX_WEIGHT: i32 = 1_000;
/// ECS's limit of providers in one strategy.
pub const MAX_ITEMS: usize = 20;

/// The default selector of a provider named `name`: nodes whose attribute
/// `berth.capacity-provider` is the provider's name.
pub fn default_selector(name: &str) -> String {
    format!("attribute:{ATTRIBUTE} == {name}")
}

/// The node attribute a provider selects by when it has no selector of its own.
pub const ATTRIBUTE: &str = "berth.capacity-provider";

/// The bounds ECS holds a strategy to, each error naming its item (`path[i].field`). Whether the
/// providers exist and belong to the cluster is the caller's to check.
pub fn check(path: &str, strategy: &[Item]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if strategy.len() > MAX_ITEMS {
        errs.push(FieldError::new(
            path,
            format!(
                "{} capacity providers; a strategy takes at most {MAX_ITEMS}",
                strategy.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, it) in strategy.iter().enumerate() {
        if it.capacity_provider.trim().is_empty() {
            errs.push(FieldError::new(
                format!("{path}[{i}].capacityProvider"),
                "is required: the name of a capacity provider of the cluster",
            ));
        } else if !seen.insert(it.capacity_provider.as_str()) {
            errs.push(FieldError::new(
                format!("{path}[{i}].capacityProvider"),
                format!(
                    "{} appears twice; name each capacity provider once",
                    crate::error::quote(&it.capacity_provider)
                ),
            ));
        }
        if !(0..=MAX_BASE).contains(&it.base) {
            errs.push(FieldError::new(
                format!("{path}[{i}].base"),
                format!("must be 0-{MAX_BASE}, got {}", it.base),
            ));
        }
        if !(0..=MAX_WEIGHT).contains(&it.weight) {
            errs.push(FieldError::new(
                format!("{path}[{i}].weight"),
                format!("must be 0-{MAX_WEIGHT}, got {}", it.weight),
            ));
        }
    }
    if strategy.iter().filter(|it| it.base > 0).count() > 1 {
        errs.push(FieldError::new(
            path,
            "only one capacity provider in a strategy can have a base greater than 0",
        ));
    }
    if strategy.len() > 1 && strategy.iter().all(|it| it.weight <= 0) {
        errs.push(FieldError::new(
            path,
            "at least one capacity provider in a strategy must have a weight greater than 0",
        ));
    }
    errs
}

/// How many of `total` tasks each item of `strategy` gets, in the strategy's order.
pub fn split(strategy: &[Item], total: usize) -> Vec<usize> {
    let mut counts = vec![0usize; strategy.len()];
    if strategy.is_empty() {
        return counts;
    }
    let mut left = total;
    if let Some(i) = strategy.iter().position(|it| it.base > 0) {
        let base = (strategy[i].base as usize).min(left);
        counts[i] = base;
        left -= base;
    }
    let weighted: Vec<usize> = (0..strategy.len())
        .filter(|&i| strategy[i].weight > 0)
        .collect();
    if weighted.is_empty() {
        // A lone provider of weight 0 (ECS allows it) takes everything.
        counts[0] += left;
        return counts;
    }
    let mut beyond = vec![0usize; strategy.len()];
    for _ in 0..left {
        // The provider whose next task is due first: (n+1)/w smallest, the heavier on a tie.
        let due = |i: usize| (beyond[i] as u128 + 1, strategy[i].weight as u128);
        let next = weighted
            .iter()
            .copied()
            .min_by(|&a, &b| {
                let ((na, wa), (nb, wb)) = (due(a), due(b));
                (na * wb).cmp(&(nb * wa)).then(wb.cmp(&wa))
            })
            .unwrap_or(weighted[0]);
        beyond[next] += 1;
    }
    for (c, b) in counts.iter_mut().zip(beyond) {
        *c += b;
    }
    counts
}

/// The item each of `n` new tasks goes to, given how many live tasks each item already has:
/// one at a time, to the item the split of the new total lacks most (the first on a tie).
pub fn assign(strategy: &[Item], live: &[usize], n: usize) -> Vec<usize> {
    if strategy.is_empty() {
        return Vec::new();
    }
    let mut have: Vec<usize> = (0..strategy.len())
        .map(|i| live.get(i).copied().unwrap_or(0))
        .collect();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let total = have.iter().sum::<usize>() + 1;
        let want = split(strategy, total);
        let pick = (0..strategy.len())
            .max_by(|&a, &b| {
                let lack = |i: usize| want[i] as i64 - have[i] as i64;
                lack(a).cmp(&lack(b)).then(b.cmp(&a))
            })
            .unwrap_or(0);
        have[pick] += 1;
        out.push(pick);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A strategy as (provider, base, weight) triples.
    type Spec<'a> = &'a [(&'a str, i32, i32)];

    fn s(items: &[(&str, i32, i32)]) -> Vec<Item> {
        items
            .iter()
            .map(|(n, base, weight)| Item {
                capacity_provider: n.to_string(),
                base: *base,
                weight: *weight,
            })
            .collect()
    }

    #[test]
    fn split_follows_ecs_base_then_weight() {
        // (strategy, total, expected counts)
        let cases: &[(Spec, usize, &[usize])] = &[
            // The case: base 2 on A, then 1:3 over A:B.
            (&[("A", 2, 1), ("B", 0, 3)], 10, &[4, 6]),
            (&[("A", 2, 1), ("B", 0, 3)], 2, &[2, 0]),
            (&[("A", 2, 1), ("B", 0, 3)], 1, &[1, 0]),
            (&[("A", 2, 1), ("B", 0, 3)], 6, &[3, 3]),
            (&[("A", 1, 1), ("B", 0, 1)], 5, &[3, 2]),
            (&[("A", 0, 1), ("B", 0, 1)], 4, &[2, 2]),
            (&[("A", 0, 1), ("B", 0, 4)], 10, &[2, 8]),
            // The base may sit on a provider of weight 0: it takes its base only.
            (&[("A", 3, 0), ("B", 0, 1)], 10, &[3, 7]),
            (&[("A", 0, 0)], 5, &[5]),
            (&[("A", 0, 1), ("B", 0, 0)], 5, &[5, 0]),
            (&[], 5, &[]),
            (&[("A", 0, 1), ("B", 0, 3)], 0, &[0, 0]),
        ];
        for (strategy, total, want) in cases {
            assert_eq!(
                split(&s(strategy), *total),
                want.to_vec(),
                "{strategy:?} over {total}"
            );
        }
    }

    #[test]
    fn assigning_one_at_a_time_ends_where_the_split_does() {
        let strategy = s(&[("A", 2, 1), ("B", 0, 3)]);
        let mut live = vec![0, 0];
        for _ in 0..10 {
            let i = assign(&strategy, &live, 1)[0];
            live[i] += 1;
        }
        assert_eq!(live, vec![4, 6]);
        let all: Vec<usize> = assign(&strategy, &[0, 0], 10);
        assert_eq!(all.iter().filter(|&&i| i == 0).count(), 4);
        assert_eq!(&all[..2], &[0, 0], "the base goes first");
    }

    #[test]
    fn new_tasks_fill_what_the_live_ones_lack() {
        // (live counts, new tasks, expected counts after)
        let strategy = s(&[("A", 2, 1), ("B", 0, 3)]);
        let cases: &[(&[usize], usize, &[usize])] = &[
            // B lost three tasks: all three replacements go to B.
            (&[4, 3], 3, &[4, 6]),
            // Everything on A (say B was empty before): the new ones go to B.
            (&[6, 0], 4, &[6, 4]),
            (&[0, 0], 0, &[0, 0]),
        ];
        for (live, n, want) in cases {
            let mut have = live.to_vec();
            for i in assign(&strategy, live, *n) {
                have[i] += 1;
            }
            assert_eq!(have, want.to_vec(), "{live:?} + {n}");
        }
    }

    #[test]
    fn bad_strategies_name_the_item_and_the_rule() {
        let cases: &[(Spec, &str)] = &[
            (&[("", 0, 1)], "s[0].capacityProvider: is required"),
            (
                &[("A", 0, 1), ("A", 0, 1)],
                "s[1].capacityProvider: \"A\" appears twice",
            ),
            (&[("A", -1, 1)], "s[0].base: must be 0-100000"),
            (&[("A", 100_001, 1)], "s[0].base: must be 0-100000"),
            (&[("A", 0, 1001)], "s[0].weight: must be 0-1000"),
            (&[("A", 1, 1), ("B", 1, 1)], "s: only one capacity provider"),
            (
                &[("A", 0, 0), ("B", 0, 0)],
                "s: at least one capacity provider",
            ),
        ];
        for (strategy, want) in cases {
            let errs = check("s", &s(strategy));
            assert!(
                errs.iter().any(|e| e.to_string().starts_with(want)),
                "{strategy:?}: {errs:?}"
            );
        }
        assert!(check("s", &s(&[("A", 2, 1), ("B", 0, 3)])).is_empty());
        assert!(check("s", &s(&[("A", 0, 0)])).is_empty());
    }
}
