//! A parsed query lowered once into what is evaluated: a tree of typed
//! nodes, each selector replaced by the id of its [`Selection`] (the data
//! the store fetches for it). Everything the evaluator does not support is
//! refused here, as `bad_data`, so [`super::eval`] matches every node
//! exhaustively and has no fallback.

use super::select::{self, Selection};
use crate::error::ApiError;
use promql_parser::parser::{Expr, LabelModifier};

/// A query ready to evaluate: its tree, and the selections its ids index.
#[derive(Clone, Debug)]
pub struct Plan {
    pub root: Node,
    pub selections: Vec<Selection>,
}

/// One node of the tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Number(f64),
    Negate(Box<Node>),
    Binary {
        op: Arith,
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
    /// A vector selector (`range_s` none), or a range selector outside
    /// rate() and increase(), where the range is the window a
    /// distribution's quantile is read over.
    Select {
        id: usize,
        range_s: Option<f64>,
    },
    Aggregate {
        op: Aggregation,
        grouping: Grouping,
        arg: Box<Node>,
    },
    /// `rate(sel[range])` (`per_second`) or `increase(sel[range])`.
    Increase {
        id: usize,
        range_s: f64,
        per_second: bool,
    },
    HistogramQuantile {
        phi: Box<Node>,
        arg: Box<Node>,
    },
}

/// The arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

impl Arith {
    pub fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            Arith::Add => a + b,
            Arith::Sub => a - b,
            Arith::Mul => a * b,
            Arith::Div => a / b,
            Arith::Mod => a % b,
            Arith::Pow => a.powf(b),
        }
    }
}

/// The aggregation operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregation {
    Sum,
    Avg,
    Min,
    Max,
    Count,
}

impl Aggregation {
    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Sum => "sum",
            Aggregation::Avg => "avg",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Count => "count",
        }
    }
}

/// Which labels an aggregation groups by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// No `by` or `without`: one group.
    All,
    By(Vec<String>),
    Without(Vec<String>),
}

/// Lowers `expr`; unsupported constructs are `bad_data` naming them.
pub fn lower(expr: &Expr) -> Result<Plan, ApiError> {
    let mut selections = Vec::new();
    let root = node(expr, &mut selections)?;
    Ok(Plan { root, selections })
}

fn select(selections: &mut Vec<Selection>, selection: Selection) -> usize {
    selections.push(selection);
    selections.len() - 1
}

fn node(expr: &Expr, selections: &mut Vec<Selection>) -> Result<Node, ApiError> {
    Ok(match expr {
        Expr::NumberLiteral(n) => Node::Number(n.val),
        Expr::Paren(p) => node(&p.expr, selections)?,
        Expr::Unary(u) => Node::Negate(Box::new(node(&u.expr, selections)?)),
        Expr::Binary(b) => {
            let op = match b.op.to_string().as_str() {
                "+" => Arith::Add,
                "-" => Arith::Sub,
                "*" => Arith::Mul,
                "/" => Arith::Div,
                "%" => Arith::Mod,
                "^" => Arith::Pow,
                op => return Err(ApiError::BadData(format!("unsupported operator {op} in {expr}"))),
            };
            if b.modifier.as_ref().is_some_and(|m| m.matching.is_some() || m.return_bool || m.card.labels().is_some()) {
                return Err(ApiError::BadData(format!("unsupported vector matching modifier in {expr}")));
            }
            let lhs = Box::new(node(&b.lhs, selections)?);
            Node::Binary { op, lhs, rhs: Box::new(node(&b.rhs, selections)?) }
        }
        Expr::VectorSelector(vs) => Node::Select { id: select(selections, select::selection(vs, None)?), range_s: None },
        Expr::MatrixSelector(ms) => {
            let range_s = ms.range.as_secs_f64();
            Node::Select { id: select(selections, select::selection(&ms.vs, Some(range_s))?), range_s: Some(range_s) }
        }
        Expr::Aggregate(a) => {
            let op = match a.op.to_string().as_str() {
                "sum" => Aggregation::Sum,
                "avg" => Aggregation::Avg,
                "min" => Aggregation::Min,
                "max" => Aggregation::Max,
                "count" => Aggregation::Count,
                op => return Err(ApiError::BadData(format!("unsupported aggregation {op} in {expr}"))),
            };
            if a.param.is_some() {
                return Err(ApiError::BadData(format!("unsupported aggregation {op:?} with a parameter in {expr}")));
            }
            let grouping = match &a.modifier {
                None => Grouping::All,
                Some(LabelModifier::Include(by)) => Grouping::By(by.labels.clone()),
                Some(LabelModifier::Exclude(without)) => Grouping::Without(without.labels.clone()),
            };
            Node::Aggregate { op, grouping, arg: Box::new(node(&a.expr, selections)?) }
        }
        Expr::Call(c) => {
            let args = &c.args.args;
            match c.func.name {
                "rate" | "increase" => {
                    let (Some(Expr::MatrixSelector(ms)), 1) = (args.first().map(|a| a.as_ref()), args.len()) else {
                        return Err(ApiError::BadData(format!("{}() needs a range selector such as name[5m], in {c}", c.func.name)));
                    };
                    let range_s = ms.range.as_secs_f64();
                    let id = select(selections, select::selection(&ms.vs, Some(range_s))?);
                    Node::Increase { id, range_s, per_second: c.func.name == "rate" }
                }
                "histogram_quantile" => {
                    let [phi, v] = args.as_slice() else {
                        return Err(ApiError::BadData(format!("histogram_quantile() takes a quantile and a vector, in {c}")));
                    };
                    let phi = Box::new(node(phi, selections)?);
                    Node::HistogramQuantile { phi, arg: Box::new(node(v, selections)?) }
                }
                other => return Err(ApiError::BadData(format!("unsupported function {other}()"))),
            }
        }
        other => return Err(unsupported(other)),
    })
}

