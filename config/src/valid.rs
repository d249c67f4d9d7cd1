//! A section of a pipeline file that passed its checks ("parse, don't validate").
//!
//! Serde gives a config its shape; [`Validate`] checks what serde cannot (a listener that is not
//! host:port, a group id that is empty). [`Valid::new`] is the only way to make a [`Valid`], and the
//! constructors of the broker, the agent and the indexer take one, so every check runs exactly once, when
//! the file is loaded, and a bad value never reaches a running part.

use std::ops::Deref;

/// The checks of one config section. Errors name the key (`broker.listeners`).
pub trait Validate {
    type Error;
    fn validate(&self) -> Result<(), Self::Error>;
}

/// A config whose [`Validate::validate`] passed. Read it through `Deref`.
#[derive(Debug, Clone)]
pub struct Valid<T>(T);

impl<T: Validate> Valid<T> {
    /// Checks `config` once.
    pub fn new(config: T) -> Result<Self, T::Error> {
        config.validate()?;
        Ok(Self(config))
    }
}

impl<T> Valid<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Valid<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Port(u16);
    impl Validate for Port {
        type Error = String;
        fn validate(&self) -> Result<(), String> {
            if self.0 == 0 {
                Err("port: must not be 0".into())
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn only_a_config_that_passes_becomes_valid() {
        assert_eq!(Valid::new(Port(0)).unwrap_err(), "port: must not be 0");
        assert_eq!(Valid::new(Port(9092)).unwrap().0 .0, 9092);
    }
}
