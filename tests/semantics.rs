//! The scenarios of SEMANTICS.md (`tests/scenarios/`) against the
//! single-threaded selection core, [`numpool::Registry`].

mod scenarios;

use scenarios::backend::RegistryBackend;

scenario_tests!(RegistryBackend);
