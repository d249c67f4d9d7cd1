//! Security settings of a producer's connections (helper: to be written).

/// How connections authenticate and encrypt.
#[derive(Clone, Default)]
pub struct Security {}
