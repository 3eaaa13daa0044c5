//! How deeply a document nests, measured before it is parsed.
//!
//! The YAML parser (libyaml, through serde_yaml_ng) spends time proportional
//! to the flow nesting depth (`[`/`{`) on every token, so a document of
//! nothing but brackets costs the square of its length before any limit of
//! the deserializer applies. This pass reads the document the way libyaml's
//! scanner does — the same quoted, plain and block scalars, comments, tags,
//! anchors, simple keys and indentation stack — without building anything,
//! and stops at the first place the nesting goes past the limit. It follows
//! libyaml rather than approximating it because a bracket it wrongly took for
//! text (inside what it thought a quoted string) would hide real nesting.
//!
//! Depth counts flow collections plus block collections (indentation levels,
//! with a sequence written at its mapping's own indentation counted too).
//! Where libyaml would stop at an error this pass goes on, so it never sees
//! less nesting than the parser would.

/// Where a document first nests deeper than allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooDeep {
    /// 1-based line of the collection that went past the limit.
    pub line: usize,
}

/// The deepest nesting of a JSON text, or the first place it passes `limit`.
/// Brackets inside strings do not count.
pub fn json_depth(text: &str, limit: usize) -> Result<usize, TooDeep> {
    let (mut depth, mut max, mut line) = (0usize, 0usize, 1usize);
    let mut in_string = false;
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'\n' => line += 1,
            // An escaped character never ends the string (an escaped
            // newline is invalid JSON and refused by the parser anyway).
            b'\\' if in_string => line += usize::from(bytes.next() == Some(b'\n')),
            b'"' => in_string = !in_string,
            b'[' | b'{' if !in_string => {
                depth += 1;
                if depth > limit {
                    return Err(TooDeep { line });
                }
                max = max.max(depth);
            }
            b']' | b'}' if !in_string => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(max)
}

/// What a YAML scan found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct YamlScan {
    /// Deepest nesting of flow and block collections.
    pub depth: usize,
    /// Deepest flow nesting alone.
    pub flow_depth: usize,
}

/// The deepest nesting of a YAML text, or the first place it passes `limit`.
pub fn yaml_depth(text: &str, limit: usize) -> Result<YamlScan, TooDeep> {
    let mut s = Scanner::new(text, limit);
    s.run()?;
    Ok(YamlScan { depth: s.max_depth, flow_depth: s.max_flow })
}

#[derive(Clone, Copy, Debug)]
struct Mark {
    line: usize,
    index: usize,
    column: usize,
}

#[derive(Clone, Copy, Debug)]
struct Level {
    column: isize,
    mapping: bool,
    /// A block sequence at this mapping's own indentation (`key:\n- a`).
    indentless: bool,
}

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
    mark: Mark,
    limit: usize,
    flow: usize,
    levels: Vec<Level>,
    indentless: usize,
    simple_key_allowed: bool,
    /// The possible simple key at block level (its start).
    block_key: Option<Mark>,
    max_depth: usize,
    max_flow: usize,
}

