//! Unit tests of `seed`.

use rand::RngExt;

use super::*;

fn draws(seed: Seed, stream: Stream) -> Vec<u64> {
    let mut rng = seed.rng(stream);
    (0..8).map(|_| rng.random()).collect()
}

#[test]
fn a_seed_replays_every_stream_and_streams_differ() {
    let seed = Seed(42);
    for stream in [Stream::Mutator, Stream::Worker(0), Stream::Worker(31)] {
        assert_eq!(draws(seed, stream), draws(Seed(42), stream));
        assert_ne!(draws(seed, stream), draws(Seed(43), stream));
    }
    assert_ne!(draws(seed, Stream::Mutator), draws(seed, Stream::Worker(0)));
    assert_ne!(
        draws(seed, Stream::Worker(0)),
        draws(seed, Stream::Worker(1))
    );
}

#[test]
fn fresh_seeds_differ() {
    assert_ne!(Seed::fresh(), Seed::fresh());
}
