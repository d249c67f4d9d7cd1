//! Logstash conditions as logpipe `when` clauses. `and` binds tighter than `or`, as Logstash's compiler
//! has it; `nand` is `not (a and b)` and `xor` is `(a and not b) or (not a and b)`.

use super::ast::*;
use super::values::text;
use crate::draft::Value as Toml;
use crate::when::When;

pub fn translate(c: &Condition) -> Result<When, String> {
    // Shunting yard over two levels: split on or/xor, each part a run of and/nand.
    let mut groups: Vec<(Option<BoolOp>, When)> = Vec::new();
    let mut current = expr(&c.first)?;
    let mut pending_low: Option<BoolOp> = None;
    for (op, e) in &c.rest {
        let right = expr(e)?;
        match op {
            BoolOp::And => current = When::all([current, right]).expect("two"),
            BoolOp::Nand => current = When::all([current, right]).expect("two").negate(),
            BoolOp::Or | BoolOp::Xor => {
                groups.push((pending_low, current));
                pending_low = Some(*op);
                current = right;
            }
        }
    }
    groups.push((pending_low, current));
    let mut iter = groups.into_iter();
    let (_, mut result) = iter.next().expect("one group");
    for (op, w) in iter {
        result = match op {
            Some(BoolOp::Xor) => When::any(vec![
                When::all([result.clone(), w.clone().negate()]).expect("two"),
                When::all([result.negate(), w]).expect("two"),
            ]),
            _ => When::any(vec![result, w]),
        };
    }
    Ok(result)
}

fn field(selector: &str) -> String {
    selector.to_string()
}

fn is_tags(selector: &str) -> bool {
    selector_path(selector) == ["tags"]
}

fn scalar(v: &RValue) -> Option<Toml> {
    match v {
        RValue::String(s) => Some(Toml::String(s.text.clone())),
        RValue::Number(n) => {
            if let Ok(i) = n.parse::<i64>() {
                Some(Toml::Integer(i))
            } else {
                n.parse::<f64>().ok().map(Toml::Float)
            }
        }
        _ => None,
    }
}

fn unsupported(what: &str) -> String {
    format!("logpipe's conditions have no {what}")
}

fn expr(e: &Expr) -> Result<When, String> {
    match e {
        Expr::Paren(c) => translate(c),
        Expr::NotParen(c) => Ok(translate(c)?.negate()),
        Expr::NotSelector(s) => Ok(When::Exists(field(s)).negate()),
        Expr::Value(RValue::Selector(s)) => Ok(When::Exists(field(s))),
        Expr::Value(RValue::MethodCall(name, _)) => Err(unsupported(&format!("method calls (`{name}(...)`)"))),
        Expr::Value(_) => Err(unsupported("constant conditions")),
        Expr::In(item, list) => in_list(item, list),
        Expr::NotIn(item, list) => Ok(in_list(item, list)?.negate()),
        Expr::Compare(left, op, right) => {
            let (f, v) = match (left, right) {
                (RValue::Selector(f), other) | (other, RValue::Selector(f)) if scalar(other).is_some() => {
                    (f, scalar(other).expect("checked"))
                }
                (RValue::Selector(_), RValue::Selector(_)) => {
                    return Err(unsupported("comparison of two fields"));
                }
                _ => return Err(unsupported("comparison of these values")),
            };
            match op {
                CompareOp::Eq => Ok(When::Equals(field(f), v)),
                CompareOp::Ne => Ok(When::Equals(field(f), v).negate()),
                other => Err(unsupported(&format!("ordering comparison (`{}`); only == and !=", other.as_str()))),
            }
        }
        Expr::Regex(left, matches, pattern) => {
            let RValue::Selector(f) = left else {
                return Err(unsupported("regexp match on anything but a field"));
            };
            let re = match pattern {
                RValue::Regexp(r) => r.replace("\\/", "/"),
                RValue::String(s) => s.text.clone(),
                _ => return Err(unsupported("regexp of this kind")),
            };
            let w = When::Matches(field(f), re);
            Ok(if *matches { w } else { w.negate() })
        }
    }
}

fn in_list(item: &RValue, list: &RValue) -> Result<When, String> {
    match (item, list) {
        (RValue::String(s), RValue::Selector(f)) if is_tags(f) => Ok(When::Tag(s.text.clone())),
        (RValue::String(s), RValue::Selector(f)) => {
            // Logstash: substring of a string field, or element of an array field. logpipe's regex
            // match covers the string case.
            Ok(When::Matches(field(f), regex::escape(&s.text)))
        }
        (RValue::Selector(f), RValue::Array(values)) => {
            let mut any = Vec::new();
            for v in values {
                let value = match v {
                    Value::Number(n) => scalar(&RValue::Number(n.clone())),
                    other => text(other).ok().map(Toml::String),
                }
                .ok_or_else(|| unsupported("`in` with a list of non-scalar values"))?;
                any.push(When::Equals(field(f), value));
            }
            if any.is_empty() {
                return Err(unsupported("`in` with an empty list"));
            }
            Ok(When::any(any))
        }
        (RValue::Selector(_), RValue::Selector(_)) => Err(unsupported("`in` between two fields")),
        _ => Err(unsupported("`in` on these values")),
    }
}
