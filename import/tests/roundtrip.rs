//! Property: printing any config tree and parsing the text again gives the same tree.

use logpipe_import::logstash::ast::*;
use logpipe_import::logstash::{parse, print};
use proptest::prelude::*;

const KEYWORDS: &[&str] = &["if", "else", "and", "or", "xor", "nand", "in", "not"];

/// Names and barewords. None starts with `if` or `else`: `if5 {}` reads as `if 5 {}`, in Logstash too.
fn word() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{1,7}".prop_filter("not a keyword", |w| {
        !KEYWORDS.contains(&w.as_str()) && !w.starts_with("if") && !w.starts_with("else")
    })
}

fn string() -> impl Strategy<Value = Str> {
    prop_oneof![
        "[a-zA-Z0-9 %{}:./'-]{0,12}".prop_map(|text| Str { text, quote: Quote::Double }),
        "[a-zA-Z0-9 %{}:./\"-]{0,12}".prop_map(|text| Str { text, quote: Quote::Single }),
    ]
}

fn number() -> impl Strategy<Value = String> {
    "-?[0-9]{1,4}(\\.[0-9]{0,2})?"
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![word().prop_map(Value::Bareword), string().prop_map(Value::String), number().prop_map(Value::Number)]
}

fn hash_key() -> impl Strategy<Value = HashKey> {
    prop_oneof![
        number().prop_map(HashKey::Number),
        word().prop_map(HashKey::Bareword),
        string().prop_map(HashKey::String)
    ]
}

fn plugin_with(values: BoxedStrategy<Value>) -> BoxedStrategy<Plugin> {
    (word(), prop::collection::vec((word(), values), 0..4))
        .prop_map(|(name, attrs)| Plugin {
            name,
            attributes: attrs.into_iter().map(|(name, value)| Attribute { name, value, pos: Pos::default() }).collect(),
            pos: Pos::default(),
        })
        .boxed()
}

fn value() -> BoxedStrategy<Value> {
    scalar()
        .prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((hash_key(), inner.clone()), 0..4)
                    .prop_map(|e| Value::Hash(e.into_iter().map(|(key, value)| HashEntry { key, value }).collect())),
                plugin_with(inner.boxed()).prop_map(Value::Plugin),
            ]
        })
        .boxed()
}

fn selector() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z@_][a-z0-9_ -]{0,5}", 1..3)
        .prop_map(|parts| parts.iter().map(|p| format!("[{p}]")).collect())
}

/// Arrays of 0 or 2+ scalars: `["a"]` alone reads as a field reference, in Logstash too.
fn rvalue_array() -> impl Strategy<Value = Vec<Value>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(prop_oneof![string().prop_map(Value::String), number().prop_map(Value::Number)], 2..4),
    ]
}

fn rvalue() -> impl Strategy<Value = RValue> {
    let leaf = prop_oneof![
        string().prop_map(RValue::String),
        number().prop_map(RValue::Number),
        selector().prop_map(RValue::Selector),
        rvalue_array().prop_map(RValue::Array),
        "[a-z0-9 ]{0,6}".prop_map(RValue::Regexp),
    ];
    leaf.prop_recursive(2, 6, 3, |inner| {
        (word(), prop::collection::vec(inner, 0..3)).prop_map(|(name, args)| RValue::MethodCall(name, args))
    })
}

fn compare_op() -> impl Strategy<Value = CompareOp> {
    prop_oneof![
        Just(CompareOp::Eq),
        Just(CompareOp::Ne),
        Just(CompareOp::Le),
        Just(CompareOp::Ge),
        Just(CompareOp::Lt),
        Just(CompareOp::Gt)
    ]
}

fn bool_op() -> impl Strategy<Value = BoolOp> {
    prop_oneof![Just(BoolOp::And), Just(BoolOp::Or), Just(BoolOp::Xor), Just(BoolOp::Nand)]
}

fn condition() -> impl Strategy<Value = Condition> {
    let leaf = prop_oneof![
        selector().prop_map(Expr::NotSelector),
        (rvalue(), rvalue()).prop_map(|(a, b)| Expr::In(a, b)),
        (rvalue(), rvalue()).prop_map(|(a, b)| Expr::NotIn(a, b)),
        (rvalue(), compare_op(), rvalue()).prop_map(|(a, op, b)| Expr::Compare(a, op, b)),
        (
            rvalue(),
            any::<bool>(),
            prop_oneof![string().prop_map(RValue::String), "[a-z0-9 ]{0,6}".prop_map(RValue::Regexp)]
        )
            .prop_map(|(a, m, b)| Expr::Regex(a, m, b)),
        rvalue().prop_map(Expr::Value),
    ];
    let flat = |exprs: BoxedStrategy<Expr>| {
        (exprs.clone(), prop::collection::vec((bool_op(), exprs), 0..3))
            .prop_map(|(first, rest)| Condition { first: Box::new(first), rest })
    };
    let base = flat(leaf.clone().boxed());
    base.prop_recursive(2, 8, 2, move |inner| {
        let nested = prop_oneof![inner.clone().prop_map(Expr::Paren), inner.prop_map(Expr::NotParen), leaf.clone()];
        flat(nested.boxed())
    })
}

fn items() -> impl Strategy<Value = Vec<Item>> {
    let plugin = plugin_with(value()).prop_map(Item::Plugin).boxed();
    prop::collection::vec(plugin.clone(), 0..3).prop_recursive(2, 12, 3, move |inner| {
        let branch = (prop::collection::vec((condition(), inner.clone()), 1..3), prop::option::of(inner.clone()))
            .prop_map(|(arms, otherwise)| {
                Item::Branch(Branch {
                    arms: arms
                        .into_iter()
                        .map(|(condition, body)| Arm { condition, body, pos: Pos::default() })
                        .collect(),
                    otherwise,
                })
            });
        prop::collection::vec(prop_oneof![plugin.clone(), branch], 0..3)
    })
}

fn config() -> impl Strategy<Value = Config> {
    let kind = prop_oneof![Just(SectionKind::Input), Just(SectionKind::Filter), Just(SectionKind::Output)];
    prop::collection::vec((kind, items()), 0..3).prop_map(|sections| Config {
        sections: sections.into_iter().map(|(kind, body)| Section { kind, body, pos: Pos::default() }).collect(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn print_then_parse_is_the_same_tree(tree in config()) {
        let text = print(&tree);
        let again = parse("printed.conf", &text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(tree, again, "{}", text);
    }
}
