//! Invoice numbering runs combined inside one process.
//!
//! An invoice is numbered after the transaction that finalized it commits,
//! by a numbering run that gives every finalized invoice of the tenant
//! still waiting its number (see `number_invoices` in the SQL helpers). The
//! database lets one run per tenant go at a time; without this, every call
//! of a busy tenant would queue there for its own run, each run a
//! transaction of its own. Here a call waits in memory for the run in
//! progress, and when that run started after the call's commit it has
//! numbered the call's invoice too: the call runs nothing itself. Only when
//! no such run has finished does it run one, which then numbers everything
//! waiting, so under load a run numbers many invoices and each call costs a
//! fraction of one. The numbers a run gave are kept in memory until asked
//! for, so the caller that wrote an invoice learns its number without
//! reading it back.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use recur_storage::StorageError;

/// At most this many numbers are kept for their callers; a number not
/// asked for is read from the database instead.
const KEPT: usize = 10_000;

#[derive(Default)]
pub struct Numbering {
    tenants: Mutex<HashMap<String, Arc<TenantRuns>>>,
}

#[derive(Default)]
struct TenantRuns {
    /// Runs started (changed only while `finished` is held).
    started: AtomicU64,
    /// Runs finished; held while a run is in progress.
    finished: tokio::sync::Mutex<u64>,
    /// Invoice id → number given by a run of this process, until asked for.
    numbers: Mutex<HashMap<String, String>>,
}

impl Numbering {
    fn tenant(&self, tenant: &str) -> Arc<TenantRuns> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants.entry(tenant.to_string()).or_default().clone()
    }

    /// Makes sure a numbering run of `tenant` started after this call began
    /// has finished: the one in progress when it did, or `run` (which
    /// answers the invoice ids it numbered with their numbers).
    pub async fn after_commit<F, Fut>(&self, tenant: &str, run: F) -> Result<(), StorageError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<(String, String)>, StorageError>>,
    {
        let t = self.tenant(tenant);
        // A run counted after this load starts after this call's commit.
        let needed = t.started.load(Ordering::SeqCst) + 1;
        let mut finished = t.finished.lock().await;
        if *finished >= needed {
            return Ok(());
        }
        t.started.fetch_add(1, Ordering::SeqCst);
        match run().await {
            Ok(numbered) => {
                *finished += 1;
                let mut numbers = t.numbers.lock().unwrap_or_else(|p| p.into_inner());
                if numbers.len() + numbered.len() > KEPT {
                    numbers.clear();
                }
                numbers.extend(numbered);
                Ok(())
            }
            Err(e) => {
                // Not finished: nobody may count on it.
                t.started.fetch_sub(1, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// The number a run of this process gave invoice `id`, if not asked
    /// for before.
    pub fn take(&self, tenant: &str, id: &str) -> Option<String> {
        let t = self.tenant(tenant);
        let mut numbers = t.numbers.lock().unwrap_or_else(|p| p.into_inner());
        numbers.remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn a_call_after_a_finished_run_runs_again() {
        let n = Numbering::default();
        let runs = AtomicUsize::new(0);
        for _ in 0..3 {
            n.after_commit("t", || async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(vec![])
            })
            .await
            .unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_waiting_for_a_run_share_the_next() {
        let n = Arc::new(Numbering::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let (open_tx, open_rx) = tokio::sync::oneshot::channel::<()>();
        // A run in progress, held until the others are waiting.
        let first = {
            let (n, runs) = (n.clone(), runs.clone());
            tokio::spawn(async move {
                n.after_commit("t", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let _ = open_rx.await;
                    Ok(vec![("inv_1".to_string(), "INV-000001".to_string())])
                })
                .await
            })
        };
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Ten calls arrive during it: it may have started before their
        // commits, so one more run is needed, and one is enough.
        let waiting: Vec<_> = (0..10)
            .map(|i| {
                let (n, runs) = (n.clone(), runs.clone());
                tokio::spawn(async move {
                    n.after_commit("t", || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        Ok(vec![(format!("inv_{}", i + 2), format!("INV-{:06}", i + 2))])
                    })
                    .await
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        open_tx.send(()).unwrap();
        first.await.unwrap().unwrap();
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(n.take("t", "inv_1").as_deref(), Some("INV-000001"));
        assert_eq!(n.take("t", "inv_1"), None, "a number is handed out once");
        assert_eq!(n.take("other", "inv_1"), None);
    }

    #[tokio::test]
    async fn a_failed_run_counts_for_nobody() {
        let n = Numbering::default();
        let failed =
            n.after_commit("t", || async { Err::<Vec<(String, String)>, _>(StorageError::Unavailable("down".into())) });
        assert!(failed.await.is_err());
        let runs = AtomicUsize::new(0);
        n.after_commit("t", || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(vec![])
        })
        .await
        .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
