//! Runs the vertices of a graph on a small pool of worker threads, each vertex as soon as all
//! of its inputs are done, so that independent stages build in parallel.
//!
//! The scheduler knows nothing of ops, keys or caches: it asks a [`RunVertex`] for a vertex's
//! inputs and to run it. That keeps the rules it must keep (inputs first, at most `workers` at
//! once, each vertex once, nothing new after the first failure, a panic or a cancellation)
//! testable with a fake runner, below.
//!
//! Scheduling is a scan of the pending list for a vertex whose inputs are all done. That is
//! quadratic in the number of vertices, which stays in the hundreds for real Dockerfiles; the
//! steps themselves (seconds each) dominate by orders of magnitude.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Condvar, Mutex, MutexGuard};

/// What the scheduler drives: a graph's vertices and how to run one.
pub(crate) trait RunVertex: Sync {
    type Id: Copy + Eq + Hash + Debug + Send + Sync;
    type Output: Clone + Send;
    type Error: Send;

    /// The vertices `id` needs first, in the order [`RunVertex::run`] gets their outputs.
    fn inputs(&self, id: Self::Id) -> &[Self::Id];

    /// Computes one vertex from its inputs' outputs. Called at most once per vertex, on a
    /// worker thread, without any scheduler lock held.
    fn run(&self, id: Self::Id, inputs: Vec<Self::Output>) -> Result<Self::Output, Self::Error>;

    /// True once the whole run is interrupted: no vertex starts after it says so, and the run
    /// ends [`Outcome::Cancelled`] even if the vertices running then succeed (what follows the
    /// run, an export, must not go on). Asked each time a worker looks for work, under the
    /// scheduler's lock, so it must be cheap.
    fn cancelled(&self) -> bool;
}

/// How a run ended.
#[derive(Debug)]
pub(crate) enum Outcome<Id, Output, Error> {
    /// Every vertex of the plan ran; their outputs by id.
    Done(HashMap<Id, Output>),
    /// The error of the first vertex that failed (it names its step itself). Vertices already
    /// running were let finish; none started after it.
    Failed(Error),
    /// The first vertex whose run panicked (a bug, not a step's failure), with the panic's
    /// message.
    Panicked { vertex: Id, message: String },
    /// [`RunVertex::cancelled`] said so before every vertex had run.
    Cancelled,
    /// Vertices that can never run: one of their inputs is neither in the plan nor done (the
    /// caller's plan is incomplete).
    Stuck(Vec<Id>),
}

/// The outcome of running `R`.
pub(crate) type OutcomeOf<R> =
    Outcome<<R as RunVertex>::Id, <R as RunVertex>::Output, <R as RunVertex>::Error>;

pub(crate) struct Scheduler {
    workers: usize,
}

/// Shared by the workers, behind one mutex.
struct State<R: RunVertex> {
    /// Not yet started, in the plan's order (the first ready one is taken first).
    pending: Vec<R::Id>,
    running: usize,
    done: HashMap<R::Id, R::Output>,
    /// Set once, by the first failure, panic, cancellation or dead end; workers then take
    /// nothing new and leave.
    stop: Option<OutcomeOf<R>>,
}

impl Scheduler {
    /// A scheduler running at most `workers` vertices at once (at least one).
    pub(crate) fn new(workers: usize) -> Self {
        Scheduler {
            workers: workers.max(1),
        }
    }

    /// Runs every vertex of `plan` (and only those), each after its inputs. An input must be
    /// in the plan; a vertex listed twice runs once.
    pub(crate) fn run<R: RunVertex>(&self, runner: &R, plan: Vec<R::Id>) -> OutcomeOf<R> {
        let mut seen = HashSet::new();
        let pending: Vec<R::Id> = plan.into_iter().filter(|id| seen.insert(*id)).collect();
        let state = Mutex::new(State::<R> {
            pending,
            running: 0,
            done: HashMap::new(),
            stop: None,
        });
        let wake = Condvar::new();
        std::thread::scope(|scope| {
            for _ in 0..self.workers {
                scope.spawn(|| worker(runner, &state, &wake));
            }
        });
        let state = state.into_inner().unwrap_or_else(|p| p.into_inner());
        state.stop.unwrap_or(Outcome::Done(state.done))
    }
}

