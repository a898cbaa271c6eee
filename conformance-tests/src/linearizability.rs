//! A linearizability checker (Wing & Gong's search with Lowe's memo of
//! visited configurations) for histories recorded against a real cluster.
//!
//! A history is a set of operations, each with the time it was called and,
//! when the caller learned the outcome, the time it returned and what it
//! returned. An operation whose outcome is unknown (a timeout, a reply lost
//! to a leader election) may have taken effect at any time after its call,
//! or never: the checker tries both.
//!
//! The history is linearizable when some order of the operations, which
//! keeps every operation that returned before another was called ahead of
//! it, takes the [`Model`] from its initial state through every recorded
//! output.

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification: the object the history should behave as.
pub trait Model {
    /// The object's state; hashed to remember configurations already
    /// explored.
    type State: Clone + Eq + Hash;
    /// What an operation asks.
    type Input;
    /// What an operation answers.
    type Output;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `input` is applied to `state` and answers `output`
    /// (`None`: the answer was never seen, only the effect matters); `None`
    /// when the object cannot answer `output` to `input` in `state`.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
}

/// One operation of a history. Times are on one clock (nanoseconds since
/// the recording started, say).
#[derive(Debug, Clone)]
pub struct Operation<I, O> {
    /// Which client called it (for reports).
    pub client: usize,
    /// When it was called.
    pub call: u64,
    /// When it returned, with its answer; `None` if the outcome is unknown.
    pub completed: Option<(u64, O)>,
    /// What it asked.
    pub input: I,
}

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// No order explains the history.
    NotLinearizable(Violation),
    /// The search gave up after exploring `explored` configurations (many
    /// operations of unknown outcome pending at once make it exponential).
    Inconclusive {
        /// Configurations explored.
        explored: usize,
    },
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckError::NotLinearizable(violation) => violation.fmt(f),
            CheckError::Inconclusive { explored } => write!(
                f,
                "inconclusive: gave up after exploring {explored} configurations"
            ),
        }
    }
}

/// Why a history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Operations in the history.
    pub operations: usize,
    /// The most operations any order the search tried could explain
    /// before it reached one the model could not answer.
    pub longest_prefix: usize,
    /// The indices of the operations (into the history) that order
    /// could not place next although they were due.
    pub stuck_at: Vec<usize>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not linearizable: at best {} of {} operations explained, then none of operations {:?} fits",
            self.longest_prefix, self.operations, self.stuck_at
        )
    }
}

/// How many configurations [`check`] explores before it gives up.
pub const DEFAULT_BUDGET: usize = 2_000_000;

/// Checks `history` against `model`, exploring at most [`DEFAULT_BUDGET`]
/// configurations.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> Result<(), CheckError> {
    check_within(model, history, DEFAULT_BUDGET)
}

/// Checks `history` against `model`, exploring at most `budget`
/// configurations.
pub fn check_within<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: usize,
) -> Result<(), CheckError> {
    // Candidates in call order, those with a known outcome first: an
    // operation of unknown outcome may be left out altogether, so trying
    // the others first finds an order sooner.
    let mut order: Vec<usize> = (0..history.len()).collect();
    order.sort_by_key(|&i| history[i].call);
    let (mut order, unknown): (Vec<usize>, Vec<usize>) = order
        .into_iter()
        .partition(|&i| history[i].completed.is_some());
    order.extend(unknown);
    let mut search = Search {
        model,
        history,
        order,
        linearized: vec![0; history.len().div_ceil(64)],
        visited: HashSet::new(),
        budget,
        longest: (0, Vec::new()),
    };
    let init = model.init();
    if search.explore(&init, 0) {
        Ok(())
    } else if search.visited.len() > budget {
        Err(CheckError::Inconclusive {
            explored: search.visited.len(),
        })
    } else {
        Err(CheckError::NotLinearizable(Violation {
            operations: history.len(),
            longest_prefix: search.longest.0,
            stuck_at: search.longest.1,
        }))
    }
}

struct Search<'a, M: Model> {
    model: &'a M,
    history: &'a [Operation<M::Input, M::Output>],
    // Indices ordered by call time.
    order: Vec<usize>,
    linearized: Vec<u64>,
    visited: HashSet<(Vec<u64>, M::State)>,
    budget: usize,
    longest: (usize, Vec<usize>),
}

