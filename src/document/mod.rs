//! Answer documents: Answer XML and VoxML JSON into one instruction model.

pub mod check;
pub mod model;
