//! The scenarios of `docs/SELECTION.md` (`tests/scenarios/`) with the
//! caller running each request (`Engine::send_now`), as an embedder's
//! threads do.

mod scenarios;

use scenarios::backend::CallerRuns;

scenario_tests!(CallerRuns);
