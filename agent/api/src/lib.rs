//! Wire types shared by the shakeout controller and its node agent. No I/O lives here,
//! so both sides (and tests) agree on one definition of every unit and spec.

pub mod fault;
pub mod units;

pub use fault::*;
pub use units::{Dur, Percent, Rate, StatusRanges, UnitError, Validity};
