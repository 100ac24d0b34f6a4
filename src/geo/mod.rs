//! Where a phone number is: its country calling code and ISO 3166-1 region
//! (`destinations`, for `whitelisted_destinations` and number records), and
//! the US state or Canadian province of a NANP area code (`npa`, for the
//! geomatch region fallback). Both answer from tables generated from
//! libphonenumber's metadata (`destinations_table.rs` by
//! `scripts/gen_destinations.py`, `npa_table.rs` by
//! `scripts/gen_npa_regions.py`; Apache-2.0, see `NOTICE`).

pub(crate) mod destinations;
mod destinations_table;
pub(crate) mod npa;
// Region names are only read by test support.
#[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
mod npa_table;
