//! One broker connection (helper: to be written).
