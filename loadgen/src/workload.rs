//! The workload: every profile's numbers, the recipients, and the request
//! stream, all derived from the seed (same seed, same workload).

use numpool::PhoneNumber;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

use crate::args::Dist;

/// Area codes the numbers and recipients are spread over.
pub const NPAS: [u64; 20] = [
    212, 312, 415, 206, 305, 617, 713, 404, 503, 602, 303, 214, 702, 615, 919, 512, 801, 816, 414,
    918,
];
const TOLL_FREE: [u64; 7] = [800, 833, 844, 855, 866, 877, 888];
/// Every fifth number of a pool is toll-free.
const TOLL_FREE_EVERY: u64 = 5;

/// One message: which profile sends it, to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub profile: u32,
    pub recipient: PhoneNumber,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    pub profiles: u32,
    pub numbers: u32,
    pub recipients: u64,
    pub dist: Dist,
    pub messages: u64,
    pub seed: u64,
    pub unhealthy_fraction: f64,
}

/// Why a workload cannot be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkloadError {
    #[error("{0} numbers in all is more than the 10M this generator numbers distinctly")]
    TooManyNumbers(u64),
    #[error("{0} recipients is more than the 100M this generator numbers distinctly")]
    TooManyRecipients(u64),
}

/// A generated workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub spec: WorkloadSpec,
    /// The numbers of each profile.
    pub senders: Vec<Vec<PhoneNumber>>,
    /// Numbers made unhealthy before the run.
    pub unhealthy: Vec<PhoneNumber>,
    pub requests: Vec<Request>,
}

fn nanp(npa: u64, line: u64) -> PhoneNumber {
    PhoneNumber::from_u64(10_000_000_000 + npa * 10_000_000 + line).expect("a valid NANP number")
}

/// Number `i` of profile `p`: long codes over [`NPAS`], every fifth toll-free.
pub fn sender(spec: &WorkloadSpec, p: u32, i: u32) -> PhoneNumber {
    let g = u64::from(p) * u64::from(spec.numbers) + u64::from(i);
    if g % TOLL_FREE_EVERY == TOLL_FREE_EVERY - 1 {
        nanp(TOLL_FREE[(g % 7) as usize], 2_000_000 + g / 7)
    } else {
        nanp(NPAS[(g % 20) as usize], 2_000_000 + g / 20)
    }
}

/// Recipient of rank `r`: its profile and number (rank 0 is the most popular).
pub fn recipient(spec: &WorkloadSpec, r: u64) -> Request {
    Request {
        profile: (r % u64::from(spec.profiles)) as u32,
        recipient: nanp(NPAS[(r % 20) as usize], 3_000_000 + r / 20),
    }
}

impl Workload {
    pub fn generate(spec: &WorkloadSpec) -> Result<Workload, WorkloadError> {
        let total = u64::from(spec.profiles) * u64::from(spec.numbers);
        if total > 10_000_000 {
            return Err(WorkloadError::TooManyNumbers(total));
        }
        if spec.recipients > 100_000_000 {
            return Err(WorkloadError::TooManyRecipients(spec.recipients));
        }
        let senders: Vec<Vec<PhoneNumber>> = (0..spec.profiles)
            .map(|p| (0..spec.numbers).map(|i| sender(spec, p, i)).collect())
            .collect();
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let unhealthy = senders
            .iter()
            .flatten()
            .filter(|_| rng.random::<f64>() < spec.unhealthy_fraction)
            .copied()
            .collect();
        let n = spec.recipients.max(1);
        let zipf = match spec.dist {
            Dist::Zipf(s) => Some(Zipf::new(n as f64, s).expect("checked exponent")),
            Dist::Uniform => None,
        };
        let requests = (0..spec.messages)
            .map(|_| {
                let rank = match &zipf {
                    Some(z) => (z.sample(&mut rng) as u64).clamp(1, n) - 1,
                    None => rng.random_range(0..n),
                };
                recipient(spec, rank)
            })
            .collect();
        Ok(Workload {
            spec: spec.clone(),
            senders,
            unhealthy,
            requests,
        })
    }
}
