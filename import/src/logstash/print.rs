//! Printing a [`Config`] back as Logstash config text, two spaces per level. Parsing the printed text
//! gives the same tree (comments and layout aside), which the tests check on the corpus and on
//! generated trees.

use std::fmt::Write;

use super::ast::*;

pub fn print(config: &Config) -> String {
    let mut out = String::new();
    for (i, section) in config.sections.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{} {{", section.kind.as_str());
        items(&mut out, &section.body, 1);
        out.push_str("}\n");
    }
    out
}

fn indent(out: &mut String, level: usize) {
    out.push_str(&"  ".repeat(level));
}

fn items(out: &mut String, items: &[Item], level: usize) {
    for item in items {
        indent(out, level);
        match item {
            Item::Plugin(p) => plugin(out, p, level),
            Item::Branch(b) => branch(out, b, level),
        }
        out.push('\n');
    }
}

fn plugin(out: &mut String, p: &Plugin, level: usize) {
    name(out, &p.name);
    if p.attributes.is_empty() {
        out.push_str(" {}");
        return;
    }
    out.push_str(" {\n");
    for a in &p.attributes {
        indent(out, level + 1);
        name(out, &a.name);
        out.push_str(" => ");
        value(out, &a.value, level + 1);
        out.push('\n');
    }
    indent(out, level);
    out.push('}');
}

fn is_bare_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn name(out: &mut String, s: &str) {
    if is_bare_name(s) {
        out.push_str(s);
    } else if !s.contains('"') {
        let _ = write!(out, "\"{s}\"");
    } else {
        let _ = write!(out, "'{s}'");
    }
}

fn string(out: &mut String, s: &Str) {
    let q = match s.quote {
        Quote::Double => '"',
        Quote::Single => '\'',
    };
    let _ = write!(out, "{q}{}{q}", s.text);
}

fn value(out: &mut String, v: &Value, level: usize) {
    match v {
        Value::Plugin(p) => plugin(out, p, level),
        Value::Bareword(s) | Value::Number(s) => out.push_str(s),
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                value(out, item, level);
            }
            out.push(']');
        }
        Value::Hash(entries) => {
            if entries.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push_str("{\n");
            for e in entries {
                indent(out, level + 1);
                match &e.key {
                    HashKey::Number(s) | HashKey::Bareword(s) => out.push_str(s),
                    HashKey::String(s) => string(out, s),
                }
                out.push_str(" => ");
                value(out, &e.value, level + 1);
                out.push('\n');
            }
            indent(out, level);
            out.push('}');
        }
    }
}

fn branch(out: &mut String, b: &Branch, level: usize) {
    for (i, arm) in b.arms.iter().enumerate() {
        out.push_str(if i == 0 { "if " } else { " else if " });
        condition(out, &arm.condition);
        block(out, &arm.body, level);
    }
    if let Some(body) = &b.otherwise {
        out.push_str(" else");
        block(out, body, level);
    }
}

fn block(out: &mut String, body: &[Item], level: usize) {
    out.push_str(" {\n");
    items(out, body, level + 1);
    indent(out, level);
    out.push('}');
}

pub(crate) fn condition(out: &mut String, c: &Condition) {
    expr(out, &c.first);
    for (op, e) in &c.rest {
        let _ = write!(out, " {} ", op.as_str());
        expr(out, e);
    }
}

fn expr(out: &mut String, e: &Expr) {
    match e {
        Expr::Paren(c) => {
            out.push('(');
            condition(out, c);
            out.push(')');
        }
        Expr::NotParen(c) => {
            out.push_str("!(");
            condition(out, c);
            out.push(')');
        }
        Expr::NotSelector(s) => {
            out.push('!');
            out.push_str(s);
        }
        Expr::In(a, b) => {
            rvalue(out, a);
            out.push_str(" in ");
            rvalue(out, b);
        }
        Expr::NotIn(a, b) => {
            rvalue(out, a);
            out.push_str(" not in ");
            rvalue(out, b);
        }
        Expr::Compare(a, op, b) => {
            rvalue(out, a);
            let _ = write!(out, " {} ", op.as_str());
            rvalue(out, b);
        }
        Expr::Regex(a, matches, b) => {
            rvalue(out, a);
            out.push_str(if *matches { " =~ " } else { " !~ " });
            rvalue(out, b);
        }
        Expr::Value(v) => rvalue(out, v),
    }
}

pub(crate) fn rvalue(out: &mut String, v: &RValue) {
    match v {
        RValue::String(s) => string(out, s),
        RValue::Number(s) | RValue::Selector(s) => out.push_str(s),
        RValue::Array(items) => value(out, &Value::Array(items.clone()), 0),
        RValue::MethodCall(name, args) => {
            out.push_str(name);
            out.push('(');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                rvalue(out, a);
            }
            out.push(')');
        }
        RValue::Regexp(s) => {
            let _ = write!(out, "/{s}/");
        }
    }
}
