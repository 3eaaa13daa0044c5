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
    /// The index of the latest run begun (set only while `finished` is
    /// held, never lowered).
    started: AtomicU64,
    /// The index of the latest run finished; held while a run is in
    /// progress.
    finished: tokio::sync::Mutex<u64>,
    /// Invoice id → number given by a run of this process, until asked for.
    numbers: Mutex<HashMap<String, String>>,
}

impl Numbering {
    fn tenant(&self, tenant: &str) -> Arc<TenantRuns> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = tenants.get(tenant) {
            return t.clone();
        }
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
        // This run's index. A run that failed or was abandoned (its caller
        // went away) leaves `started` one ahead; the next run takes the
        // same index, so it satisfies nobody who came during the failed one
        // and the counts agree again once it finishes.
        let index = *finished + 1;
        t.started.store(index, Ordering::SeqCst);
        let numbered = run().await?;
        *finished = index;
        let mut numbers = t.numbers.lock().unwrap_or_else(|p| p.into_inner());
        if numbers.len() + numbered.len() > KEPT {
            numbers.clear();
        }
        numbers.extend(numbered);
        Ok(())
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

    /// A run held in progress until `waiting` further calls have arrived,
    /// then let finish; answers when all are done. Every run counts itself
    /// in `runs` and numbers one invoice (`inv_<run>`).
    async fn calls_during_a_run(n: &Arc<Numbering>, runs: &Arc<AtomicUsize>, waiting: usize) {
        let call = |hold: Option<tokio::sync::oneshot::Receiver<()>>| {
            let (n, runs) = (n.clone(), runs.clone());
            tokio::spawn(async move {
                n.after_commit("t", || async move {
                    let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
                    if let Some(hold) = hold {
                        let _ = hold.await;
                    }
                    Ok(vec![(format!("inv_{run}"), format!("INV-{run:06}"))])
                })
                .await
            })
        };
        let before = runs.load(Ordering::SeqCst);
        let (open_tx, open_rx) = tokio::sync::oneshot::channel::<()>();
        let first = call(Some(open_rx));
        while runs.load(Ordering::SeqCst) == before {
            tokio::task::yield_now().await;
        }
        let others: Vec<_> = (0..waiting).map(|_| call(None)).collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        open_tx.send(()).unwrap();
        first.await.unwrap().unwrap();
        for o in others {
            o.await.unwrap().unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_waiting_for_a_run_share_the_next() {
        let n = Arc::new(Numbering::default());
        let runs = Arc::new(AtomicUsize::new(0));
        // Ten calls arrive during a run: it may have started before their
        // commits, so one more run is needed, and one is enough.
        calls_during_a_run(&n, &runs, 10).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(n.take("t", "inv_1").as_deref(), Some("INV-000001"));
        assert_eq!(n.take("t", "inv_1"), None, "a number is handed out once");
        assert_eq!(n.take("other", "inv_2"), None);
        assert_eq!(n.take("t", "inv_2").as_deref(), Some("INV-000002"));
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

    #[tokio::test]
    async fn an_abandoned_run_does_not_stop_calls_from_sharing_runs() {
        let n = Arc::new(Numbering::default());
        // A run whose caller goes away before it finishes.
        let abandoned = n.after_commit("t", std::future::pending::<Result<Vec<(String, String)>, StorageError>>);
        assert!(tokio::time::timeout(std::time::Duration::from_millis(20), abandoned).await.is_err());
        let runs = Arc::new(AtomicUsize::new(0));
        n.after_commit("t", || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(vec![])
        })
        .await
        .unwrap();
        // The counts agree again: two calls arriving during a run share
        // the next one.
        calls_during_a_run(&n, &runs, 2).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "the two waiting calls shared one run");
    }
}
