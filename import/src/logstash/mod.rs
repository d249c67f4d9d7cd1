//! Logstash pipelines: the config grammar (`grammar.pest`, after logstash-core's grammar.treetop), its
//! tree, a printer, and the translation into logpipe sections.

pub mod ast;
mod conditions;
mod filters;
mod inputs;
mod joda;
mod outputs;
mod parse;
mod plugins;
mod print;
mod text_filters;
mod translate;
mod values;

pub use parse::parse;
pub use print::print;
pub(crate) use translate::{translate, Source};
