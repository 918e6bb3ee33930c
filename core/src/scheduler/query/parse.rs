//! The query language's tokenizer and recursive-descent parser; errors name the column.

use super::{Expr, Op};
use crate::limits::{EXPRESSION_CHARS, MAX_EXPRESSION_DEPTH};
use std::fmt;

/// Parses a whole expression. Its length is bounded before it is read and its nesting while it
/// is, so no expression can make the parser recurse past `MAX_EXPRESSION_DEPTH`.
pub(super) fn parse(src: &str) -> Result<Expr, String> {
    EXPRESSION_CHARS.check(src.chars().count() as i64)?;
    let toks = tokenize(src)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    if p.peek().tok == Tok::End {
        return Err(
            "the expression is empty; write e.g. attribute:ecs.availability-zone == a".into(),
        );
    }
    let expr = p.or()?;
    let t = p.peek();
    if t.tok != Tok::End {
        return Err(format!(
            "unexpected {} at column {}; join conditions with and / or",
            t.tok, t.col
        ));
    }
    Ok(expr)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    EqEq,
    NotEq,
    Tilde,
    Bang,
    AndAnd,
    OrOr,
    Word(String),
    Quoted(String),
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::LParen => f.write_str("'('"),
            Tok::RParen => f.write_str("')'"),
            Tok::Comma => f.write_str("','"),
            Tok::EqEq => f.write_str("'=='"),
            Tok::NotEq => f.write_str("'!='"),
            Tok::Tilde => f.write_str("'=~'"),
            Tok::Bang => f.write_str("'!'"),
            Tok::AndAnd => f.write_str("'&&'"),
            Tok::OrOr => f.write_str("'||'"),
            Tok::Word(w) => write!(f, "'{}'", crate::error::cut(w)),
            Tok::Quoted(q) => write!(f, "\"{}\"", crate::error::cut(q)),
            Tok::End => f.write_str("the end of the expression"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// 1-based character column where the token starts.
    col: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || ".-_:/*?".contains(c)
}

fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let word_at = |mut j: usize| {
        let start = j;
        while j < chars.len() && is_word_char(chars[j]) {
            j += 1;
        }
        (chars[start..j].iter().collect::<String>(), j)
    };
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let next = chars.get(i + 1).copied();
        let (tok, len) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            '=' if next == Some('=') => (Tok::EqEq, 2),
            '=' if next == Some('~') => (Tok::Tilde, 2),
            '=' => {
                return Err(format!(
                    "unexpected '=' at column {col}; compare with == or match with =~"
                ))
            }
            '!' if next == Some('=') => (Tok::NotEq, 2),
            '!' => {
                // `!in` and `!exists` are operators; any other `!` negates what follows.
                let (w, end) = word_at(i + 1);
                if w.eq_ignore_ascii_case("in") || w.eq_ignore_ascii_case("exists") {
                    (Tok::Word(format!("!{w}")), end - i)
                } else {
                    (Tok::Bang, 1)
                }
            }
            '&' if next == Some('&') => (Tok::AndAnd, 2),
            '|' if next == Some('|') => (Tok::OrOr, 2),
            '\'' | '"' => {
                let mut j = i + 1;
                let mut s = String::new();
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(format!(
                                "the quote {c} opened at column {col} is never closed"
                            ))
                        }
                        Some(&q) if q == c => break,
                        Some('\\') if matches!(chars.get(j + 1), Some(&e) if e == c || e == '\\') =>
                        {
                            s.push(chars[j + 1]);
                            j += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            j += 1;
                        }
                    }
                }
                (Tok::Quoted(s), j + 1 - i)
            }
            c if is_word_char(c) => {
                let (w, end) = word_at(i);
                (Tok::Word(w), end - i)
            }
            c => {
                return Err(format!(
                    "unexpected character '{c}' at column {col}; quote values that contain it"
                ))
            }
        };
        out.push(Token { tok, col });
        i += len;
    }
    out.push(Token {
        tok: Tok::End,
        col: chars.len() + 1,
    });
    Ok(out)
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// Parentheses and `not`s open around the current token.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.pos]
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if t.tok != Tok::End {
            self.pos += 1;
        }
        t
    }

    /// One level deeper, or the error for an expression nested past the limit.
    fn descend(&mut self, col: usize) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_EXPRESSION_DEPTH {
            return Err(format!(
                "nested more than {MAX_EXPRESSION_DEPTH} levels deep (parentheses and not) at column {col}, over the limit; write the conditions flatter"
            ));
        }
        Ok(())
    }

    fn at_keyword(&self, words: &[&str]) -> bool {
        matches!(&self.peek().tok, Tok::Word(w) if words.iter().any(|k| w.eq_ignore_ascii_case(k)))
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.at_keyword(&["or"]) || self.peek().tok == Tok::OrOr {
            self.bump();
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.at_keyword(&["and"]) || self.peek().tok == Tok::AndAnd {
            self.bump();
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.at_keyword(&["not"]) || self.peek().tok == Tok::Bang {
            let t = self.bump();
            self.descend(t.col)?;
            let e = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, String> {
        if self.peek().tok == Tok::LParen {
            let open = self.bump();
            self.descend(open.col)?;
            let e = self.or()?;
            self.depth -= 1;
            let t = self.bump();
            if t.tok != Tok::RParen {
                return Err(format!(
                    "expected ')' at column {} to close the '(' at column {}, found {}",
                    t.col, open.col, t.tok
                ));
            }
            return Ok(e);
        }
        self.test()
    }

    fn test(&mut self) -> Result<Expr, String> {
        let t = self.bump();
        let word = match &t.tok {
            Tok::Word(w) if !is_keyword(w) => w,
            other => {
                return Err(format!(
                    "expected an attribute (attribute:NAME) at column {}, found {other}",
                    t.col
                ))
            }
        };
        let name = word.strip_prefix("attribute:").unwrap_or(word).to_string();
        if name.is_empty() {
            return Err(format!(
                "expected an attribute name after 'attribute:' at column {}",
                t.col
            ));
        }
        let op_tok = self.bump();
        let op = match &op_tok.tok {
            Tok::EqEq => Op::Eq(self.value("==")?),
            Tok::NotEq => Op::Ne(self.value("!=")?),
            Tok::Tilde => Op::Glob(self.value("=~")?),
            Tok::Word(w) => match w.to_ascii_lowercase().as_str() {
                "equals" => Op::Eq(self.value(w)?),
                "not_equals" => Op::Ne(self.value(w)?),
                "matches" => Op::Glob(self.value(w)?),
                "in" => Op::In(self.list(w)?),
                "!in" | "not_in" => Op::NotIn(self.list(w)?),
                "exists" => Op::Exists,
                "!exists" | "not_exists" => Op::NotExists,
                _ => return Err(expected_operator(&name, &op_tok)),
            },
            _ => return Err(expected_operator(&name, &op_tok)),
        };
        Ok(Expr::Test { name, op })
    }

    fn value(&mut self, after: &str) -> Result<String, String> {
        let t = self.bump();
        match t.tok {
            Tok::Word(w) if !is_keyword(&w) => Ok(w),
            Tok::Quoted(w) => Ok(w),
            other => Err(format!(
                "expected a value after '{after}' at column {}, found {other}",
                t.col
            )),
        }
    }

    fn list(&mut self, after: &str) -> Result<Vec<String>, String> {
        let t = self.bump();
        if t.tok != Tok::LParen {
            return Err(format!(
                "expected '(' after '{after}' at column {}, found {}; write {after} (a, b)",
                t.col, t.tok
            ));
        }
        let mut values = vec![self.value("(")?];
        loop {
            let t = self.bump();
            match t.tok {
                Tok::RParen => return Ok(values),
                Tok::Comma => values.push(self.value(",")?),
                other => {
                    return Err(format!(
                    "expected ',' or ')' in the list after '{after}' at column {}, found {other}",
                    t.col
                ))
                }
            }
        }
    }
}

/// `and`, `or` and `not` join conditions, so as a value or a name they must be quoted.
fn is_keyword(w: &str) -> bool {
    ["and", "or", "not"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
}

fn expected_operator(name: &str, t: &Token) -> String {
    format!(
        "expected an operator (==, !=, in, !in, exists, !exists, =~) after attribute:{name} at column {}, found {}",
        t.col, t.tok
    )
}
