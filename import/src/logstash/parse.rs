//! The pest parser for the grammar in `grammar.pest`, and the conversion of its parse tree into
//! [`Config`](super::ast::Config).

use pest::iterators::Pair;
use pest::Parser;
use pest_derive::Parser;

use super::ast::*;
use crate::error::{Error, Result};

#[derive(Parser)]
#[grammar = "logstash/grammar.pest"]
struct LogstashParser;

/// Parses one file's text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Config> {
    // Record which literal tokens were expected, so errors can say `}` or `=>`.
    pest::set_error_detail(true);
    let mut pairs = LogstashParser::parse(Rule::config, text).map_err(|e| syntax_error(file, text, e))?;
    let config = pairs.next().expect("the config rule always yields one pair");
    let sections = config.into_inner().filter(|p| p.as_rule() == Rule::plugin_section).map(section).collect();
    Ok(Config { sections })
}

fn syntax_error(file: &str, text: &str, e: pest::error::Error<Rule>) -> Error {
    let (mut line, mut col) = match e.line_col {
        pest::error::LineColLocation::Pos(p) | pest::error::LineColLocation::Span(p, _) => p,
    };
    let mut expected: Vec<String> = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => positives.iter().filter_map(describe).collect(),
        pest::error::ErrorVariant::CustomError { message } => vec![message.clone()],
    };
    if let Some(attempts) = e.parse_attempts() {
        // The furthest point the parser reached, and the punctuation it wanted there (`}`, `=>`, `,`):
        // what a person missed. Letters, digits and quotes only say "a name or a value", which the rule
        // names already say.
        let (l, c) = pest::Position::new(text, attempts.max_position).map(|p| p.line_col()).unwrap_or((line, col));
        if (l, c) > (line, col) {
            (line, col) = (l, c);
            expected.clear();
        }
        for token in attempts.expected_tokens() {
            let token = token.to_string();
            if matches!(token.as_str(), "}" | "{" | "=>" | "]" | "[" | ")" | "," | "else" | "if") {
                expected.push(format!("`{token}`"));
            }
        }
    }
    expected.sort();
    expected.dedup();
    let found = text
        .lines()
        .nth(line.saturating_sub(1))
        .map(|l| l.chars().skip(col.saturating_sub(1)).take(20).collect::<String>())
        .filter(|s| !s.trim().is_empty())
        .map(|s| format!("`{}`", s.trim_end()))
        .unwrap_or_else(|| "the end of the file".into());
    let expected = match expected.split_last() {
        None => "something else".to_string(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    };
    Error::Syntax { file: file.to_string(), line, col, message: format!("expected {expected}, found {found}") }
}

/// A rule's name for people, or none for rules that only repeat what their alternatives say.
fn describe(rule: &Rule) -> Option<String> {
    Some(
        match rule {
            Rule::plugin_section | Rule::plugin_type => "`input`, `filter` or `output`",
            Rule::plugin => "a plugin",
            Rule::branch | Rule::if_arm => "`if`",
            Rule::else_if | Rule::else_arm => "`else`",
            Rule::attribute | Rule::attributes => "a setting (`name => value`)",
            Rule::name | Rule::bare_name => "a name",
            Rule::bareword => "a bareword",
            Rule::double_quoted_string | Rule::single_quoted_string => "a string",
            Rule::number => "a number",
            Rule::array => "an array",
            Rule::hash => "a hash",
            Rule::hashentry => "a hash entry (`key => value`)",
            Rule::condition | Rule::paren | Rule::negative_expression => "a condition",
            Rule::in_expression | Rule::not_in_expression | Rule::compare_expression | Rule::regexp_expression => {
                "a condition"
            }
            Rule::compare_operator => "a comparison (`==`, `!=`, `<`, `>`, `<=`, `>=`)",
            Rule::regexp_operator => "`=~` or `!~`",
            Rule::boolean_operator => "`and`, `or`, `xor` or `nand`",
            Rule::selector => "a field reference such as `[field]`",
            Rule::method_call => "a method call",
            Rule::regexp => "a regexp (`/.../`)",
            Rule::EOI => "the end of the file",
            _ => return None,
        }
        .to_string(),
    )
}

fn pos(pair: &Pair<Rule>) -> Pos {
    let (line, col) = pair.line_col();
    Pos { line, col }
}

fn section(pair: Pair<Rule>) -> Section {
    let p = pos(&pair);
    let mut inner = pair.into_inner();
    let kind = match inner.next().expect("plugin_type").as_str() {
        "input" => SectionKind::Input,
        "filter" => SectionKind::Filter,
        _ => SectionKind::Output,
    };
    Section { kind, body: items(inner), pos: p }
}

fn items<'a>(pairs: impl Iterator<Item = Pair<'a, Rule>>) -> Vec<Item> {
    pairs
        .filter_map(|p| match p.as_rule() {
            Rule::plugin => Some(Item::Plugin(plugin(p))),
            Rule::branch => Some(Item::Branch(branch(p))),
            _ => None,
        })
        .collect()
}

fn plugin(pair: Pair<Rule>) -> Plugin {
    let p = pos(&pair);
    let mut inner = pair.into_inner();
    let name = name(inner.next().expect("plugin name"));
    let attributes = inner
        .next()
        .map(|attrs| {
            attrs
                .into_inner()
                .map(|a| {
                    let ap = pos(&a);
                    let mut parts = a.into_inner();
                    let name = name_of(parts.next().expect("attribute name"));
                    Attribute { name, value: value(parts.next().expect("attribute value")), pos: ap }
                })
                .collect()
        })
        .unwrap_or_default();
    Plugin { name, attributes, pos: p }
}