/// `bad_data` naming the construct.
fn unsupported(expr: &Expr) -> ApiError {
    let what = match expr {
        Expr::Subquery(_) => "subquery",
        Expr::StringLiteral(_) => "string literal",
        Expr::Extension(_) => "extension",
        _ => "expression",
    };
    ApiError::BadData(format!("unsupported {what} in {expr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(q: &str) -> Result<Plan, ApiError> {
        lower(&crate::query::parse(q)?)
    }

    #[test]
    fn selectors_become_ids_in_evaluation_order() {
        let p = plan(r#"histogram_quantile(0.9, sum by (x) (rate(a_count[5m]))) + avg without (y) (b{quantile="0.5"})"#).unwrap();
        let names: Vec<_> = p.selections.iter().map(|s| (s.name.as_str(), s.range_s)).collect();
        assert_eq!(names, [("a_count", Some(300.0)), ("b", None)]);
        let rate = Node::Increase { id: 0, range_s: 300.0, per_second: true };
        let lhs = Node::HistogramQuantile {
            phi: Box::new(Node::Number(0.9)),
            arg: Box::new(Node::Aggregate { op: Aggregation::Sum, grouping: Grouping::By(vec!["x".into()]), arg: Box::new(rate) }),
        };
        let rhs = Node::Aggregate {
            op: Aggregation::Avg,
            grouping: Grouping::Without(vec!["y".into()]),
            arg: Box::new(Node::Select { id: 1, range_s: None }),
        };
        assert_eq!(p.root, Node::Binary { op: Arith::Add, lhs: Box::new(lhs), rhs: Box::new(rhs) });
        assert_eq!(
            plan("-(increase(c[1h]))").unwrap().root,
            Node::Negate(Box::new(Node::Increase { id: 0, range_s: 3600.0, per_second: false }))
        );
        assert_eq!(plan("m[10m]").unwrap().root, Node::Select { id: 0, range_s: Some(600.0) });
        assert!(plan("1 + 1").unwrap().selections.is_empty());
    }

    #[test]
    fn each_operator_has_its_arm() {
        for (q, want) in [("7 + 2", 9.0), ("7 - 2", 5.0), ("7 * 2", 14.0), ("7 / 2", 3.5), ("7 % 2", 1.0), ("7 ^ 2", 49.0)] {
            let Node::Binary { op, .. } = plan(q).unwrap().root else { panic!("{q} is not binary") };
            assert_eq!(op.apply(7.0, 2.0), want, "{q}");
        }
        for op in ["sum", "avg", "min", "max", "count"] {
            let Node::Aggregate { op: got, .. } = plan(&format!("{op}(m)")).unwrap().root else { panic!("{op}") };
            assert_eq!(got.name(), op);
        }
    }

    #[test]
    fn unsupported_constructs_are_named() {
        for (q, what) in [
            ("m offset 5m", "offset"),
            (r#"m{quantile="2"}"#, "outside [0, 1]"),
            (r#"m{quantile=~"0.9"}"#, "only supports '='"),
            ("m[5m:1m]", "subquery"),
            ("topk(3, m)", "aggregation topk"),
            ("quantile(0.5, m)", "aggregation quantile"),
            ("m > 3", "operator >"),
            ("a / on(x) b", "vector matching"),
            ("delta(m[5m])", "delta"),
            (r#"label_replace(m, "a", "b", "c", "d")"#, "label_replace"),
            (r#""text""#, "string literal"),
        ] {
            let err = plan(q).unwrap_err();
            assert!(matches!(err, ApiError::BadData(_)));
            assert!(err.to_string().contains(what), "{q}: {err}");
        }
    }
}
