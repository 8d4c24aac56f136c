//! Unit tests of `commands`.

use super::*;

#[test]
fn px_rounds_up_and_never_reaches_zero() {
    assert_eq!(px_millis(Duration::ZERO), 1);
    assert_eq!(px_millis(Duration::from_nanos(1)), 1);
    assert_eq!(px_millis(Duration::from_micros(999)), 1);
    assert_eq!(px_millis(Duration::from_millis(1)), 1);
    assert_eq!(px_millis(Duration::from_micros(1_001)), 2);
    assert_eq!(px_millis(Duration::from_secs(300)), 300_000);
    assert_eq!(px_millis(Duration::MAX), MAX_PX_MILLIS);
}

#[tokio::test(start_paused = true)]
async fn a_future_that_never_answers_costs_one_timeout() {
    let timeout = Duration::from_millis(100);
    let never = std::future::pending::<redis::RedisResult<()>>();
    let err = bounded(timeout, &Redactor::default(), never)
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
}

#[test]
fn io_timeouts_are_timeouts_and_the_rest_unavailable() {
    let timeout = Duration::from_millis(100);
    let timed_out = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
    assert!(map_error(&timed_out, timeout, &Redactor::default()).is_timeout());
    let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    assert!(map_error(&refused, timeout, &Redactor::default()).is_unavailable());
}
