//! `COPY --chmod` / `ADD --chmod` values: an octal mode, or (dockerfile 1.10+) a symbolic one as
//! chmod(1) takes it (`u=rwX,go=rX`, `+x`, `a+X`, `go-w`). A symbolic mode is applied to each
//! file's own mode, so `X` adds execute only to directories and to files some user can already
//! execute. As in BuildKit, an omitted "who" means all (`a`), with no umask applied.

use serde::{Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chmod {
    Octal(u32),
    Symbolic(SymbolicMode),
}

/// The parsed clauses, and the text they came from (what the cache key records).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolicMode {
    text: String,
    clauses: Vec<Clause>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Clause {
    /// The permission bits the clause may touch (from `u`, `g`, `o`, `a`).
    who: u32,
    actions: Vec<Action>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Action {
    op: Op,
    perms: Perms,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Set,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Perms {
    /// Any of r, w, x, X, s, t; `exec_if` is `X`.
    Bits { bits: u32, exec_if: bool },
    /// `u`, `g` or `o` on the right-hand side: copy that class's current permissions.
    CopyOf(u32),
}

const WHO_U: u32 = 0o4700;
const WHO_G: u32 = 0o2070;
const WHO_O: u32 = 0o1007;
const WHO_ALL: u32 = WHO_U | WHO_G | WHO_O;

impl Chmod {
    /// Parses a `--chmod` value, with BuildKit's error for a value that looks numeric.
    pub fn parse(value: &str) -> Result<Chmod, String> {
        let octal_err = || {
            format!(
                "invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777"
            )
        };
        // As BuildKit (through its mode parser): a value that starts with a digit is an octal
        // number or this error, `64a` included.
        if value.starts_with(|c: char| c.is_ascii_digit()) {
            return u32::from_str_radix(value, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(Chmod::Octal)
                .ok_or_else(octal_err);
        }
        SymbolicMode::parse(value)
            .map(Chmod::Symbolic)
            .map_err(|why| format!("invalid chmod parameter: '{value}': {why}"))
    }

    /// The mode an entry gets, given its own mode (permission and special bits) and kind.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(m) => *m,
            Chmod::Symbolic(s) => s.apply(mode & 0o7777, is_dir),
        }
    }
}

impl SymbolicMode {
    fn parse(text: &str) -> Result<SymbolicMode, String> {
        let mut clauses = Vec::new();
        for clause in text.split(',') {
            let bytes = clause.as_bytes();
            let mut i = 0;
            let mut who = 0;
            while let Some(b) = bytes.get(i) {
                who |= match b {
                    b'u' => WHO_U,
                    b'g' => WHO_G,
                    b'o' => WHO_O,
                    b'a' => WHO_ALL,
                    _ => break,
                };
                i += 1;
            }
            if who == 0 {
                who = WHO_ALL;
            }
            let mut actions = Vec::new();
            while let Some(b) = bytes.get(i) {
                let op = match b {
                    b'+' => Op::Add,
                    b'-' => Op::Remove,
                    b'=' => Op::Set,
                    _ => return Err(format!("unexpected {:?} in {clause:?}", *b as char)),
                };
                i += 1;
                let perms = match bytes.get(i) {
                    Some(b'u') => Some(WHO_U),
                    Some(b'g') => Some(WHO_G),
                    Some(b'o') => Some(WHO_O),
                    _ => None,
                };
                let perms = match perms {
                    Some(class) => {
                        i += 1;
                        Perms::CopyOf(class)
                    }
                    None => {
                        let (mut bits, mut exec_if) = (0, false);
                        while let Some(b) = bytes.get(i) {
                            match b {
                                b'r' => bits |= 0o444,
                                b'w' => bits |= 0o222,
                                b'x' => bits |= 0o111,
                                b'X' => exec_if = true,
                                b's' => bits |= 0o6000,
                                b't' => bits |= 0o1000,
                                _ => break,
                            }
                            i += 1;
                        }
                        Perms::Bits { bits, exec_if }
                    }
                };
                actions.push(Action { op, perms });
            }
            if actions.is_empty() {
                return Err(format!("{clause:?} has no +, - or ="));
            }
            clauses.push(Clause { who, actions });
        }
        Ok(SymbolicMode {
            text: text.to_string(),
            clauses,
        })
    }

    fn apply(&self, mut mode: u32, is_dir: bool) -> u32 {
        for clause in &self.clauses {
            for action in &clause.actions {
                let bits = match action.perms {
                    Perms::Bits { bits, exec_if } => {
                        let exec = exec_if && (is_dir || mode & 0o111 != 0);
                        bits | if exec { 0o111 } else { 0 }
                    }
                    // The class's rwx, spread to every class; `who` then picks where it lands.
                    Perms::CopyOf(class) => {
                        let rwx = (mode & class & 0o777) >> class.trailing_zeros();
                        rwx * 0o111
                    }
                } & clause.who;
                mode = match action.op {
                    Op::Add => mode | bits,
                    Op::Remove => mode & !bits,
                    Op::Set => (mode & !clause.who) | bits,
                };
            }
        }
        mode
    }
}

/// Cache keys record the value as written: an octal mode as its number (as before symbolic
/// modes existed, so those keys are unchanged), a symbolic one as its text.
impl Serialize for Chmod {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Chmod::Octal(m) => s.serialize_u32(*m),
            Chmod::Symbolic(sym) => s.serialize_str(&sym.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(value: &str, mode: u32, is_dir: bool) -> u32 {
        Chmod::parse(value).unwrap().apply(mode, is_dir)
    }

    /// Expected values are what chmod(1) gives for the same mode (BuildKit's testChmodNonOctal
    /// compares its COPY against chmod the same way).
    #[test]
    fn symbolic_modes_match_chmod() {
        assert_eq!(apply("go-w", 0o666, false), 0o644);
        assert_eq!(apply("u=rw,g=r,o=r", 0o666, false), 0o644);
        assert_eq!(apply("a+X", 0o666, false), 0o666);
        assert_eq!(apply("a+X", 0o766, false), 0o777);
        assert_eq!(apply("go-w", 0o124, true), 0o104);
        assert_eq!(apply("u+rw,g+r,o-x,o+w", 0o124, true), 0o766);
        assert_eq!(apply("a+X", 0o124, true), 0o135);
        assert_eq!(apply("+x", 0o644, false), 0o755);
        assert_eq!(apply("u=rwX,go=rX", 0o600, false), 0o644);
        assert_eq!(apply("u=rwX,go=rX", 0o700, true), 0o755);
        assert_eq!(apply("g=u", 0o640, false), 0o660);
        assert_eq!(apply("u+s", 0o755, false), 0o4755);
        assert_eq!(apply("o+t", 0o777, true), 0o1777);
        assert_eq!(apply("=", 0o4755, false), 0);
    }

    #[test]
    fn octal_modes_and_buildkit_errors() {
        assert_eq!(Chmod::parse("755").unwrap(), Chmod::Octal(0o755));
        assert_eq!(Chmod::parse("0644").unwrap().apply(0o777, true), 0o644);
        for bad in ["999", "17777", "08"] {
            assert_eq!(
                Chmod::parse(bad).unwrap_err(),
                format!(
                    "invalid chmod parameter: '{bad}'. it should be octal string and between 0 and 07777"
                )
            );
        }
        for bad in ["u", "u+q", "x+r", "", "u+r,"] {
            let e = Chmod::parse(bad).unwrap_err();
            assert!(
                e.starts_with(&format!("invalid chmod parameter: '{bad}': ")),
                "{e}"
            );
        }
    }

    #[test]
    fn keys_record_octal_modes_as_numbers_and_symbolic_ones_as_text() {
        let key = |v: &str| serde_json::to_string(&Chmod::parse(v).unwrap()).unwrap();
        assert_eq!(key("755"), "493");
        assert_eq!(key("u=rwX,go=rX"), "\"u=rwX,go=rX\"");
    }
}
