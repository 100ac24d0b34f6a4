//! The scenarios of `docs/SELECTION.md` (`tests/scenarios/`) with the
//! caller running each request (`Engine::send_now`), as an embedder's
//! threads do.

mod scenarios;

use scenarios::backend::CallerRuns;

scenario_tests!(CallerRuns);

#[test]
fn without_load_aware_picks_round_robin_ignores_queues() {
    scenarios::capacity::without_load_aware_picks_round_robin_ignores_queues::<
        scenarios::backend::RoundRobin,
    >();
}