impl<M: Model> Search<'_, M> {
    fn is_linearized(&self, i: usize) -> bool {
        self.linearized[i / 64] & (1 << (i % 64)) != 0
    }

    fn flip(&mut self, i: usize) {
        self.linearized[i / 64] ^= 1 << (i % 64);
    }

    /// Depth-first: places next any due operation the model can answer.
    fn explore(&mut self, state: &M::State, placed: usize) -> bool {
        // The earliest return among operations not yet placed: whatever
        // goes next was called before it.
        let mut earliest_return = None::<u64>;
        for (i, op) in self.history.iter().enumerate() {
            if let Some((ret, _)) = &op.completed {
                if !self.is_linearized(i) {
                    earliest_return = Some(earliest_return.map_or(*ret, |e| e.min(*ret)));
                }
            }
        }
        let Some(earliest_return) = earliest_return else {
            // Every completed operation is placed; the unknown ones may
            // never have happened.
            return true;
        };
        if self.visited.len() > self.budget
            || !self
                .visited
                .insert((self.linearized.clone(), state.clone()))
        {
            return false;
        }
        let mut due = Vec::new();
        for k in 0..self.order.len() {
            let i = self.order[k];
            let op = &self.history[i];
            // Known outcomes come first, each part in call order.
            if op.call > earliest_return {
                if op.completed.is_some() {
                    continue;
                }
                break;
            }
            if self.is_linearized(i) {
                continue;
            }
            due.push(i);
            let output = op.completed.as_ref().map(|(_, output)| output);
            if let Some(next) = self.model.step(state, &op.input, output) {
                self.flip(i);
                let found = self.explore(&next, placed + 1);
                self.flip(i);
                if found {
                    return true;
                }
            }
        }
        if placed > self.longest.0 || self.longest.1.is_empty() {
            self.longest = (placed, due);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register of one number.
    struct Register;

    enum Io {
        Write(u32),
        Read,
    }

    impl Model for Register {
        type State = u32;
        type Input = Io;
        type Output = Option<u32>;
        fn init(&self) -> u32 {
            0
        }
        fn step(&self, state: &u32, input: &Io, output: Option<&Option<u32>>) -> Option<u32> {
            match input {
                Io::Write(v) => Some(*v),
                Io::Read => match output {
                    Some(Some(seen)) if seen != state => None,
                    _ => Some(*state),
                },
            }
        }
    }

    fn op(
        call: u64,
        ret: Option<u64>,
        input: Io,
        output: Option<u32>,
    ) -> Operation<Io, Option<u32>> {
        Operation {
            client: 0,
            call,
            completed: ret.map(|r| (r, output)),
            input,
        }
    }

    #[test]
    fn overlapping_operations_may_go_either_way() {
        let history = [
            op(0, Some(10), Io::Write(1), None),
            op(1, Some(9), Io::Read, Some(1)),
            op(2, Some(8), Io::Read, Some(0)),
        ];
        assert_eq!(check(&Register, &history), Ok(()));
    }

    #[test]
    fn a_stale_read_after_a_write_returned_is_caught() {
        let history = [
            op(0, Some(1), Io::Write(1), None),
            op(2, Some(3), Io::Read, Some(0)),
        ];
        let Err(CheckError::NotLinearizable(violation)) = check(&Register, &history) else {
            panic!("a violation");
        };
        assert_eq!(violation.longest_prefix, 1);
        assert_eq!(violation.stuck_at, vec![1]);
    }

    #[test]
    fn an_unknown_outcome_may_have_happened_or_not() {
        let took_effect = [
            op(0, None, Io::Write(1), None),
            op(5, Some(6), Io::Read, Some(1)),
        ];
        assert_eq!(check(&Register, &took_effect), Ok(()));
        let never_did = [
            op(0, None, Io::Write(1), None),
            op(5, Some(6), Io::Read, Some(0)),
            op(7, Some(8), Io::Read, Some(0)),
        ];
        assert_eq!(check(&Register, &never_did), Ok(()));
        let flickers = [
            op(0, None, Io::Write(1), None),
            op(5, Some(6), Io::Read, Some(1)),
            op(7, Some(8), Io::Read, Some(0)),
        ];
        assert!(check(&Register, &flickers).is_err());
    }

    #[test]
    fn a_read_cannot_see_a_write_called_after_it_returned() {
        let history = [
            op(0, Some(1), Io::Read, Some(1)),
            op(2, Some(3), Io::Write(1), None),
        ];
        assert!(check(&Register, &history).is_err());
    }
}
