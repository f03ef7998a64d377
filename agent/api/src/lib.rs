//! Wire types shared by the shakeout controller and its node agent. No I/O lives here,
//! so both sides (and tests) agree on one definition of every unit and spec.

pub mod units;

pub use units::{Dur, Percent, Rate, StatusRanges, UnitError};
