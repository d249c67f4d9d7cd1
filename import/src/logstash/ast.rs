//! The parsed Logstash config: sections, plugins, values and conditionals, as the grammar has them.
//!
//! Every node keeps the line and column it started at ([`Pos`]) so the translation can point back to
//! the source. Two trees compare equal when their content is equal, wherever it was written: [`Pos`]
//! takes no part in `==`, which is what the print-and-parse-again property needs.

/// Where a node starts in its file (1-based). Ignored by `==`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl PartialEq for Pos {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A whole file (Logstash reads a directory as its files concatenated, sorted by name).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    Input,
    Filter,
    Output,
}

impl SectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SectionKind::Input => "input",
            SectionKind::Filter => "filter",
            SectionKind::Output => "output",
        }
    }
}

/// `input { ... }`, `filter { ... }` or `output { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub kind: SectionKind,
    pub body: Vec<Item>,
    pub pos: Pos,
}

/// What a section or a branch arm holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Plugin(Plugin),
    Branch(Branch),
}

/// `name { attribute => value ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plugin {
    pub name: String,
    pub attributes: Vec<Attribute>,
    pub pos: Pos,
}

impl Plugin {
    /// The last value given for `name` (Logstash keeps the last of repeated settings, except for
    /// hashes and arrays it merges; [`Plugin::all`] returns every one).
    pub fn get(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().rev().find(|a| a.name == name)
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Attribute> + 'a {
        self.attributes.iter().filter(move |a| a.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: Value,
    pub pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    Double,
    Single,
}

/// A quoted string, as written between its quotes (Logstash does not process escapes by default:
/// `config.support_escapes` is off, so `"\t"` is a backslash and a `t`).
#[derive(Debug, Clone, PartialEq)]
pub struct Str {
    pub text: String,
    pub quote: Quote,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `codec => json { charset => "UTF-8" }`.
    Plugin(Plugin),
    Bareword(String),
    String(Str),
    /// As written (`1`, `-2.5`, `3.`).
    Number(String),
    Array(Vec<Value>),
    Hash(Vec<HashEntry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HashEntry {
    pub key: HashKey,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HashKey {
    Number(String),
    Bareword(String),
    String(Str),
}

impl HashKey {
    pub fn text(&self) -> &str {
        match self {
            HashKey::Number(s) | HashKey::Bareword(s) => s,
            HashKey::String(s) => &s.text,
        }
    }
}

/// `if ... { } else if ... { } else { }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// The `if` arm, then every `else if`.
    pub arms: Vec<Arm>,
    pub otherwise: Option<Vec<Item>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    pub condition: Condition,
    pub body: Vec<Item>,
    pub pos: Pos,
}

/// Expressions joined by boolean operators, flat as written. Logstash binds `and` tighter than `or`
/// (its compiler's shunting yard); the translation applies that, with `nand` as `and` and `xor` as `or`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub first: Box<Expr>,
    pub rest: Vec<(BoolOp, Expr)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoolOp {
    And,
    Or,
    Xor,
    Nand,
}

impl BoolOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BoolOp::And => "and",
            BoolOp::Or => "or",
            BoolOp::Xor => "xor",
            BoolOp::Nand => "nand",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Le,
    Ge,
    Lt,
    Gt,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Le => "<=",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Gt => ">",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `( condition )`
    Paren(Condition),
    /// `!( condition )`
    NotParen(Condition),
    /// `![field]`
    NotSelector(String),
    /// `item in list`
    In(RValue, RValue),
    /// `item not in list`
    NotIn(RValue, RValue),
    Compare(RValue, CompareOp, RValue),
    /// `value =~ /re/` (`matches` true) or `!~`; the pattern is a regexp or a string.
    Regex(RValue, bool, RValue),
    /// A bare value: `[field]` is true when the field is set and not false.
    Value(RValue),
}

#[derive(Debug, Clone, PartialEq)]
pub enum RValue {
    String(Str),
    Number(String),
    /// `[a][b]`, as written.
    Selector(String),
    Array(Vec<Value>),
    MethodCall(String, Vec<RValue>),
    /// `/re/`, as written between the slashes.
    Regexp(String),
}

/// `[a][b]` → `["a", "b"]`.
pub fn selector_path(selector: &str) -> Vec<&str> {
    selector.trim_start_matches('[').trim_end_matches(']').split("][").collect()
}