fn name_of(pair: Pair<Rule>) -> String {
    name(pair)
}

fn name(pair: Pair<Rule>) -> String {
    let inner = pair.into_inner().next().expect("name has one child");
    match inner.as_rule() {
        Rule::bare_name => inner.as_str().to_string(),
        _ => string(inner).text,
    }
}

fn string(pair: Pair<Rule>) -> Str {
    let quote = if pair.as_rule() == Rule::single_quoted_string { Quote::Single } else { Quote::Double };
    let text = pair.into_inner().next().map(|p| p.as_str().to_string()).unwrap_or_default();
    Str { text, quote }
}

fn value(pair: Pair<Rule>) -> Value {
    match pair.as_rule() {
        Rule::plugin => Value::Plugin(plugin(pair)),
        Rule::bareword => Value::Bareword(pair.as_str().to_string()),
        Rule::double_quoted_string | Rule::single_quoted_string => Value::String(string(pair)),
        Rule::number => Value::Number(pair.as_str().to_string()),
        Rule::array => Value::Array(pair.into_inner().map(value).collect()),
        Rule::hash => Value::Hash(
            pair.into_inner()
                .map(|entry| {
                    let mut parts = entry.into_inner();
                    let k = parts.next().expect("hash key");
                    let key = match k.as_rule() {
                        Rule::number => HashKey::Number(k.as_str().to_string()),
                        Rule::bareword => HashKey::Bareword(k.as_str().to_string()),
                        _ => HashKey::String(string(k)),
                    };
                    HashEntry { key, value: value(parts.next().expect("hash value")) }
                })
                .collect(),
        ),
        other => unreachable!("not a value: {other:?}"),
    }
}

fn branch(pair: Pair<Rule>) -> Branch {
    let mut arms = Vec::new();
    let mut otherwise = None;
    for arm in pair.into_inner() {
        match arm.as_rule() {
            Rule::if_arm | Rule::else_if => {
                let p = pos(&arm);
                let mut inner = arm.into_inner();
                let condition = condition(inner.next().expect("condition"));
                arms.push(Arm { condition, body: items(inner), pos: p });
            }
            Rule::else_arm => otherwise = Some(items(arm.into_inner())),
            _ => {}
        }
    }
    Branch { arms, otherwise }
}

fn condition(pair: Pair<Rule>) -> Condition {
    let mut inner = pair.into_inner();
    let first = Box::new(expr(inner.next().expect("expression")));
    let mut rest = Vec::new();
    while let (Some(op), Some(e)) = (inner.next(), inner.next()) {
        let op = match op.as_str() {
            "and" => BoolOp::And,
            "or" => BoolOp::Or,
            "xor" => BoolOp::Xor,
            _ => BoolOp::Nand,
        };
        rest.push((op, expr(e)));
    }
    Condition { first, rest }
}

fn expr(pair: Pair<Rule>) -> Expr {
    match pair.as_rule() {
        Rule::paren => Expr::Paren(condition(pair.into_inner().next().expect("condition"))),
        Rule::negative_expression => {
            let inner = pair.into_inner().next().expect("negated");
            match inner.as_rule() {
                Rule::condition => Expr::NotParen(condition(inner)),
                _ => Expr::NotSelector(inner.as_str().to_string()),
            }
        }
        Rule::in_expression | Rule::not_in_expression => {
            let not = pair.as_rule() == Rule::not_in_expression;
            let mut inner = pair.into_inner();
            let item = rvalue(inner.next().expect("item"));
            let list = rvalue(inner.next().expect("list"));
            if not {
                Expr::NotIn(item, list)
            } else {
                Expr::In(item, list)
            }
        }
        Rule::compare_expression => {
            let mut inner = pair.into_inner();
            let left = rvalue(inner.next().expect("left"));
            let op = match inner.next().expect("operator").as_str() {
                "==" => CompareOp::Eq,
                "!=" => CompareOp::Ne,
                "<=" => CompareOp::Le,
                ">=" => CompareOp::Ge,
                "<" => CompareOp::Lt,
                _ => CompareOp::Gt,
            };
            Expr::Compare(left, op, rvalue(inner.next().expect("right")))
        }
        Rule::regexp_expression => {
            let mut inner = pair.into_inner();
            let left = rvalue(inner.next().expect("left"));
            let matches = inner.next().expect("operator").as_str() == "=~";
            Expr::Regex(left, matches, rvalue(inner.next().expect("pattern")))
        }
        _ => Expr::Value(rvalue(pair)),
    }
}

fn rvalue(pair: Pair<Rule>) -> RValue {
    match pair.as_rule() {
        Rule::double_quoted_string | Rule::single_quoted_string => RValue::String(string(pair)),
        Rule::number => RValue::Number(pair.as_str().to_string()),
        Rule::selector => RValue::Selector(pair.as_str().to_string()),
        Rule::array => RValue::Array(pair.into_inner().map(value).collect()),
        Rule::method_call => {
            let mut inner = pair.into_inner();
            let name = inner.next().expect("method name").as_str().to_string();
            RValue::MethodCall(name, inner.map(rvalue).collect())
        }
        Rule::regexp => RValue::Regexp(pair.into_inner().next().map(|p| p.as_str().to_string()).unwrap_or_default()),
        other => unreachable!("not an rvalue: {other:?}"),
    }
}
