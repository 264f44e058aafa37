//! Keeping rayon's workers awake between the parallel ops of a training step.
//!
//! rayon's workers go to sleep on a futex a few microseconds after they run out of work,
//! and a step is a string of parallel ops with a little serial work (Python, small ops)
//! between them. On a virtual machine a sleeping worker's vCPU halts, and after an idle
//! spell the guest stops polling before it halts (the haltpoll governor), so every wake-up
//! then costs a VM exit: for 50–200 ms after a pause the second thread joined each op too
//! late to help (measured: W1 4.7 ms a step after 0.3 s idle, 2.7 ms back to back).
//! OpenMP runtimes avoid this by spinning before they sleep (GOMP_SPINCOUNT,
//! KMP_BLOCKTIME); this is the same idea in rayon's terms: every parallel op pushes a
//! short deadline forward, and until it passes one job per worker polls the pool with
//! [`rayon::yield_now`] (running whatever work appears) instead of sleeping.
//!
//! ```
//! flux_core::parallel::warm(); // before a parallel section; cheap when already warm
//! assert!(rayon::current_num_threads() >= 1);
//! ```
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long workers keep polling after the last parallel op (OpenMP runtimes spin for
/// 0.2 ms to 200 ms; a step's serial gaps are tens of microseconds).
const WARM: Duration = Duration::from_millis(2);

static DEADLINE: AtomicU64 = AtomicU64::new(0);
static SPINNERS: AtomicUsize = AtomicUsize::new(0);

fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Call before a parallel section: keeps (or gets) the pool's other workers polling for
/// the next `WARM` (2 ms) instead of sleeping. A no-op with one thread.
///
/// ```
/// use flux_core::{parallel, DType, Tensor};
/// parallel::warm(); // the pool's workers now poll for 2 ms instead of sleeping
/// let x = Tensor::ones(&[1 << 16], DType::F32);
/// assert_eq!(x.sum_all().unwrap().item().unwrap(), 65536.0);
/// ```
pub fn warm() {
    let n = rayon::current_num_threads();
    if n < 2 {
        return;
    }
    DEADLINE.fetch_max(now_ns() + WARM.as_nanos() as u64, Ordering::SeqCst);
    // one poller for every worker but the caller's own thread
    let mut cur = SPINNERS.load(Ordering::SeqCst);
    while cur < n - 1 {
        match SPINNERS.compare_exchange_weak(cur, cur + 1, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => {
                rayon::spawn(poll);
                cur += 1;
            }
            Err(c) => cur = c,
        }
    }
}

fn poll() {
    let n = rayon::current_num_threads();
    loop {
        while now_ns() < DEADLINE.load(Ordering::SeqCst) {
            if rayon::yield_now() != Some(rayon::Yield::Executed) {
                std::hint::spin_loop();
            }
        }
        SPINNERS.fetch_sub(1, Ordering::SeqCst);
        // a warm() that found every poller still running may have pushed the deadline
        // after our last look (it moves the deadline before it counts pollers): then
        // take the slot back rather than leave it unserved
        let c = SPINNERS.load(Ordering::SeqCst);
        if now_ns() < DEADLINE.load(Ordering::SeqCst) && c < n - 1 && SPINNERS.compare_exchange(c, c + 1, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            continue;
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn pollers_run_the_work_and_leave_after_the_deadline() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let sum: u64 = pool.install(|| {
            warm();
            assert!(SPINNERS.load(Ordering::SeqCst) >= 1, "warm() started no poller");
            (0..1_000_000u64).into_par_iter().sum()
        });
        assert_eq!(sum, 999_999 * 1_000_000 / 2);
        // other tests may warm the pools too: wait (bounded) for every poller to leave
        let t = Instant::now();
        while SPINNERS.load(Ordering::SeqCst) > 0 && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(SPINNERS.load(Ordering::SeqCst), 0, "pollers kept spinning past the deadline");
    }
}