/// The state, even if a worker panicked while holding it (only `RunVertex::inputs` or
/// `cancelled` could): what it holds is still consistent, since every update is one assignment.
fn lock<R: RunVertex>(state: &Mutex<State<R>>) -> MutexGuard<'_, State<R>> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn worker<R: RunVertex>(runner: &R, state: &Mutex<State<R>>, wake: &Condvar) {
    loop {
        let (id, inputs) = {
            let mut s = lock(state);
            loop {
                if s.stop.is_none() && runner.cancelled() {
                    s.stop = Some(Outcome::Cancelled);
                }
                if s.stop.is_some() || (s.pending.is_empty() && s.running == 0) {
                    wake.notify_all();
                    return;
                }
                let ready = s
                    .pending
                    .iter()
                    .position(|v| runner.inputs(*v).iter().all(|i| s.done.contains_key(i)));
                if let Some(pos) = ready {
                    let id = s.pending.remove(pos);
                    let inputs = runner
                        .inputs(id)
                        .iter()
                        .filter_map(|i| s.done.get(i).cloned())
                        .collect::<Vec<_>>();
                    s.running += 1;
                    break (id, inputs);
                }
                if s.running == 0 {
                    // Nothing runs that could make a pending vertex ready: it never will be.
                    s.stop = Some(Outcome::Stuck(s.pending.clone()));
                    continue;
                }
                s = wake.wait(s).unwrap_or_else(|p| p.into_inner());
            }
        };
        // Caught so that the vertex is accounted for: otherwise `running` never drops back
        // and the other workers wait for it forever.
        let result = catch_unwind(AssertUnwindSafe(|| runner.run(id, inputs)));
        let mut s = lock(state);
        s.running -= 1;
        match result {
            Ok(Ok(output)) => {
                s.done.insert(id, output);
            }
            Ok(Err(error)) => {
                if s.stop.is_none() {
                    s.stop = Some(Outcome::Failed(error));
                }
            }
            Err(payload) => {
                if s.stop.is_none() {
                    s.stop = Some(Outcome::Panicked {
                        vertex: id,
                        message: panic_message(payload.as_ref()),
                    });
                }
            }
        }
        wake.notify_all();
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, mpsc};
    use std::time::Duration;

    /// What a fake vertex does when run.
    #[derive(Clone, Copy)]
    enum Act {
        Succeed,
        Fail,
        Panic,
        /// Waits (up to [`MEET`]) until this many vertices run at once (unless some already
        /// did), then stays [`LINGER`] longer to see whether more come.
        Together(usize),
    }

    /// How long a vertex waits for the others it must run with: only a broken scheduler ever
    /// waits this long.
    const MEET: Duration = Duration::from_secs(10);
    /// How long a vertex stays after meeting, so that one too many running would be seen.
    const LINGER: Duration = Duration::from_millis(200);
    /// How long a whole run may take before the test calls it hung.
    const HUNG: Duration = Duration::from_secs(30);

    #[derive(Default)]
    struct Log {
        started: Vec<usize>,
        returned: HashSet<usize>,
        running: usize,
        max_running: usize,
        met: bool,
    }

    /// A graph of `acts.len()` vertices, numbered from 0; vertex `i` outputs `i + 100`.
    struct Fake {
        inputs: Vec<Vec<usize>>,
        acts: Vec<Act>,
        /// `cancelled()` says yes once this many vertices have returned.
        cancel_after: Option<usize>,
        log: Mutex<Log>,
        changed: Condvar,
    }

    impl Fake {
        fn new(acts: Vec<Act>, inputs: Vec<Vec<usize>>) -> Fake {
            assert_eq!(acts.len(), inputs.len());
            Fake {
                inputs,
                acts,
                cancel_after: None,
                log: Mutex::new(Log::default()),
                changed: Condvar::new(),
            }
        }

        fn independent(acts: Vec<Act>) -> Fake {
            let inputs = vec![vec![]; acts.len()];
            Fake::new(acts, inputs)
        }

        fn started(&self) -> Vec<usize> {
            self.log.lock().unwrap().started.clone()
        }

        fn act(&self, id: usize, inputs: Vec<usize>) -> Result<usize, String> {
            let expected: Vec<usize> = self.inputs[id].iter().map(|i| i + 100).collect();
            if inputs != expected {
                return Err(format!("{id} got inputs {inputs:?}, not {expected:?}"));
            }
            match self.acts[id] {
                Act::Succeed => Ok(id + 100),
                Act::Fail => Err(format!("{id} failed")),
                Act::Panic => panic!("boom in {id}"),
                Act::Together(n) => {
                    let log = self.log.lock().unwrap();
                    let (mut log, _) = self
                        .changed
                        .wait_timeout_while(log, MEET, |l| !l.met && l.running < n)
                        .unwrap();
                    if !log.met && log.running < n {
                        return Err(format!("{id}: only {} ran at once", log.running));
                    }
                    log.met = true;
                    let _ = self
                        .changed
                        .wait_timeout_while(log, LINGER, |l| l.running <= n)
                        .unwrap();
                    Ok(id + 100)
                }
            }
        }
    }

    impl RunVertex for Fake {
        type Id = usize;
        type Output = usize;
        type Error = String;

        fn inputs(&self, id: usize) -> &[usize] {
            &self.inputs[id]
        }

        fn run(&self, id: usize, inputs: Vec<usize>) -> Result<usize, String> {
            let early = {
                let mut log = self.log.lock().unwrap();
                log.started.push(id);
                log.running += 1;
                log.max_running = log.max_running.max(log.running);
                self.changed.notify_all();
                self.inputs[id].iter().any(|i| !log.returned.contains(i))
            };
            // Accounted for even when it panics, as a real step's guard would be.
            struct Returned<'a>(&'a Fake, usize);
            impl Drop for Returned<'_> {
                fn drop(&mut self) {
                    let mut log = self.0.log.lock().unwrap_or_else(|p| p.into_inner());
                    log.running -= 1;
                    log.returned.insert(self.1);
                    self.0.changed.notify_all();
                }
            }
            let _returned = Returned(self, id);
            if early {
                return Err(format!("{id} started before its inputs returned"));
            }
            self.act(id, inputs)
        }

        fn cancelled(&self) -> bool {
            self.cancel_after
                .is_some_and(|n| self.log.lock().unwrap().returned.len() >= n)
        }
    }

    /// Runs the fake on another thread, so that a hung scheduler fails the test instead of
    /// hanging it.
    fn run(
        fake: Fake,
        workers: usize,
        plan: Vec<usize>,
    ) -> (Outcome<usize, usize, String>, Arc<Fake>) {
        let fake = Arc::new(fake);
        let (tx, rx) = mpsc::channel();
        let shared = fake.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Scheduler::new(workers).run(shared.as_ref(), plan));
        });
        let outcome = rx.recv_timeout(HUNG).expect("the scheduler hung");
        (outcome, fake)
    }

    fn done(outcome: Outcome<usize, usize, String>) -> HashMap<usize, usize> {
        match outcome {
            Outcome::Done(outputs) => outputs,
            other => panic!("expected every vertex done, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_plan_is_done_at_once() {
        let (outcome, fake) = run(Fake::independent(vec![]), 4, vec![]);
        assert!(done(outcome).is_empty());
        assert!(fake.started().is_empty());
    }

    #[test]
    fn a_single_vertex_runs_and_yields_its_output() {
        let (outcome, fake) = run(Fake::independent(vec![Act::Succeed]), 4, vec![0]);
        assert_eq!(done(outcome), HashMap::from([(0, 100)]));
        assert_eq!(fake.started(), vec![0]);
    }

    /// A diamond and a chain, planned backwards: each vertex starts after its inputs returned
    /// and gets their outputs in its inputs' order.
    #[test]
    fn a_vertex_runs_after_its_inputs_and_gets_their_outputs() {
        let inputs = vec![vec![], vec![0], vec![0], vec![2, 1], vec![3], vec![]];
        let fake = Fake::new(vec![Act::Succeed; 6], inputs);
        let (outcome, _) = run(fake, 4, vec![5, 4, 3, 2, 1, 0]);
        let outputs = done(outcome);
        assert_eq!(outputs.len(), 6);
        assert!((0..6).all(|i| outputs[&i] == i + 100), "{outputs:?}");
    }

    #[test]
    fn independent_vertices_run_in_parallel_up_to_the_worker_count() {
        let (outcome, fake) = run(
            Fake::independent(vec![Act::Together(3); 3]),
            3,
            vec![0, 1, 2],
        );
        done(outcome);
        assert_eq!(fake.log.lock().unwrap().max_running, 3);
    }

    #[test]
    fn no_more_vertices_run_at_once_than_there_are_workers() {
        let (outcome, fake) = run(
            Fake::independent(vec![Act::Together(2); 5]),
            2,
            (0..5).collect(),
        );
        assert_eq!(done(outcome).len(), 5);
        assert_eq!(fake.log.lock().unwrap().max_running, 2);
    }

    /// A diamond with four workers, and a plan naming vertices twice.
    #[test]
    fn no_vertex_runs_twice() {
        let inputs = vec![vec![], vec![0], vec![0], vec![1, 2]];
        let fake = Fake::new(vec![Act::Succeed; 4], inputs);
        let (outcome, fake) = run(fake, 4, vec![0, 1, 2, 3, 3, 0, 2]);
        assert_eq!(done(outcome).len(), 4);
        let mut started = fake.started();
        started.sort();
        assert_eq!(started, vec![0, 1, 2, 3]);
    }

    /// One worker makes the order certain: 1 and 2 are ready when 0 fails, and neither starts;
    /// 2 would fail too, and the failure reported is still 0's.
    #[test]
    fn the_first_failure_stops_new_work_and_is_reported() {
        let fake = Fake::independent(vec![Act::Fail, Act::Succeed, Act::Fail]);
        let (outcome, fake) = run(fake, 1, vec![0, 1, 2]);
        match outcome {
            Outcome::Failed(error) => assert_eq!(error, "0 failed"),
            other => panic!("expected 0's failure, got {other:?}"),
        }
        assert_eq!(fake.started(), vec![0]);
    }

    /// The other worker waits for the panicking vertex's dependant; it must be told.
    #[test]
    fn a_panicking_vertex_is_reported_and_does_not_hang_the_run() {
        let fake = Fake::new(
            vec![Act::Panic, Act::Succeed, Act::Succeed],
            vec![vec![], vec![0], vec![0]],
        );
        let (outcome, fake) = run(fake, 2, vec![0, 1, 2]);
        match outcome {
            Outcome::Panicked { vertex, message } => {
                assert_eq!(vertex, 0);
                assert_eq!(message, "boom in 0");
            }
            other => panic!("expected 0's panic, got {other:?}"),
        }
        assert_eq!(fake.started(), vec![0]);
    }

    #[test]
    fn cancellation_stops_the_run_before_the_next_vertex() {
        let mut fake = Fake::independent(vec![Act::Succeed; 3]);
        fake.cancel_after = Some(1);
        let (outcome, fake) = run(fake, 1, vec![0, 1, 2]);
        assert!(matches!(outcome, Outcome::Cancelled), "{outcome:?}");
        assert_eq!(fake.started(), vec![0]);
    }

    /// The last vertex ran to success, but the run was interrupted meanwhile: it is still
    /// cancelled, or the build would go on to export after the user asked it to stop.
    #[test]
    fn a_cancellation_during_the_last_vertex_still_cancels_the_run() {
        let mut fake = Fake::independent(vec![Act::Succeed]);
        fake.cancel_after = Some(1);
        let (outcome, fake) = run(fake, 2, vec![0]);
        assert!(matches!(outcome, Outcome::Cancelled), "{outcome:?}");
        assert_eq!(fake.started(), vec![0]);
    }

    /// An input missing from the plan can never be done: the run says so instead of waiting.
    #[test]
    fn a_vertex_whose_input_is_not_planned_is_reported_stuck() {
        let fake = Fake::new(vec![Act::Succeed; 3], vec![vec![], vec![0], vec![]]);
        let (outcome, fake) = run(fake, 2, vec![1, 2]);
        assert!(
            matches!(&outcome, Outcome::Stuck(ids) if ids == &[1]),
            "{outcome:?}"
        );
        assert_eq!(fake.started(), vec![2]);
    }
}
