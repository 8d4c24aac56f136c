//! Unit tests of `args`.

use super::*;

fn parse(words: &[&str]) -> Result<Args> {
    Args::parse(words.iter().map(ToString::to_string))
}

#[test]
fn arguments_have_defaults_and_bounds() {
    let defaults = parse(&[]).unwrap();
    assert_eq!(defaults, Args::defaults(defaults.seed));
    assert_eq!(parse(&["--seconds", "15"]).unwrap().seconds, 15);
    assert!(parse(&["--seconds", "1"]).is_err());
    assert!(parse(&["--seconds"]).is_err());
    assert!(parse(&["--bogus", "1"]).is_err());
    let ci = parse(&["--seconds", "15"]).unwrap();
    assert_eq!(ci.warm_up(), Duration::from_secs(5));
    assert!(!ci.judges_rss());
    assert!(Args::defaults(Seed(0)).judges_rss());
    assert_eq!(Args::defaults(Seed(0)).warm_up(), Duration::from_secs(20));
}

#[test]
fn the_seed_is_fresh_unless_given() {
    assert_ne!(parse(&[]).unwrap().seed, parse(&[]).unwrap().seed);
    let given = parse(&["--seconds", "15", "--seed", "42"]).unwrap();
    assert_eq!(given.seed, Seed(42));
    assert_eq!(
        parse(&["--seed", &u64::MAX.to_string()]).unwrap().seed,
        Seed(u64::MAX)
    );
    assert!(parse(&["--seed", "-1"]).is_err());
    assert!(parse(&["--seed", "x"]).is_err());
    assert!(parse(&["--seed"]).is_err());
}

#[test]
fn the_replay_command_carries_every_argument_that_differs_from_the_defaults() {
    assert_eq!(
        parse(&["--seconds", "15", "--seed", "42"])
            .unwrap()
            .replay(),
        "cargo xtask soak --seconds 15 --seed 42"
    );
    assert_eq!(
        parse(&["--seed", "7", "--tasks", "4"]).unwrap().replay(),
        "soak --seconds 60 --users 1000 --tasks 4 --mutations 25 --seed 7"
    );
}