fn is_alpha(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// Characters of a shorthand tag (`!foo`, `!!str`, `!e!x`).
fn is_tag_char(c: u8) -> bool {
    is_alpha(c) || b";/?:@&=+$.%!~*'()".contains(&c)
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str, limit: usize) -> Self {
        Scanner {
            b: text.as_bytes(),
            pos: 0,
            mark: Mark { line: 0, index: 0, column: 0 },
            limit,
            flow: 0,
            levels: Vec::new(),
            indentless: 0,
            simple_key_allowed: false,
            block_key: None,
            max_depth: 0,
            max_flow: 0,
        }
    }

    fn at(&self, k: usize) -> u8 {
        self.b.get(self.pos + k).copied().unwrap_or(0)
    }

    fn is_eof(&self) -> bool {
        self.pos >= self.b.len()
    }

    /// Length in bytes of the line break at offset `k`, or 0.
    fn break_len(&self, k: usize) -> usize {
        match (self.at(k), self.at(k + 1), self.at(k + 2)) {
            (b'\r', b'\n', _) => 2,
            (b'\r' | b'\n', _, _) => 1,
            (0xC2, 0x85, _) => 2,
            (0xE2, 0x80, 0xA8 | 0xA9) => 3,
            _ => 0,
        }
    }

    fn is_break(&self, k: usize) -> bool {
        self.break_len(k) > 0
    }

    fn is_blank(&self, k: usize) -> bool {
        matches!(self.at(k), b' ' | b'\t')
    }

    fn is_blankz(&self, k: usize) -> bool {
        self.is_blank(k) || self.is_break(k) || self.pos + k >= self.b.len()
    }

    /// Moves past one character (a line break counts as one and starts a
    /// new line).
    fn skip(&mut self) {
        if self.is_eof() {
            return;
        }
        let brk = self.break_len(0);
        if brk > 0 {
            self.pos += brk;
            self.mark.line += 1;
            self.mark.column = 0;
        } else {
            let c = self.b[self.pos];
            let width = match c {
                0x00..=0x7F => 1,
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            self.pos = (self.pos + width).min(self.b.len());
            self.mark.column += 1;
        }
        self.mark.index += 1;
    }

    fn depth(&self) -> usize {
        self.levels.len() + self.indentless + self.flow
    }

    fn check_depth(&mut self) -> Result<(), TooDeep> {
        let depth = self.depth();
        self.max_depth = self.max_depth.max(depth);
        self.max_flow = self.max_flow.max(self.flow);
        if depth > self.limit { Err(TooDeep { line: self.mark.line + 1 }) } else { Ok(()) }
    }

    fn indent(&self) -> isize {
        self.levels.last().map_or(-1, |l| l.column)
    }

    fn roll_indent(&mut self, column: usize, mapping: bool) -> Result<(), TooDeep> {
        if self.flow > 0 {
            return Ok(());
        }
        let column = column as isize;
        if self.indent() < column {
            self.levels.push(Level { column, mapping, indentless: false });
        } else if let Some(top) = self.levels.last_mut().filter(|l| l.column == column) {
            match (top.mapping, mapping, top.indentless) {
                // `- ` at a mapping's indentation: a sequence inside it.
                (true, false, false) => {
                    top.indentless = true;
                    self.indentless += 1;
                }
                // The mapping's next key ends that sequence.
                (true, true, true) => {
                    top.indentless = false;
                    self.indentless -= 1;
                }
                _ => {}
            }
        }
        self.check_depth()
    }

    fn unroll_indent(&mut self, column: isize) {
        if self.flow > 0 {
            return;
        }
        while self.indent() > column {
            if self.levels.pop().is_some_and(|l| l.indentless) {
                self.indentless -= 1;
            }
        }
    }

    fn save_simple_key(&mut self) {
        if self.flow == 0 && self.simple_key_allowed {
            self.block_key = Some(self.mark);
        }
    }

    fn remove_simple_key(&mut self) {
        if self.flow == 0 {
            self.block_key = None;
        }
    }

    fn document_indicator(&self) -> bool {
        self.mark.column == 0
            && ((self.at(0) == b'-' && self.at(1) == b'-' && self.at(2) == b'-')
                || (self.at(0) == b'.' && self.at(1) == b'.' && self.at(2) == b'.'))
            && self.is_blankz(3)
    }

    fn run(&mut self) -> Result<(), TooDeep> {
        // The stream start allows a simple key.
        self.simple_key_allowed = true;
        loop {
            self.scan_to_next_token();
            if self.flow == 0
                && let Some(k) = self.block_key
                && (k.line < self.mark.line || k.index + 1024 < self.mark.index)
            {
                self.block_key = None;
            }
            self.unroll_indent(self.mark.column as isize);
            if self.is_eof() {
                return Ok(());
            }
            let c = self.at(0);
            if self.mark.column == 0 && c == b'%' {
                // A directive: to the end of its line.
                while !self.is_eof() && !self.is_break(0) {
                    self.skip();
                }
                continue;
            }
            if self.document_indicator() {
                self.unroll_indent(-1);
                self.remove_simple_key();
                self.simple_key_allowed = false;
                for _ in 0..3 {
                    self.skip();
                }
                continue;
            }
            match c {
                b'[' | b'{' => {
                    self.save_simple_key();
                    self.flow += 1;
                    self.simple_key_allowed = true;
                    self.skip();
                    self.check_depth()?;
                }
                b']' | b'}' => {
                    self.remove_simple_key();
                    self.flow = self.flow.saturating_sub(1);
                    self.simple_key_allowed = false;
                    self.skip();
                }
                b',' => {
                    self.remove_simple_key();
                    self.simple_key_allowed = true;
                    self.skip();
                }
                b'-' if self.is_blankz(1) => {
                    self.roll_indent(self.mark.column, false)?;
                    self.remove_simple_key();
                    self.simple_key_allowed = true;
                    self.skip();
                }
                b'?' if self.flow > 0 || self.is_blankz(1) => {
                    self.roll_indent(self.mark.column, true)?;
                    self.remove_simple_key();
                    self.simple_key_allowed = self.flow == 0;
                    self.skip();
                }
                b':' if self.flow > 0 || self.is_blankz(1) => {
                    match self.block_key.take().filter(|_| self.flow == 0) {
                        Some(key) => {
                            self.roll_indent(key.column, true)?;
                            self.simple_key_allowed = false;
                        }
                        None => {
                            self.roll_indent(self.mark.column, true)?;
                            self.simple_key_allowed = self.flow == 0;
                        }
                    }
                    self.skip();
                }
                b'*' | b'&' => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    self.skip();
                    while is_alpha(self.at(0)) {
                        self.skip();
                    }
                }
                b'!' => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    self.scan_tag();
                }
                b'|' | b'>' if self.flow == 0 => {
                    self.remove_simple_key();
                    self.simple_key_allowed = true;
                    self.scan_block_scalar();
                }
                b'\'' | b'"' => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    self.scan_quoted(c == b'\'');
                }
                _ if self.starts_plain() => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    self.scan_plain();
                }
                // libyaml stops here ("cannot start any token"); going on
                // only ever sees more.
                _ => self.skip(),
            }
        }
    }

    fn scan_to_next_token(&mut self) {
        loop {
            if self.mark.column == 0 && self.at(0) == 0xEF && self.at(1) == 0xBB && self.at(2) == 0xBF {
                self.skip();
            }
            while self.at(0) == b' ' || ((self.flow > 0 || !self.simple_key_allowed) && self.at(0) == b'\t') {
                self.skip();
            }
            if self.at(0) == b'#' {
                while !self.is_eof() && !self.is_break(0) {
                    self.skip();
                }
            }
            if !self.is_break(0) {
                return;
            }
            self.skip();
            if self.flow == 0 {
                self.simple_key_allowed = true;
            }
        }
    }

    fn starts_plain(&self) -> bool {
        let c = self.at(0);
        let indicator = self.is_blankz(0) || b"-?:,[]{}#&*!|>'\"%@`".contains(&c);
        !indicator
            || (c == b'-' && !self.is_blank(1))
            || (self.flow == 0 && (c == b'?' || c == b':') && !self.is_blankz(1))
    }

    fn scan_tag(&mut self) {
        if self.at(1) == b'<' {
            // Verbatim: `!<…>`, any URI characters (brackets included).
            self.skip();
            self.skip();
            while !self.is_blankz(0) && self.at(0) != b'>' {
                self.skip();
            }
            if self.at(0) == b'>' {
                self.skip();
            }
        } else {
            self.skip();
            while is_tag_char(self.at(0)) {
                self.skip();
            }
        }
    }

    fn scan_quoted(&mut self, single: bool) {
        self.skip();
        loop {
            if self.is_eof() || self.document_indicator() {
                // libyaml refuses the document here.
                return;
            }
            match self.at(0) {
                b'\'' if single && self.at(1) == b'\'' => {
                    self.skip();
                    self.skip();
                }
                b'\'' if single => {
                    self.skip();
                    return;
                }
                b'"' if !single => {
                    self.skip();
                    return;
                }
                b'\\' if !single => {
                    // An escape or an escaped line break: two characters.
                    self.skip();
                    self.skip();
                }
                _ => self.skip(),
            }
        }
    }

    fn scan_plain(&mut self) {
        let indent = self.indent() + 1;
        let mut leading_blanks = false;
        loop {
            if self.document_indicator() || self.at(0) == b'#' {
                break;
            }
            let mut read = false;
            while !self.is_blankz(0) {
                let c = self.at(0);
                if self.flow > 0 && c == b':' && b",?[]{}".contains(&self.at(1)) {
                    // libyaml refuses the document here.
                    return;
                }
                if (c == b':' && self.is_blankz(1)) || (self.flow > 0 && b",[]{}".contains(&c)) {
                    break;
                }
                self.skip();
                read = true;
            }
            if read {
                leading_blanks = false;
            }
            if !(self.is_blank(0) || self.is_break(0)) {
                break;
            }
            while self.is_blank(0) || self.is_break(0) {
                if self.is_break(0) {
                    leading_blanks = true;
                }
                self.skip();
            }
            if self.flow == 0 && (self.mark.column as isize) < indent {
                break;
            }
        }
        if leading_blanks {
            self.simple_key_allowed = true;
        }
    }

    fn scan_block_scalar(&mut self) {
        self.skip();
        let mut increment = 0isize;
        for _ in 0..2 {
            match self.at(0) {
                b'+' | b'-' => self.skip(),
                c @ b'1'..=b'9' if increment == 0 => {
                    increment = isize::from(c - b'0');
                    self.skip();
                }
                _ => {}
            }
        }
        // The rest of the header line: blanks, a comment (anything else is
        // an error in libyaml).
        while !self.is_eof() && !self.is_break(0) {
            self.skip();
        }
        self.skip();
        let mut indent =
            if increment > 0 { if self.indent() >= 0 { self.indent() + increment } else { increment } } else { 0 };
        self.block_scalar_breaks(&mut indent);
        while self.mark.column as isize == indent && !self.is_eof() {
            while !self.is_eof() && !self.is_break(0) {
                self.skip();
            }
            if self.is_eof() {
                break;
            }
            self.skip();
            self.block_scalar_breaks(&mut indent);
        }
    }

    /// Skips indentation and empty lines; settles an undecided indentation
    /// (0) from the most indented of them, as libyaml does.
    fn block_scalar_breaks(&mut self, indent: &mut isize) {
        let mut max_indent = 0isize;
        loop {
            while (*indent == 0 || (self.mark.column as isize) < *indent) && self.at(0) == b' ' {
                self.skip();
            }
            max_indent = max_indent.max(self.mark.column as isize);
            if !self.is_break(0) {
                break;
            }
            self.skip();
        }
        if *indent == 0 {
            *indent = max_indent.max(self.indent() + 1).max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(s: &str) -> usize {
        yaml_depth(s, usize::MAX).expect("no limit").depth
    }

    fn flow(s: &str) -> usize {
        yaml_depth(s, usize::MAX).expect("no limit").flow_depth
    }

    #[test]
    fn flow_nesting_counts() {
        assert_eq!(flow("[[[]]]"), 3);
        assert_eq!(flow("a: {b: [c, {d: e}]}"), 3);
        assert_eq!(depth("a: {b: [c, {d: e}]}"), 4, "the block mapping holding them counts too");
        assert_eq!(yaml_depth(&"[".repeat(40), 32), Err(TooDeep { line: 1 }));
        assert_eq!(yaml_depth(&format!("a: 1\n\n{}", "{\"a\":".repeat(33)), 32), Err(TooDeep { line: 3 }));
    }

    #[test]
    fn brackets_in_text_do_not_count() {
        assert_eq!(flow("a: \"[[[[\"\nb: '{{{{'\nc: x [[[[ y\n# [[[[\nd: [1, '[[[', \"]]]\", e]\n"), 1);
        assert_eq!(flow("a: |\n  [[[[\n  {{{{\nb: >-\n    [[[[\n"), 0);
        assert_eq!(flow("a: it's [\nb: 'don''t [' # [[\n"), 0);
        assert_eq!(flow("a: !<tag:x[1]> v\nb: !!str [x]\n"), 1);
        assert_eq!(flow("a: \"esc \\\" [[[\" \n"), 0);
    }

    #[test]
    fn quotes_inside_plain_text_hide_nothing() {
        // `'` in the middle of plain text is text; the real flow after it counts.
        assert_eq!(flow("a: x '\nb: [[[[1]]]]\n# '\n"), 4);
        // A continuation line of a plain scalar starting with a quote is text too.
        assert_eq!(flow("a: foo\n  'bar\nb: [[[[1]]]]\n# '\n"), 4);
        // A block scalar ends where its indentation does.
        assert_eq!(flow("a: |\n  '\nb: [[[1]]]\n"), 3);
    }

    #[test]
    fn block_nesting_counts() {
        assert_eq!(depth("a: 1\n"), 1);
        assert_eq!(depth("a:\n  b:\n    c: 1\n"), 3);
        assert_eq!(depth("- - - x\n"), 3);
        assert_eq!(depth("a:\n- b: 1\n  c: 2\nd: 3\n"), 3, "map, indentless sequence, map");
        assert_eq!(depth("- a\n- b\n"), 1);
        let deep: String = (0..40).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        assert_eq!(yaml_depth(&deep, 32), Err(TooDeep { line: 33 }));
        assert_eq!(yaml_depth(&format!("{}x\n", "- ".repeat(33)), 32), Err(TooDeep { line: 1 }));
    }

    #[test]
    fn the_demo_catalog_is_shallow() {
        let scan = yaml_depth(crate::DEMO_CATALOG, 32).expect("demo");
        assert!((5..=12).contains(&scan.depth), "{scan:?}");
    }

    #[test]
    fn json_counts_brackets_outside_strings() {
        assert_eq!(json_depth(r#"{"a": [1, {"b": "[[[\"{{"}]}"#, 32), Ok(3));
        assert_eq!(json_depth(&"{\"a\":".repeat(60_000), 32), Err(TooDeep { line: 1 }));
        assert_eq!(json_depth("\"\\\\\" [[", 1), Err(TooDeep { line: 1 }));
    }
}
